# shellcheck shell=sh
# What runs now, for a dry run's diff: the binary's sha256 on the first line (empty when none),
# then the installed unit file.
: "${current:?}" "${app:?}" "${unit_path:?}"
sum=$(sha256sum "$current/$app" 2>/dev/null || true)
echo "${sum%% *}"
cat "$unit_path" 2>/dev/null || true
