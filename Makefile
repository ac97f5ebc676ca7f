# The two commands a newcomer types: `make demo` and `make test`.
# Both install what is missing (Debian packages), build, and run.

CARGO ?= cargo
OUT   ?= out
export SVT_LOG ?= 1

# The encoder library: SVT=2.3 (default) builds SVT-AV1 2.3.0 once from Debian 13's
# source package into $(AV1_CACHE) (vendor/svt-av1/build.sh) and links it statically;
# SVT=system uses Debian 12's libsvtav1enc 1.4.1 (in its own target directory).
SVT       ?= 2.3
AV1_CACHE ?= $(HOME)/.cache/av1
export AV1_CACHE
ifeq ($(SVT),system)
export CARGO_TARGET_DIR ?= target/svt-system
SVT_STEP :=
else
export PKG_CONFIG_PATH := $(AV1_CACHE)/svt-av1-2.3.0/lib/pkgconfig$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH))
SVT_STEP := svt
endif
BIN := $(or $(CARGO_TARGET_DIR),target)/release

.PHONY: all deps test-deps svt build demo test lint bench clean

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

# Transcode a generated clip (motion, texture, 5.1 audio, subtitles, chapters) and verify it.
demo: build test-deps
	@BIN=$(BIN) scripts/demo.sh

lint: deps $(SVT_STEP)
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: test-deps lint
	$(CARGO) test --workspace --release

# Our transcode against the ffmpeg command line, same encoder and settings.
bench: build test-deps
	$(CARGO) run --release -p av1-worker --example bench -- $(BENCH_ARGS)

clean:
	$(CARGO) clean
	rm -rf $(OUT)
