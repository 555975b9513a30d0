package replication

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// execPair is a Runner of exec jobs whose successes are reported to a
// Receiver.
type execPair struct {
	runner  *Runner
	rc      *Receiver
	clock   *clock
	reg     *prometheus.Registry
	results chan Result
	srv     *httptest.Server
	data    string
}

func newExecPair(t *testing.T, jobs ...Job) *execPair {
	t.Helper()
	e := &execPair{clock: newClock(), reg: prometheus.NewRegistry(), results: make(chan Result, 100), data: t.TempDir()}
	rc, err := NewReceiver(ReceiverOptions{Jobs: jobs, Token: testToken, DataDir: filepath.Join(e.data, "standby"),
		Now: e.clock.Now})
	must(t, os.MkdirAll(filepath.Join(e.data, "standby"), 0o755))
	must(t, err)
	e.rc = rc
	e.srv = httptest.NewServer(rc.Handler())
	t.Cleanup(e.srv.Close)
	e.runner = e.newRunner(t, jobs, e.reg)
	return e
}

func (e *execPair) newRunner(t *testing.T, jobs []Job, reg prometheus.Registerer) *Runner {
	t.Helper()
	r, err := New(Options{Jobs: jobs, PeerURL: e.srv.URL, Token: testToken, DataDir: e.data, Now: e.clock.Now,
		Registerer: reg, OnResult: func(res Result) { e.results <- res }, Logger: testLogger(t)})
	must(t, err)
	return r
}

func shJob(name, script string) Job {
	return Job{Name: name, Run: []string{"/bin/sh", "-c", script}, Every: time.Hour}
}

func TestExecSuccess(t *testing.T) {
	e := newExecPair(t, shJob("db", `echo "dumping $RESMAN_JOB to $RESMAN_PEER_API"; echo warn >&2`))
	res, err := e.runner.RunNow(context.Background(), "db")
	must(t, err)
	if !res.OK || res.Kind != KindExec || !strings.Contains(res.Output, "dumping db to http://127.0.0.1:") ||
		!strings.Contains(res.Output, "warn") || res.Warning != "" {
		t.Fatalf("result %+v", res)
	}
	if got := e.rc.LastReceived("db"); !got.Equal(e.clock.Now()) {
		t.Fatalf("the receiver was not told: %v", got)
	}
	if got := testkit.Value(t, e.runner.metrics.runs.WithLabelValues("db", "ok")); got != 1 {
		t.Fatalf("runs ok = %v", got)
	}
}

func TestExecFailureKeepsTail(t *testing.T) {
	e := newExecPair(t, shJob("db", `i=0; while [ $i -lt 500 ]; do echo "line $i"; i=$((i+1)); done; echo "pg_restore: connection refused" >&2; exit 3`))
	res, err := e.runner.RunNow(context.Background(), "db")
	if !errors.Is(err, ErrFailed) || res.OK {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(res.Error, "exit status 3") || !strings.HasSuffix(res.Error, "line 499; pg_restore: connection refused") {
		t.Fatalf("error %q", res.Error)
	}
	if len(res.Output) > outputTail || !strings.HasSuffix(res.Output, "pg_restore: connection refused\n") || strings.Contains(res.Output, "line 1\n") {
		t.Fatalf("output tail of %d bytes: %q", len(res.Output), res.Output)
	}
	if !e.rc.LastReceived("db").IsZero() {
		t.Fatal("a failure was reported")
	}
	st := e.runner.Status(e.clock.Now())[0]
	if st.OK || !st.Stale || st.Output == "" || st.Error != res.Error {
		t.Fatalf("status %+v", st)
	}
}

func TestExecTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	job := shJob("db", fmt.Sprintf(`sleep 600 & echo $! > %s; echo started; wait`, pidFile))
	job.Timeout = time.Second
	e := newExecPair(t, job)
	res, err := e.runner.RunNow(context.Background(), "db")
	if err == nil || !strings.Contains(res.Error, "timed out after 1s, process group killed") || !strings.Contains(res.Error, "started") {
		t.Fatalf("err = %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	must(t, err)
	testkit.Eventually(t, func() bool { return !alive(pid) }, "the grandchild to die")
}

// Cancelling the caller's context (the node stopping) kills the group too.
func TestExecCancelKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	e := newExecPair(t, shJob("db", fmt.Sprintf(`sleep 600 & echo $! > %s.tmp; mv %s.tmp %s; wait`, pidFile, pidFile, pidFile)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result)
	go func() {
		res, _ := e.runner.RunNow(ctx, "db")
		done <- res
	}()
	testkit.Eventually(t, func() bool { _, err := os.Stat(pidFile); return err == nil }, "the grandchild to start")
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	must(t, err)
	cancel()
	res := <-done
	if res.OK || !strings.Contains(res.Error, "cancelled, process group killed") {
		t.Fatalf("result %+v", res)
	}
	testkit.Eventually(t, func() bool { return !alive(pid) }, "the grandchild to die")
}

// alive says whether pid runs (a zombie does not).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestExecReportFailureIsAWarning(t *testing.T) {
	e := newExecPair(t, shJob("db", "true"))
	e.srv.Close()
	res, err := e.runner.RunNow(context.Background(), "db")
	must(t, err)
	if !res.OK || !strings.Contains(res.Warning, "the peer was not told") {
		t.Fatalf("result %+v", res)
	}
}

func TestStatusStalenessAndRestart(t *testing.T) {
	e := newExecPair(t, shJob("db", "echo ok"), shJob("cdr", "exit 1"))
	now := e.clock.Now()
	if got := e.runner.StaleJobs(now); fmt.Sprint(got) != "[db cdr]" {
		t.Fatalf("never run: stale %v", got)
	}
	if got := e.rc.StaleJobs(now); fmt.Sprint(got) != "[db cdr]" {
		t.Fatalf("never received: stale %v", got)
	}
	results, err := e.runner.RunAll(context.Background())
	if len(results) != 2 || !results[0].OK || results[1].OK || !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "cdr") {
		t.Fatalf("RunAll: %v %+v", err, results)
	}
	if got := e.runner.StaleJobs(now); fmt.Sprint(got) != "[cdr]" {
		t.Fatalf("stale %v", got)
	}
	st := e.runner.Status(now)
	if st[0].Name != "db" || !st[0].OK || st[0].Stale || st[0].Direction != DirectionSend || st[0].MaxAgeSeconds != 7200 ||
		!st[0].LastRun.Equal(now) || st[0].LastSuccess.IsZero() {
		t.Fatalf("status %+v", st[0])
	}
	e.clock.Add(2*time.Hour + time.Minute)
	later := e.clock.Now()
	if got := e.runner.StaleJobs(later); fmt.Sprint(got) != "[db cdr]" {
		t.Fatalf("after max_age: stale %v", got)
	}
	if st := e.runner.Status(later)[0]; !st.Stale || st.AgeSeconds < 7250 {
		t.Fatalf("status %+v", st)
	}
	if got := e.rc.StaleJobs(later); fmt.Sprint(got) != "[db cdr]" {
		t.Fatalf("receiver after max_age: stale %v", got)
	}
	if rs := e.rc.Status(now); rs[0].Stale || !rs[0].OK || rs[0].Direction != DirectionReceive || !rs[1].Stale || rs[1].Error != "never received" {
		t.Fatalf("receiver status %+v", rs)
	}

	// A restart remembers.
	r2 := e.newRunner(t, []Job{shJob("db", "echo ok"), shJob("cdr", "exit 1")}, prometheus.NewRegistry())
	if got := r2.StaleJobs(now); fmt.Sprint(got) != "[cdr]" {
		t.Fatalf("after a restart: stale %v", got)
	}
	last, ok := r2.Last("cdr")
	if !ok || last.OK || !strings.Contains(last.Error, "exit status 1") {
		t.Fatalf("after a restart: last %+v", last)
	}
	rc2, err := NewReceiver(ReceiverOptions{Jobs: []Job{shJob("db", ""), shJob("cdr", "")}, Token: testToken,
		DataDir: filepath.Join(e.data, "standby")})
	must(t, err)
	if got := rc2.LastReceived("db"); !got.Equal(now) {
		t.Fatalf("receiver after a restart: %v", got)
	}
	if got := rc2.StaleJobs(now); fmt.Sprint(got) != "[cdr]" {
		t.Fatalf("receiver after a restart: stale %v", got)
	}

	// A damaged state file is reported and forgotten, not fatal.
	must(t, os.WriteFile(filepath.Join(e.data, runnerStateFile), []byte("{nope"), 0o644))
	r3 := e.newRunner(t, []Job{shJob("db", "echo ok")}, nil)
	if got := r3.StaleJobs(now); fmt.Sprint(got) != "[db]" {
		t.Fatalf("damaged state: stale %v", got)
	}
}

func TestMetrics(t *testing.T) {
	e := newExecPair(t, shJob("db", "true"))
	if _, err := e.runner.RunNow(context.Background(), "db"); err != nil {
		t.Fatal(err)
	}
	last := mustLast(t, e.runner, "db")
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"resman_replication_last_success_timestamp_seconds", map[string]string{"job": "db"}, float64(last.End().UnixNano()) / 1e9},
		{"resman_replication_runs_total", map[string]string{"job": "db", "result": "ok"}, 1},
		{"resman_replication_runs_total", map[string]string{"job": "db", "result": "failed"}, 0},
		{"resman_replication_max_age_seconds", map[string]string{"job": "db"}, 7200},
		{"resman_replication_duration_seconds", map[string]string{"job": "db"}, 1},
		{"resman_replication_bytes_sent_total", map[string]string{"job": "db"}, 0},
	} {
		if got, ok := testkit.Gathered(t, e.reg, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %t), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// One runner per registry.
	if _, err := New(Options{Jobs: []Job{shJob("db", "true")}, Registerer: e.reg}); err == nil {
		t.Fatal("a second runner registered")
	}
}

func mustLast(t *testing.T, r *Runner, job string) Result {
	t.Helper()
	res, ok := r.Last(job)
	if !ok {
		t.Fatal("no last result")
	}
	return res
}

func TestFilesMetrics(t *testing.T) {
	p := newPair(t, nil)
	reg := prometheus.NewRegistry()
	p.recvOpts = func(o *ReceiverOptions) { o.Registerer = reg }
	p.start()
	writeFile(t, filepath.Join(p.src, "a.conf"), "hello")
	p.mustRun()
	if got := testkit.Value(t, p.runner.metrics.bytesSent.WithLabelValues("conf")); got != float64(mustLast(t, p.runner, "conf").BytesSent) || got == 0 {
		t.Fatalf("bytes sent %v", got)
	}
	if got := testkit.Value(t, p.rc.metrics.bytesReceived.WithLabelValues("conf")); got != 5 {
		t.Fatalf("bytes received %v", got)
	}
	if got := testkit.Value(t, p.rc.metrics.lastReceived.WithLabelValues("conf")); got != float64(p.clock.Now().Unix()) {
		t.Fatalf("last received %v", got)
	}
}

func TestRunNowUnknownAndValidation(t *testing.T) {
	r, err := New(Options{Jobs: []Job{shJob("db", "true")}})
	must(t, err)
	if _, err := r.RunNow(context.Background(), "nope"); !errors.Is(err, ErrUnknownJob) {
		t.Fatalf("err = %v", err)
	}
	for _, c := range []struct {
		jobs []Job
		peer string
		want string
	}{
		{[]Job{{Name: "a b", Run: []string{"x"}, Every: time.Hour}}, "", "job name: only letters"},
		{[]Job{{Name: "a", Run: []string{"x"}}}, "", "every must be above 0"},
		{[]Job{{Name: "a", Run: []string{"x"}, Every: time.Hour, MaxAge: time.Minute}}, "", "max_age (1m0s) must be at least every (1h0m0s)"},
		{[]Job{shJob("a", "x"), shJob("a", "y")}, "", `duplicate job name "a"`},
		{[]Job{{Name: "a", Every: time.Hour}}, "", "an exec job needs a command"},
		{[]Job{{Name: "a", Every: time.Hour, Roots: []Root{{Name: "r", Path: "/x"}}}}, "", "a files job needs the peer's API URL"},
		{[]Job{{Name: "a", Every: time.Hour, Roots: []Root{{Name: "r", Path: "rel"}}}}, "http://x", "path must be absolute"},
		{[]Job{{Name: "a", Every: time.Hour, Roots: []Root{{Name: "r", Path: "/x"}, {Name: "r", Path: "/y"}}}}, "http://x", `duplicate root name "r"`},
		{[]Job{{Name: "a", Kind: KindFiles, Every: time.Hour}}, "http://x", "at least one root"},
		{[]Job{{Name: "a", Kind: "rsync", Every: time.Hour}}, "http://x", "kind must be exec or files"},
	} {
		_, err := New(Options{Jobs: c.jobs, PeerURL: c.peer})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.jobs, err, c.want)
		}
	}
}

// Runs of one job never overlap, whoever asks: the command fails if it
// finds another run of itself under way.
func TestNoOverlappingRuns(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "lock")
	e := newExecPair(t, shJob("db", fmt.Sprintf(`mkdir %s || exit 9; sleep 0.05; rmdir %s`, lock, lock)))
	ticks := make(chan time.Time)
	e.runner.after = func(time.Duration) <-chan time.Time { return ticks }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.runner.Schedule(ctx, func() bool { return true }); close(done) }()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 4 {
		wg.Go(func() {
			if _, err := e.runner.RunNow(context.Background(), "db"); err != nil {
				t.Error(err)
				failed.Add(1)
			}
		})
	}
	ticks <- time.Now() // the first scheduled run (the job is due at once)
	wg.Wait()
	// Once this tick is taken, the scheduler is not in a run: cancelling
	// does not kill one.
	ticks <- time.Now()
	cancel()
	<-done
	close(e.results)
	n := 0
	for res := range e.results {
		if !res.OK {
			t.Errorf("a run failed: %+v", res)
		}
		n++
	}
	if n < 4 || failed.Load() != 0 {
		t.Fatalf("%d runs", n)
	}
}

func TestScheduleOnlyWhileActive(t *testing.T) {
	e := newExecPair(t, shJob("db", "true"))
	ticks := make(chan time.Time)
	var asked atomic.Int32
	var active atomic.Bool
	e.runner.after = func(time.Duration) <-chan time.Time { return ticks }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		e.runner.Schedule(ctx, func() bool { asked.Add(1); return active.Load() })
		close(done)
	}()
	// Not Active: ticks run nothing. Each send returns once the scheduler
	// took the tick; the next one once it is back waiting.
	for range 3 {
		ticks <- time.Now()
	}
	if len(e.results) != 0 {
		t.Fatal("ran while not Active")
	}
	if st := e.runner.Status(e.clock.Now())[0]; !st.NextRun.IsZero() {
		t.Fatalf("next run while not Active: %v", st.NextRun)
	}
	// Active: a job that never ran is due at once.
	active.Store(true)
	ticks <- time.Now()
	ticks <- time.Now()
	res := <-e.results
	if !res.OK || res.Trigger != TriggerSchedule {
		t.Fatalf("result %+v", res)
	}
	// Not due again before its period (±10%).
	ticks <- time.Now()
	ticks <- time.Now()
	st := e.runner.Status(e.clock.Now())[0]
	if len(e.results) != 0 {
		t.Fatal("ran before its period")
	}
	if d := st.NextRun.Sub(res.Start); d < 54*time.Minute || d > 66*time.Minute {
		t.Fatalf("next run in %s", d)
	}
	// Once the period has passed, it runs.
	e.clock.Add(67 * time.Minute)
	ticks <- time.Now()
	ticks <- time.Now()
	if res := <-e.results; res.Trigger != TriggerSchedule {
		t.Fatalf("result %+v", res)
	}
	cancel()
	<-done
	if st := e.runner.Status(e.clock.Now())[0]; !st.NextRun.IsZero() {
		t.Fatal("next run after the scheduler stopped")
	}
}

func TestRetryDelay(t *testing.T) {
	r, err := New(Options{Jobs: []Job{shJob("db", "exit 1")}})
	must(t, err)
	js := r.jobs[0]
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	js.last = &Result{Start: start}
	js.jitter = 0
	for failures, want := range []time.Duration{time.Hour, 5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, time.Hour, time.Hour} {
		js.failures = failures
		if got := r.nextDue(js).Sub(start); got != want {
			t.Errorf("%d failures: next in %s, want %s", failures, got, want)
		}
	}
}

func TestStateFileIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.json")
	must(t, saveJSON(path, map[string]int{"a": 1}))
	must(t, saveJSON(path, map[string]int{"a": 2}))
	var got map[string]int
	must(t, loadJSON(path, &got))
	entries, _ := os.ReadDir(dir)
	if got["a"] != 2 || len(entries) != 1 {
		t.Fatalf("got %v, %d files", got, len(entries))
	}
}

func TestReceiverOptions(t *testing.T) {
	if _, err := NewReceiver(ReceiverOptions{MaxRequestBytes: 100}); err == nil {
		t.Fatal("tiny MaxRequestBytes accepted")
	}
	// A report for an unknown job, or for a files job, is refused.
	e := newExecPair(t, shJob("db", "true"))
	for _, body := range []string{`{"job":"nope"}`, `nope`} {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+PathReport, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("%s: %d", body, resp.StatusCode)
		}
	}
}
