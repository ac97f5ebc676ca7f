#!/usr/bin/env bash
# Where no image can be pulled (this machine: podman without a registry), makes the two
# base images the Dockerfile names, once, cached outside the tree:
#   debian:bookworm-slim  debootstrap --variant=minbase bookworm, imported
#   rust:1-bookworm       that, plus this machine's Rust toolchain and a C linker
# Elsewhere `docker build` pulls the official images of the same names instead.
set -euo pipefail
engine=${CONTAINER_ENGINE:-podman}
cache=${AV1_CACHE:-$HOME/.cache/av1}/containers
mkdir -p "$cache"

if ! $engine image exists debian:bookworm-slim 2>/dev/null; then
  rootfs=$cache/bookworm-rootfs
  if [ ! -f "$rootfs/.complete" ]; then
    echo "== debootstrap bookworm (minbase) into $rootfs (about 3 minutes, once)" >&2
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >&2
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
    touch "$rootfs/.complete"
  fi
  tar -C "$rootfs" --exclude=./.complete -c . | $engine import - debian:bookworm-slim >&2
fi

if ! $engine image exists rust:1-bookworm 2>/dev/null; then
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  sysroot=$(rustc --print sysroot)
  echo "== rust:1-bookworm from $sysroot ($(rustc --version))" >&2
  mkdir -p "$ctx/rust"
  cp -a "$sysroot/bin" "$sysroot/lib" "$ctx/rust/"
  rm -rf "$ctx/rust/lib/rustlib/src" "$ctx/rust/lib/rustlib/"*/analysis 2>/dev/null || true
  # This machine reaches crates.io through a proxy whose certificate authority only it
  # trusts (/usr/local/share/ca-certificates): the builder trusts the same ones.
  mkdir -p "$ctx/ca"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/" 2>/dev/null || true
  cat > "$ctx/Containerfile" <<'FILE'
FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev make ca-certificates && rm -rf /var/lib/apt/lists/*
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
COPY rust /usr/local/rust
ENV PATH=/usr/local/rust/bin:$PATH CARGO_HOME=/usr/local/cargo
FILE
  $engine build --pull=never -t rust:1-bookworm "$ctx" >&2
fi
echo "base images ready: debian:bookworm-slim, rust:1-bookworm" >&2
