# shellcheck shell=sh
# Records $target as good (it passed its gate), then keeps $keep releases: the current and
# previous one whatever their age, then the newest good ones; failed releases never take a
# place. Old uploads go the same way. Prints what it deleted. "previous" as `releases` reads
# it: the last release in the history (of the last 20) that is not the current one, still
# exists and did not fail.
# A release this deploy's dead-man timer ($token's) put back or stopped, or is deciding about
# now, was not confirmed: it is neither recorded nor cleared of its mark, whenever this runs.
# Exits: $timer_fired (stderr says why).
: "${target:?}" "${keep:?}" "${releases:?}" "${history:?}" "${current:?}" "${uploads:?}"
: "${sha:?}" "${token:?}" "${base:?}" "${app:?}" "${timer_fired:?}"
if [ -e "$base/.shipit/deadman.$token.json.firing" ]; then
    echo "its dead-man timer is running now: $target is not recorded as good" >&2
    exit "$timer_fired"
fi
if [ "$(cat "$releases/$target/.shipit-failed" 2>/dev/null || true)" = "deadman-$token" ]; then
    echo "its dead-man timer fired and marked $target failed (journalctl -u shipit-deadman-$app says what it did): $target is not recorded as good" >&2
    exit "$timer_fired"
fi
rm -f "$releases/$target/.shipit-failed"
echo "$target" >>"$history"
cd "$releases" || exit 1
cur=$(readlink "$current" 2>/dev/null || true)
cur=${cur##*/}
prev=
for r in $(tail -n 20 "$history" 2>/dev/null); do
    if [ "$r" != "$cur" ] && [ -e "$r" ] && [ ! -f "$r/.shipit-failed" ]; then prev=$r; fi
done
protected=" $cur $prev "
n=0
# shellcheck disable=SC2045 # release names are ours, without spaces; newest first
for old in $(ls -1t); do
    case $protected in *" $old "*)
        n=$((n + 1))
        continue
        ;;
    esac
    if [ ! -f "$old/.shipit-failed" ]; then
        n=$((n + 1))
        [ "$n" -gt "$keep" ] || continue
    fi
    rm -rf -- "$old"
    echo "$old"
done
if cd "$uploads" 2>/dev/null; then
    # shellcheck disable=SC2012 # upload names are ours: sha256 hex
    ls -1t | tail -n +$((keep + 1)) | while read -r old; do
        [ "$old" = "$sha.tar.gz" ] || rm -f -- "$old"
    done
fi
