# shellcheck shell=sh
# A `[hooks]` command on a host, as the service runs it (the transient unit's script from
# service_run follows this file): its stderr joined to its stdout, which shipit streams with
# the host's name in front of each line.
exec 2>&1
