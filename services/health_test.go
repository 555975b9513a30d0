package services

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

func fastCheck(c Check) *Check {
	c.Interval = 20 * time.Millisecond
	c.Timeout = time.Second
	c.Rise, c.Fall = 2, 2
	return &c
}

func TestHealthRiseAndFall(t *testing.T) {
	ln, err := net.Listen("tcp", testkit.Addr(t)) // nothing takes it once closed
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := newTestSupervisor(t, []Service{{
		Name: "db", Start: []string{"true"}, Stop: []string{"true"}, Timeout: 10 * time.Second,
		Critical: true, Check: fastCheck(Check{TCP: ln.Addr().String()}),
	}}, Options{})
	runHealth(t, s)
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, func() bool { return statusOf(t, s, "db").Healthy }, "db healthy")

	ln.Close()
	testkit.Eventually(t, func() bool { return slices.Equal(s.Unhealthy(), []string{"db"}) }, "db unhealthy")
	st := statusOf(t, s, "db")
	if st.Healthy || st.State != StateRunning || !strings.HasPrefix(st.Error, "check: ") {
		t.Errorf("db = %+v, want running, unhealthy, with the check error", st)
	}

	if err := s.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if st := statusOf(t, s, "db"); st.Healthy || st.Error != "" {
		t.Errorf("stopped db = %+v, want not healthy and no error", st)
	}
	if got := s.Unhealthy(); len(got) != 0 {
		t.Errorf("Unhealthy after stop = %v, want none: a stopped service has no fallen check", got)
	}
}

// A critical service's check is undecided while the service starts: Start
// waits for it, and meanwhile the service is not unhealthy, however many
// probes fail (fall is 2 here).
func TestUnknownHealthIsNotUnhealthy(t *testing.T) {
	dir := t.TempDir()
	s := newTestSupervisor(t, []Service{{
		Name: "db", Start: []string{"true"}, Stop: []string{"true"}, Timeout: waitLimit,
		Critical: true, Check: fastCheck(Check{Exec: sh(`echo x >> "$DIR/probes"; false`)}),
	}}, Options{Env: []string{"DIR=" + dir}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	testkit.Eventually(t, func() bool { return len(readLines(t, filepath.Join(dir, "probes"))) >= 4 }, "4 failed probes")
	if st := statusOf(t, s, "db"); st.Healthy || st.State != StateStarting {
		t.Errorf("db = %+v, want starting and not yet healthy", st)
	}
	if got := s.Unhealthy(); len(got) != 0 {
		t.Errorf("Unhealthy = %v, want none while health is unknown", got)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Start = %v, want context.Canceled", err)
	}
}

func TestChecksRunOnlyWhileRunning(t *testing.T) {
	dir := t.TempDir()
	counted := func(name string) Service {
		return Service{
			Name: name, Start: []string{"true"}, Stop: []string{"true"}, Timeout: 10 * time.Second,
			Check: fastCheck(Check{Exec: sh(`echo x >> "$DIR/` + name + `"`)}),
		}
	}
	s := newTestSupervisor(t, []Service{counted("a"), counted("b")}, Options{Env: []string{"DIR=" + dir}})
	count := func(name string) int { return len(readLines(t, filepath.Join(dir, name))) }

	// Only a is started.
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.stop(ctxT(t), s.services[1]); err != nil {
		t.Fatal(err)
	}
	runHealth(t, s)
	testkit.Eventually(t, func() bool { return count("a") >= 3 }, "a probed 3 times")
	testkit.Eventually(t, func() bool { return statusOf(t, s, "a").Healthy }, "a healthy")
	if n := count("b"); n != 0 {
		t.Fatalf("stopped b was probed %d times", n)
	}
	if st := statusOf(t, s, "b"); st.Healthy {
		t.Errorf("stopped b = %+v, want not healthy", st)
	}

	// Now a stops and b runs: once b has been probed 3 times, a has had
	// time for several probes and got at most the one already under way.
	if err := s.stop(ctxT(t), s.services[0]); err != nil {
		t.Fatal(err)
	}
	atStop := count("a")
	if err := s.start(ctxT(t), s.services[1]); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, func() bool { return count("b") >= 3 }, "b probed 3 times")
	if n := count("a"); n > atStop+1 {
		t.Errorf("a was probed %d times after it stopped", n-atStop)
	}
}

func TestSIPCheckThroughRun(t *testing.T) {
	uri := startStandinSIP(t)
	s := newTestSupervisor(t, []Service{{
		Name: "asterisk", Start: []string{"true"}, Stop: []string{"true"}, Timeout: 10 * time.Second,
		Check: fastCheck(Check{SIP: uri}),
	}}, Options{})
	runHealth(t, s)
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, func() bool { return statusOf(t, s, "asterisk").Healthy }, "asterisk healthy")
}

func TestSlowProbeDelaysNoOther(t *testing.T) {
	dir := t.TempDir()
	s := newTestSupervisor(t, []Service{
		{
			Name: "slow", Start: []string{"true"}, Stop: []string{"true"}, Timeout: 10 * time.Second,
			// Blocks until the test ends (then the check's timeout kills it).
			Check: &Check{Exec: sh(`while [ ! -e "$DIR/release" ]; do sleep 0.02; done`), Interval: waitLimit, Timeout: waitLimit, Rise: 1, Fall: 1},
		},
		{
			Name: "fast", Start: []string{"true"}, Stop: []string{"true"}, Timeout: 10 * time.Second,
			Check: fastCheck(Check{Exec: []string{"true"}}),
		},
	}, Options{Env: []string{"DIR=" + dir}})
	t.Cleanup(func() { _ = os.WriteFile(filepath.Join(dir, "release"), nil, 0o644) })
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	runHealth(t, s)
	testkit.Eventually(t, func() bool { return statusOf(t, s, "fast").Healthy }, "fast healthy while slow's probe hangs")
	if statusOf(t, s, "slow").Healthy {
		t.Error("slow is healthy before its probe ended")
	}
}

func TestRunReturnsWhenContextDone(t *testing.T) {
	s := newTestSupervisor(t, []Service{{
		Name: "a", Start: []string{"true"}, Stop: []string{"true"}, Timeout: time.Second,
		Check: fastCheck(Check{SIP: "sip:127.0.0.1:9"}),
	}}, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Run(ctx)
		close(done)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after its context was done")
	}
}
