# shellcheck shell=sh
# Everything between the upload and the switch, none of which touches what the running release
# uses: unpack the release, create the service user, keep the env file and the unit for this
# host with the release, verify the unit. Prints `reused` when the release was unpacked and
# checked already.
# - The upload is unpacked beside the releases, root-owned, and only then given its name. Its
#   bytes are proven already: a fresh upload by SSH's MAC, a resumed or earlier one by its
#   sha256; that it holds exactly the files manifest.json lists, shipit checked before sending
#   it. Only those names ($names, one a line) are unpacked, never the whole archive, with no
#   owner taken from it and no file unpacked over another (-k). gzip's CRC still has to agree:
#   an upload that does not unpack is deleted, so the next deploy sends it again. The binary
#   that came out must have the sha256 the manifest gives it ($binary_sha256), before anything
#   else happens: if not, the release and its upload are deleted.
# - The release keeps its copy of the env file: the new one from stdin when $env_from is
#   `stdin` (secrets never travel in a script), else whatever the host has now. Switching to a
#   release installs its copy, so a rollback restores the env file the old release ran with.
# - $host_unit, when not empty, is the package's unit as this host's systemd takes it: kept as
#   .unit, which switching installs instead of the package's; $host_socket likewise for the
#   socket unit ($socket, `[service] listen`), kept as .socket.
# - `systemd-analyze verify $verify_flags` checks the unit the host will install, through a
#   copy pointing into the release (the unit names $current, which may not exist yet), with the
#   socket unit beside it: the service requires it, and systemd before 250 fails a unit whose
#   dependencies it cannot load. Units byte for byte the same as the installed ones were
#   checked when they were installed. It rejects the units when it fails or when a line it
#   prints matches $unit_lines (it names one of them); its other lines are about the host (a
#   dependency's drop-in, which systemd before 250 reports too; what the environment lacks), so
#   they only warn: each is printed as `warning <line>`.
# The last line of stderr, `(failed while …)`, names the part that failed.
# Exits: $no_space (the half-unpacked release and its upload were removed), $corrupt (it did
# not unpack, or not into the binary shipit checked: the upload was deleted), $unit_rejected.
: "${app:?}" "${rel:?}" "${releases:?}" "${release:?}" "${upload:?}" "${base:?}" "${user:?}"
: "${state_dir:?}" "${env_file:?}" "${unit:?}" "${unit_path:?}" "${current:?}"
: "${env_from:?}" "${host_unit?}" "${host_socket?}" "${verify_flags?}" "${socket:?}"
: "${socket_path:?}" "${unit_lines:?}" "${names:?}" "${binary_sha256:?}"
: "${no_space:?}" "${corrupt:?}" "${unit_rejected:?}"
part='unpacking the release'
trap 'status=$?; [ "$status" -eq 0 ] || echo "(failed while $part)" >&2' EXIT
# Unpacks the names shipit checked into $1.
unpack() {
    (
        IFS='
'
        set -f
        # shellcheck disable=SC2086 # one name a line, not globbed
        tar -x -k -z -f "$upload" -C "$1" --no-same-owner -- $names
    )
}
if [ -f "$rel/.shipit-complete" ]; then
    touch "$rel"
    echo reused
else
    tmp="$releases/.$release.tmp"
    unpacked=yes
    { mkdir -p "$releases" && rm -rf "$tmp" && mkdir "$tmp" && unpack "$tmp"; } || unpacked=no
    if [ "$unpacked" = no ] && full "$releases"; then
        rm -rf "$tmp" "$upload"
        echo "no space left in $base while unpacking: the half-unpacked release and its upload were removed, the host is as it was" >&2
        exit "$no_space"
    fi
    if [ "$unpacked" = no ]; then
        rm -rf "$tmp" "$upload"
        echo "the uploaded package did not unpack: it was deleted, so the next deploy sends it again" >&2
        exit "$corrupt"
    fi
    unpacked_sha256=$(sha256sum "$tmp/$app" | cut -d ' ' -f 1)
    if [ "$unpacked_sha256" != "$binary_sha256" ]; then
        rm -rf "$tmp" "$upload"
        echo "the $app binary unpacked here has sha256 ${unpacked_sha256:-(none: it is missing)}, not the $binary_sha256 shipit checked: the release and its upload were deleted, the host is as it was" >&2
        exit "$corrupt"
    fi
    chown -R root:root "$tmp"
    chmod 0755 "$tmp"
    : >"$tmp/.shipit-complete"
    rm -rf "$rel"
    mv -T "$tmp" "$rel"
fi
part='creating the service user'
if ! id -u "$user" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$state_dir" --no-create-home --shell /usr/sbin/nologin "$user"
fi
if [ "$(stat -c '%U %a' "$state_dir" 2>/dev/null)" != "$user 750" ]; then
    install -d -m 0750 -o "$user" -g "$(id -gn "$user")" "$state_dir"
fi
[ -d "${env_file%/*}" ] || install -d -m 0755 "${env_file%/*}"
part='keeping the env file with the release'
if [ "$env_from" = stdin ]; then
    (umask 077 && cat >"$rel/.env.tmp")
    mv -f "$rel/.env.tmp" "$rel/.env"
elif [ -f "$env_file" ]; then
    (umask 077 && cp "$env_file" "$rel/.env")
else
    rm -f "$rel/.env"
fi
# Keeps $2 with the release as $1, or removes $1 when $2 is empty.
keep() {
    if [ -n "$2" ]; then
        printf '%s' "$2" >"$rel/$1.tmp"
        mv -f "$rel/$1.tmp" "$rel/$1"
    else
        rm -f "$rel/$1"
    fi
}
part='keeping the units for this host with the release'
keep .unit "$host_unit"
keep .socket "$host_socket"
part='verifying the unit'
new="$rel/$unit"
[ ! -f "$rel/.unit" ] || new="$rel/.unit"
new_socket="$rel/$socket"
[ ! -f "$rel/.socket" ] || new_socket="$rel/.socket"
same=yes
cmp -s "$new" "$unit_path" || same=no
[ ! -f "$new_socket" ] || cmp -s "$new_socket" "$socket_path" || same=no
if [ "$same" = no ] && command -v systemd-analyze >/dev/null; then
    dir=$(mktemp -d)
    sed -e "s#$current/#$rel/#g" -e "s#$current\$#$rel#" "$new" >"$dir/$unit"
    set -- "$dir/$unit"
    if [ -f "$new_socket" ]; then
        cp "$new_socket" "$dir/$socket"
        set -- "$@" "$dir/$socket"
    fi
    status=0
    # SYSTEMD_LOG_COLOR=0: systemd 247 colours its messages even into a pipe.
    # shellcheck disable=SC2086 # the flags are words
    out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify $verify_flags "$@" 2>&1) || status=$?
    rm -rf "$dir"
    out=$(printf '%s\n' "$out" | sed "s#$dir/##g")
    if [ "$status" -ne 0 ] || printf '%s\n' "$out" | grep -Eq "$unit_lines"; then
        printf '%s\n' "$out" >&2
        exit "$unit_rejected"
    fi
    printf '%s\n' "$out" | sed -n 's/^./warning &/p'
fi
