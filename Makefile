# resman: the two commands of the README are `make demo` (or `go run
# ./cmd/resman demo`) and `make test`.

GO      ?= go
GOFLAGS ?=
PKGS    := ./...

.PHONY: build demo test test-tools test-go fuzz vet bench clean

build:
	$(GO) build -o resman ./cmd/resman

demo:
	$(GO) run ./cmd/resman demo

# Installs the tier-3 tools (Debian packages) when missing, then runs every
# tier. With CI set, a tier-3 test whose tool is missing fails instead of
# skipping.
test: test-tools vet test-go fuzz

test-tools:
	./scripts/install-test-tools.sh

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet $(PKGS)

test-go:
	$(GO) test -p 2 -count=1 $(PKGS)
	$(GO) test -p 2 -count=1 -race ./resilience/...

# Short runs of the core's fuzz tests on top of their seed corpus.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzManualPair -fuzztime 15s ./resilience/
	$(GO) test -run '^$$' -fuzz FuzzAutoPair -fuzztime 25s ./resilience/

# Benchmarks: API latency and idle memory of a node (see README).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 200x ./cmd/resman/

# The Debian package, in testout/dist/ (see scripts/build-deb.sh).
.PHONY: deb
deb:
	./scripts/build-deb.sh

clean:
	rm -f resman
