package testkit

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeT records what a helper says to its test; Fatalf ends the
// goroutine as the testing package's does.
type fakeT struct {
	testing.TB
	mu       sync.Mutex
	fatal    string
	logs     []string
	cleanups []func()
	failed   bool
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal, f.failed = fmt.Sprintf(format, args...), true
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeT) Log(args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, fmt.Sprint(args...))
}

func (f *fakeT) Logf(format string, args ...any) { f.Log(fmt.Sprintf(format, args...)) }
func (f *fakeT) Cleanup(fn func())               { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Failed() bool                    { return f.failed }

func (f *fakeT) cleanup() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

// run runs fn as a test body would run, and returns its fatal message
// ("" when it did not fail).
func (f *fakeT) run(fn func(t testing.TB)) string {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fatal
}

func TestEventuallyWaitsForTheCondition(t *testing.T) {
	calls := 0
	ft := &fakeT{}
	msg := ft.run(func(t testing.TB) {
		Eventually(t, func() bool { calls++; return calls == 3 }, "three calls")
	})
	if msg != "" || calls != 3 {
		t.Fatalf("failed with %q after %d calls, want success after 3", msg, calls)
	}
}

func TestEventuallyWithinSaysWhatItWaitedFor(t *testing.T) {
	ft := &fakeT{}
	msg := ft.run(func(t testing.TB) {
		EventuallyWithin(t, 20*time.Millisecond, func() bool { return false }, "service %s %s", "a", "running")
	})
	if !strings.Contains(msg, "waiting for service a running") || !strings.Contains(msg, "20ms") {
		t.Fatalf("message %q, want what was awaited and the bound", msg)
	}
}

func TestUntilReturnsTheValueOrSaysTheLastSeen(t *testing.T) {
	n := 0
	ft := &fakeT{}
	var got int
	if msg := ft.run(func(t testing.TB) {
		got = Until(t, func() int { n++; return n }, func(v int) bool { return v >= 4 }, "four")
	}); msg != "" || got != 4 {
		t.Fatalf("Until = %d (failure %q), want 4", got, msg)
	}
	ft = &fakeT{}
	msg := ft.run(func(t testing.TB) {
		until(t, 20*time.Millisecond, func() string { return "stopped" }, func(v string) bool { return v == "running" }, "service %s running", "a")
	})
	if !strings.Contains(msg, "waiting for service a running: last saw stopped") {
		t.Fatalf("message %q, want what was awaited and the last value", msg)
	}
	if Patience < 10*time.Second {
		t.Fatalf("Patience %s is not generous", Patience)
	}
}

func TestPoll(t *testing.T) {
	if Poll(10*time.Millisecond, func() bool { return false }) {
		t.Fatal("Poll of a condition that never holds reported true")
	}
	checks := 0
	if !Poll(0, func() bool { checks++; return true }) || checks != 1 {
		t.Fatalf("Poll(0) of a true condition: %d checks, want true after 1", checks)
	}
}

func TestLoggerWritesToTheTestUntilItEnds(t *testing.T) {
	ft := &fakeT{}
	log := Logger(ft)
	log.Debug("first", "k", 1)
	ft.cleanup()
	log.Info("after the end")
	if len(ft.logs) != 1 || !strings.Contains(ft.logs[0], "msg=first k=1") || strings.HasSuffix(ft.logs[0], "\n") {
		t.Fatalf("logs %q, want the one line logged before the end", ft.logs)
	}
}

func TestBufferLoggerKeepsTheLogsAndShowsThemOnFailure(t *testing.T) {
	for _, failed := range []bool{false, true} {
		ft := &fakeT{failed: failed}
		log, buf := BufferLogger(ft)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() { log.Info("line", "i", i) })
		}
		wg.Wait()
		if !buf.Contains("i=7") || strings.Count(buf.String(), "msg=line") != 8 {
			t.Fatalf("buffer %q, want 8 lines", buf.String())
		}
		ft.cleanup()
		if shown := len(ft.logs) == 1 && strings.Contains(ft.logs[0], "i=3"); shown != failed {
			t.Fatalf("failed=%v: test log %q", failed, ft.logs)
		}
	}
}

func TestFailureLoggerShowsTheLogsOnlyOnFailure(t *testing.T) {
	for _, failed := range []bool{false, true} {
		ft := &fakeT{failed: failed}
		FailureLogger(ft).Info("kept")
		if len(ft.logs) != 0 {
			t.Fatalf("logs shown while the test runs: %q", ft.logs)
		}
		ft.cleanup()
		if shown := len(ft.logs) == 1 && strings.Contains(ft.logs[0], "msg=kept"); shown != failed {
			t.Fatalf("failed=%v: test log %q", failed, ft.logs)
		}
	}
}

func TestMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "c"}, []string{"mds", "code"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "g"})
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h_seconds", Help: "h"}, []string{"action"})
	reg.MustRegister(c, g, h)
	c.WithLabelValues("mds1", "403").Add(2)
	c.WithLabelValues("mds2", "403").Add(5)
	g.Set(-3)
	h.WithLabelValues("failover").Observe(1)
	h.WithLabelValues("failover").Observe(2)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
		ok     bool
	}{
		{"c_total", map[string]string{"mds": "mds2"}, 5, true},
		{"c_total", map[string]string{"mds": "mds1", "code": "403"}, 2, true},
		{"c_total", map[string]string{"mds": "mds1", "code": "timeout"}, 0, false},
		{"c_total", map[string]string{"nolabel": ""}, 0, false},
		{"g", nil, -3, true},
		{"h_seconds", map[string]string{"action": "failover"}, 2, true},
		{"absent", nil, 0, false},
	} {
		v, ok := Gathered(t, reg, tc.name, tc.labels)
		if v != tc.want || ok != tc.ok || Metric(t, reg, tc.name, tc.labels) != tc.want {
			t.Errorf("%s %v: %v %v, want %v %v", tc.name, tc.labels, v, ok, tc.want, tc.ok)
		}
	}
	if v := Value(t, c.WithLabelValues("mds2", "403")); v != 5 {
		t.Errorf("Value = %v, want 5", v)
	}
	if v := Value(t, g); v != -3 {
		t.Errorf("Value of the gauge = %v, want -3", v)
	}
	if s := MetricSum(t, reg, "c_total", map[string]string{"code": "403"}); s != 7 {
		t.Errorf("sum = %v, want 7", s)
	}
}

func TestMetricText(t *testing.T) {
	const text = `# HELP resman_gossip_members Members.
# TYPE resman_gossip_members gauge
resman_gossip_members{state="alive"} 3
resman_gossip_members{state="alive",extra="x"} 9
resman_gossip_keys 2 1700000000000
`
	for _, tc := range []struct{ series, want string }{
		{`resman_gossip_members{state="alive"}`, "3"},
		{"resman_gossip_keys", "2"},
		{"resman_gossip_members", ""},
	} {
		if v, ok := MetricText(text, tc.series); v != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: %q %v, want %q", tc.series, v, ok, tc.want)
		}
	}
}

func TestFakeClockTicker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewFakeClock(t0)
	ticks, stop := c.NewTicker(time.Second)
	if c.Pending() != 1 {
		t.Fatalf("pending = %d, want the ticker", c.Pending())
	}
	c.Advance(999 * time.Millisecond)
	select {
	case <-ticks:
		t.Fatal("a tick before its interval")
	default:
	}
	c.Advance(time.Millisecond)
	if at := <-ticks; !at.Equal(t0.Add(time.Second)) {
		t.Fatalf("tick at %v, want one second on", at)
	}
	// Three intervals with nobody reading: one tick waits, the rest are
	// dropped, as with time.Ticker.
	c.Advance(3 * time.Second)
	if at := <-ticks; !at.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("kept tick at %v, want the first missed", at)
	}
	select {
	case at := <-ticks:
		t.Fatalf("a second tick kept: %v", at)
	default:
	}
	if !c.Now().Equal(t0.Add(4 * time.Second)) {
		t.Fatalf("now = %v, want start + 4s", c.Now())
	}
	stop()
	c.Advance(time.Hour)
	select {
	case <-ticks:
		t.Fatal("a tick after stop")
	default:
	}
	if c.Pending() != 0 {
		t.Fatalf("pending = %d after stop", c.Pending())
	}
}

func TestFakeClockTimer(t *testing.T) {
	c := NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	fire, stop := c.NewTimer(time.Minute)
	other, stopOther := c.NewTimer(2 * time.Minute)
	if !stopOther() {
		t.Fatal("stop of a timer not fired said it had fired")
	}
	c.Advance(time.Hour)
	<-fire
	select {
	case <-other:
		t.Fatal("a stopped timer fired")
	default:
	}
	if stop() {
		t.Fatal("stop of a fired timer said it stopped it")
	}
	now, _ := c.NewTimer(0)
	<-now
}
