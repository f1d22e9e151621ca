# ferry — build, test, demo, bench, lint.
GO      ?= go
BIN     ?= bin/ferry
# staticcheck runs from its module at a pinned version, so a fresh machine needs nothing installed.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
IMAGE   ?= ferry:$(VERSION)

.PHONY: build image chart-test test test-short demo bench lint fuzz soak clean

# A static binary; deploy/build.sh is the one recipe (the Dockerfile uses it too).
build:
	GO=$(GO) REVISION=$(REVISION) sh deploy/build.sh $(BIN) $(VERSION)

# The container image (Dockerfile): the static binary in distroless, non-root.
image:
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMAGE) .

# helm lint + helm template of deploy/helm/ferry with the manifests checked;
# builds the helm CLI from its Go module once (slow the first time).
chart-test:
	FERRY_HELM_TEST=1 $(GO) test -count=1 -run TestChart ./deploy/

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
	$(STATICCHECK) ./...

# The randomized fault run (e2e TestSoak) for SOAK_DURATION (10m here; 60s
# inside make test); SOAK_SEED=N replays the run that printed it.
SOAK_DURATION ?= 10m
soak:
	SOAK_DURATION=$(SOAK_DURATION) $(GO) test -count=1 -timeout 60m -run '^TestSoak$$' -v ./e2e

# Each fuzz target for a short time (FUZZTIME); go test -fuzz takes one
# target per run.
FUZZTIME ?= 20s
fuzz:
	$(GO) test ./rdb -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME)
	$(GO) test ./aof -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME)
	$(GO) test ./aof -run '^$$' -fuzz '^FuzzManifest$$' -fuzztime $(FUZZTIME)
	for f in FuzzReadValue FuzzReadStatus FuzzReadCommand FuzzGuard; do \
	  $(GO) test ./resp -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

clean:
	rm -rf bin
