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
: "${target:?}" "${releases:?}" "${unit:?}" "${unit_path:?}" "${env_file:?}" "${base:?}"
: "${current:?}"
trap '' HUP PIPE
reload=no
new="$releases/$target/$unit"
[ ! -f "$releases/$target/.unit" ] || new="$releases/$target/.unit"
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
systemctl restart "$unit"
