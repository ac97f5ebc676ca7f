#!/usr/bin/env bash
# The image and docker-compose.filedist-test.yml as a user runs them, with real
# containers (podman here; CONTAINER_ENGINE=docker COMPOSE="docker compose" elsewhere):
# a generated library transcoded to the end by a master and two file-distribution
# workers; every original checked (its backup byte-identical, its result AV1 that
# ffmpeg decodes without a message), the results owned by PUID:PGID, and the programs
# inside running as that user, not root.
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${CONTAINER_ENGINE:-podman}
compose=${COMPOSE:-podman-compose}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/containers.conf}
start=$(date +%s)

scripts/base-images.sh
echo "== building the image from the Dockerfile" >&2
$engine build --pull=never -q -t av1:latest . >/dev/null
echo "image: $($engine image inspect av1:latest --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')" >&2

work=$(mktemp -d /tmp/av1-containers.XXXXXX)
cleanup() { (cd "$work" && $compose -f compose.yml down >/dev/null 2>&1) || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/media"
for i in 1 2 3; do
  ffmpeg -v error -nostdin -f lavfi -i "testsrc2=s=320x240:r=24:d=4,noise=alls=12:allf=t" \
    -f lavfi -i sine=d=4 -c:v libx264 -crf 12 -pix_fmt yuv420p -c:a aac -shortest "$work/media/clip$i.mp4"
done
(cd "$work/media" && sha256sum clip*.mp4 > "$work/originals.sha256")
token=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
cat > "$work/.env" <<ENV
AV1_TOKEN=$token
MEDIA_PATH=$work/media
PUID=4321
PGID=4321
TESTING_MODE=true
SVT_AV1_PRESET=12
ENV
# The compose file as shipped, but for the build (the image is built above).
grep -v '^    build: \.$' docker-compose.filedist-test.yml > "$work/compose.yml"
(cd "$work" && $compose -f compose.yml up -d >/dev/null 2>&1)

stats() { curl -s -m 5 -H "Authorization: Bearer $token" http://127.0.0.1:8090/api/v1/stats; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', ''))"; }
deadline=$(( $(date +%s) + 600 ))
until s=$(stats) && [ "$(echo "$s" | field total)" = 3 ] && [ "$(echo "$s" | field pending)" = 0 ] \
      && [ "$(echo "$s" | field running)" = 0 ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "the library did not settle: ${s:-no answer}" >&2; exit 1; }
  sleep 2
done
echo "settled: $s" >&2
[ "$(echo "$s" | field done)" = 3 ] || { echo "not every file is done: $s" >&2; exit 1; }

fail=0
for i in 1 2 3; do
  result=$work/media/clip$i.mkv
  [ "$(stat -c %u:%g "$result")" = 4321:4321 ] || { echo "clip$i.mkv belongs to $(stat -c %u:%g "$result")" >&2; fail=1; }
  codec=$(ffprobe -v error -select_streams v -show_entries stream=codec_name -of csv=p=0 "$result")
  [ "$codec" = av1 ] || { echo "clip$i.mkv: video $codec" >&2; fail=1; }
  errors=$(ffmpeg -v error -nostdin -xerror -i "$result" -f null - 2>&1) || fail=1
  [ -z "$errors" ] || { echo "clip$i.mkv: $errors" >&2; fail=1; }
done
# The backups are the originals, byte for byte.
(cd "$work/media" && sed 's/\.mp4$/.mp4.bak/' "$work/originals.sha256" | sha256sum -c --quiet) || fail=1
for c in $($engine ps --format '{{.Names}}' | grep -E 'master|worker'); do
  user=$($engine top "$c" huser user | awk 'NR>1 {print $1"/"$2}' | sort -u | tr '\n' ' ')
  case "$user" in *root*) echo "$c runs as root: $user" >&2; fail=1 ;; esac
done
echo "make test-containers: $(( $(date +%s) - start )) s" >&2
exit $fail
