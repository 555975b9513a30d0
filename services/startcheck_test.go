package services

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/services/standin"
)

// Tests of "active means working": a critical service with a check counts
// as started only once its check has passed rise times in a row. Waits for
// success are bounded by generous timeouts; only the failure by timeout
// uses a short one, and that is the timing under test.

// generous is the service timeout of starts expected to succeed or to fail
// for another reason than the timeout.
const generous = 30 * time.Second

// closedAddr is a loopback address nothing listens on, until the test
// binds it: reserved for the test, below the kernel's ephemeral range
// (testkit.Port), so that neither another test nor a client's connection
// takes it.
func closedAddr(t *testing.T) string {
	t.Helper()
	return testkit.Addr(t)
}

// startCheck is a check probed often, so that a start waits for it briefly.
func startCheck(c Check) *Check {
	c.Interval = 100 * time.Millisecond
	c.Timeout = 100 * time.Millisecond
	c.Rise, c.Fall = 2, 1
	return &c
}

// TestHelperStandinHTTP is not a test: the tests below run the test binary
// as a run: service serving the HTTP stand-in on $RESMAN_TEST_STANDIN_HTTP.
// Like a real service, it exits with an error when it cannot listen.
func TestHelperStandinHTTP(t *testing.T) {
	addr := os.Getenv("RESMAN_TEST_STANDIN_HTTP")
	if addr == "" {
		t.Skip("helper process only")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := standin.HTTP(ctx, addr, "helper", nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func standinRun() []string {
	return []string{os.Args[0], "-test.run=^TestHelperStandinHTTP$"}
}

func TestCriticalRunExitingFailsStart(t *testing.T) {
	for name, script := range map[string]string{
		"at once": `echo "bad config" >&2; exit 1`,
		// Outlives any grace period: only a wait for the check sees it.
		"later": `sleep 0.5; echo "bad config" >&2; exit 1`,
	} {
		t.Run(name, func(t *testing.T) {
			s := newTestSupervisor(t, []Service{{
				Name: "asterisk", Run: sh(script), Timeout: generous, Critical: true,
				Check: startCheck(Check{TCP: closedAddr(t)}),
			}}, Options{})
			err := s.Start(ctxT(t))
			if err == nil {
				t.Fatal("Start succeeded, want the exit of asterisk's process")
			}
			for _, want := range []string{`"asterisk"`, "exited during start", "exit status 1", "bad config"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if st := statusOf(t, s, "asterisk"); st.State != StateFailed || !strings.Contains(st.Error, "exit status 1") {
				t.Errorf("asterisk = %+v, want failed with the exit status", st)
			}
			if got := s.Unhealthy(); !slices.Equal(got, []string{"asterisk"}) {
				t.Errorf("Unhealthy = %v, want [asterisk]", got)
			}
		})
	}
}

// The case from the field: a stand-in that cannot bind its port exits, and
// the start fails, however slowly it gets there.
func TestStandinThatCannotBindFailsStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	go func() { // accepts and hangs up: not an HTTP server
		for {
			c, err := busy.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := busy.Addr().String()
	s := newTestSupervisor(t, []Service{{
		Name: "web", Run: standinRun(), Timeout: generous, Critical: true,
		Check: startCheck(Check{HTTP: "http://" + addr + "/healthz"}),
	}}, Options{Env: []string{"RESMAN_TEST_STANDIN_HTTP=" + addr}})
	err = s.Start(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), `"web"`) || !strings.Contains(err.Error(), "exited during start") ||
		!strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Start = %v, want web's exit on the port in use", err)
	}
}

func TestCriticalCheckNotPassingInTimeFailsStart(t *testing.T) {
	for name, spec := range map[string]Service{
		"run":      {Run: sh(`echo $$ > "$DIR/pid"; exec sleep 60`)},
		"commands": {Start: sh(`echo started >> "$DIR/bad"`), Stop: sh(`echo stopped >> "$DIR/bad"`)},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			spec.Name, spec.Critical, spec.Timeout = "bad", true, 1500*time.Millisecond
			spec.Check = startCheck(Check{TCP: closedAddr(t)})
			s := newTestSupervisor(t, []Service{recorder("a"), spec, recorder("c")},
				Options{Env: []string{"DIR=" + dir}})
			begin := time.Now()
			err := s.Start(ctxT(t))
			if err == nil {
				t.Fatal("Start succeeded, want bad's check to fail it")
			}
			if d := time.Since(begin); d < spec.Timeout {
				t.Errorf("Start failed after %v, before bad's timeout %v", d, spec.Timeout)
			}
			for _, want := range []string{`"bad"`, "check tcp 127.0.0.1:", "did not pass 2 times in a row within 1.5s", "connect"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			// As for any failed start: a keeps running, c is not started,
			// and the caller's Stop rolls back.
			if got, want := readLines(t, filepath.Join(dir, "order")), []string{"start-a"}; !slices.Equal(got, want) {
				t.Errorf("order = %v, want %v", got, want)
			}
			if st := statusOf(t, s, "a"); st.State != StateRunning {
				t.Errorf("a = %+v, want running until the rollback", st)
			}
			if st := statusOf(t, s, "c"); st.State != StateStopped {
				t.Errorf("c = %+v, want stopped", st)
			}
			if st := statusOf(t, s, "bad"); st.State != StateFailed || !strings.Contains(st.Error, "did not pass") {
				t.Errorf("bad = %+v, want failed with the check's verdict", st)
			}
			if got := s.Unhealthy(); !slices.Equal(got, []string{"bad"}) {
				t.Errorf("Unhealthy = %v, want [bad]", got)
			}
			var pid int
			if spec.Run != nil {
				// A process alive but not working is stopped with its
				// failed start: the next start must not spawn a second.
				pid = readPID(t, filepath.Join(dir, "pid"))
				testkit.Eventually(t, func() bool { return processGone(pid) }, "bad's process to be stopped")
			}
			if err := s.Stop(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if got, want := readLines(t, filepath.Join(dir, "order")), []string{"start-a", "stop-a"}; !slices.Equal(got, want) {
				t.Errorf("order after the rollback = %v, want %v", got, want)
			}
			if spec.Run == nil {
				if got, want := readLines(t, filepath.Join(dir, "bad")), []string{"started", "stopped"}; !slices.Equal(got, want) {
					t.Errorf("bad's commands = %v, want %v", got, want)
				}
			}
			for _, st := range s.Status() {
				if st.State != StateStopped {
					t.Errorf("after the rollback: %+v, want stopped", st)
				}
			}
		})
	}
}

func TestCriticalCheckPassingIsHealthyAtOnce(t *testing.T) {
	t.Run("run", func(t *testing.T) {
		addr := closedAddr(t) // free for the stand-in to take
		s := newTestSupervisor(t, []Service{{
			Name: "web", Run: standinRun(), Timeout: generous, Critical: true,
			Check: startCheck(Check{HTTP: "http://" + addr + "/healthz"}),
		}}, Options{Env: []string{"RESMAN_TEST_STANDIN_HTTP=" + addr}})
		// No Run: the start's own probes make it healthy.
		if err := s.Start(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if st := statusOf(t, s, "web"); st.State != StateRunning || !st.Healthy || st.Error != "" {
			t.Errorf("web = %+v, want running and healthy right after Start", st)
		}
		if got := s.Unhealthy(); len(got) != 0 {
			t.Errorf("Unhealthy = %v, want none", got)
		}
	})
	t.Run("commands with Run", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		s := newTestSupervisor(t, []Service{{
			Name: "db", Start: []string{"true"}, Stop: []string{"true"}, Timeout: generous, Critical: true,
			Check: startCheck(Check{TCP: ln.Addr().String()}),
		}}, Options{})
		runHealth(t, s) // probes while starting are the start's alone
		if err := s.Start(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if st := statusOf(t, s, "db"); st.State != StateRunning || !st.Healthy {
			t.Errorf("db = %+v, want running and healthy right after Start", st)
		}
		if got := s.Unhealthy(); len(got) != 0 {
			t.Errorf("Unhealthy = %v, want none", got)
		}
	})
}

// While the start waits, the service is starting: failed probes do not
// make it unhealthy, and Start does not return before the check passes.
func TestStartWaitsForCheck(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	s := newTestSupervisor(t, []Service{{
		Name: "asterisk", Start: []string{"true"}, Stop: []string{"true"}, Timeout: generous, Critical: true,
		Check: &Check{Exec: sh(`echo x >> "$DIR/probes"; [ -e "$DIR/ready" ]`),
			Interval: 50 * time.Millisecond, Timeout: waitLimit, Rise: 2, Fall: 1},
	}}, Options{Env: []string{"DIR=" + dir}})
	runHealth(t, s)
	done := make(chan error, 1)
	go func() { done <- s.Start(ctxT(t)) }()
	testkit.Eventually(t, func() bool { return len(readLines(t, filepath.Join(dir, "probes"))) >= 3 }, "3 failed probes")
	select {
	case err := <-done:
		t.Fatalf("Start returned %v before the check passed", err)
	default:
	}
	if st := statusOf(t, s, "asterisk"); st.State != StateStarting || st.Healthy {
		t.Errorf("asterisk = %+v, want starting and not healthy", st)
	}
	if got := s.Unhealthy(); len(got) != 0 {
		t.Errorf("Unhealthy = %v while starting, want none (fall is 1, but a start has not fallen)", got)
	}
	if err := os.WriteFile(ready, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Start did not return once the check passed")
	}
	if st := statusOf(t, s, "asterisk"); st.State != StateRunning || !st.Healthy {
		t.Errorf("asterisk = %+v, want running and healthy", st)
	}
}

func TestStartWaitHonoursCallerContext(t *testing.T) {
	dir := t.TempDir()
	s := newTestSupervisor(t, []Service{{
		Name: "asterisk", Run: sh(`echo $$ > "$DIR/pid"; exec sleep 60`), Timeout: generous, Critical: true,
		Check: startCheck(Check{TCP: closedAddr(t)}),
	}}, Options{Env: []string{"DIR=" + dir}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	pid := readPID(t, filepath.Join(dir, "pid"))
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), `"asterisk"`) {
			t.Fatalf("Start = %v, want context.Canceled naming asterisk", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Start did not return after its context was cancelled")
	}
	testkit.Eventually(t, func() bool { return processGone(pid) }, "the process to be killed")
}

// Non-critical services, and critical ones without a check, start as
// before: a failing check does not fail or hold up the start.
func TestStartDoesNotWaitForOthers(t *testing.T) {
	addr := closedAddr(t)
	s := newTestSupervisor(t, []Service{
		{
			Name: "wallboard", Run: sh(`exec sleep 60`), Timeout: generous,
			Check: startCheck(Check{TCP: addr}),
		},
		{
			Name: "reports", Start: []string{"true"}, Stop: []string{"true"}, Timeout: generous,
			Check: startCheck(Check{TCP: addr}),
		},
		{Name: "agent", Run: sh(`exec sleep 60`), Timeout: generous, Critical: true},
	}, Options{})
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for _, st := range s.Status() {
		if st.State != StateRunning {
			t.Errorf("%+v, want running", st)
		}
	}
	if st := statusOf(t, s, "wallboard"); st.Healthy {
		t.Errorf("wallboard = %+v, want not yet healthy", st)
	}
	if st := statusOf(t, s, "agent"); !st.Healthy {
		t.Errorf("agent = %+v, want healthy (no check)", st)
	}
	if got := s.Unhealthy(); len(got) != 0 {
		t.Errorf("Unhealthy = %v, want none", got)
	}
}
