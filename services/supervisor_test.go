package services

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// recorder specs append "start-NAME"/"stop-NAME" to $DIR/order.
func recorder(name string) Service {
	return Service{
		Name:    name,
		Start:   sh(`echo start-` + name + ` >> "$DIR/order"`),
		Stop:    sh(`echo stop-` + name + ` >> "$DIR/order"`),
		Timeout: 10 * time.Second,
	}
}

func TestStartInOrderStopInReverse(t *testing.T) {
	dir := t.TempDir()
	s := newTestSupervisor(t, []Service{recorder("a"), recorder("b"), recorder("c")},
		Options{Env: []string{"DIR=" + dir}})
	for _, st := range s.Status() {
		if st.State != StateStopped || st.Healthy {
			t.Fatalf("before start: %+v, want stopped and not healthy", st)
		}
	}
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for _, st := range s.Status() {
		if st.State != StateRunning || !st.Healthy {
			t.Errorf("after start: %+v, want running and healthy (no check)", st)
		}
	}
	if err := s.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	want := []string{"start-a", "start-b", "start-c", "stop-c", "stop-b", "stop-a"}
	if got := readLines(t, filepath.Join(dir, "order")); !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
	if names := []string{s.Status()[0].Name, s.Status()[1].Name, s.Status()[2].Name}; !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Errorf("status order = %v, want config order", names)
	}
}

func TestStartStopIdempotent(t *testing.T) {
	dir := t.TempDir()
	s := newTestSupervisor(t, []Service{recorder("a"), recorder("b")},
		Options{Env: []string{"DIR=" + dir}})
	for range 2 {
		if err := s.Start(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := s.Stop(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"start-a", "start-b", "stop-b", "stop-a"}
	if got := readLines(t, filepath.Join(dir, "order")); !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
}

func TestStartStopsAtFirstFailure(t *testing.T) {
	dir := t.TempDir()
	flaky := Service{
		Name:     "b",
		Start:    sh(`[ -e "$DIR/fixed" ] || { echo "config error in b.conf" >&2; exit 3; }; echo start-b >> "$DIR/order"`),
		Stop:     sh(`echo stop-b >> "$DIR/order"`),
		Timeout:  10 * time.Second,
		Critical: true,
	}
	s := newTestSupervisor(t, []Service{recorder("a"), flaky, recorder("c")},
		Options{Env: []string{"DIR=" + dir}})

	err := s.Start(ctxT(t))
	if err == nil {
		t.Fatal("Start succeeded, want the failure of b")
	}
	for _, want := range []string{`"b"`, "exit status 3", "config error in b.conf"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if got, want := readLines(t, filepath.Join(dir, "order")), []string{"start-a"}; !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v: nothing after the failure", got, want)
	}
	if st := statusOf(t, s, "b"); st.State != StateFailed || !strings.Contains(st.Error, "config error") {
		t.Errorf("b = %+v, want failed with the stderr in the error", st)
	}
	if st := statusOf(t, s, "c"); st.State != StateStopped {
		t.Errorf("c = %+v, want stopped", st)
	}
	if got := s.Unhealthy(); !slices.Equal(got, []string{"b"}) {
		t.Errorf("Unhealthy = %v, want [b]", got)
	}

	// A failed service is started again; running ones are left alone.
	if err := os.WriteFile(filepath.Join(dir, "fixed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got, want := readLines(t, filepath.Join(dir, "order")), []string{"start-a", "start-b", "start-c"}; !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
	if st := statusOf(t, s, "b"); st.State != StateRunning || st.Error != "" {
		t.Errorf("b = %+v, want running without error", st)
	}
	if got := s.Unhealthy(); len(got) != 0 {
		t.Errorf("Unhealthy = %v, want none", got)
	}
}

func TestStopKeepsGoingPastFailures(t *testing.T) {
	dir := t.TempDir()
	bad := recorder("b")
	bad.Stop = sh(`echo stuck >&2; exit 1`)
	s := newTestSupervisor(t, []Service{recorder("a"), bad, recorder("c")},
		Options{Env: []string{"DIR=" + dir}})
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	err := s.Stop(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), `stop service "b"`) || !strings.Contains(err.Error(), "stuck") {
		t.Fatalf("Stop error = %v, want the failure of b with its stderr", err)
	}
	want := []string{"start-a", "start-b", "start-c", "stop-c", "stop-a"}
	if got := readLines(t, filepath.Join(dir, "order")); !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
	if st := statusOf(t, s, "b"); st.State != StateFailed {
		t.Errorf("b = %+v, want failed", st)
	}
}

func TestCommandTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	s := newTestSupervisor(t, []Service{{
		Name:    "slow",
		Start:   sh(`sleep 60 & echo $! > "$DIR/pid"; wait`),
		Stop:    []string{"true"},
		Timeout: 300 * time.Millisecond,
	}}, Options{Env: []string{"DIR=" + dir}})
	err := s.Start(ctxT(t))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("Start error = %v, want a timeout", err)
	}
	pid := readPID(t, filepath.Join(dir, "pid"))
	testkit.Eventually(t, func() bool { return processGone(pid) }, "the background sleep to be killed")
	if st := statusOf(t, s, "slow"); st.State != StateFailed {
		t.Errorf("slow = %+v, want failed", st)
	}
}

func TestStartHonoursCallerContext(t *testing.T) {
	s := newTestSupervisor(t, []Service{{
		Name: "a", Start: []string{"sleep", "60"}, Stop: []string{"true"}, Timeout: time.Minute,
	}}, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start error = %v, want context.Canceled", err)
	}
}

func TestCommandLeavingDaemonSucceeds(t *testing.T) {
	// An init script whose daemon keeps stdout open must not hang Start.
	dir := t.TempDir()
	s := newTestSupervisor(t, []Service{{
		Name:    "daemon",
		Start:   sh(`sleep 60 & echo $! > "$DIR/pid"; exit 0`),
		Stop:    sh(`kill "$(cat "$DIR/pid")"`),
		Timeout: 10 * time.Second,
	}}, Options{Env: []string{"DIR=" + dir}})
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	pid := readPID(t, filepath.Join(dir, "pid"))
	if processGone(pid) {
		t.Fatal("the daemon was killed with its start command")
	}
	if err := s.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, func() bool { return processGone(pid) }, "the daemon to stop")
}

func TestRunProcessStartStop(t *testing.T) {
	dir := t.TempDir()
	s := newTestSupervisor(t, []Service{{
		Name:    "app",
		Run:     sh(`echo $$ >> "$DIR/pids"; echo hello from app; exec sleep 60`),
		Timeout: 10 * time.Second,
	}}, Options{Env: []string{"DIR=" + dir}})
	for range 2 {
		if err := s.Start(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	if st := statusOf(t, s, "app"); st.State != StateRunning || !st.Healthy {
		t.Fatalf("app = %+v, want running and healthy", st)
	}
	pid := readPID(t, filepath.Join(dir, "pids"))
	if got := readLines(t, filepath.Join(dir, "pids")); len(got) != 1 {
		t.Errorf("spawned %d times, want once: %v", len(got), got)
	}
	if err := s.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if st := statusOf(t, s, "app"); st.State != StateStopped || st.Error != "" {
		t.Errorf("app = %+v, want stopped without error", st)
	}
	if !processGone(pid) {
		t.Errorf("process %d still alive after Stop", pid)
	}
}

func TestRunProcessOutputIsLogged(t *testing.T) {
	log, lb := testkit.BufferLogger(t)
	s := newTestSupervisor(t, []Service{{
		Name: "app", Run: sh(`echo hello from app; echo oops >&2; exec sleep 60`), Timeout: 10 * time.Second,
	}}, Options{Logger: log})
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, func() bool {
		out := lb.String()
		return strings.Contains(out, `line="hello from app"`) && strings.Contains(out, "line=oops") &&
			strings.Contains(out, "service=app") && strings.Contains(out, "component=services")
	}, "output in the log")
}

func TestRunProcessExitBecomesFailed(t *testing.T) {
	dir := t.TempDir()
	var changes atomic.Int64
	s := newTestSupervisor(t, []Service{{
		Name:     "app",
		Run:      sh(`while [ ! -e "$DIR/quit" ]; do sleep 0.02; done; echo bye >&2; exit 7`),
		Timeout:  10 * time.Second,
		Critical: true,
	}}, Options{Env: []string{"DIR=" + dir}, OnChange: func() { changes.Add(1) }})
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	before := changes.Load()
	quit := filepath.Join(dir, "quit")
	if err := os.WriteFile(quit, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, s, "app", StateFailed)
	if !strings.Contains(st.Error, "exit status 7") || !strings.Contains(st.Error, "bye") {
		t.Errorf("error = %q, want the exit status and output", st.Error)
	}
	if changes.Load() == before {
		t.Error("OnChange did not fire for the exit")
	}
	if got := s.Unhealthy(); !slices.Equal(got, []string{"app"}) {
		t.Errorf("Unhealthy = %v, want [app]", got)
	}

	// No automatic restart; Start spawns it again, and an exit within the
	// grace period fails the start.
	if err := s.Start(ctxT(t)); err == nil || !strings.Contains(err.Error(), "exit status 7") {
		t.Fatalf("Start with quit present = %v, want exit status 7", err)
	}
	if err := os.Remove(quit); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if st := statusOf(t, s, "app"); st.State != StateRunning || st.Error != "" {
		t.Errorf("app = %+v, want running again", st)
	}
}

func TestRunProcessThatExitsAtOnce(t *testing.T) {
	s := newTestSupervisor(t, []Service{{Name: "app", Run: []string{"false"}, Timeout: 10 * time.Second}}, Options{})
	err := s.Start(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("Start = %v, want exit status 1", err)
	}
	if st := statusOf(t, s, "app"); st.State != StateFailed {
		t.Errorf("app = %+v, want failed", st)
	}
}

func TestRunProcessThatCannotSpawn(t *testing.T) {
	s := newTestSupervisor(t, []Service{{
		Name: "app", Run: []string{filepath.Join(t.TempDir(), "missing")}, Timeout: time.Second,
	}}, Options{})
	if err := s.Start(ctxT(t)); err == nil || !strings.Contains(err.Error(), "spawn") {
		t.Fatalf("Start = %v, want a spawn error", err)
	}
}

func TestRunProcessIgnoringSIGTERMGetsSIGKILL(t *testing.T) {
	dir := t.TempDir()
	log, lb := testkit.BufferLogger(t)
	s := newTestSupervisor(t, []Service{{
		Name:    "stubborn",
		Run:     sh(`trap "" TERM; echo $$ > "$DIR/pid"; while :; do sleep 0.05; done`),
		Timeout: 300 * time.Millisecond,
	}}, Options{Env: []string{"DIR=" + dir}, Logger: log})
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	pid := readPID(t, filepath.Join(dir, "pid")) // written after the trap is set
	if err := s.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if st := statusOf(t, s, "stubborn"); st.State != StateStopped {
		t.Errorf("stubborn = %+v, want stopped", st)
	}
	if !processGone(pid) {
		t.Errorf("process %d survived Stop", pid)
	}
	if !strings.Contains(lb.String(), "sending SIGKILL") {
		t.Error("no SIGKILL was logged")
	}
}

// A frozen process (SIGSTOP) stops at SIGTERM, as under systemd: resman
// continues it, rather than waiting the whole timeout for a SIGKILL.
func TestRunProcessFrozenStopsAtSIGTERM(t *testing.T) {
	dir := t.TempDir()
	log, lb := testkit.BufferLogger(t)
	s := newTestSupervisor(t, []Service{{
		Name: "frozen",
		// It handles SIGTERM (as Asterisk does): a stopped process keeps
		// such a signal pending until it is continued.
		Run:     sh(`trap 'exit 0' TERM; echo $$ > "$DIR/pid"; sleep 60 & wait`),
		Timeout: 30 * time.Second,
	}}, Options{Env: []string{"DIR=" + dir}, Logger: log})
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	pid := readPID(t, filepath.Join(dir, "pid"))
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if !processGone(pid) {
		t.Errorf("process %d survived Stop", pid)
	}
	// Not a speed target: the stop ended on SIGTERM, far inside its
	// 30 s timeout, and without a SIGKILL.
	if d := time.Since(start); d > 20*time.Second || strings.Contains(lb.String(), "sending SIGKILL") {
		t.Errorf("the frozen process was stopped by SIGKILL after %v, not by SIGTERM", d)
	}
}

func TestOnChangeFires(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	var s *Supervisor
	s = newTestSupervisor(t, []Service{{Name: "a", Start: []string{"true"}, Stop: []string{"true"}, Timeout: 10 * time.Second}},
		Options{OnChange: func() {
			st := s.Status()[0].State // Status must be callable from OnChange
			mu.Lock()
			seen = append(seen, st)
			mu.Unlock()
		}})
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{StateStarting, StateRunning, StateStopping, StateStopped}
	if !slices.Equal(seen, want) {
		t.Errorf("states seen from OnChange = %v, want %v", seen, want)
	}
}

func TestConcurrentStartStop(t *testing.T) {
	dir := t.TempDir()
	s := newTestSupervisor(t, []Service{recorder("a"), recorder("b")}, Options{Env: []string{"DIR=" + dir}})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if i%2 == 0 {
				_ = s.Start(ctxT(t))
			} else {
				_ = s.Stop(ctxT(t))
			}
			_ = s.Status()
		})
	}
	wg.Wait()
	if err := s.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// Serialised: every start of a is followed by a and b complete, so
	// starts and stops alternate in whole blocks.
	got := readLines(t, filepath.Join(dir, "order"))
	// The Starts' errors are not checked above: with none run, or an odd
	// line left out of the blocks, the check below would pass on nothing.
	if len(got) < 4 || len(got)%2 != 0 {
		t.Fatalf("transitions recorded: %v, want whole blocks, at least one start and one stop", got)
	}
	for i := 0; i+1 < len(got); i += 2 {
		block := got[i : i+2]
		if !slices.Equal(block, []string{"start-a", "start-b"}) && !slices.Equal(block, []string{"stop-b", "stop-a"}) {
			t.Fatalf("interleaved transitions: %v", got)
		}
	}
}

func TestNewRejectsBadSpecs(t *testing.T) {
	for name, specs := range map[string][]Service{
		"duplicate": {{Name: "a", Unit: "a"}, {Name: "a", Unit: "b"}},
		"bad sip":   {{Name: "a", Unit: "a", Check: &Check{SIP: "sip:"}}},
		"no check":  {{Name: "a", Unit: "a", Check: &Check{Interval: time.Second}}},
	} {
		if _, err := New(specs, Options{}); err == nil {
			t.Errorf("%s: New accepted %+v", name, specs)
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	specs := []Service{{
		Name: "a", Start: []string{"true"}, Stop: []string{"true"}, Timeout: 10 * time.Second,
		Check: &Check{Exec: []string{"false"}, Interval: 20 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 1},
	}}
	s := newTestSupervisor(t, specs, Options{Registerer: reg})
	// A second supervisor on the same registry (node and CC) shares them.
	if _, err := New([]Service{{Name: "b", Unit: "b"}}, Options{Registerer: reg}); err != nil {
		t.Fatalf("second supervisor on one registry: %v", err)
	}
	// Read with their presence: a series missing must not pass for a 0.
	metric := func(name string) (float64, bool) {
		return testkit.Gathered(t, reg, name, map[string]string{"service": "a"})
	}
	if got, ok := metric("resman_service_up"); !ok || got != 0 {
		t.Errorf("up before start = %v (shown: %v), want 0", got, ok)
	}
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	runHealth(t, s)
	testkit.Eventually(t, func() bool { v, _ := metric("resman_service_check_failures_total"); return v >= 1 }, "a check failure")
	if got, ok := metric("resman_service_up"); !ok || got != 1 {
		t.Errorf("up = %v (shown: %v), want 1", got, ok)
	}
	if got, ok := metric("resman_service_healthy"); !ok || got != 0 {
		t.Errorf("healthy = %v (shown: %v), want 0", got, ok)
	}
	if got, ok := metric("resman_service_start_seconds"); !ok || got != 1 {
		t.Errorf("start_seconds count = %v (shown: %v), want 1", got, ok)
	}
}

// TestHelperSupervisor is not a test: TestRunProcessDiesWithResman runs the
// test binary as a stand-in resman that starts one run: service and waits.
func TestHelperSupervisor(t *testing.T) {
	dir := os.Getenv("RESMAN_TEST_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	s, err := New([]Service{{
		Name: "app", Run: sh(`echo $$ > "$DIR/pid"; exec sleep 60`), Timeout: 10 * time.Second,
	}}, Options{Env: []string{"DIR=" + dir}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {} // until killed
}

func TestRunProcessDiesWithResman(t *testing.T) {
	dir := t.TempDir()
	helper := exec.Command(os.Args[0], "-test.run=^TestHelperSupervisor$")
	helper.Env = append(os.Environ(), "RESMAN_TEST_HELPER_DIR="+dir)
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = helper.Process.Kill()
		_ = helper.Wait()
	})
	pid := readPID(t, filepath.Join(dir, "pid"))
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	testkit.Eventually(t, func() bool { return processGone(pid) }, "the run: process to die with its supervisor")
}

// A run: process whose start is cancelled (resman stopping in the middle
// of it) is killed and counts as stopped: no "service failed" at shutdown.
func TestRunProcessStartCancelledIsStopped(t *testing.T) {
	dir := t.TempDir()
	s := newTestSupervisor(t, []Service{{
		Name:    "app",
		Run:     sh(`echo $$ >> "$DIR/pids"; exec sleep 60`),
		Timeout: time.Minute,
	}}, Options{Env: []string{"DIR=" + dir}})
	// The cancel below comes once the shell has written its pid, which a
	// busy machine can delay past the 50 ms grace: a start that ends
	// first tests nothing here.
	s.runGrace = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// The whole pid line, not the file alone: the shell creates the
		// file before it writes, and a cancel in between would kill it
		// before the test can know its pid.
		readPID(t, filepath.Join(dir, "pids"))
		cancel()
	}()
	if err := s.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start error = %v, want context.Canceled", err)
	}
	if st := statusOf(t, s, "app"); st.State != StateStopped || st.Error != "" {
		t.Errorf("app = %+v, want stopped without error", st)
	}
	if pid := readPID(t, filepath.Join(dir, "pids")); !processGone(pid) {
		t.Errorf("process %d still alive after the cancelled start", pid)
	}
}
