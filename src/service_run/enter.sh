# shellcheck shell=sh
# Enters the working directory ($1) of a command run as the service runs, and checks that its
# program ($2) is there: either missing answers 127, as a shell does for a command not found,
# before systemd-run starts anything.
enter() {
    cd "$1" || { printf 'shipit: cannot enter %s\n' "$1" >&2; return 127; }
    command -v -- "$2" >/dev/null 2>&1 ||
        { printf 'shipit: %s: command not found (in %s)\n' "$2" "$1" >&2; return 127; }
}
