# shellcheck shell=sh
# Releases the lock while its owner is $expected (a token; `-` for a lock without owner file),
# atomically (see claim). Prints `released` when it did; a lock that changed hands stays.
: "${me:?}" "${expected:?}" "${lock:?}"
[ -d "$lock" ] || exit 0
if [ "$expected" = - ]; then
    [ ! -e "$lock/owner.json" ] || exit 0
elif ! claim "$expected" "$me"; then
    exit 0
fi
rm -rf "$lock"
echo released
