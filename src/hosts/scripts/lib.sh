# shellcheck shell=sh
# Functions the host scripts share; each script that needs them gets them after its preamble.
: "${lock:?}" "${releases:?}" "${current:?}" "${history:?}" "${unit:?}" "${socket:?}"
: "${socket_path:?}"

# Whether the filesystem holding $1 (or its nearest existing parent) is full: under 1 MB or no
# inodes left. Asked after a write failed, to tell a full disk from other errors.
full() {
    d=$1
    while [ ! -d "$d" ]; do d=${d%/*}; done
    df -Pk "$d" | awk 'NR == 2 { exit !($4 < 1024) }' && return 0
    df -Pi "$d" | awk 'NR == 2 { exit !($2 > 0 && $4 == 0) }'
}

# The token in an owner.json ($1), empty when there is none.
token_of() {
    sed -n 's/.*"token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$1" 2>/dev/null || true
}

# Takes the lock's owner file from the owner with token $1, atomically: renamed to a name of
# our own ($2), re-checked, put back if it changed hands meanwhile.
claim() {
    aside="$lock/.claimed.$2"
    mv "$lock/owner.json" "$aside" 2>/dev/null || return 1
    if [ "$(token_of "$aside")" = "$1" ]; then
        rm -f "$aside"
        return 0
    fi
    ln "$aside" "$lock/owner.json" 2>/dev/null || true
    rm -f "$aside"
    return 1
}

# Writes owner.json ($1) as ours ($2 names the temporary file) with `ln`, which never replaces
# a file: of two deploys that both got here, one wins.
own() {
    printf '%s\n' "$1" >"$lock/.new.$2" || return 1
    if ln "$lock/.new.$2" "$lock/owner.json" 2>/dev/null; then
        rm -f "$lock/.new.$2"
        touch -c "$lock"
        return 0
    fi
    rm -f "$lock/.new.$2"
    return 1
}

# Seconds since the lock was last refreshed.
lock_age() {
    echo $(($(date +%s) - $(stat -c %Y "$lock" 2>/dev/null || date +%s)))
}

# Prints `current=`, `history=` and, per release, `release=<mtime> <failed: yes|no> <name>`;
# shipit sorts them. Prints nothing more when there are no releases yet.
list_releases() {
    [ -d "$releases" ] || return 0
    link=$(readlink "$current" 2>/dev/null || true)
    echo "current=${link##*/}"
    if [ -f "$history" ]; then
        printf 'history=%s\n' "$(tail -n 20 "$history" | tr '\n' ' ')"
    fi
    for r in "$releases"/*; do
        [ -d "$r" ] || continue
        f=no
        [ ! -f "$r/.shipit-failed" ] || f=yes
        echo "failed=$f ${r##*/}"
    done
    (cd "$releases" && find . -mindepth 1 -maxdepth 1 -type d -printf 'mtime=%T@ %f\n')
}

# Stops and disables the service, and its socket when it has one: while the socket is active,
# the service does not stay stopped (the next connection starts it).
stop_service() {
    if [ -f "$socket_path" ]; then
        systemctl disable --now --quiet "$socket" "$unit"
    else
        systemctl disable --now --quiet "$unit"
    fi
}
