#!/bin/sh
# HEALTHCHECK: a master answers GET /healthz on its port; a worker is healthy while its
# process runs (it has no port).
role=$(cat /tmp/av1-role 2>/dev/null || echo master)
if [ "$role" = worker ]; then
  kill -0 1 2>/dev/null
  exit $?
fi
exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/"${WEB_PORT:-8090}" || exit 1
printf "GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3
IFS= read -r status <&3 || exit 1
case "$status" in *" 200 "*) exit 0 ;; *) exit 1 ;; esac'
