# ferry — build, test, demo, bench, lint.
GO      ?= go
BIN     ?= bin/ferry
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: build test test-short demo bench lint fuzz clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/ferry

# The whole suite against real redis-server processes, with the race detector.
test: lint
	$(GO) test -race -count=1 -timeout 20m ./...

test-short:
	$(GO) test -short -count=1 ./...

# Starts a local source and target, fills the source, syncs, shows the result.
demo: build
	bash scripts/demo.sh

# Speed and memory, as ratios against anchors measured in the same run
# (see bench/README.md). Takes 30-60 min; BENCH_QUICK=1 is a smoke check,
# BENCH_SECTIONS picks sections, BENCH_KEYS sizes the data set.
bench: build
	bash bench/run.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fuzz:
	$(GO) test ./rdb -run '^$$' -fuzz FuzzReader -fuzztime 60s

clean:
	rm -rf bin
