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
// neither the others nor itself. SetPairs changes the pairs watched while
// it runs (a reload of the config file), keeping the state of the pairs
// kept.
//
// The fleet: section of the config file is this package's Config
// (config.go): its keys, defaults and checks; package config composes it
// into the file's Config.
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

	"github.com/resman-pbx/resman/config/confcheck"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
)

// Options configure an Aggregator.
type Options struct {
	// Config is the fleet section; zero keys take their defaults
	// (Config.ApplyDefaults). Pairs of Config.PairsDir are read by New.
	Config Config
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
	cfg     Config // the pairs of New; SetPairs changes the pairs watched, not cfg
	token   string
	log     *slog.Logger
	now     func() time.Time
	hc      *http.Client
	metrics *metrics
	running atomic.Bool
	events  eventLog

	// mu guards pairs and targets, which SetPairs replaces (never
	// changes in place): readers copy the slices under mu.RLock.
	mu      sync.RWMutex
	pairs   []*pairState
	targets []*target
	// setMu makes SetPairs one at a time.
	setMu sync.Mutex
}

// pairState is what the aggregator knows of one pair.
type pairState struct {
	name  string
	token string
	nodes []*target
	mu    sync.Mutex
	view  Pair
	watch watch // under mu
	// removed: SetPairs dropped the pair; a read still under way for it
	// then changes nothing (no event, no metric). Under mu.
	removed bool
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
// Config.PairsDir and validates everything (confcheck.Problems on
// failure). It starts nothing: call Run.
func New(opts Options) (*Aggregator, error) {
	cfg := opts.Config
	cfg.ApplyDefaults(confcheck.NothingGiven)
	all, err := LoadPairs(cfg, opts.Token)
	if err != nil {
		return nil, err
	}
	a := &Aggregator{cfg: cfg, token: opts.Token, log: opts.Logger, now: opts.Now, hc: opts.HTTPClient}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.hc == nil {
		a.hc = &http.Client{Transport: newTransport(cfg.Concurrency)}
	}
	for _, p := range all {
		ps := a.newPair(p)
		a.targets = append(a.targets, ps.nodes...)
		a.pairs = append(a.pairs, ps)
	}
	a.metrics = newMetrics()
	a.metrics.register(opts.Registerer, a)
	return a, nil
}

// LoadPairs checks the fleet section cfg (its zero keys taking their
// defaults) and returns every pair it names: those of cfg.Pairs, then
// those of the files of cfg.PairsDir, read now. apiToken is the
// aggregator's api.token. On any problem (of the section, of a file, of
// a pair, or no pair at all) it returns confcheck.Problems naming the file
// and key of each, file by file and key by key, and no pair.
func LoadPairs(cfg Config, apiToken string) ([]PairConfig, error) {
	cfg.ApplyDefaults(confcheck.NothingGiven)
	var ps confcheck.Problems
	if cfg.Validate(&ps, apiToken); len(ps) > 0 {
		return nil, ps
	}
	lists := []PairList{{Key: "fleet.pairs", Pairs: cfg.Pairs}}
	if cfg.PairsDir != "" {
		more, err := ReadPairsDir(cfg.PairsDir)
		if err != nil {
			return nil, err
		}
		lists = append(lists, more...)
	}
	if ps := CheckPairs(lists, apiToken); len(ps) > 0 {
		return nil, ps
	}
	var all []PairConfig
	for _, l := range lists {
		all = append(all, l.Pairs...)
	}
	if len(all) == 0 {
		return nil, confcheck.Problems{{Key: "fleet.pairs_dir", Msg: fmt.Sprintf("no pair in %s nor in fleet.pairs", cfg.PairsDir)}}
	}
	return all, nil
}

// newPair is the state of a pair not read yet.
func (a *Aggregator) newPair(p PairConfig) *pairState {
	ps := &pairState{name: p.Name, token: p.Token}
	for i, u := range p.Nodes {
		ps.nodes = append(ps.nodes, &target{pair: ps, index: i, url: u,
			client: client.New(u, p.Token, client.WithHTTPClient(a.hc), client.WithTimeout(a.cfg.Timeout))})
	}
	ps.view = a.derive(ps)
	return ps
}

// current is the pairs and targets watched now (the caller's to read,
// not to change).
func (a *Aggregator) current() ([]*pairState, []*target) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.pairs, a.targets
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
func (a *Aggregator) Pairs() int {
	pairs, _ := a.current()
	return len(pairs)
}

// Run polls every node each Interval until ctx is done. It returns nil
// then; it may be called once.
func (a *Aggregator) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("fleet: Run called twice")
	}
	pairs, targets := a.current()
	a.log.Info("fleet aggregator polling", "component", "fleet", "pairs", len(pairs),
		"nodes", len(targets), "interval", a.cfg.Interval, "concurrency", a.cfg.Concurrency)
	// Each target is in the queue at most once (pending), so the queue
	// never blocks the dispatcher, unless SetPairs added more nodes than
	// there were at start: the dispatcher then waits for the workers.
	jobs := make(chan *target, len(targets))
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
		_, targets := a.current()
		for _, t := range targets {
			if t.pending.CompareAndSwap(false, true) {
				select {
				case jobs <- t:
				case <-ctx.Done():
					return
				}
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

// poll reads one node and updates its pair (unless SetPairs removed it).
func (a *Aggregator) poll(ctx context.Context, t *target) {
	ps := t.pair
	ps.mu.Lock()
	removed := ps.removed
	ps.mu.Unlock()
	if removed {
		return
	}
	start := time.Now()
	st, err := t.client.Status(ctx)
	a.metrics.pollDuration.Observe(time.Since(start).Seconds())
	if ctx.Err() != nil {
		return // stopping: keep the last state
	}
	ps.mu.Lock()
	if ps.removed {
		ps.mu.Unlock()
		return
	}
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
	if err != nil {
		// Under ps.mu: SetPairs deletes a removed pair's series after
		// marking it removed, so that no read brings them back.
		a.metrics.pollErrors.WithLabelValues(ps.name).Inc()
	}
	ps.mu.Unlock()
	if prev.Severity != view.Severity {
		a.log.Info("pair severity changed", "component", "fleet", "pair", view.Name,
			"from", prev.Severity, "to", view.Severity, "reasons", view.Reasons)
	}
}

// Snapshot is every pair's state, sorted by severity (worst first) then
// name. The slice and its contents are the caller's.
func (a *Aggregator) Snapshot() []Pair {
	pairs, _ := a.current()
	out := make([]Pair, 0, len(pairs))
	now := a.now()
	for _, ps := range pairs {
		ps.mu.Lock()
		v := ps.view
		ps.mu.Unlock()
		out = append(out, v.withAge(now))
	}
	SortPairs(out)
	return out
}
