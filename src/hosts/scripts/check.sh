# shellcheck shell=sh
# The first look at a host, before anything is written there: it must run systemd ($oldest or
# later) as PID 1 on the package's architecture ($machine), with the tools the steps use.
# Prints booted=, pid1=, systemd= (the first line of `systemctl --version`) and machine=.
# Exits: $unsuitable when the host cannot take the package; 1 (saying which) for a missing tool.
: "${machine:?}" "${oldest:?}" "${unsuitable:?}"
booted=no
[ ! -d /run/systemd/system ] || booted=yes
pid1=unknown
read -r pid1 </proc/1/comm 2>/dev/null || true
version=$(systemctl --version 2>/dev/null || true)
version=${version%%
*}
arch=$(uname -m)
echo "booted=$booted"
echo "pid1=$pid1"
echo "systemd=$version"
echo "machine=$arch"
[ "$booted" = yes ] || exit "$unsuitable"
number=${version#systemd }
number=${number%%[!0-9]*}
[ "${number:-0}" -ge "$oldest" ] || exit "$unsuitable"
[ "$arch" = "$machine" ] || exit "$unsuitable"
for tool in tar sha256sum cmp systemctl journalctl; do
    command -v "$tool" >/dev/null || {
        echo "$tool is missing" >&2
        exit 1
    }
done
