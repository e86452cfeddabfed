# shellcheck shell=sh
# With no earlier release to return to, a failed first release is stopped, not left flapping.
: "${unit:?}"
stop_service
