# resman: the two commands of the README are `make demo` (or `go run
# ./cmd/resman demo`) and `make test`.

GO      ?= go
GOFLAGS ?=
PKGS    := ./...

.PHONY: build demo test test-tools test-go fuzz gofmt vet bench bench-api bench-failover bench-switchover bench-loss bench-xds bench-edge clean

build:
	$(GO) build -o resman ./cmd/resman

demo:
	$(GO) run ./cmd/resman demo

# Installs the tier-3 tools (Debian packages) when missing, then runs every
# tier: vet and gofmt, go test ./..., the race run of every package but
# cmd/resman (whose tests mostly run the built binary, and would take
# several times as long under -race), the fuzz runs. Every tier runs even when one before it failed; at the end a summary
# gives, for each tier, the tests passed, failed and skipped (each skip with
# its reason), then the line "N passed, N failed, N skipped" with the totals,
# and the target fails if anything failed. With CI set, a tier-3 test whose
# tool is missing fails instead of skipping.
TESTSUMMARY := testout/bin/testsummary
SUMMARYDIR  := testout/summary
TIER         = $(TESTSUMMARY) run -dir $(SUMMARYDIR) -tier

# The tiers' commands; $(1) is empty or -json.
go_test_all  = $(GO) test $(1) -p 2 -count=1 $(PKGS)
go_test_race = $(GO) test $(1) -p 2 -count=1 -race ./resilience/... ./cc/... ./edge/... ./services/... ./xds/... ./config/...
# The fuzz budgets are counts of inputs, not durations: with a duration,
# Go 1.26's fuzzing coordinator can fail a run with "context deadline
# exceeded" as the time ends on a loaded machine (golang/go#75804, fixed
# in Go 1.27). A count has no deadline: a slow machine takes longer. The
# counts are what 6 s of fuzzing did on two busy cores (the core's, 15 s
# and 15 to 35 s), as `make fuzz` prints.
go_fuzz      = $(GO) test $(1) -run '^$$' -fuzz $(2) -fuzztime $(3) ./resilience/
# The parsers of outside input: $(2) a target (anchored: FuzzEvents is also
# a prefix of FuzzEventsRoundTrip), $(3) its package, $(4) its count. A
# short minimizing time, or a new input can take the whole run.
go_fuzz_pkg  = $(GO) test $(1) -run '^$$' -fuzz "^$(2)$$" -fuzztime $(4) -fuzzminimizetime 1s $(3)
FUZZ_INPUTS  = FuzzEvents:./resilience/client/:20000x FuzzYAMLRoundTrip:./config/:1500x \
               FuzzMetaDecode:./resilience/cluster/:25000x FuzzManifestPage:./resilience/replication/:300x \
               FuzzREGISTERAnswer:./xds/:40000x FuzzChallenge:./xds/:12000x \
               FuzzFastHead:./edge/:40000x
gofmt_check  = out=$$(gofmt -l $$(git ls-files "*.go")); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

test: test-tools
	@$(GO) build -o $(TESTSUMMARY) ./scripts/testsummary
	@rm -rf $(SUMMARYDIR)
	@$(TIER) vet -check gofmt -- sh -c '$(gofmt_check)'
	@$(TIER) vet -check 'go vet' -- $(GO) vet $(PKGS)
	@$(TIER) go -- $(call go_test_all,-json)
	@$(TIER) race -- $(call go_test_race,-json)
	@$(TIER) fuzz -- $(call go_fuzz,-json,FuzzManualPair,60000x)
	@$(TIER) fuzz -- $(call go_fuzz,-json,FuzzAutoPair,50000x)
	@for t in $(FUZZ_INPUTS); do n=$${t%%:*}; r=$${t#*:}; p=$${r%%:*}; c=$${r#*:}; $(TIER) fuzz -- $(call go_fuzz_pkg,-json,$$n,$$p,$$c); done
	@$(TESTSUMMARY) report -dir $(SUMMARYDIR) -tiers vet,go,race,fuzz

test-tools:
	./scripts/install-test-tools.sh

# One tier at a time, with go test's own output and no summary.
gofmt:
	@$(gofmt_check)

vet: gofmt
	$(GO) mod tidy -diff
	$(GO) vet $(PKGS)

test-go:
	$(call go_test_all)
	$(call go_test_race)

# Short runs of the core's fuzz tests on top of their seed corpus.
fuzz:
	$(call go_fuzz,,FuzzManualPair,60000x)
	$(call go_fuzz,,FuzzAutoPair,50000x)
	for t in $(FUZZ_INPUTS); do n=$${t%%:*}; r=$${t#*:}; p=$${r%%:*}; c=$${r#*:}; $(call go_fuzz_pkg,,$$n,$$p,$$c) || exit 1; done

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

bench-xds:      # node Active to 1, 10, 100 MDS registered; kamailio restart to binding back; kill -9 failover to stale contact removed
	$(GO) test -run '^$$' -bench ActivateToRegistered -benchtime 20x ./xds/
	$(GO) test -run '^$$' -bench 'KamailioRestartToBound|KamailioFailoverStaleRemoved' -benchtime 10x -timeout 30m ./xds/

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
# apt-get when missing), the timer sets of docs/timers.md (failover times
# and false takeovers under loss), then the Edge beside a direct connection
# and nginx;
# results and pictures in testout/proof/.
CHAOS_DURATION ?= 10m
.PHONY: chaos proof
chaos:
	RESMAN_CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -count=1 -run '^TestChaos$$' -v -timeout 60m ./cmd/resman/

proof:
	mkdir -p testout/proof
	bash -o pipefail -c "$(GO) test -count=1 -run '^$$' -bench '^BenchmarkVersusKeepalived$$' -benchtime 1x -timeout 120m ./cmd/resman/ | tee testout/proof/keepalived.txt"
	bash -o pipefail -c "$(GO) test -count=1 -run '^$$' -bench '^BenchmarkTimerSets$$' -benchtime 1x -timeout 240m ./cmd/resman/ | tee testout/proof/timers.txt"
	bash -o pipefail -c "./edge/bench.sh -count=1 | tee testout/proof/edge.txt"
