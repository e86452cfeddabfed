# shellcheck shell=sh
# `shipit logs -f`: journalctl ("$@") following on from where the last line shown was.
# journalctl -f follows past --until (and 257 shows what comes after it): with $until (the
# host's clock, in seconds; empty for no end) `timeout` ends it there, and shipit drops the
# lines after it.
: "${until?}"
export SYSTEMD_COLORS=0 SYSTEMD_LOG_COLOR=0
[ -n "$until" ] || exec "$@"
left=$((until - $(date +%s)))
[ "$left" -gt 0 ] || exit 0
status=0
timeout "$left" "$@" || status=$?
[ "$status" != 124 ] || exit 0
exit "$status"
