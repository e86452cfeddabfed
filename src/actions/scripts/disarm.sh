# shellcheck shell=sh
# Disarms this deploy's dead-man timer if it has not fired: renaming the marker first decides.
# Prints `disarmed` when it did, nothing when no timer of this deploy was armed.
# Exits: $timer_fired, with what the timer did (or that it is running now) on stdout.
: "${token:?}" "${name:?}" "${base:?}" "${timer_fired:?}"
marker="$base/.shipit/deadman.$token"
if mv "$marker.json" "$marker.json.disarmed" 2>/dev/null; then
    systemctl stop "$name.timer" 2>/dev/null || true
    rm -f "$marker.json.disarmed" "$marker.sh"
    echo disarmed
elif [ -e "$marker.json.firing" ]; then
    echo 'it is running now'
    exit "$timer_fired"
elif [ -f "$marker.done" ]; then
    cat "$marker.done"
    rm -f "$marker.done"
    exit "$timer_fired"
fi
