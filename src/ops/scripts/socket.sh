# shellcheck shell=sh
# The socket unit ($socket, `[service] listen`), for `status`: nothing when there is none;
# else its state as `systemctl show` prints it, and every listening TCP socket as `ss -Hltn`
# prints it (Recv-Q: connections waiting to be accepted now; Send-Q: the queue's limit), where
# ss is installed. systemd's NAccepted counts only Accept=yes sockets, so it says nothing here.
: "${socket:?}" "${socket_path:?}"
[ -f "$socket_path" ] || exit 0
systemctl show "$socket" -p ActiveState -p SubState -p Listen
if command -v ss >/dev/null; then
    ss -Hltn | sed 's/^/ss=/'
fi
