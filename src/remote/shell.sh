# shellcheck shell=sh
# shipit's shell on a host: one per connection, running as root, it runs the steps shipit sends
# on stdin one after another and answers each on stdout, so a deploy costs one sshd session
# and one login instead of one per step. Its first line on stdin is the nonce: random per
# shell, so no step's output can pass for an answer, and sent there, not in argv, where every
# local user could read it in /proc/*/cmdline.
#
# A step: a line `<nonce> <script bytes> <input bytes> <when> <how>`, the script, then its
# input. <when> is `always`, or `if-ok`: run only if the step before it succeeded (else
# `skipped`). <how> is `relay`: the script runs in a subshell with exactly its input as stdin
# (input it leaves unread is dropped, so the next step's line is where it should be); or
# `direct`, for bulk data: the script reads its $input bytes from this shell's stdin itself,
# one copy fewer. A direct step that fails may have left input unread, so the shell ends after
# answering it: the next batch opens a new one.
# The answer: the step's stdout, then `\n<nonce> <status>\n`; when the status is not 0, the
# step's stderr follows, then `\n<nonce> end\n`.
read -r nonce || exit 1
: "${nonce:?}"
LC_ALL=C
export LC_ALL
# Steps write their stdout to fd 3 (this shell's stdout); their stderr is kept in a variable,
# so the shell writes no file on the host.
exec 3>&1
echo "$nonce ready"
last=0
while read -r from size input when how; do
    [ "$from" = "$nonce" ] || {
        echo "$nonce out-of-step"
        exit 1
    }
    script=$(head -c "$size"; echo .)
    script=${script%.}
    if [ "$when" = if-ok ] && [ "$last" -ne 0 ]; then
        [ "$input" -eq 0 ] || head -c "$input" >/dev/null
        printf '\n%s skipped\n' "$nonce"
        continue
    fi
    if [ "$how" = direct ]; then
        said=$( (eval "$script") 2>&1 1>&3 3>&-)
        last=$?
    elif [ "$input" -gt 0 ]; then
        said=$(head -c "$input" | {
            (eval "$script") 2>&1 1>&3 3>&-
            status=$?
            cat >/dev/null
            exit "$status"
        })
        last=$?
    else
        said=$( (eval "$script") </dev/null 2>&1 1>&3 3>&-)
        last=$?
    fi
    printf '\n%s %s\n' "$nonce" "$last"
    if [ "$last" -ne 0 ]; then
        printf '%s\n' "$said"
        printf '\n%s end\n' "$nonce"
        [ "$how" != direct ] || exit 0
    fi
done
