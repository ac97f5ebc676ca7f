# The two commands a newcomer types: `make demo` and `make test`.
# Both install what is missing (Debian packages), build, and run.

CARGO ?= cargo
OUT   ?= out
export SVT_LOG ?= 1

.PHONY: all deps test-deps build demo test lint bench clean

all: build

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

build: deps
	$(CARGO) build --release --workspace

# Transcode a generated clip (motion, texture, 5.1 audio, subtitles, chapters) and verify it.
demo: build test-deps
	@scripts/demo.sh

lint: deps
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
