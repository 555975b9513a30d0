package hooks

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/resman-pbx/resman/resilience/testkit"
)

var trans = Transition{ID: "42", Node: "xivo-standby", Role: "standby", Mode: "manual",
	From: "inactive", To: "active", Epoch: 7, Cause: "admin command; peer xivo-main is unreachable"}

// sh is a hook running script with sh; $1 is arg.
func sh(name, script, arg string) Hook {
	return Hook{Name: name, Run: []string{"sh", "-c", script, name, arg}, Timeout: 10 * time.Second}
}

// appendLine is a hook that appends its name to file.
func appendLine(name, file string) Hook {
	return sh(name, `echo "$0" >> "$1"`, file)
}

func lines(t *testing.T, file string) []string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(raw))
}

func wait(t *testing.T, r *Runner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Wait(ctx); err != nil {
		t.Fatalf("hooks did not end: %v", err)
	}
}

// counter reads resman_hook_runs_total for one phase, hook and outcome.
func counter(t *testing.T, reg *prometheus.Registry, phase, hook, outcome string) float64 {
	t.Helper()
	return testkit.Metric(t, reg, "resman_hook_runs_total", map[string]string{"phase": phase, "hook": hook, "outcome": outcome})
}

func TestAfterHooksRunInOrderWithTheirEnvironment(t *testing.T) {
	t.Setenv("RESMAN_API_TOKEN", "secret-token-0123456789")
	t.Setenv("RESMAN_TOKEN", "secret-token-0123456789")
	t.Setenv("HOOKS_TEST_KEEP", "kept")
	dir := t.TempDir()
	order, envFile := filepath.Join(dir, "order"), filepath.Join(dir, "env")
	r := New(Options{Hooks: Set{AfterActivate: []Hook{
		appendLine("first", order),
		sh("dump-env", `env > "$1"; echo "$0" >> `+order, envFile),
		appendLine("third", order),
	}}})
	r.After(context.Background(), AfterActivate, trans)
	wait(t, r)
	if got := strings.Join(lines(t, order), ","); got != "first,dump-env,third" {
		t.Fatalf("order = %q, want first,dump-env,third", got)
	}
	raw, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	want := map[string]string{
		"RESMAN_HOOK": "after_activate", "RESMAN_NODE": "xivo-standby", "RESMAN_ROLE": "standby",
		"RESMAN_MODE": "manual", "RESMAN_FROM": "inactive", "RESMAN_TO": "active", "RESMAN_EPOCH": "7",
		"RESMAN_CAUSE": "admin command; peer xivo-main is unreachable", "RESMAN_TRANSITION_ID": "42",
		"HOOKS_TEST_KEEP": "kept", // the node's own environment is passed on
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	for _, secret := range []string{"RESMAN_API_TOKEN", "RESMAN_TOKEN"} {
		if _, ok := env[secret]; ok {
			t.Errorf("%s reached the hook's environment", secret)
		}
	}
	if strings.Contains(string(raw), "secret-token") {
		t.Error("the token's value reached the hook's environment")
	}
}

func TestBeforeVetoesOnNonZeroExitAndStops(t *testing.T) {
	dir := t.TempDir()
	order := filepath.Join(dir, "order")
	reg := prometheus.NewRegistry()
	r := New(Options{Registerer: reg, Hooks: Set{BeforeActivate: []Hook{
		appendLine("ok", order),
		sh("check-trunk", `echo "$0" >> "$1"; echo "checking sip-op1"; echo "trunk sip-op1 is down" >&2; exit 3`, order),
		appendLine("never", order),
	}}})
	err := r.Before(context.Background(), trans)
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("want a *Failure, got %v", err)
	}
	if f.Phase != BeforeActivate || f.Hook != "check-trunk" || f.Status != "exit status 3" ||
		f.Output != "checking sip-op1; trunk sip-op1 is down" {
		t.Fatalf("failure = %+v", f)
	}
	const msg = "before_activate hook check-trunk vetoed the activation: exit status 3; output: checking sip-op1; trunk sip-op1 is down"
	if err.Error() != msg {
		t.Fatalf("error = %q\nwant    %q", err, msg)
	}
	if got := strings.Join(lines(t, order), ","); got != "ok,check-trunk" {
		t.Fatalf("ran %q: the hooks after the veto must not run", got)
	}
	if ok, failed := counter(t, reg, "before_activate", "ok", "ok"), counter(t, reg, "before_activate", "check-trunk", "failed"); ok != 1 || failed != 1 {
		t.Fatalf("metrics: ok %v, failed %v; want 1 and 1", ok, failed)
	}

	// A program that cannot run vetoes too.
	r.SetHooks(Set{BeforeActivate: []Hook{{Name: "missing", Run: []string{filepath.Join(dir, "nope")}}}})
	err = r.Before(context.Background(), trans)
	if !errors.As(err, &f) || f.Hook != "missing" || !strings.HasPrefix(f.Status, "cannot run: ") {
		t.Fatalf("missing program: %v", err)
	}
	// All pass: no veto.
	r.SetHooks(Set{BeforeActivate: []Hook{appendLine("a", order), appendLine("b", order)}})
	if err := r.Before(context.Background(), trans); err != nil {
		t.Fatalf("passing hooks: %v", err)
	}
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestTimeoutKillsTheProcessGroup(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	reg := prometheus.NewRegistry()
	// The hook's child, in its group, holds the output open: only a kill
	// of the whole group ends it.
	hang := sh("hang", `sleep 300 & echo $! > "$1"; wait`, pidFile)
	hang.Timeout = 300 * time.Millisecond
	r := New(Options{Registerer: reg, Hooks: Set{BeforeActivate: []Hook{hang}}})
	start := time.Now()
	err := r.Before(context.Background(), trans)
	var f *Failure
	if !errors.As(err, &f) || f.Status != "timed out after 300ms, process group killed" {
		t.Fatalf("want a timeout failure, got %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Before took %s: the timeout did not end the hook", took)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, func() bool { return !alive(pid) }, "the hook's child %d to die (timed out)", pid)
	if n := counter(t, reg, "before_activate", "hang", "timeout"); n != 1 {
		t.Fatalf("timeout counter = %v, want 1", n)
	}
}

func TestLeftoverChildIsKilledWhenTheHookExits(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	// Detached from the output, so nothing waits for it: the hook exits 0
	// at once and leaves its child behind.
	r := New(Options{Hooks: Set{AfterActivate: []Hook{
		sh("leaves-child", `sleep 300 >/dev/null 2>&1 & echo $! > "$1"`, pidFile)}}})
	r.After(context.Background(), AfterActivate, trans)
	wait(t, r)
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	// An unreadable pid would make alive() false at once and the check
	// below pass without looking at any process.
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		t.Fatalf("pid file %q: %v", raw, err)
	}
	testkit.Eventually(t, func() bool { return !alive(pid) }, "the hook's child %d to end with the hook", pid)
}

func TestOutputIsBounded(t *testing.T) {
	var logs testkit.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// 200 KB of output, then the line that matters.
	noisy := sh("noisy", `i=0; while [ $i -lt 4000 ]; do echo "line $i: 0123456789012345678901234567890123456789"; i=$((i+1)); done; echo "LAST: giving up"; exit 1`, "")
	r := New(Options{Logger: logger, Hooks: Set{BeforeActivate: []Hook{noisy}}})
	err := r.Before(context.Background(), trans)
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("want a failure, got %v", err)
	}
	if len(f.Output) > ErrorTail || !strings.HasSuffix(f.Output, "LAST: giving up") {
		t.Fatalf("output of %d bytes (max %d), ending %q", len(f.Output), ErrorTail, f.Output[max(0, len(f.Output)-40):])
	}
	var outputLine string
	for line := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"hook output"`) {
			outputLine = line
		}
	}
	if outputLine == "" || len(outputLine) > LogTail+1024 {
		t.Fatalf("hook output log line of %d bytes (want 1 to %d)", len(outputLine), LogTail+1024)
	}
	for _, want := range []string{`"component":"hooks"`, `"hook":"noisy"`, `"level":"INFO"`, "LAST: giving up", `"dropped_bytes":`} {
		if !strings.Contains(outputLine, want) {
			t.Errorf("log line lacks %s: %.300s", want, outputLine)
		}
	}
}

func TestAfterFailureIsReportedAndTheNextHooksRun(t *testing.T) {
	order := filepath.Join(t.TempDir(), "order")
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	var reported []string
	r := New(Options{Registerer: reg,
		OnFailure: func(p Phase, tr Transition, f *Failure) {
			mu.Lock()
			defer mu.Unlock()
			reported = append(reported, string(p)+" "+tr.ID+" "+f.Error())
		},
		Hooks: Set{AfterDeactivate: []Hook{
			sh("page-oncall", `echo "$0" >> "$1"; echo "pager unreachable"; exit 2`, order),
			appendLine("after-the-failure", order),
		}}})
	r.After(context.Background(), AfterDeactivate, trans)
	wait(t, r)
	if got := strings.Join(lines(t, order), ","); got != "page-oncall,after-the-failure" {
		t.Fatalf("ran %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	want := "after_deactivate 42 after_deactivate hook page-oncall failed: exit status 2; output: pager unreachable"
	if len(reported) != 1 || reported[0] != want {
		t.Fatalf("reported %q, want [%q]", reported, want)
	}
	if n := counter(t, reg, "after_deactivate", "page-oncall", "failed"); n != 1 {
		t.Fatalf("failed counter = %v", n)
	}
	if n := counter(t, reg, "after_deactivate", "after-the-failure", "ok"); n != 1 {
		t.Fatalf("ok counter = %v", n)
	}
}

// Hooks of successive transitions never overlap: each hook records when it
// begins and ends, and the record must alternate begin/end in the order
// the transitions were asked for, a before_activate hook included.
func TestHooksAreSerialised(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	// Long enough that hooks run concurrently would interleave.
	slow := func(name string) Hook {
		return sh(name, `echo "begin-$0" >> "$1"; sleep 0.2; echo "end-$0" >> "$1"`, log)
	}
	r := New(Options{Hooks: Set{
		AfterActivate:   []Hook{slow("a1"), slow("a2")},
		AfterDeactivate: []Hook{slow("d1")},
		BeforeActivate:  []Hook{slow("b1")},
	}})
	ctx := context.Background()
	r.After(ctx, AfterActivate, trans)
	r.After(ctx, AfterDeactivate, trans)
	if err := r.Before(ctx, trans); err != nil {
		t.Fatal(err)
	}
	// Before returned: everything queued before it has ended.
	want := "begin-a1,end-a1,begin-a2,end-a2,begin-d1,end-d1,begin-b1,end-b1"
	if got := strings.Join(lines(t, log), ","); got != want {
		t.Fatalf("hook runs:\n got %s\nwant %s", got, want)
	}
}

func TestBeforeWithoutHooksDoesNotWaitForTheQueue(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ended")
	r := New(Options{Hooks: Set{AfterDeactivate: []Hook{
		sh("slow", `sleep 30; touch "$1"`, marker)}}})
	ctx, cancel := context.WithCancel(context.Background())
	r.After(ctx, AfterDeactivate, trans)
	if err := r.Before(context.Background(), trans); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("Before waited for the queued after hook although it has nothing to run")
	}
	// Cancelling kills the hook under way.
	cancel()
	wait(t, r)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the cancelled hook ran to its end")
	}
}

func TestCancelledBeforeReturnsTheContextError(t *testing.T) {
	r := New(Options{Hooks: Set{BeforeActivate: []Hook{sh("slow", "sleep 30", "")}}})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := r.Before(ctx, trans); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the context's error, got %v", err)
	}
	wait(t, r) // the killed hook ends
}
