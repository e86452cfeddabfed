# shellcheck shell=sh
# Appends $entry, one JSON line (when, who, what, how it ended: nothing that can hold a
# secret), to the app's deploy log $log. The log is append-only and bounded: once it is a fifth
# longer than $keep_lines, it is cut to its last $keep_lines lines (a new file renamed over it,
# so a reader never sees half of it).
: "${entry:?}" "${log:?}" "${keep_lines:?}"
[ -d "${log%/*}" ] || install -d -m 0755 "${log%/*}"
printf '%s\n' "$entry" >>"$log"
if [ "$(wc -l <"$log")" -gt $((keep_lines + keep_lines / 5)) ]; then
    tail -n "$keep_lines" "$log" >"$log.tmp"
    mv -f "$log.tmp" "$log"
fi
