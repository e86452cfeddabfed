# shellcheck shell=sh
# Records $target as good (it passed its gate), then keeps $keep releases: the current and
# previous one whatever their age, then the newest good ones; failed releases never take a
# place. Old uploads go the same way. Prints what it deleted. "previous" as `releases` reads
# it: the last release in the history (of the last 20) that is not the current one, still
# exists and did not fail.
: "${target:?}" "${keep:?}" "${releases:?}" "${history:?}" "${current:?}" "${uploads:?}"
: "${sha:?}"
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
