# shellcheck shell=sh
# What is installed, for `shipit diff` and the drift mark of `status`; it only reads. Prints:
# - systemd= (the first line of `systemctl --version`): the unit shipit would install depends
#   on it;
# - env= when the env file exists, then for each assignment in it env=KEY SHA256, the sha256
#   of the whole line with its newline: values never leave the host, and a hand-written line
#   that is not KEY=VALUE shows as its line number alone (env=:N SHA256);
# - for each of [service] files ($files, one a line) in the current release,
#   file=SHA256 NAME, or file=- NAME when it is missing;
# - the service unit, then the socket unit, each as size=BYTES and its bytes (size=- when the
#   file is not there), last, since a unit may hold any text.
: "${unit_path:?}" "${socket_path:?}" "${env_file:?}" "${current:?}" "${files?}"
echo "systemd=$(systemctl --version | head -n 1)"
if [ -f "$env_file" ]; then
    echo env=
    n=0
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        case $line in '' | '#'* | ';'*) continue ;; esac
        key=${line%%=*}
        case $key in
        "$line" | '' | *[!A-Za-z0-9_]* | [0-9]*) key=":$n" ;;
        esac
        sum=$(printf '%s\n' "$line" | sha256sum | cut -d ' ' -f 1)
        echo "env=$key $sum"
    done <"$env_file"
fi
(
    IFS='
'
    set -f
    for name in $files; do
        if [ -f "$current/$name" ]; then
            echo "file=$(sha256sum <"$current/$name" | cut -d ' ' -f 1) $name"
        else
            echo "file=- $name"
        fi
    done
)
for path in "$unit_path" "$socket_path"; do
    if [ -f "$path" ]; then
        echo "size=$(wc -c <"$path")"
        cat "$path"
    else
        echo size=-
    fi
done
