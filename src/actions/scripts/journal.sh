# shellcheck shell=sh
# The unit's journal since $since (the host's clock before the switch).
: "${unit:?}" "${since:?}"
journalctl -u "$unit" --since "@$since" --no-pager -n 40 -o short-iso 2>&1 || true
