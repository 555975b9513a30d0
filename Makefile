# resman: the two commands of the README are `make demo` (or `go run
# ./cmd/resman demo`) and `make test`.

GO      ?= go
GOFLAGS ?=
PKGS    := ./...

.PHONY: build demo test test-tools test-go fuzz vet bench bench-api bench-failover bench-switchover bench-loss bench-xds bench-edge clean

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

# Benchmarks (see README): each prints medians; the namespace ones need root.
bench: bench-api bench-failover bench-switchover bench-xds bench-edge

bench-api:      # API latency and idle memory of a node
	$(GO) test -run '^$$' -bench 'Status|StartStop|IdleRSS' -benchtime 200x ./cmd/resman/

bench-failover: # kill -9 of the Main to the Standby Active, default and tuned timers
	$(GO) test -run '^$$' -bench 'BenchmarkFailover' -benchtime 10x ./cmd/resman/

bench-loss:     # false takeovers under 50% loss (RESMAN_LOSS_DURATION, default 30s)
	$(GO) test -run '^$$' -bench FalseTakeovers -benchtime 1x -timeout 60m ./cmd/resman/

bench-switchover: # planned switchover, without and with a sync (RESMAN_BENCH_BIG=1 adds 1 GiB)
	$(GO) test -run '^$$' -bench 'BenchmarkSwitchover' -benchtime 4x ./cmd/resman/

bench-xds:      # node Active to 1, 10, 100 MDS registered
	$(GO) test -run '^$$' -bench ActivateToRegistered -benchtime 20x ./xds/

bench-edge:     # Edge vs direct vs nginx, and failure to first redirected answer
	./edge/bench.sh

# The Debian package, in testout/dist/ (see scripts/build-deb.sh).
.PHONY: deb
deb:
	./scripts/build-deb.sh

clean:
	rm -f resman

# Proof under failure (docs/proof.md). chaos: a seeded random schedule of
# faults against a whole deployment in network namespaces (root), 10
# minutes unless CHAOS_DURATION says otherwise; RESMAN_CHAOS_SEED replays
# a seed. proof: resman side by side with keepalived (installed with
# apt-get when missing), then the Edge beside a direct connection and nginx;
# results and pictures in testout/proof/.
CHAOS_DURATION ?= 10m
.PHONY: chaos proof
chaos:
	RESMAN_CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -count=1 -run '^TestChaos$$' -v -timeout 60m ./cmd/resman/

proof:
	mkdir -p testout/proof
	bash -o pipefail -c "$(GO) test -count=1 -run '^$$' -bench '^BenchmarkVersusKeepalived$$' -benchtime 1x -timeout 120m ./cmd/resman/ | tee testout/proof/keepalived.txt"
	bash -o pipefail -c "./edge/bench.sh -count=1 | tee testout/proof/edge.txt"
