#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, only when some are missing.
# Usage: scripts/deps.sh build|test|demo|svt
set -euo pipefail

build_pkgs=(build-essential pkg-config clang libclang-dev libavformat-dev libavcodec-dev
  libavutil-dev libavfilter-dev libswscale-dev libswresample-dev libsvtav1enc-dev libopus-dev)
# Independent checkers used by the tests and benchmarks (never by the product itself),
# and the real browser the web UI is tested in.
checker_pkgs=(ffmpeg mkvtoolnix mediainfo dav1d fonts-dejavu-core curl unzip systemd)
test_pkgs=("${checker_pkgs[@]}" chromium chromium-driver)

# Building the newer SVT-AV1 from Debian's source package (vendor/svt-av1/build.sh).
svt_pkgs=(cmake nasm xz-utils)

want=("${build_pkgs[@]}")
[ "${1:-build}" = test ] && want+=("${test_pkgs[@]}")
# The demo makes its clips with ffmpeg and shows the result with ffprobe: no browser.
[ "${1:-build}" = demo ] && want+=("${checker_pkgs[@]}")
[ "${1:-build}" = svt ] && want+=("${svt_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing missing packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
