# shellcheck shell=sh
# The last $lines entries of the app's deploy log $log, oldest first; nothing when there is none.
: "${log:?}" "${lines:?}"
[ ! -f "$log" ] || tail -n "$lines" "$log"
