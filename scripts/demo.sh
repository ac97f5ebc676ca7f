#!/usr/bin/env bash
# The demo: make a small film-like clip (motion, texture, 5.1 E-AC-3 and stereo AC-3
# audio, SRT and ASS subtitles, chapters, a font attachment), transcode it with
# av1-worker, and show what came out. ffmpeg/ffprobe only make and inspect the clip.
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/demo
mkdir -p "$out"
src="$out/demo-source.mkv"
dst="$out/demo-av1.mkv"

if [ ! -f "$src" ]; then
  printf '1\n00:00:00,500 --> 00:00:02,500\nA subtitle that survives\n\n2\n00:00:03,000 --> 00:00:05,000\nand keeps its timing\n' > "$out/subs.srt"
  printf ';FFMETADATA1\ntitle=av1 demo\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=3000\ntitle=Part one\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=3000\nEND=6000\ntitle=Part two\n' > "$out/chapters.txt"
  echo "== making $src (640x360, 6 s, H.264 + E-AC-3 5.1(side) + AC-3 stereo + subtitles + chapters + font)"
  ffmpeg -v error -y -nostdin \
    -f lavfi -i "testsrc2=s=640x360:r=24:d=6,noise=alls=6:allf=t" \
    -f lavfi -i "sine=f=220:d=6" -f lavfi -i "sine=f=440:d=6" \
    -i "$out/subs.srt" -i "$out/chapters.txt" \
    -filter_complex "[1]aformat=channel_layouts=5.1(side)[a1];[2]aformat=channel_layouts=stereo[a2]" \
    -map 0:v -map "[a1]" -map "[a2]" -map 3 -map_metadata 4 -map_chapters 4 \
    -c:v libx264 -preset veryfast -crf 18 -pix_fmt yuv420p -c:a:0 eac3 -b:a:0 640k -c:a:1 ac3 -b:a:1 192k -c:s srt \
    -metadata:s:a:0 language=eng -metadata:s:a:0 title="Surround" -metadata:s:a:1 language=fra \
    -metadata:s:s:0 language=eng \
    -attach /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf -metadata:s:t mimetype=font/ttf \
    "$src"
fi

rm -f "$dst"
echo "== av1-worker transcode $src -o $dst"
target/release/av1-worker --version
target/release/av1-worker transcode "$src" -o "$dst"

echo "== what came out (read back with ffprobe)"
ffprobe -v error -show_entries stream=index,codec_type,codec_name,pix_fmt,channels,channel_layout:stream_tags=language,title,filename \
  -of compact=p=0 "$dst"
ffprobe -v error -show_entries chapter=start_time,end_time:chapter_tags=title -of compact=p=0 "$dst"
ls -l "$src" "$dst"
