#!/usr/bin/env bash
# The demo: a small sample library in a temporary directory — a film-like MKV (5.1
# E-AC-3 + AC-3, subtitles, chapters, a font), an MP4 with mov_text subtitles, an old
# AVI, an HDR10 HEVC clip, a clip that will not be worth encoding, one already AV1,
# and a broken file — transcoded by the standalone mode in TESTING_MODE (originals
# kept as .bak). ffmpeg/ffprobe only make the clips and inspect the results.
set -euo pipefail
cd "$(dirname "$0")/.."
worker="$PWD/${BIN:-target/release}/av1-worker"
demo=$(mktemp -d "${TMPDIR:-/tmp}/av1-demo.XXXXXX")
lib="$demo/library"
mkdir -p "$lib/Films" "$lib/Series/Season 1"
mk() { ffmpeg -v error -y -nostdin "$@"; }

echo "== making a sample library in $lib"
printf '1\n00:00:00,500 --> 00:00:02,500\nA subtitle that survives\n\n2\n00:00:03,000 --> 00:00:05,000\nand keeps its timing\n' > "$demo/subs.srt"
printf ';FFMETADATA1\ntitle=av1 demo\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=3000\ntitle=Part one\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=3000\nEND=6000\ntitle=Part two\n' > "$demo/chapters.txt"
mk -f lavfi -i "testsrc2=s=640x360:r=24:d=6,noise=alls=6:allf=t" \
  -f lavfi -i "sine=f=220:d=6" -f lavfi -i "sine=f=440:d=6" \
  -i "$demo/subs.srt" -i "$demo/chapters.txt" \
  -filter_complex "[1]aformat=channel_layouts=5.1(side)[a1];[2]aformat=channel_layouts=stereo[a2]" \
  -map 0:v -map "[a1]" -map "[a2]" -map 3 -map_metadata 4 -map_chapters 4 \
  -c:v libx264 -preset veryfast -crf 18 -pix_fmt yuv420p -c:a:0 eac3 -b:a:0 640k -c:a:1 ac3 -b:a:1 192k -c:s srt \
  -metadata:s:a:0 language=eng -metadata:s:a:0 title="Surround" -metadata:s:a:1 language=fra \
  -metadata:s:s:0 language=eng \
  -attach /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf -metadata:s:t mimetype=font/ttf \
  "$lib/Films/Film (2024).mkv"
mk -f lavfi -i "testsrc2=s=480x270:r=25:d=4,noise=alls=8:allf=t" -f lavfi -i "sine=f=330:d=4" -i "$demo/subs.srt" \
  -map 0 -map 1 -map 2 -c:v libx264 -crf 16 -pix_fmt yuv420p -c:a aac -b:a 160k -c:s mov_text -shortest \
  "$lib/Series/Season 1/Episode 01.mp4"
mk -f lavfi -i "testsrc2=s=320x240:r=25:d=4" -f lavfi -i "sine=f=550:d=4" \
  -c:v mpeg4 -q:v 2 -c:a libmp3lame -b:a 128k -shortest "$lib/Films/Old Home Video.avi"
mk -f lavfi -i "testsrc2=s=320x240:r=24:d=3,noise=alls=8:allf=t" -c:v libx265 -crf 14 -pix_fmt yuv420p10le \
  -color_primaries bt2020 -color_trc smpte2084 -colorspace bt2020nc \
  -x265-params "log-level=error:hdr10=1:repeat-headers=1:master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1):max-cll=1000,400" \
  "$lib/Films/HDR10 Sample.mkv"
mk -f lavfi -i "testsrc2=s=320x240:r=24:d=12,noise=alls=60:allf=t" -c:v libx264 -b:v 30k -pix_fmt yuv420p \
  "$lib/Films/Already Tiny.mkv"
mk -f lavfi -i "testsrc2=s=320x240:r=24:d=2" -c:v libsvtav1 -preset 12 "$lib/Films/Already AV1.mkv" 2>/dev/null
head -c 300000 /dev/urandom > "$lib/Films/Broken Download.mkv"
ls -lR "$lib"

echo
echo "== what would be done (--dry-run changes nothing)"
"$worker" --version
"$worker" transcode --dry-run "$lib"

echo
echo "== TESTING_MODE=true av1-worker transcode $lib"
set +e
TESTING_MODE=true AV1_DB="$demo/queue.sqlite" "$worker" transcode "$lib"
code=$?
set -e
echo "(exit code $code: non-zero because one file is broken)"

echo
echo "== the library afterwards (originals kept as .bak)"
ls -lR "$lib"
echo
echo "== the film's result, read back with ffprobe"
ffprobe -v error -show_entries stream=index,codec_type,codec_name,pix_fmt,channels,channel_layout:stream_tags=language,title,filename \
  -of compact=p=0 "$lib/Films/Film (2024).mkv"
ffprobe -v error -show_entries chapter=start_time,end_time:chapter_tags=title -of compact=p=0 "$lib/Films/Film (2024).mkv"
echo
echo "Run it again to see nothing redone:  AV1_DB=$demo/queue.sqlite $worker transcode '$lib'"
echo "Everything is in $demo (remove it when done)."
