# shellcheck shell=sh
# Receives the package into $upload.partial, reading exactly $input bytes from the shell's stdin
# (a direct step: see shell.sh), and gives it its name once complete.
# $offset is where this upload continues a partial one (0: a fresh upload); $size the package's
# whole size. A fresh upload is not hashed here: sha256sum costs more than the transfer itself
# (about 0.3 s of a core per 100 MB), SSH's MAC already guarantees every byte arrives as sent,
# and unpacking checks every file against the manifest before the release can be used. A
# resumed upload joins bytes from an earlier connection, so it is hashed whole first.
# Exits: $short (the data stopped early: the partial file is kept for the next deploy),
# $corrupt (a full-size file with the wrong sha256: discarded), $no_space (the filesystem
# filled up: the partial file is removed, the host is as it was).
: "${upload:?}" "${uploads:?}" "${sha:?}" "${base:?}" "${size:?}" "${offset:?}" "${input:?}"
: "${short:?}" "${corrupt:?}" "${no_space:?}"
partial="$upload.partial"
no_room() {
    full "$uploads" || exit 1
    rm -f "$partial"
    echo "no space left in $base while uploading: the partial upload was removed, the host is as it was" >&2
    exit "$no_space"
}
mkdir -p "$uploads" || no_room
if [ "$offset" -eq 0 ]; then
    (umask 077 && head -c "$input" >"$partial") || no_room
    got=$sha
else
    head -c "$input" >>"$partial" || no_room
    got=$(sha256sum <"$partial")
fi
have=$(stat -c %s "$partial")
if [ "$have" -lt "$size" ]; then
    echo "the upload stopped after $have of $size bytes; deploy again to continue it" >&2
    exit "$short"
fi
if [ "$have" -ne "$size" ] || [ "${got%% *}" != "$sha" ]; then
    rm -f "$partial"
    echo "the uploaded package's sha256 differs from $sha: the partial upload was discarded" >&2
    exit "$corrupt"
fi
mv -f "$partial" "$upload"
