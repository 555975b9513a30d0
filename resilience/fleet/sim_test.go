package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// sim serves the status of many pairs' nodes from one process over real
// HTTP: one httptest server, node N of pair P at <url>/pP/N, with
// GET /pP/N/api/v1/status behind the pair's token. It records every
// request, so that a test can tell that the aggregator only read.
type sim struct {
	srv   *httptest.Server
	mu    sync.Mutex
	nodes map[string]*simNode // by path prefix "/p00001/a"
	names []string            // pair names, in order

	requests atomic.Int64
	// writes, other paths and bad tokens seen (all must stay 0).
	notGET, otherPath, badToken atomic.Int64
}

type simNode struct {
	token string
	st    api.Status
	body  []byte
}

const simToken = "sim-pair-token-0123456789abcdef"

// newSim starts a simulator of n healthy pairs: node a Active (the Main),
// node b Inactive, HA ready, one replication job.
func newSim(t testing.TB, n int) *sim {
	s := buildSim(n)
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// buildSim is newSim without its server.
func buildSim(n int) *sim {
	s := &sim{nodes: map[string]*simNode{}}
	now := time.Now().UTC()
	for i := range n {
		name := fmt.Sprintf("p%05d", i)
		s.names = append(s.names, name)
		for j, side := range []string{"a", "b"} {
			st := api.Status{
				Node: name + "-" + side, Role: []string{"main", "standby"}[j], Mode: "auto",
				Status: []string{api.StatusActive, api.StatusInactive}[j], Epoch: 1,
				Version: "2025.10.3", Healthy: true, HA: api.HA{Ready: true, Reasons: []string{}},
				Replication: []api.Replication{{Name: "db", OK: true, LastSuccess: now, Kind: "exec",
					Direction: []string{"send", "receive"}[j]}},
			}
			if j == 0 {
				st.LastChange = &api.Transition{From: "inactive", To: "active", Cause: "boot", At: now.Add(-time.Hour)}
			}
			nd := &simNode{token: simToken, st: st}
			nd.body, _ = json.Marshal(st)
			s.nodes["/"+name+"/"+side] = nd
		}
	}
	return s
}

func (s *sim) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if r.Method != http.MethodGet {
		s.notGET.Add(1)
	}
	prefix, ok := strings.CutSuffix(r.URL.Path, "/api/v1/status")
	s.mu.Lock()
	nd := s.nodes[prefix]
	var body []byte
	if nd != nil {
		body = nd.body
	}
	s.mu.Unlock()
	if !ok || nd == nil {
		s.otherPath.Add(1)
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+nd.token {
		s.badToken.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// set changes a node's status ("p00003", "a").
func (s *sim) set(pair, side string, f func(*api.Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	nd := s.nodes["/"+pair+"/"+side]
	f(&nd.st)
	nd.body, _ = json.Marshal(nd.st)
}

// state is every node's status body, to compare before and after.
func (s *sim) state() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k, nd := range s.nodes {
		out[k] = string(nd.body)
	}
	return out
}

// pairs is the fleet config of the simulated pairs.
func (s *sim) pairs() []PairConfig {
	return simPairs(len(s.names), func(int) string { return s.srv.URL })
}

// simPairs is the fleet config of n simulated pairs, node k (0 to 2n-1)
// at base(k).
func simPairs(n int, base func(k int) string) []PairConfig {
	var out []PairConfig
	for i := range n {
		name := fmt.Sprintf("p%05d", i)
		out = append(out, PairConfig{Name: name, Token: simToken,
			Nodes: []string{base(2*i) + "/" + name + "/a", base(2*i+1) + "/" + name + "/b"}})
	}
	return out
}

const aggToken = "aggregator-token-0123456789abcdef"

// startAggregator runs an aggregator of the simulator's pairs and serves
// its Handler; stop ends Run and waits for it.
func startAggregator(t testing.TB, s *sim, cfg Config, opts Options) (a *Aggregator, url string, stop func()) {
	t.Helper()
	cfg.Pairs = s.pairs()
	return startAggregatorOf(t, cfg, opts)
}

func startAggregatorOf(t testing.TB, cfg Config, opts Options) (a *Aggregator, url string, stop func()) {
	t.Helper()
	opts.Config, opts.Token = cfg, aggToken
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			hs.Close()
		})
	}
	t.Cleanup(stop)
	return a, hs.URL, stop
}

// getFleet reads GET /api/v1/fleet as a client would.
func getFleet(t testing.TB, hc *http.Client, url string) []Pair {
	t.Helper()
	ps, err := fetchFleet(hc, url)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func fetchFleet(hc *http.Client, url string) ([]Pair, error) {
	req, _ := http.NewRequest(http.MethodGet, url+PathAPI, nil)
	req.Header.Set("Authorization", "Bearer "+aggToken)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d", PathAPI, resp.StatusCode)
	}
	var ps []Pair
	if err := json.NewDecoder(resp.Body).Decode(&ps); err != nil {
		return nil, err
	}
	return ps, nil
}

// waitAllPolled waits until every pair of the fleet view has been read.
func waitAllPolled(t testing.TB, hc *http.Client, url string, within time.Duration) []Pair {
	t.Helper()
	var ps []Pair
	testkit.EventuallyWithin(t, within, func() bool {
		ps = getFleet(t, hc, url)
		return !slices.ContainsFunc(ps, func(p Pair) bool { return has(p.Classes, ClassNotPolled) })
	}, "every pair read")
	return ps
}

func percentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	idx := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(idx, len(s)-1))]
}

// 500 pairs served over real HTTP, the aggregator's real client polling
// them with the default interval (2s) and concurrency (32): a change on
// any pair is in GET /api/v1/fleet within 5 s; the aggregator only ever
// sent GET /api/v1/status with the pair's token; stopping it changes
// nothing on the pairs.
func TestFleet500PairsFreshnessAndReadOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 10 s: 500 pairs polled over HTTP for several intervals")
	}
	const n = 500
	s := newSim(t, n)
	a, url, stop := startAggregator(t, s, Config{}, Options{})
	if a.cfg.Interval != DefaultInterval || a.cfg.Concurrency != DefaultConcurrency {
		t.Fatalf("defaults not applied: %+v", a.cfg)
	}
	hc := &http.Client{}
	ps := waitAllPolled(t, hc, url, 10*time.Second)
	if len(ps) != n {
		t.Fatalf("%d pairs, want %d", len(ps), n)
	}
	for _, p := range ps {
		if !p.Ready || p.Severity != SeverityOK {
			t.Fatalf("healthy pair %s: %+v", p.Name, p)
		}
	}

	// Changes on 25 pairs, one every 150 ms: each bumps the epoch of
	// node b and makes it Active beside a (a split brain). A reader polls
	// the fleet view every 50 ms and notes when it first sees each change.
	const changes = 25
	type change struct {
		pair string
		at   time.Time
		seen time.Duration
	}
	var mu sync.Mutex
	var pending []*change
	var done []*change
	stopReader := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stopReader:
				return
			case <-time.After(50 * time.Millisecond):
			}
			view, err := fetchFleet(hc, url)
			if err != nil {
				t.Errorf("reader: %v", err)
				return
			}
			got := time.Now()
			byName := map[string]Pair{}
			for _, p := range view {
				byName[p.Name] = p
			}
			mu.Lock()
			rest := pending[:0]
			for _, c := range pending {
				if p := byName[c.pair]; p.Epoch == 7 && has(p.Classes, ClassSplitBrain) {
					c.seen = got.Sub(c.at)
					done = append(done, c)
				} else {
					rest = append(rest, c)
				}
			}
			pending = rest
			mu.Unlock()
		}
	}()
	for i := range changes {
		name := s.names[(i*37+11)%n]
		c := &change{pair: name}
		mu.Lock()
		c.at = time.Now()
		s.set(name, "b", func(st *api.Status) { st.Status, st.Epoch = api.StatusActive, 7 })
		pending = append(pending, c)
		mu.Unlock()
		time.Sleep(150 * time.Millisecond)
	}
	// A generous bound: the freshness is measured and logged below; a
	// loaded machine may take longer than the 2 s interval suggests, and
	// the test fails only on a change that never shows.
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		left := len(pending)
		mu.Unlock()
		if left == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stopReader)
	<-readerDone
	if len(pending) > 0 {
		t.Fatalf("%d of %d changes not in %s within 60 s of the last change", len(pending), changes, PathAPI)
	}
	var ds []time.Duration
	for _, c := range done {
		ds = append(ds, c.seen)
	}
	t.Logf("measured: %d pairs, interval %s, concurrency %d: freshness of %d changes in GET %s: p50 %s, p95 %s, max %s",
		n, a.cfg.Interval, a.cfg.Concurrency, len(ds), PathAPI,
		percentile(ds, .5).Round(time.Millisecond), percentile(ds, .95).Round(time.Millisecond),
		percentile(ds, 1).Round(time.Millisecond))

	// The split brains come first.
	view := getFleet(t, hc, url)
	for i := range changes {
		if view[i].Severity != SeverityCritical || !has(view[i].Classes, ClassSplitBrain) {
			t.Fatalf("row %d: %s %s, want the split brains first", i, view[i].Name, view[i].Severity)
		}
	}

	// Stopping the aggregator changes nothing on the pairs, and it only
	// ever read.
	before := s.state()
	stop()
	after := s.state()
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Error("the pairs' state changed when the aggregator stopped")
	}
	reqs := s.requests.Load()
	time.Sleep(2500 * time.Millisecond) // more than an interval
	if late := s.requests.Load() - reqs; late != 0 {
		t.Errorf("%d requests after the aggregator stopped", late)
	}
	if w, o, b := s.notGET.Load(), s.otherPath.Load(), s.badToken.Load(); w != 0 || o != 0 || b != 0 {
		t.Errorf("the simulator saw %d requests other than GET, %d other paths, %d bad tokens; want none", w, o, b)
	}
	t.Logf("the simulator saw %d requests, all GET /api/v1/status with the pair's token", s.requests.Load())
}
