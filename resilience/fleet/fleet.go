// Package fleet is the fleet aggregator: it reads the status of many resman
// pairs (GET /api/v1/status on both nodes of each, read-only), derives per
// pair whether it is ready and how bad it is (split brain, no Active node,
// HA not ready, manual failover, version mismatch, stale replication),
// and serves the result as JSON (GET /api/v1/fleet), as a feed of what
// changed (GET /api/v1/fleet/events), as Prometheus metrics and as a
// read-only page (GET /fleet).
//
// It never changes a pair: its only requests to the nodes are GETs of
// /api/v1/status. A pair never depends on it: the nodes do not know it
// exists, and stopping it changes nothing on them.
//
// Each node is read every Interval by a pool of Concurrency workers; a
// node whose read is still queued or under way when its next turn comes
// is skipped for that turn, so that a slow or unreachable node delays
// neither the others nor itself.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
)

// Options configure an Aggregator.
type Options struct {
	// Config is the fleet section; zero keys take their defaults
	// (config.Fleet.ApplyDefaults). Pairs of Config.PairsDir are read by
	// New.
	Config config.Fleet
	// Token is the bearer token GET /api/v1/fleet requires: the
	// aggregator's api.token. Empty refuses every call.
	Token string
	// Logger; nil discards.
	Logger *slog.Logger
	// Registerer receives the resman_fleet_* metrics; nil registers none.
	Registerer prometheus.Registerer
	// HTTPClient reads the nodes; nil makes one sized for Concurrency.
	HTTPClient *http.Client
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Aggregator polls the pairs and holds their last known state.
type Aggregator struct {
	cfg     config.Fleet
	token   string
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
	pairs   []*pairState
	targets []*target
	running atomic.Bool
	events  eventLog
}

// pairState is what the aggregator knows of one pair.
type pairState struct {
	name  string
	nodes []*target
	mu    sync.Mutex
	view  Pair
	watch watch // under mu
}

// target is one node to read.
type target struct {
	pair    *pairState
	index   int
	url     string
	client  *client.Client
	pending atomic.Bool
	// last read, under pair.mu
	polled    bool
	st        api.Status
	err       error
	checkedAt time.Time
}

// New builds an Aggregator from opts: it fills the defaults, reads
// Config.PairsDir and validates everything (config.Problems on failure).
// It starts nothing: call Run.
func New(opts Options) (*Aggregator, error) {
	cfg := opts.Config
	cfg.ApplyDefaults()
	if err := cfg.Validate(opts.Token); err != nil {
		return nil, err
	}
	lists := []config.FleetPairList{{Key: "fleet.pairs", Pairs: cfg.Pairs}}
	if cfg.PairsDir != "" {
		more, err := ReadPairsDir(cfg.PairsDir)
		if err != nil {
			return nil, err
		}
		lists = append(lists, more...)
	}
	if ps := config.CheckFleetPairs(lists, opts.Token); len(ps) > 0 {
		return nil, ps
	}
	var all []config.FleetPair
	for _, l := range lists {
		all = append(all, l.Pairs...)
	}
	if len(all) == 0 {
		return nil, config.Problems{{Key: "fleet.pairs_dir", Msg: fmt.Sprintf("no pair in %s nor in fleet.pairs", cfg.PairsDir)}}
	}

	a := &Aggregator{cfg: cfg, token: opts.Token, log: opts.Logger, now: opts.Now}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: newTransport(cfg.Concurrency)}
	}
	for _, p := range all {
		ps := &pairState{name: p.Name}
		for i, u := range p.Nodes {
			t := &target{pair: ps, index: i, url: u,
				client: client.New(u, p.Token, client.WithHTTPClient(hc), client.WithTimeout(cfg.Timeout))}
			ps.nodes = append(ps.nodes, t)
			a.targets = append(a.targets, t)
		}
		ps.view = a.derive(ps)
		a.pairs = append(a.pairs, ps)
	}
	a.metrics = newMetrics()
	a.metrics.register(opts.Registerer, a)
	return a, nil
}

// newTransport keeps one idle connection per node (the nodes are many
// hosts, each read every few seconds: dialling each time costs more CPU
// on both sides, a TLS handshake most), and up to concurrency per host
// (nodes behind one address).
func newTransport(concurrency int) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0 // no limit: one per node
	tr.MaxIdleConnsPerHost = concurrency
	tr.IdleConnTimeout = 5 * time.Minute
	// A request is one short GET; a status answer is about a KiB. Small
	// buffers matter with one connection kept per node.
	tr.WriteBufferSize = 1 << 10
	tr.ReadBufferSize = 2 << 10
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return tr
}

// Pairs is how many pairs the aggregator watches.
func (a *Aggregator) Pairs() int { return len(a.pairs) }

// Run polls every node each Interval until ctx is done. It returns nil
// then; it may be called once.
func (a *Aggregator) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("fleet: Run called twice")
	}
	a.log.Info("fleet aggregator polling", "component", "fleet", "pairs", len(a.pairs),
		"nodes", len(a.targets), "interval", a.cfg.Interval, "concurrency", a.cfg.Concurrency)
	// Each target is in the queue at most once (pending), so the queue
	// never blocks the dispatcher.
	jobs := make(chan *target, len(a.targets))
	var wg sync.WaitGroup
	for range a.cfg.Concurrency {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case t := <-jobs:
					a.poll(ctx, t)
					t.pending.Store(false)
				}
			}
		})
	}
	dispatch := func() {
		skipped := 0
		for _, t := range a.targets {
			if t.pending.CompareAndSwap(false, true) {
				jobs <- t
			} else {
				skipped++
			}
		}
		if skipped > 0 {
			a.metrics.skipped.Add(float64(skipped))
		}
	}
	dispatch()
	tick := time.NewTicker(a.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-tick.C:
			dispatch()
		}
	}
}

// poll reads one node and updates its pair.
func (a *Aggregator) poll(ctx context.Context, t *target) {
	start := time.Now()
	st, err := t.client.Status(ctx)
	a.metrics.pollDuration.Observe(time.Since(start).Seconds())
	if ctx.Err() != nil {
		return // stopping: keep the last state
	}
	ps := t.pair
	ps.mu.Lock()
	t.polled, t.st, t.err, t.checkedAt = true, st, err, a.now()
	if err != nil {
		t.st = api.Status{}
	}
	prev := ps.view
	ps.view = a.derive(ps)
	view := ps.view
	evs := ps.watch.update(view)
	if len(evs) > 0 {
		// Under ps.mu: one pair's events are kept in the order seen.
		a.events.add(a.now(), evs)
	}
	ps.mu.Unlock()
	if err != nil {
		a.metrics.pollErrors.WithLabelValues(ps.name).Inc()
	}
	if prev.Severity != view.Severity {
		a.log.Info("pair severity changed", "component", "fleet", "pair", view.Name,
			"from", prev.Severity, "to", view.Severity, "reasons", view.Reasons)
	}
}

// Snapshot is every pair's state, sorted by severity (worst first) then
// name. The slice and its contents are the caller's.
func (a *Aggregator) Snapshot() []Pair {
	out := make([]Pair, 0, len(a.pairs))
	now := a.now()
	for _, ps := range a.pairs {
		ps.mu.Lock()
		v := ps.view
		ps.mu.Unlock()
		out = append(out, v.withAge(now))
	}
	SortPairs(out)
	return out
}
