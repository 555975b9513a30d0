package edge

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client/watch"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// A wake-up later than two periods is a stall, counted where it overlaps
// the window asked about; one under way counts up to now; a byte pending
// is not written again.
func TestStallMeterCountsLateWakeUps(t *testing.T) {
	var m stallMeter
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	if !m.send(ms(0)) {
		t.Fatal("the first byte is not written")
	}
	m.woke(ms(10)) // on time
	if !m.send(ms(100)) {
		t.Fatal("a byte after a wake-up is not written")
	}
	if m.send(ms(120)) {
		t.Fatal("a second byte written while one is pending")
	}
	m.woke(ms(400)) // 300 ms late
	for _, c := range []struct {
		from, to int
		want     time.Duration
	}{
		{0, 1000, 300 * time.Millisecond},
		{200, 1000, 200 * time.Millisecond},
		{150, 250, 100 * time.Millisecond},
		{0, 50, 0},
		{500, 1000, 0},
	} {
		if got := m.stalled(ms(c.from), ms(c.to)); got != c.want {
			t.Errorf("stalled(%d ms, %d ms) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
	m.send(ms(1000))
	if got := m.stalled(ms(900), ms(1030)); got != 0 {
		t.Errorf("a byte pending for less than two periods counts %v", got)
	}
	if got := m.stalled(ms(900), ms(1500)); got != 500*time.Millisecond {
		t.Errorf("the stall under way counts %v, want 500ms", got)
	}
}

// The tick is a quarter of the check timeout, within its bounds, so the
// meter sees a stall of half the check timeout: a 200 ms check timeout
// gets a 50 ms tick, which counts a 120 ms stall that the default tick
// (which sees only stalls over 200 ms) misses.
func TestStallMeterTickFollowsTheCheckTimeout(t *testing.T) {
	for _, c := range []struct{ timeout, want time.Duration }{
		{2 * time.Second, lagPeriod},
		{500 * time.Millisecond, lagPeriod},
		{200 * time.Millisecond, 50 * time.Millisecond},
		{20 * time.Millisecond, minLagPeriod},
	} {
		if got := lagPeriodFor(c.timeout); got != c.want {
			t.Errorf("lagPeriodFor(%v) = %v, want %v", c.timeout, got, c.want)
		}
	}
	t0 := time.Unix(1000, 0)
	for _, c := range []struct {
		period time.Duration
		want   time.Duration
	}{{lagPeriodFor(200 * time.Millisecond), 120 * time.Millisecond}, {0, 0}} {
		m := stallMeter{period: c.period}
		m.send(t0)
		m.woke(t0.Add(120 * time.Millisecond))
		if got := m.stalled(t0, t0.Add(time.Second)); got != c.want {
			t.Errorf("tick %v: a 120 ms late wake-up counts %v, want %v", m.tick(), got, c.want)
		}
	}
	e, err := New(Options{Config: Config{Listen: "127.0.0.1:0", Check: Check{Interval: time.Second, Rise: 1, Fall: 1},
		Sides: []Side{{Name: "main", Node: "http://127.0.0.1:1", Routes: []Route{{Path: "/", Upstream: "http://127.0.0.1:1"}}}}},
		CheckTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.stalls.tick(); got != 50*time.Millisecond {
		t.Errorf("an Edge with a 200 ms check timeout ticks every %v, want 50ms", got)
	}
}

// run's reader wakes at each byte; run returns once its context ends.
func TestStallMeterRunsAndStops(t *testing.T) {
	var m stallMeter
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.run(ctx) }()
	testkit.EventuallyWithin(t, waitLimit, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.wakes >= 3
	}, "the meter's reader woken by its bytes")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLimit):
		t.Fatal("run did not return")
	}
}

// A failed check during which the Edge stalled for half the check timeout
// is not counted, and is counted in the metric; one without a stall takes
// the side down.
func TestFailedCheckDuringAStallIsNotCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, err := New(Options{Config: Config{Listen: "127.0.0.1:0", Check: Check{Interval: time.Second, Rise: 1, Fall: 1},
		Sides: []Side{{Name: "main", Node: "http://127.0.0.1:1", Routes: []Route{{Path: "/", Upstream: "http://127.0.0.1:1"}}}}},
		Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	s := e.sides[0]
	now := time.Now()
	s.observe(watch.Observation{At: now.Add(-3 * time.Second), Status: api.StatusActive, Epoch: 1})
	if h := e.Status().Sides[0].Health; h != HealthUp {
		t.Fatalf("after a pass: %q", h)
	}
	// The Edge stalled 600 ms of the last second (the check timeout).
	e.stalls.send(now.Add(-800 * time.Millisecond))
	e.stalls.woke(now.Add(-200 * time.Millisecond))
	timedOut := fmt.Errorf("node unreachable: GET /active: %w", context.DeadlineExceeded)
	s.observe(watch.Observation{At: now.Add(-time.Second), Err: timedOut})
	if h := e.Status().Sides[0].Health; h != HealthUp {
		t.Fatalf("a failed check during a stall took the side %q", h)
	}
	if v := testkit.Metric(t, reg, "resman_edge_checks_not_counted_total", map[string]string{"side": "main"}); v != 1 {
		t.Errorf("resman_edge_checks_not_counted_total = %v", v)
	}
	// A check that started after the stall counts.
	s.observe(watch.Observation{At: now.Add(-100 * time.Millisecond), Err: timedOut})
	if h := e.Status().Sides[0].Health; h != HealthDown {
		t.Fatalf("a failed check without a stall left the side %q", h)
	}
	// A refusal during a stall counts: the node gave it.
	s.observe(watch.Observation{At: now.Add(-3 * time.Second), Status: api.StatusActive, Epoch: 1})
	refused := fmt.Errorf("node unreachable: %w", syscall.ECONNREFUSED)
	s.observe(watch.Observation{At: now.Add(-time.Second), Err: refused})
	if h := e.Status().Sides[0].Health; h != HealthDown {
		t.Fatalf("a refusal during a stall left the side %q", h)
	}
	if v := testkit.Metric(t, reg, "resman_edge_checks_not_counted_total", map[string]string{"side": "main"}); v != 1 {
		t.Errorf("resman_edge_checks_not_counted_total = %v after a refusal", v)
	}
}
