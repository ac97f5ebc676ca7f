# One image, both programs:  docker run IMAGE master …  |  docker run IMAGE worker …
#
# Builder: Debian 12 with Rust, Debian's libav* and libopus headers, and our SVT-AV1 2.3.0
# recipe (vendor/svt-av1/build.sh: Debian 13's source package, SHA-256 pinned, linked
# statically). Runtime: debian:bookworm-slim with only the runtime libraries — no
# compiler, no ffmpeg program. docs/deploy.md says how to build, run and upgrade it.
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
ENV DEBIAN_FRONTEND=noninteractive AV1_CACHE=/opt/av1 CARGO_TERM_COLOR=never
WORKDIR /src
# The encoder first: its layer is reused until the recipe changes.
COPY scripts/deps.sh scripts/deps.sh
COPY vendor/svt-av1 vendor/svt-av1
RUN scripts/deps.sh build && scripts/deps.sh svt && vendor/svt-av1/build.sh \
    && rm -rf /var/lib/apt/lists/* /opt/av1/svt-av1-src
COPY . .
RUN PKG_CONFIG_PATH=/opt/av1/svt-av1-2.3.0/lib/pkgconfig \
      cargo build --release --locked -p av1-master -p av1-worker \
    && mkdir -p /out \
    && cp target/release/av1-master target/release/av1-worker /out/ \
    && strip /out/av1-master /out/av1-worker \
    && /out/av1-worker --version | sed 's/.*(SVT-AV1 \(.*\))/\1/' > /out/svt-version

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG SOURCE=https://example.invalid/av1
LABEL org.opencontainers.image.title="av1" \
      org.opencontainers.image.description="Converts a video library to AV1 (SVT-AV1) + Opus, verified before anything is replaced" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      io.av1.encoder="SVT-AV1 2.3.0 (static)"
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       libavformat59 libavcodec59 libavutil57 libavfilter8 libswscale6 libswresample4 libopus0 \
       ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /config /media /temp
COPY --from=builder /out/av1-master /out/av1-worker /usr/local/bin/
COPY deploy/entrypoint.sh /usr/local/bin/av1-entrypoint
COPY deploy/healthcheck.sh /usr/local/bin/av1-healthcheck
# Defaults for a container: state in /config, results encoded in /temp when it is set.
ENV AV1_DB=/config/master.sqlite WORKER_STATE=/config/worker XDG_STATE_HOME=/config \
    WEB_BIND=0.0.0.0 WEB_PORT=8090 MEDIA_DIRS=/media PUID=1000 PGID=1000 SVT_LOG=1
VOLUME ["/config", "/media", "/temp"]
EXPOSE 8090
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s CMD ["/usr/local/bin/av1-healthcheck"]
ENTRYPOINT ["/usr/local/bin/av1-entrypoint"]
CMD ["master"]
