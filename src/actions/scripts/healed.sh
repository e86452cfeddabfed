# shellcheck shell=sh
# The end of the dead-man timer's script, after switch.sh put $previous back.
: "${previous:?}" "${history:?}" "${release:?}"
echo "$previous" >>"$history"
verdict "$release was not confirmed: switched back to $previous and marked $release failed"
