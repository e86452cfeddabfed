# shellcheck shell=sh
# Switches to the release $target: installs its unit (.unit when the release has one, else the
# package's) and its env file, moves `current` atomically and restarts. The unit file is
# replaced, systemd reloaded and the unit enabled only when the release's unit differs from the
# installed one, systemd asks for a reload or the unit is not enabled: `daemon-reload` and
# `enable` cost about 0.1 s each, more than restarting a small service. `reset-failed` clears
# the start rate limit a crash-looping release may have used up, so neither the next deploy nor
# a rollback is refused by it. Once started, it finishes even if the connection drops: a
# half-done switch would leave the unit and `current` disagreeing. The dead-man timer's script
# runs this too, on the host by itself.
# The socket unit ($socket, `[service] listen`; .socket when the release has one for this host)
# holds the listening sockets, so a plain restart refuses nobody: connections wait in its queue.
# Where the socket appears, changes or goes, the port changes hands and there is one gap:
# - it appears: the running service binds the port itself, so it stops before the socket
#   starts (prints socket=first);
# - it changes: restarting it restarts the service too (it Requires= the socket);
# - it goes: the service no longer requires it once reloaded, the socket stops, then the
#   restart lets the new process bind the port itself.
# The restart is one `systemctl restart` job: a stop and a start apart would let the socket
# start the service in between.
: "${target:?}" "${releases:?}" "${unit:?}" "${unit_path:?}" "${env_file:?}" "${base:?}"
: "${current:?}" "${socket:?}" "${socket_path:?}"
trap '' HUP PIPE
reload=no
new="$releases/$target/$unit"
[ ! -f "$releases/$target/.unit" ] || new="$releases/$target/.unit"
new_socket="$releases/$target/$socket"
[ ! -f "$releases/$target/.socket" ] || new_socket="$releases/$target/.socket"
sockets=same
if [ -f "$new_socket" ]; then
    if ! cmp -s "$new_socket" "$socket_path"; then
        sockets=changed
        install -m 0644 "$new_socket" "$socket_path.shipit-new"
        mv -f "$socket_path.shipit-new" "$socket_path"
        reload=yes
    fi
elif [ -f "$socket_path" ]; then
    sockets=gone
    systemctl disable --quiet "$socket" 2>/dev/null || true
    rm -f "$socket_path"
    reload=yes
fi
if ! cmp -s "$new" "$unit_path"; then
    install -m 0644 "$new" "$unit_path.shipit-new"
    mv -f "$unit_path.shipit-new" "$unit_path"
    reload=yes
fi
if [ -f "$releases/$target/.env" ]; then
    (umask 077 && cp "$releases/$target/.env" "$env_file.shipit-new")
    mv -f "$env_file.shipit-new" "$env_file"
else
    rm -f "$env_file"
fi
ln -sfn "releases/$target" "$base/.current.shipit-new"
mv -T "$base/.current.shipit-new" "$current"
state=$(systemctl show -p NeedDaemonReload -p UnitFileState "$unit")
case $state in *NeedDaemonReload=no*) ;; *) reload=yes ;; esac
if [ "$reload" = yes ]; then
    systemctl daemon-reload
fi
case $state in
*UnitFileState=enabled*) [ "$reload" = no ] || systemctl enable --quiet "$unit" ;;
*) systemctl enable --quiet "$unit" ;;
esac
systemctl reset-failed "$unit" 2>/dev/null || true
restart=restart
case $sockets in
changed)
    systemctl enable --quiet "$socket"
    systemctl reset-failed "$socket" 2>/dev/null || true
    if systemctl is-active --quiet "$socket"; then
        systemctl restart "$socket"
    else
        if systemctl is-active --quiet "$unit"; then echo socket=first; fi
        systemctl stop "$unit"
        systemctl start "$socket"
    fi
    restart=start
    ;;
gone)
    systemctl stop "$socket" 2>/dev/null || true
    systemctl reset-failed "$socket" 2>/dev/null || true
    ;;
same)
    [ ! -f "$socket_path" ] || systemctl reset-failed "$socket" 2>/dev/null || true
    ;;
esac
systemctl "$restart" "$unit"
