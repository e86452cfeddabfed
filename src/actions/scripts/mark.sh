# shellcheck shell=sh
# Records the release $target as good ($healthy = yes: it passed its gate) or failed (it never
# counts as previous).
: "${target:?}" "${healthy:?}" "${releases:?}" "${history:?}"
if [ "$healthy" = yes ]; then
    rm -f "$releases/$target/.shipit-failed"
    echo "$target" >>"$history"
else
    : >"$releases/$target/.shipit-failed"
fi
