# shellcheck shell=sh
# A TCP health check from the host itself: connect to $host:$port with bash's /dev/tcp; with
# $send, write it and read the answer until a line holds $expect (any answer when $expect is
# empty). All of it within $t seconds (`timeout`), at most $cap bytes read.
# Prints what answered: `connected`, or the line that held $expect.
# Exits: 0 healthy; $no_probe_tool without bash; 124 when the time ran out; not 0 otherwise,
# saying why on stderr.
: "${host:?}" "${port:?}" "${send?}" "${expect?}" "${t:?}" "${cap:?}" "${no_probe_tool:?}"
command -v bash >/dev/null 2>&1 || exit "$no_probe_tool"
limit=
if command -v timeout >/dev/null 2>&1; then limit="timeout $t"; fi
got=0
# shellcheck disable=SC2016 # bash expands these, with the values passed as its arguments
$limit bash -c 'exec 3<>"/dev/tcp/$0/$1" 2>/dev/null || {
        echo "nothing accepts connections on $0:$1" >&2
        exit 7
    }
    if [ -z "$2" ]; then
        echo connected
        exit 0
    fi
    printf %s "$2" >&3
    seen=0
    while IFS= read -r line <&3 || [ -n "$line" ]; do
        line=${line%$(printf "\r")}
        case $line in *"$3"*)
            printf "%s\n" "$line"
            exit 0
            ;;
        esac
        seen=$((seen + ${#line} + 1))
        if [ "$seen" -gt "$4" ]; then
            echo "no answer holding \"$3\" in the first $4 bytes" >&2
            exit 1
        fi
    done
    echo "the connection closed without an answer holding \"$3\"" >&2
    exit 1' "$host" "$port" "$send" "$expect" "$cap" || got=$?
if [ "$got" = 124 ]; then
    echo "no answer within ${t}s" >&2
fi
exit "$got"
