# shellcheck shell=sh
# After a restart: waits (at most $listen_wait hundredths of a second) until something listens
# on the health URL's port ($listen_port, hex as /proc/net/tcp writes it; empty for a URL on
# another machine) or the service's main process is gone, so the first probe from shipit finds
# the service up instead of costing a round trip per early try; then prints the unit's state as
# `systemctl show` does. A try runs every 10 ms while the service starts, so it costs one
# `grep` and one `sleep`: asking systemctl each time (a process that loads libsystemd-shared
# and talks to PID 1, ~5 ms of CPU) cost a service that takes 2 s to listen a second of host
# CPU.
: "${unit:?}" "${listen_port?}" "${listen_wait:?}"
# A line of /proc/net/tcp: `N: LOCAL_ADDRESS:PORT REMOTE_ADDRESS:PORT STATE …`, 0A = LISTEN.
listening() {
    grep -qs "^ *[0-9]*: [0-9A-F]*:$listen_port [0-9A-F]*:[0-9A-F]* 0A " /proc/net/tcp /proc/net/tcp6
}
if [ -n "$listen_port" ]; then
    tries=0
    while [ "$tries" -lt "$listen_wait" ] && ! listening; do
        # Most services listen within a few tries; a slower one has its main process asked
        # for once, then watched in /proc.
        if [ "$tries" -eq 5 ]; then
            main=$(systemctl show -p MainPID --value "$unit" 2>/dev/null) || main=0
        fi
        if [ "$tries" -ge 5 ] && { [ "${main:-0}" -eq 0 ] || [ ! -d "/proc/$main" ]; }; then
            break
        fi
        sleep 0.01
        tries=$((tries + 1))
    done
fi
systemctl show "$unit" -p ActiveState -p SubState -p MainPID -p NRestarts -p LimitNOFILE -p Restart -p ActiveEnterTimestamp -p InvocationID
