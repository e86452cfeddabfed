# shellcheck shell=sh
# What runs now, for a dry run's diff: the binary's sha256 on the first line (empty when none),
# the installed unit file's size in bytes on the second, then the unit file and the socket unit
# file ($socket_path, absent without `[service] listen`).
: "${current:?}" "${app:?}" "${unit_path:?}" "${socket_path:?}"
sum=$(sha256sum "$current/$app" 2>/dev/null || true)
echo "${sum%% *}"
size=$(stat -c %s "$unit_path" 2>/dev/null || echo 0)
echo "$size"
cat "$unit_path" 2>/dev/null || true
cat "$socket_path" 2>/dev/null || true
