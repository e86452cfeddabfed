# shellcheck shell=sh
# After a restart: waits (at most $listen_wait hundredths of a second) until something listens
# on the health URL's port ($listen_port, hex as /proc/net/tcp writes it; empty for a URL on
# another machine) or the unit stops running, so the first probe from shipit finds the service
# up instead of costing a round trip per early try; then prints the unit's state as
# `systemctl show` does.
: "${unit:?}" "${listen_port?}" "${listen_wait:?}"
# A line of /proc/net/tcp: `N: LOCAL_ADDRESS:PORT REMOTE_ADDRESS:PORT STATE …`, 0A = LISTEN.
listening() {
    grep -qs "^ *[0-9]*: [0-9A-F]*:$listen_port [0-9A-F]*:[0-9A-F]* 0A " /proc/net/tcp /proc/net/tcp6
}
if [ -n "$listen_port" ]; then
    tries=0
    while [ "$tries" -lt "$listen_wait" ] && ! listening; do
        [ "$tries" -lt 5 ] || systemctl is-active --quiet "$unit" || break
        sleep 0.01
        tries=$((tries + 1))
    done
fi
systemctl show "$unit" -p ActiveState -p SubState -p MainPID -p NRestarts -p LimitNOFILE -p Restart -p ActiveEnterTimestamp -p InvocationID
