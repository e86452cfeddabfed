# shellcheck shell=sh
# Arms this deploy's dead-man timer: a transient systemd timer ($name) that runs $heal (the
# timer's own script, written to a file: as an ExecStart line systemd would expand its $vars)
# in $secs seconds. The marker $marker.json says it is armed; it appears only once the timer
# exists, from $marker_json with the firing time (the host's clock) added. A failure leaves
# neither behind.
: "${token:?}" "${name:?}" "${heal:?}" "${marker_json:?}" "${secs:?}" "${base:?}"
marker="$base/.shipit/deadman.$token"
trap 'rm -f "$marker.json.tmp"; [ -e "$marker.json" ] || rm -f "$marker.sh"' EXIT
rm -f "$base/.shipit"/deadman.*.done
printf '%s' "$heal" >"$marker.sh"
chmod 0700 "$marker.sh"
systemctl stop "$name.timer" "$name.service" 2>/dev/null || true
systemctl reset-failed "$name.service" "$name.timer" 2>/dev/null || true
printf '%s%s}\n' "$marker_json" "$(($(date +%s) + secs))" >"$marker.json.tmp"
systemd-run --quiet --unit="$name" --on-active="${secs}s" --timer-property=AccuracySec=1s /bin/sh "$marker.sh"
mv "$marker.json.tmp" "$marker.json"
