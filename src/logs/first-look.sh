# shellcheck shell=sh
# `shipit logs`' first look at a host: its clock (nanoseconds and zone; shipit times the
# answer's arrival to learn the offset), then journalctl with the words the query makes
# ("$@": the unit, JSON, -n, --since, --until, -g), uncoloured.
echo "clock=$(date +%s%N) $(date +%z)"
export SYSTEMD_COLORS=0 SYSTEMD_LOG_COLOR=0
exec "$@"
