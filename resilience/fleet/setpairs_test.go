package fleet

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// pairLabels is the set of pair label values of every resman_fleet_*
// series reg exports.
func pairLabels(t *testing.T, reg prometheus.Gatherer) map[string]bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "resman_fleet_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "pair" {
					out[l.GetValue()] = true
				}
			}
		}
	}
	return out
}

// pairOf is the named pair of a snapshot (the zero Pair when absent).
func pairOf(ps []Pair, name string) (Pair, bool) {
	i := slices.IndexFunc(ps, func(p Pair) bool { return p.Name == name })
	if i < 0 {
		return Pair{}, false
	}
	return ps[i], true
}

func names(ps []Pair) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	slices.Sort(out)
	return out
}

// polledSince reports whether both nodes of the pair were read after t.
func polledSince(p Pair, t time.Time) bool {
	for _, n := range p.Nodes {
		if !n.CheckedAt.After(t) {
			return false
		}
	}
	return len(p.Nodes) == 2
}

// SetPairs on a running aggregator: the pairs kept keep their state and
// what the feed knows of them (no event), the pair removed is no longer
// read and its series are gone, the pair added is read at the next tick.
func TestSetPairsWhileRunning(t *testing.T) {
	t.Parallel()
	s := newSim(t, 4)
	s.set("p00001", "b", func(st *api.Status) {
		st.HA = api.HA{Ready: false, Reasons: []string{"peer not seen over gossip"}}
	})
	all := s.pairs()
	// p00002 with a token its nodes refuse: unreachable, with errors.
	all[2].Token = "not-the-pair-token-0123456789"
	reg := prometheus.NewRegistry()
	a, _, _ := startAggregatorOf(t, Config{Pairs: all[:3], Interval: 100 * time.Millisecond}, Options{Registerer: reg})

	testkit.Eventually(t, func() bool {
		return testkit.Metric(t, reg, MetricPollErrors, map[string]string{"pair": "p00002"}) > 0 &&
			!slices.ContainsFunc(a.Snapshot(), func(p Pair) bool { return has(p.Classes, ClassNotPolled) })
	}, "every pair read, p00002 failing")
	evs := a.Events(0)
	if !slices.ContainsFunc(evs, func(e Event) bool { return e.Pair == "p00001" && e.Class == ClassHANotReady }) {
		t.Fatalf("no HA event of p00001 before the change: %q", texts(evs))
	}
	lastSeq := evs[0].Seq
	failedReads := map[string]float64{} // of the kept pairs, before the change
	for _, n := range []string{"p00000", "p00001"} {
		failedReads[n] = testkit.Metric(t, reg, MetricPollErrors, map[string]string{"pair": n})
	}
	before := a.Snapshot()
	p1Before, _ := pairOf(before, "p00001")

	ch, err := a.SetPairs([]PairConfig{all[0], all[1], all[3]})
	if err != nil {
		t.Fatal(err)
	}
	swapped := time.Now()
	if !slices.Equal(ch.Added, []string{"p00003"}) || !slices.Equal(ch.Removed, []string{"p00002"}) || len(ch.Changed) != 0 || ch.Pairs != 3 {
		t.Errorf("change %+v", ch)
	}
	if got := a.Pairs(); got != 3 {
		t.Errorf("Pairs() = %d, want 3", got)
	}

	// At once: the kept pairs as they were, the removed one gone.
	now := a.Snapshot()
	if got := names(now); !slices.Equal(got, []string{"p00000", "p00001", "p00003"}) {
		t.Fatalf("pairs after the change: %v", got)
	}
	for _, n := range []string{"p00000", "p00001"} {
		if p, _ := pairOf(now, n); has(p.Classes, ClassNotPolled) {
			t.Errorf("%s kept but shown as not read: %v", n, p.Reasons)
		}
	}
	if p1, _ := pairOf(now, "p00001"); p1.Severity != p1Before.Severity || !slices.Equal(p1.Classes, p1Before.Classes) {
		t.Errorf("p00001 was %s %v, now %s %v", p1Before.Severity, p1Before.Classes, p1.Severity, p1.Classes)
	}
	if labels := pairLabels(t, reg); labels["p00002"] {
		t.Errorf("series of the removed pair p00002 still exported: %v", labels)
	}

	// The new pair is read; the kept ones go on being read.
	testkit.Eventually(t, func() bool {
		ps := a.Snapshot()
		p3, _ := pairOf(ps, "p00003")
		p0, _ := pairOf(ps, "p00000")
		// Past any read of p00002 under way at the change (timeout: the interval).
		return p3.Severity == SeverityOK && polledSince(p0, swapped.Add(300*time.Millisecond))
	}, "p00003 read and ok, p00000 read again")
	refused := s.badToken.Load()
	mark := time.Now()
	testkit.Eventually(t, func() bool {
		p0, _ := pairOf(a.Snapshot(), "p00000")
		return polledSince(p0, mark.Add(300*time.Millisecond))
	}, "p00000 read a few more times")
	if got := s.badToken.Load(); got != refused {
		t.Errorf("the removed pair p00002 was still read: %d refused reads, %d before", got, refused)
	}
	labels := pairLabels(t, reg)
	if labels["p00002"] || !labels["p00003"] || !labels["p00000"] || !labels["p00001"] {
		t.Errorf("pair labels after the change: %v", labels)
	}
	if got := testkit.Metric(t, reg, MetricPairs, nil); got != 3 {
		t.Errorf("%s = %v, want 3", MetricPairs, got)
	}
	if got, ok := testkit.Gathered(t, reg, MetricPollErrors, map[string]string{"pair": "p00003"}); !ok || got != 0 {
		t.Errorf("poll errors of p00003: %v (exported: %v), want 0", got, ok)
	}
	// No event of a kept pair: its watch history went on. A read that
	// failed meanwhile (a loaded machine: the timeout is the 100 ms
	// interval) makes events of its own, which say nothing of the change.
	var unexplained []Event
	for _, e := range a.Events(lastSeq) {
		if testkit.Metric(t, reg, MetricPollErrors, map[string]string{"pair": e.Pair}) > failedReads[e.Pair] {
			t.Logf("event of %s after a failed read of it, not of the change: %s", e.Pair, e.Text)
			continue
		}
		unexplained = append(unexplained, e)
	}
	if len(unexplained) != 0 {
		t.Errorf("events after the change: %q", texts(unexplained))
	}
}

// A pair of the same name with other nodes or token is watched afresh; the
// change is said in words; a list with problems changes nothing.
func TestSetPairsChangedAndRefused(t *testing.T) {
	t.Parallel()
	pairs := simPairs(3, func(k int) string { return "http://127.0.0.1:1" })
	a, err := New(Options{Config: Config{Pairs: pairs[:2]}, Token: aggToken})
	if err != nil {
		t.Fatal(err)
	}
	moved := pairs[0]
	moved.Nodes = []string{"http://127.0.0.1:2/a", moved.Nodes[1]}
	ch, err := a.SetPairs([]PairConfig{moved, pairs[2]})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ch.String(), "2 pairs (added p00002; removed p00001; changed p00000)"; got != want {
		t.Errorf("change %q, want %q", got, want)
	}
	p0, _ := pairOf(a.Snapshot(), "p00000")
	if !has(p0.Classes, ClassNotPolled) || p0.Nodes[0].URL != moved.Nodes[0] {
		t.Errorf("changed pair: %+v", p0)
	}
	same, err := a.SetPairs([]PairConfig{moved, pairs[2]})
	if err != nil || !same.Empty() || same.String() != "2 pairs (unchanged)" {
		t.Errorf("the same list again: %v, %v", same, err)
	}

	for _, tt := range []struct {
		what  string
		pairs []PairConfig
		want  string
	}{
		{"none", nil, "no pair"},
		{"duplicate", []PairConfig{pairs[1], pairs[1]}, `pairs[1].name: duplicate of pairs[0].name "p00001"`},
		{"bad URL", []PairConfig{{Name: "x", Nodes: []string{"ftp://a", "http://b:1"}, Token: simToken}}, "pairs[0].nodes[0]: must be an http(s) URL"},
		{"the aggregator's token", []PairConfig{{Name: "x", Nodes: pairs[1].Nodes, Token: aggToken}}, "pairs[0].token: must differ from api.token"},
	} {
		if _, err := a.SetPairs(tt.pairs); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.what, err, tt.want)
		}
		if got := names(a.Snapshot()); !slices.Equal(got, []string{"p00000", "p00002"}) {
			t.Errorf("%s: the pairs changed to %v", tt.what, got)
		}
	}
	if got := (PairsChange{Pairs: 1, Removed: []string{"a", "b"}}).String(); got != "1 pair (removed a, b)" {
		t.Errorf("String: %q", got)
	}
}

// SetPairs again and again while Run reads and Snapshot and scrapes run
// (for -race); the last list is the one watched, all of it read.
func TestSetPairsConcurrent(t *testing.T) {
	t.Parallel()
	s := newSim(t, 6)
	all := s.pairs()
	reg := prometheus.NewRegistry()
	a, _, _ := startAggregatorOf(t, Config{Pairs: all[:3], Interval: 20 * time.Millisecond, Concurrency: 2},
		Options{Registerer: reg})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			a.Snapshot()
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for i := range 40 {
		lo := i % 4
		list := slices.Clone(all[lo : lo+3])
		if i%3 == 0 {
			list[0].Token = "another-pair-token-0123456789"
		}
		if _, err := a.SetPairs(list); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := a.SetPairs(all[3:]); err != nil {
		t.Fatal(err)
	}
	cancel()
	wg.Wait()
	testkit.Eventually(t, func() bool {
		ps := a.Snapshot()
		return len(ps) == 3 && !slices.ContainsFunc(ps, func(p Pair) bool { return p.Severity != SeverityOK })
	}, "the last list read, all ok")
	if got := names(a.Snapshot()); !slices.Equal(got, []string{"p00003", "p00004", "p00005"}) {
		t.Errorf("pairs: %v", got)
	}
	if labels := pairLabels(t, reg); len(labels) != 3 || !labels["p00003"] || !labels["p00004"] || !labels["p00005"] {
		t.Errorf("series of the pairs %v, want the last list's only", labels)
	}
}
