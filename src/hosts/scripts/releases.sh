# shellcheck shell=sh
# The host's clock (now=) and its releases (see list_releases).
echo "now=$(date +%s)"
list_releases
