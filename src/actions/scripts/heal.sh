# shellcheck shell=sh
# The dead-man timer's script, run by systemd on the host by itself; switch.sh and healed.sh
# follow it. It must never hurt a later deploy, nor the deploy that armed it, so:
# - while the deploy that armed it ($token) still holds the lock and keeps it fresh, that
#   deploy is alive and confirms or rolls back by itself: the script waits, and does nothing if
#   it is disarmed meanwhile;
# - it acts only if it renames its marker before a disarm does (then the disarm fails and
#   says so);
# - it takes the deploy lock itself, atomically, taking over only the lock of the deploy that
#   armed it, and only once that lock has not been refreshed for $lease seconds (the deploy
#   died or lost the host); when anyone else holds it, it does nothing;
# - it acts only while `current` still points at $release, and returns only to $previous when
#   that still exists, unpacked and checked (with no $previous it stops the service);
# - the release it puts back or stops is marked failed with its name ($me), which the deploy's
#   finish.sh reads: a release this timer undid is never recorded as good;
# - whatever it did, or why it did nothing, goes to its journal and to $marker.done, which the
#   deploy's confirmation reads.
: "${token:?}" "${previous?}" "${lease:?}" "${base:?}" "${release:?}" "${lock:?}" "${current:?}"
: "${rel:?}" "${unit:?}" "${releases:?}" "${app:?}"
marker="$base/.shipit/deadman.$token"
me="deadman-$token"
owner=$(printf '{"user":"root","from":"%s","pid":%s,"version":"%s (dead-man timer)","since":"%s","token":"%s"}' "$(uname -n)" "$$" "$release" "$(date -u +%FT%TZ)" "$me")
say() { echo "shipit dead-man timer for $app $release: $*"; }
verdict() {
    say "$*"
    echo "$*" >"$marker.done"
}
step='claiming the timer'
took=no
finish() {
    status=$?
    if [ "$status" -ne 0 ]; then verdict "failed (exit $status) while $step; the host is as that step left it"; fi
    if [ "$took" = yes ]; then rm -rf "$lock"; fi
    rm -f "$marker.json.firing" "$marker.sh"
}
trap finish EXIT
# Whether the deploy that armed the timer holds the lock and has refreshed it within the lease.
alive() {
    [ "$(token_of "$lock/owner.json")" = "$token" ] && [ "$(lock_age)" -lt "$lease" ]
}
if [ -e "$marker.json" ] && alive; then
    say "the deploy that armed it still holds the lock and keeps it fresh: waiting until it confirms, lets go, or stops refreshing it for ${lease}s"
    while [ -e "$marker.json" ] && alive; do sleep 2; done
fi
if ! mv "$marker.json" "$marker.json.firing" 2>/dev/null; then
    say 'disarmed before it fired: nothing to do'
    exit 0
fi
step='taking the deploy lock'
mkdir -p "$base/.shipit"
if mkdir "$lock" 2>/dev/null || { ! alive && claim "$token" "$me"; }; then
    if own "$owner" "$me"; then took=yes; fi
fi
if [ "$took" != yes ]; then
    verdict "another deploy holds the lock ($(cat "$lock/owner.json" 2>/dev/null || echo 'owner unknown')): left the host as it is"
    exit 0
fi
step='checking the host'
now=$(readlink "$current" 2>/dev/null || true)
now=${now##*/}
if [ "$now" != "$release" ]; then
    verdict "current is ${now:-missing}, not $release: a later deploy or rollback moved it, so the host was left as it is"
    exit 0
fi
if [ -z "$previous" ]; then
    step='stopping the service'
    echo "$me" >"$rel/.shipit-failed"
    stop_service
    verdict "$release was not confirmed and there is no earlier release: stopped and disabled $unit"
    exit 0
fi
if [ ! -f "$releases/$previous/.shipit-complete" ]; then
    verdict "$release was not confirmed, but the release to return to, $previous, is gone: left the host as it is"
    exit 0
fi
step="switching back to $previous"
echo "$me" >"$rel/.shipit-failed"
target=$previous
export target
