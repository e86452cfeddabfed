# shellcheck shell=sh
# A command health check: $command (a script, as `printf %b` reads it, that runs the check as
# the service runs, through systemd-run as the transient unit $check_unit) within $t seconds; its output, stdout and stderr,
# is kept to $cap bytes. A check still running at the deadline is stopped with its unit.
# Prints `exit=N`, then the output.
# Exits: 0 (the verdict is in `exit=`).
: "${command:?}" "${check_unit:?}" "${t:?}" "${cap:?}"
output=$(mktemp)
exited=$(mktemp)
script=$(mktemp)
printf %b "$command" >"$script"
limit=
if command -v timeout >/dev/null 2>&1; then limit="timeout $t"; fi
{
    got=0
    $limit sh "$script" 2>&1 </dev/null || got=$?
    echo "$got" >"$exited"
} | head -c "$cap" >"$output"
got=$(cat "$exited")
if [ "$got" = 124 ]; then
    systemctl stop "$check_unit" 2>/dev/null || true
    echo "(no end within ${t}s)" >>"$output"
fi
echo "exit=$got"
cat "$output"
rm -f "$output" "$exited" "$script"
