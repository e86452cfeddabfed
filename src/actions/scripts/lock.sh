# shellcheck shell=sh
# Takes the deploy lock: a directory made with mkdir holding owner.json ($owner, with our
# token $me). A stale lock is taken over only as shipit found it: $takeover is `none`, `owner`
# (the owner with token $expected, when the lock is at least $min_age seconds old) or
# `ownerless`. Then other deploys' armed dead-man timers are listed (armed=<marker>) and, per
# $policy, refused (the lock is let go) or disarmed. Once the lock is ours, a background
# job refreshes it every 15 s while this shell ($$) lives and the lock is still ours, so the
# refreshes stop when shipit or its connection dies.
# Prints took-over when it replaced a stale lock, now= (the host's clock) and armed= lines.
# Exits: $locked (age= and owner= say who holds it), $timer_armed.
: "${me:?}" "${owner:?}" "${takeover:?}" "${expected?}" "${min_age:?}" "${policy:?}"
: "${timer:?}" "${base:?}" "${lock:?}" "${locked:?}" "${timer_armed:?}"
held() {
    echo "age=$(lock_age)"
    echo "owner=$(cat "$lock/owner.json" 2>/dev/null || true)"
    exit "$locked"
}
mkdir -p "$base/.shipit"
if mkdir "$lock" 2>/dev/null; then
    own "$owner" "$me" || held
elif [ "$takeover" = none ] || [ "$(lock_age)" -lt "$min_age" ]; then
    held
elif [ "$takeover" = ownerless ]; then
    { [ ! -e "$lock/owner.json" ] && own "$owner" "$me"; } || held
    echo took-over
else
    { claim "$expected" "$me" && own "$owner" "$me"; } || held
    echo took-over
fi
echo "now=$(date +%s)"
for marker in "$base/.shipit"/deadman.*.json; do
    [ -e "$marker" ] || continue
    if ! systemctl is-active --quiet "$timer.timer"; then
        rm -f "$marker"
        continue
    fi
    echo "armed=$(cat "$marker")"
    case $policy in
    refuse)
        rm -rf "$lock"
        exit "$timer_armed"
        ;;
    disarm)
        if mv "$marker" "$marker.disarmed" 2>/dev/null; then
            systemctl stop "$timer.timer" 2>/dev/null || true
            rm -f "$marker.disarmed" "${marker%.json}.sh"
        fi
        ;;
    esac
done
shell=$$
(
    exec </dev/null >/dev/null 2>&1 3>&-
    while sleep 15 && kill -0 "$shell"; do
        [ "$(token_of "$lock/owner.json")" = "$me" ] || exit 0
        touch -c "$lock"
    done
) &
