# shellcheck shell=sh
# GET the health URL from the host itself, for sshd that refuses tunnels: the first of curl,
# wget or bash's /dev/tcp the host has. Prints `tool=NAME`, then the raw HTTP response.
# The whole answer must arrive within $t seconds: `timeout` ends the tool then (wget's -T and a
# read from /dev/tcp only bound each wait, which a server sending a byte a second never
# exceeds; without `timeout`, curl's --max-time still holds). Of the answer, $cap bytes at most
# are taken.
# Exits: $no_probe_tool when the host has none of them; the tool's own status otherwise (not 0,
# saying why on stderr, when the answer was late or larger than $cap bytes).
: "${host:?}" "${port:?}" "${path:?}" "${url:?}" "${t:?}" "${cap:?}" "${no_probe_tool:?}"
if command -v curl >/dev/null 2>&1; then
    tool=curl
elif command -v wget >/dev/null 2>&1; then
    tool=wget
elif command -v bash >/dev/null 2>&1; then
    tool=bash
else
    exit "$no_probe_tool"
fi
echo "tool=$tool"
limit=
if command -v timeout >/dev/null 2>&1; then limit="timeout $t"; fi
fetch() {
    case $tool in
    curl) $limit curl -sS -i --max-time "$t" -H 'User-Agent: shipit' "$url" ;;
    wget) $limit wget -q -O - --save-headers -T "$t" --tries=1 --max-redirect=0 --content-on-error -U shipit "$url" ;;
    bash)
        # shellcheck disable=SC2016 # bash expands these, with the values passed as its arguments
        $limit bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 7
            printf -v request "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: shipit\r\nConnection: close\r\n\r\n" "$2" "$0"
            printf %s "$request" >&3
            exec cat <&3' "$host" "$port" "$path"
        ;;
    esac
}
response=$(mktemp)
exited=$(mktemp)
# One byte past the cap tells an answer that is too large from one that just fits.
{
    got=0
    fetch || got=$?
    echo "$got" >"$exited"
} | head -c "$((cap + 1))" >"$response"
got=$(cat "$exited")
size=$(wc -c <"$response")
# wget says 8 for an answer with an error status, which it prints all the same.
if [ "$tool" = wget ] && [ "$got" = 8 ] && [ "$size" -gt 0 ]; then got=0; fi
if [ "$size" -gt "$cap" ]; then
    echo "the answer is larger than $cap bytes, the most shipit reads of a health answer" >&2
    got=1
elif [ "$got" = 124 ] || { [ "$tool" = curl ] && [ "$got" = 28 ]; }; then
    echo "no whole answer within ${t}s" >&2
elif [ "$tool" = wget ] && [ "$got" = 8 ]; then
    echo "wget shows nothing of an answer that redirects (it follows no redirect here)" >&2
elif [ "$got" = 0 ]; then
    cat "$response"
fi
rm -f "$response" "$exited"
exit "$got"
