# shellcheck shell=sh
# GET the health URL from the host itself, for sshd that refuses tunnels: the first of curl,
# wget or bash's /dev/tcp the host has. Prints `tool=NAME`, then the raw HTTP response.
# Exits: $no_probe_tool when the host has none of them; the tool's own status otherwise.
: "${host:?}" "${port:?}" "${path:?}" "${url:?}" "${t:?}" "${no_probe_tool:?}"
if command -v curl >/dev/null 2>&1; then
    echo tool=curl
    exec curl -sS -i --max-time "$t" -H 'User-Agent: shipit' "$url"
elif command -v wget >/dev/null 2>&1; then
    echo tool=wget
    headers=$(mktemp)
    got=0
    body=$(wget -q -S -O - -T "$t" --tries=1 --max-redirect=0 --content-on-error -U shipit "$url" 2>"$headers") || got=$?
    status=$(sed -n 's/^ *HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' "$headers" | tail -n 1)
    if [ -z "$status" ]; then
        cat "$headers" >&2
        rm -f "$headers"
        exit "$((got == 0 ? 1 : got))"
    fi
    rm -f "$headers"
    printf 'HTTP/1.0 %s -\r\n\r\n%s' "$status" "$body"
elif command -v bash >/dev/null 2>&1; then
    echo tool=bash
    limit=
    if command -v timeout >/dev/null 2>&1; then limit="timeout $t"; fi
    # shellcheck disable=SC2016 # bash expands these, with the values passed as its arguments
    exec $limit bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 7
        printf -v request "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: shipit\r\nConnection: close\r\n\r\n" "$2" "$0"
        printf %s "$request" >&3
        cat <&3' "$host" "$port" "$path"
else
    exit "$no_probe_tool"
fi
