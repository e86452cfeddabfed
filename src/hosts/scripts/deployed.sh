# shellcheck shell=sh
# What `shipit exec` needs to run a command as the service runs: the host's systemd release,
# the deployed release and its version (when there is one), then `--- unit` and the installed
# unit as systemd reads it (drop-ins included; nothing when there is none).
: "${current:?}" "${unit:?}"
echo "systemd=$(systemctl --version | head -n 1)"
if [ -d "$current/" ]; then
    echo "release=$(basename "$(readlink -f "$current")")"
    echo "version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$current/manifest.json" 2>/dev/null)"
fi
echo '--- unit'
systemctl cat "$unit" 2>/dev/null || true
