# shellcheck shell=sh
# Pre-flight: the new release ($rel) started once on a scratch socket before anything the
# running release uses changes, as a socket-activated transient service ($name, started by
# start_on_socket) with the real unit's user, environment, limits and hardening. A free port
# of loopback below the ephemeral range is picked here. The health URL's path ($path) must
# answer $expect within $wait seconds (each GET's whole answer within $t seconds and $cap bytes;
# get is probe.sh), with the version $version where it reports one and $check_version is yes; a
# release that exits first is refused at once. Then both units are stopped, whatever happened.
# Prints `preflight=<port> <status>`.
# Exits: $preflight_failed (the release was marked failed; stderr has the end of its journal,
# then why).
: "${rel:?}" "${path:?}" "${expect:?}" "${wait:?}" "${t:?}" "${cap:?}" "${version:?}"
: "${check_version:?}" "${name:?}" "${preflight_failed:?}" "${no_probe_tool:?}"
host=127.0.0.1
port=
tries=0
while [ -z "$port" ] && [ "$tries" -lt 50 ]; do
    n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    candidate=$((20000 + n % 10000))
    hex=$(printf '%04X' "$candidate")
    grep -qs "^ *[0-9]*: [0-9A-F]*:$hex " /proc/net/tcp /proc/net/tcp6 || port=$candidate
    tries=$((tries + 1))
done
if [ -z "$port" ]; then
    echo "no free port on 127.0.0.1 between 20000 and 29999 for the pre-flight" >&2
    exit 1
fi
url="http://$host:$port$path"
stop_preflight() {
    systemctl stop "$name.socket" "$name.service" 2>/dev/null || true
}
trap stop_preflight EXIT
refuse() {
    journalctl -u "$name.service" --no-pager -n 6 -o cat 2>/dev/null | sed 's/^/journal: /' >&2 || true
    echo "$*" >&2
    echo "(failed while running the new release on a scratch socket, $host:$port)" >&2
    stop_preflight
    : >"$rel/.shipit-failed"
    exit "$preflight_failed"
}
start_on_socket "$host:$port"
deadline=$(($(date +%s) + wait))
last='no answer'
while :; do
    got=0
    answer=$(get 2>&1) || got=$?
    answer=$(printf '%s\n' "$answer" | tr -d '\r')
    if [ "$got" -eq "$no_probe_tool" ]; then
        echo "the host has none of curl, wget or bash to ask $url with" >&2
        exit 1
    fi
    # A GET that failed printed why (a late or oversized answer, a refused connection) and no
    # status, whatever part of the answer had come.
    status=
    if [ "$got" -eq 0 ]; then
        status=$(printf '%s\n' "$answer" | sed -n '2s/^HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p')
    else
        said=$(printf '%s\n' "$answer" | sed 1d | tail -n 1)
        [ -z "$said" ] || last=$said
    fi
    if [ "$got" -eq 0 ] && [ "$status" = "$expect" ]; then
        body=$(printf '%s\n' "$answer" | awk 'body { print } /^$/ { body = 1 }')
        reported=$(printf '%s\n' "$body" | sed -n 's/.*"version"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | head -n 1)
        if [ "$check_version" = yes ] && [ -n "$reported" ] && [ "$reported" != "$version" ]; then
            refuse "it reports version $reported on $path, but $version was deployed"
        fi
        echo "preflight=$port $status"
        exit 0
    fi
    [ -z "$status" ] || last="HTTP $status"
    # The GET started it; no longer running means it exited (--collect unloads a failed unit,
    # so failed reads as inactive).
    case $(systemctl is-active "$name.service" 2>/dev/null) in
    active | activating | reloading) ;;
    *) refuse "it exited before answering $expect on $path" ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
        refuse "it did not answer $expect on $path within ${wait}s (last: $last)"
    fi
    sleep 0.2
done
