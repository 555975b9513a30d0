package edge

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// The Edge returns memory to the system after a load of many connections
// has fallen, twice (at once, then once the idle workers are gone), and
// not during a load, nor after a small one.
func TestTrimmerAfterLoad(t *testing.T) {
	type step struct {
		open int
		trim bool
	}
	var steps []step
	add := func(open, n int, trimAt ...int) {
		for i := range n {
			steps = append(steps, step{open, slices.Contains(trimAt, i)})
		}
	}
	// A small load: never.
	add(10, 5)
	add(trimMinPeak-1, 5)
	add(0, 20)
	// A load of 1,000 connections with a dip of one sample: not yet.
	add(1000, 3)
	add(100, 1)
	add(1000, 3)
	// It ends: the second low sample, then the twelfth.
	add(5, 20, trimFirst-1, trimAgain-1)
	// Another load, that falls to a quarter and stays there.
	add(400, 2)
	add(100, trimAgain, trimFirst-1, trimAgain-1)
	var tr trimmer
	for i, s := range steps {
		if got := tr.observe(s.open); got != s.trim {
			t.Fatalf("sample %d (%d open): trim %v, want %v", i, s.open, got, s.trim)
		}
	}
}

// A running Edge gives memory back once a load of many connections ends,
// and not while it lasts.
func TestMemoryIsGivenBackAfterALoad(t *testing.T) {
	saved := trimInterval
	trimInterval = 10 * time.Millisecond
	t.Cleanup(func() { trimInterval = saved })
	release := make(chan struct{})
	close(release)
	up := newSlowUpstream(t, 100, 0, release)
	log, logs := testkit.BufferLogger(t)
	node := newFakeNode(t, active(1))
	e := startEdge(t, fast(), []sideSpec{{name: "main", node: node,
		routes: []Route{{Path: "/", Upstream: up.url()}}}},
		func(o *Options) { o.Logger = log })
	e.waitRouted(t, "main")
	const msg = "memory returned to the system"
	var conns []*rawConn
	for range trimMinPeak + 6 {
		rc := dialRaw(t, e)
		if res := rc.do("GET / HTTP/1.1\r\nHost: pbx\r\n\r\n"); res.status != 200 {
			t.Fatalf("answer %d", res.status)
		}
		conns = append(conns, rc)
	}
	// The load lasts: ten samples, no collection.
	time.Sleep(10 * trimInterval)
	if strings.Contains(logs.String(), msg) {
		t.Fatal("memory given back while the connections are open")
	}
	for _, rc := range conns {
		rc.c.Close()
	}
	testkit.Eventually(t, func() bool { return strings.Contains(logs.String(), msg) }, "memory given back after the load")
	// Twice: after the fall, and once the idle workers are gone.
	testkit.Eventually(t, func() bool { return strings.Count(logs.String(), msg) == 2 }, "memory given back a second time")
	time.Sleep(3 * trimAgain * trimInterval)
	if n := strings.Count(logs.String(), msg); n != 2 {
		t.Errorf("memory given back %d times after one load, want 2", n)
	}
}
