# shellcheck shell=sh
# Pre-flight: the new release ($rel) checked before anything the running release uses changes.
# With a socket ($socket = yes): started once on a scratch socket as a socket-activated
# transient service ($name, started by start_on_socket) with the real unit's user,
# environment, limits and hardening, on a free port of loopback below the ephemeral range
# (picked here, or $port when shipit picked it). Then the [health] check of kind $kind is
# asked until it passes, within $wait seconds, each try within $t seconds and $cap bytes:
# - url: the path $path must answer $expect_status (get is probe.sh);
# - tcp: the scratch socket must accept (and answer $send with $expect; tcp_check is
#   check-tcp.sh);
# - program (a `command` check): the release's own command (command_check is check-command.sh) must exit 0; it
#   finds the scratch socket in SHIPIT_HEALTH_ADDR. Without a socket it runs once.
# Where the release reports a version it must be $version when $check_version is yes; a
# release that exits first is refused at once. Then the units are stopped, whatever happened.
# Prints `preflight=<port> <what answered>`.
# Exits: $preflight_failed (the release was marked failed; stderr has the end of its journal,
# then why).
: "${rel:?}" "${kind:?}" "${socket:?}" "${port?}" "${wait:?}" "${t:?}" "${cap:?}"
: "${version:?}" "${check_version:?}" "${name:?}" "${preflight_failed:?}" "${no_probe_tool:?}"
: "${path?}" "${expect_status?}" "${send?}" "${expect?}" "${command?}" "${check_unit?}"
host=127.0.0.1
tries=0
while [ "$socket" = yes ] && [ -z "$port" ] && [ "$tries" -lt 50 ]; do
    n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    candidate=$((20000 + n % 10000))
    hex=$(printf '%04X' "$candidate")
    grep -qs "^ *[0-9]*: [0-9A-F]*:$hex " /proc/net/tcp /proc/net/tcp6 || port=$candidate
    tries=$((tries + 1))
done
if [ "$socket" = yes ] && [ -z "$port" ]; then
    echo "no free port on 127.0.0.1 between 20000 and 29999 for the pre-flight" >&2
    exit 1
fi
if [ "$tries" -eq 0 ] && [ -n "$port" ] &&
    grep -qs "^ *[0-9]*: [0-9A-F]*:$(printf '%04X' "$port") " /proc/net/tcp /proc/net/tcp6; then
    echo "the pre-flight's port 127.0.0.1:$port is taken (a chance of about 1 in 10000): deploy again" >&2
    exit 1
fi
url="http://$host:$port$path"
before="its [health] check passed"
pass="pass its [health] check"
if [ "$kind" = url ]; then
    before="answering $expect_status on $path"
    pass="answer $expect_status on $path"
fi
doing="running the new release on a scratch socket, $host:$port"
[ "$socket" = yes ] || doing="running the new release's [health] command before the switch"
stop_preflight() {
    [ "$socket" = no ] || systemctl stop "$name.socket" "$name.service" 2>/dev/null || true
}
trap stop_preflight EXIT
refuse() {
    if [ "$socket" = yes ]; then
        journalctl -u "$name.service" --no-pager -n 6 -o cat 2>/dev/null | sed 's/^/journal: /' >&2 || true
    fi
    echo "$*" >&2
    echo "(failed while $doing)" >&2
    stop_preflight
    : >"$rel/.shipit-failed"
    exit "$preflight_failed"
}
# One try: sets `passed` (yes/no), `said` (what answered) and `body` (where a version may be).
ask() {
    passed=no
    said=
    body=
    got=0
    case $kind in
    url)
        answer=$(get 2>&1) || got=$?
        answer=$(printf '%s\n' "$answer" | tr -d '\r')
        [ "$got" -ne "$no_probe_tool" ] || no_tool "$url"
        if [ "$got" -ne 0 ]; then
            # A GET that failed printed why (a late or oversized answer, a refused
            # connection) and no status, whatever part of the answer had come.
            said=$(printf '%s\n' "$answer" | sed 1d | tail -n 1)
            return
        fi
        status=$(printf '%s\n' "$answer" | sed -n '2s/^HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p')
        said="HTTP $status"
        body=$(printf '%s\n' "$answer" | awk 'body { print } /^$/ { body = 1 }')
        [ "$status" != "$expect_status" ] || passed=yes
        ;;
    tcp)
        said=$(tcp_check 2>&1) || got=$?
        [ "$got" -ne "$no_probe_tool" ] || no_tool "$host:$port"
        said=$(printf '%s\n' "$said" | tail -n 1)
        [ "$got" -ne 0 ] || passed=yes
        ;;
    program)
        body=$(command_check)
        code=$(printf '%s\n' "$body" | sed -n '1s/^exit=//p')
        said="exit $code: $(printf '%s\n' "$body" | sed 1d | tail -n 1)"
        [ "$code" != 0 ] || passed=yes
        ;;
    esac
}
no_tool() {
    echo "the host has none of curl, wget or bash to ask $1 with" >&2
    exit 1
}
[ "$socket" = no ] || start_on_socket "$host:$port"
deadline=$(($(date +%s) + wait))
last='no answer'
while :; do
    ask
    [ -z "$said" ] || last=$said
    if [ "$passed" = yes ]; then
        reported=$(printf '%s\n' "$body" | sed -n 's/.*"version"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | head -n 1)
        if [ "$check_version" = yes ] && [ -n "$reported" ] && [ "$reported" != "$version" ]; then
            refuse "it reports version $reported, but $version was deployed"
        fi
        echo "preflight=$port $said"
        exit 0
    fi
    [ "$socket" = yes ] || refuse "its [health] command failed: $last"
    # The first try started it; no longer running means it exited (--collect unloads a failed
    # unit, so failed reads as inactive).
    case $(systemctl is-active "$name.service" 2>/dev/null) in
    active | activating | reloading) ;;
    *) refuse "it exited before $before" ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
        refuse "it did not $pass within ${wait}s (last: $last)"
    fi
    sleep 0.2
done
