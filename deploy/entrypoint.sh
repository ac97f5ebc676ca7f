#!/bin/sh
# The image's entry point: `master …` or `worker …` (anything else runs as given).
# Started as root, it makes /config and /temp the PUID:PGID user's and drops to that
# user for good (setpriv: no capability, no way back) before the program starts, so
# every file the program writes belongs to PUID:PGID. Started as another user, it
# runs the program as that user.
set -eu
role=${1:-master}
[ $# -gt 0 ] && shift
case "$role" in
  master) set -- /usr/local/bin/av1-master "$@" ;;
  worker) set -- /usr/local/bin/av1-worker "$@" ;;
  *) set -- "$role" "$@" ;;
esac
echo "$role" > /tmp/av1-role 2>/dev/null || true
if [ "$(id -u)" = 0 ]; then
  uid=${PUID:-1000}
  gid=${PGID:-1000}
  case "$uid$gid" in *[!0-9]*) echo "PUID and PGID are numbers" >&2; exit 2 ;; esac
  if [ "$uid" = 0 ]; then echo "PUID=0 would run the program as root: refused" >&2; exit 2; fi
  mkdir -p /config /temp
  chown "$uid:$gid" /config /temp /tmp/av1-role 2>/dev/null || true
  # The program's own PUID/PGID (owner of results) is this user already.
  exec setpriv --reuid="$uid" --regid="$gid" --clear-groups --inh-caps=-all --bounding-set=-all \
    --no-new-privs env HOME=/config "$@"
fi
exec "$@"
