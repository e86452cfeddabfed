# shellcheck shell=sh
# Reads the lock (age=, owner=) and the armed dead-man timers (armed=), touching neither.
: "${lock:?}" "${base:?}" "${app:?}"
echo "now=$(date +%s)"
if [ -d "$lock" ]; then
    echo "age=$(lock_age)"
    echo "owner=$(cat "$lock/owner.json" 2>/dev/null || true)"
fi
for marker in "$base/.shipit"/deadman.*.json; do
    [ -e "$marker" ] || continue
    if systemctl is-active --quiet "shipit-deadman-$app.timer"; then echo "armed=$(cat "$marker")"; fi
done
