# shellcheck shell=sh
# The dead-man timer's script, run by systemd on the host by itself; switch.sh and healed.sh
# follow it. It must never hurt a later deploy, so:
# - it acts only if it renames its marker before a disarm does (then the disarm fails and
#   says so);
# - it takes the deploy lock itself, atomically, taking over only the lock of the deploy that
#   armed it ($token: that deploy died); when anyone else holds it, it does nothing;
# - it acts only while `current` still points at $release, and returns only to $previous when
#   that still exists, unpacked and checked (with no $previous it stops the service);
# - whatever it did, or why it did nothing, goes to its journal and to $marker.done, which the
#   deploy's confirmation reads.
: "${token:?}" "${previous?}" "${base:?}" "${release:?}" "${lock:?}" "${current:?}"
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
if ! mv "$marker.json" "$marker.json.firing" 2>/dev/null; then
    say 'disarmed before it fired: nothing to do'
    exit 0
fi
step='taking the deploy lock'
mkdir -p "$base/.shipit"
if mkdir "$lock" 2>/dev/null || claim "$token" "$me"; then
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
    : >"$rel/.shipit-failed"
    stop_service
    verdict "$release was not confirmed and there is no earlier release: stopped and disabled $unit"
    exit 0
fi
if [ ! -f "$releases/$previous/.shipit-complete" ]; then
    verdict "$release was not confirmed, but the release to return to, $previous, is gone: left the host as it is"
    exit 0
fi
step="switching back to $previous"
: >"$rel/.shipit-failed"
target=$previous
export target
