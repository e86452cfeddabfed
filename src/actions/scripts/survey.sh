# shellcheck shell=sh
# What the host has before anything is sent: an earlier upload of the package (upload=present
# when its sha256 is right or its release is unpacked and checked (unpacked=yes), else the size
# of a partial one), the free space where the upload and the release go (room=<what> <device>
# <free KB>, for the nearest existing directory), the clock, and the releases.
: "${rel:?}" "${upload:?}" "${sha:?}" "${uploads:?}" "${releases:?}"
if [ -f "$rel/.shipit-complete" ]; then
    echo upload=present
    echo unpacked=yes
elif [ -f "$upload" ] && printf '%s  %s\n' "$sha" "$upload" | sha256sum -c --status; then
    echo upload=present
else
    echo "upload=$(stat -c %s "$upload.partial" 2>/dev/null || echo 0)"
fi
echo "now=$(date +%s)"
nearest() {
    d=$1
    while [ ! -d "$d" ]; do d=${d%/*}; done
    echo "$d"
}
up=$(nearest "$uploads")
re=$(nearest "$releases")
stat -c 'device=%d' "$up" "$re"
df -Pk "$up" "$re" | awk 'NR > 1 { print "free=" $4 }'
list_releases
