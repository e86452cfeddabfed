//! The container every generated file describes: who it runs as and where its files live.

/// The uid and gid the container runs as: distroless's "nonroot". Numeric, because Kubernetes'
/// runAsNonRoot can only check a numeric USER, and scratch has no /etc/passwd to name one in.
pub(super) const CONTAINER_UID: u32 = 65532;

/// Where the binary and its config files live inside the image, like /opt/<app>/current on a host.
pub(super) const CONTAINER_DIR: &str = "/app";
