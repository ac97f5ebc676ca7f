#!/usr/bin/env bash
# Builds SVT-AV1 2.3.0 (libSvtAv1Enc, static) from Debian 13's source package into a
# cache outside the source tree, once. Only this recipe lives in the repository; the
# source comes through the ordinary apt client and is checked against a pinned SHA-256.
#
#   vendor/svt-av1/build.sh            build if missing, print the pkg-config directory
#
# Cache: ${AV1_CACHE:-$HOME/.cache/av1}/svt-av1-2.3.0 (install prefix), and
# .../svt-av1-src (downloads, private apt lists, build tree).
set -euo pipefail

version=2.3.0
debian_version=2.3.0+dfsg-1
tarball=svt-av1_2.3.0+dfsg.orig.tar.xz
sha256=815e88cc539c41b8ebd1a6f362f82ab510147635fc6c3edfa35edcfbed302cd8

cache=${AV1_CACHE:-$HOME/.cache/av1}
prefix=$cache/svt-av1-$version
work=$cache/svt-av1-src
pc_dir=$prefix/lib/pkgconfig

# The build is complete when its stamp exists (written last, naming the recipe's options).
stamp=$prefix/.built-static-nolto
if [ -f "$stamp" ] && [ -f "$pc_dir/SvtAv1Enc.pc" ] && [ -f "$prefix/lib/libSvtAv1Enc.a" ]; then
  echo "$pc_dir"
  exit 0
fi

"$(dirname "$0")/../../scripts/deps.sh" svt >&2
mkdir -p "$work/apt/lists/partial" "$work/apt/archives/partial"

if ! echo "$sha256  $work/$tarball" | sha256sum -c --status 2>/dev/null; then
  echo "== fetching $tarball with apt-get source (Debian 13 deb-src, private apt lists)" >&2
  # A private source list and list directory: the system's apt state stays untouched.
  cat > "$work/apt/sources.list" <<LIST
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
LIST
  apt_opts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=-"
            -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache::Archives=$work/apt/archives"
            -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1")
  apt-get "${apt_opts[@]}" update -qq >&2
  (cd "$work" && apt-get "${apt_opts[@]}" source --download-only --tar-only "svt-av1=$debian_version" >&2)
  echo "$sha256  $work/$tarball" | sha256sum -c --quiet >&2 || {
    echo "SHA-256 of $tarball does not match the pinned $sha256: refusing to build it" >&2
    exit 1
  }
fi

# Static, and without GCC's link-time optimisation: Rust links with its own lld, which
# cannot read GCC LTO objects (the archive would look empty to it).
echo "== building SVT-AV1 $version (static, release) into $prefix (a few minutes, once)" >&2
rm -rf "$work/src" "$work/build" "$prefix"
mkdir -p "$work/src"
tar -xf "$work/$tarball" -C "$work/src" --strip-components=1
cmake -S "$work/src" -B "$work/build" -G "Unix Makefiles" \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DBUILD_DEC=OFF -DBUILD_APPS=OFF \
  -DBUILD_TESTING=OFF -DSVT_AV1_LTO=OFF -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib >&2
cmake --build "$work/build" -j "$(nproc)" >&2
cmake --install "$work/build" >&2
rm -rf "$work/build" "$work/src"
test -f "$pc_dir/SvtAv1Enc.pc"
touch "$stamp"
echo "$pc_dir"
