package procexec

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// sh is a command running script with sh; $1 is arg.
func sh(script, arg string) []string { return []string{"sh", "-c", script, "sh", arg} }

func needProc(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
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

// waitGone fails t unless pid dies.
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	testkit.Eventually(t, func() bool { return !alive(pid) }, "%s (pid %d) to die", what, pid)
}

// readPID waits for a pid written to file (by a write-then-rename).
func readPID(t *testing.T, file string) int {
	t.Helper()
	var raw []byte
	testkit.Until(t, func() (err error) { raw, err = os.ReadFile(file); return err },
		func(err error) bool { return err == nil }, "a pid in %s", file)
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("pid file %s: %v", file, err)
	}
	return pid
}

// killAtEnd kills pid when the test ends, should it have survived.
func killAtEnd(t *testing.T, pid int) {
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
}

// asError is err as an *Error, or fails t.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want an *Error, got %T %v", err, err)
	}
	return e
}

// A background child holds the output open and would run for 5 minutes:
// only a kill of the whole group ends the run at the timeout.
const spawnAndWait = `sleep 300 & echo $! > "$1.tmp"; mv "$1.tmp" "$1"; echo started; wait`

func TestTimeoutKillsTheProcessGroup(t *testing.T) {
	needProc(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	argv := sh(spawnAndWait, pidFile)
	start := time.Now()
	res, err := Run(context.Background(), Command{Argv: argv, Timeout: 300 * time.Millisecond})
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Run took %s: the timeout did not end it", took)
	}
	e := asError(t, err)
	if e.Reason != TimedOut || !errors.Is(err, context.DeadlineExceeded) || e.ExitCode() != -1 {
		t.Fatalf("error %+v, want TimedOut wrapping context.DeadlineExceeded", e)
	}
	if got, want := e.Status(), "timed out after 300ms, process group killed"; got != want {
		t.Errorf("Status() = %q, want %q", got, want)
	}
	if got, want := err.Error(), fmt.Sprintf("run %q: timed out after 300ms, process group killed", strings.Join(argv, " ")); got != want {
		t.Errorf("Error() = %q\nwant      %q", got, want)
	}
	if res.Output != "started\n" {
		t.Errorf("output %q, want what came before the kill", res.Output)
	}
	pid := readPID(t, pidFile)
	killAtEnd(t, pid)
	waitGone(t, pid, "the command's child")
}

func TestCancelKillsTheProcessGroup(t *testing.T) {
	needProc(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	type ran struct {
		res Result
		err error
	}
	done := make(chan ran, 1)
	go func() {
		res, err := Run(ctx, Command{Argv: sh(spawnAndWait, pidFile), Timeout: time.Minute})
		done <- ran{res, err}
	}()
	pid := readPID(t, pidFile)
	killAtEnd(t, pid)
	cancel()
	var r ran
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	e := asError(t, r.err)
	if e.Reason != Cancelled || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("error %+v, want Cancelled wrapping context.Canceled", e)
	}
	if e.Status() != "cancelled, process group killed" || !strings.HasSuffix(r.err.Error(), ": cancelled, process group killed: context canceled") {
		t.Errorf("Status() = %q, Error() = %q", e.Status(), r.err)
	}
	waitGone(t, pid, "the command's child")

	// A context already ended runs nothing.
	_, err := Run(ctx, Command{Argv: []string{"true"}})
	if e := asError(t, err); e.Reason != Cancelled || !errors.Is(err, context.Canceled) {
		t.Fatalf("with an ended context: %v", err)
	}
}

// The caller's own deadline is a cancellation, not the command's timeout.
func TestCallerDeadlineIsCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Run(ctx, Command{Argv: []string{"sleep", "60"}, Timeout: time.Minute})
	if e := asError(t, err); e.Reason != Cancelled || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v (%v), want Cancelled wrapping context.DeadlineExceeded", err, e.Reason)
	}
}

func TestLeftoverChildren(t *testing.T) {
	needProc(t)
	// Detached from the output: the command exits 0 at once and leaves
	// its child behind.
	const leave = `sleep 300 >/dev/null 2>&1 & echo $! > "$1"`
	t.Run("killed with KillLeftovers", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "pid")
		if _, err := Run(context.Background(), Command{Argv: sh(leave, pidFile), KillLeftovers: true}); err != nil {
			t.Fatal(err)
		}
		pid := readPID(t, pidFile)
		killAtEnd(t, pid)
		waitGone(t, pid, "the child left behind")
	})
	t.Run("left alone without", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "pid")
		if _, err := Run(context.Background(), Command{Argv: sh(leave, pidFile)}); err != nil {
			t.Fatal(err)
		}
		pid := readPID(t, pidFile)
		killAtEnd(t, pid)
		time.Sleep(100 * time.Millisecond)
		if !alive(pid) {
			t.Fatal("the daemon left by the command was killed")
		}
	})
}

// A command that exits 0 while a child keeps its output open is done after
// WaitDelay, not when the child ends.
func TestChildHoldingTheOutputDoesNotHoldTheRun(t *testing.T) {
	needProc(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	res, err := Run(context.Background(), Command{
		Argv:          sh(`sleep 300 & echo $! > "$1"; echo bye`, pidFile),
		WaitDelay:     200 * time.Millisecond,
		KillLeftovers: true,
	})
	took := time.Since(start)
	if err != nil || res.Output != "bye\n" {
		t.Fatalf("Run = %q, %v", res.Output, err)
	}
	if took < 200*time.Millisecond || took > 10*time.Second {
		t.Fatalf("Run took %s, want about the WaitDelay of 200ms", took)
	}
	pid := readPID(t, pidFile)
	killAtEnd(t, pid)
	waitGone(t, pid, "the child holding the output")
}

func TestOutputIsBounded(t *testing.T) {
	// 97,500 bytes of noise (lines of 39), then the line that matters.
	argv := sh(`i=0; while [ $i -lt 2500 ]; do echo "line $((i % 10)) 0123456789012345678901234567890"; i=$((i+1)); done; echo "LAST: giving up" >&2; exit 1`, "")
	const total = 2500*39 + len("LAST: giving up\n")
	res, err := Run(context.Background(), Command{Argv: argv, OutputLimit: 1000})
	if e := asError(t, err); e.Reason != Exited || e.ExitCode() != 1 {
		t.Fatalf("error %v, want exit status 1", err)
	}
	if len(res.Output) != 1000 || !strings.HasSuffix(res.Output, "\nLAST: giving up\n") {
		t.Fatalf("output of %d bytes (limit 1000), ending %q", len(res.Output), res.Output[max(0, len(res.Output)-40):])
	}
	if !res.Truncated() || res.Dropped != int64(total-1000) {
		t.Fatalf("Dropped = %d (truncated %v), want %d", res.Dropped, res.Truncated(), total-1000)
	}
	if line := res.Line(40); line != "89012345678901234567890; LAST: giving up" {
		t.Fatalf("Line(40) = %q", line)
	}

	// Under the limit: all of it, nothing marked as cut.
	res, err = Run(context.Background(), Command{Argv: sh(`echo one; echo two >&2`, "")})
	if err != nil || res.Output != "one\ntwo\n" || res.Truncated() || res.Dropped != 0 || res.Line(0) != "one; two" {
		t.Fatalf("short output: %+v, %v", res, err)
	}
}

func TestExitStatus(t *testing.T) {
	argv := sh(`echo checking; echo "trunk down" >&2; exit 3`, "")
	res, err := Run(context.Background(), Command{Argv: argv})
	e := asError(t, err)
	var ee *exec.ExitError
	if e.Reason != Exited || e.ExitCode() != 3 || !errors.As(err, &ee) {
		t.Fatalf("error %+v, want Exited with an *exec.ExitError of status 3", e)
	}
	if e.Status() != "exit status 3" {
		t.Errorf("Status() = %q", e.Status())
	}
	if got, want := err.Error(), `run "sh -c echo checking; echo \"trunk down\" >&2; exit 3 sh ": exit status 3`; got != want {
		t.Errorf("Error() = %q\nwant      %q", got, want)
	}
	if res.Line(0) != "checking; trunk down" {
		t.Errorf("output %q", res.Output)
	}

	// Killed by a signal not sent by Run: Exited too, no exit code.
	_, err = Run(context.Background(), Command{Argv: sh(`kill -TERM $$`, "")})
	if e := asError(t, err); e.Reason != Exited || e.ExitCode() != -1 || e.Status() != "signal: terminated" {
		t.Fatalf("killed by SIGTERM: %+v, status %q", e, e.Status())
	}
}

func TestNotStarted(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		cmd    Command
		is     error
		status string // prefix
	}{
		{"not in PATH", Command{Argv: []string{"resman-procexec-no-such-program"}}, exec.ErrNotFound,
			`cannot run: exec: "resman-procexec-no-such-program": executable file not found in $PATH`},
		{"no such file", Command{Argv: []string{filepath.Join(dir, "nope")}}, fs.ErrNotExist,
			"cannot run: fork/exec " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"no such directory", Command{Argv: []string{"true"}, Dir: filepath.Join(dir, "gone")}, fs.ErrNotExist, "cannot run: "},
		{"empty argv", Command{}, errEmpty, "cannot run: empty command"},
	}
	for _, tt := range tests {
		_, err := Run(context.Background(), tt.cmd)
		var e *Error
		if !errors.As(err, &e) || e.Reason != NotStarted || !errors.Is(err, tt.is) || e.ExitCode() != -1 {
			t.Errorf("%s: error %v, want NotStarted wrapping %v", tt.name, err, tt.is)
			continue
		}
		if !strings.HasPrefix(e.Status(), tt.status) {
			t.Errorf("%s: Status() = %q, want it to begin %q", tt.name, e.Status(), tt.status)
		}
		if want := "run " + strconv.Quote(strings.Join(tt.cmd.Argv, " ")) + ": " + e.Status(); err.Error() != want {
			t.Errorf("%s: Error() = %q, want %q", tt.name, err, want)
		}
	}
}

func TestEnvironment(t *testing.T) {
	envProg, err := exec.LookPath("env")
	if err != nil {
		t.Skip("no env program")
	}
	t.Setenv("PROCEXEC_TEST_INHERITED", "from resman")
	env := []string{"RESMAN_JOB=db", "SPACED=two words; and = signs", "EMPTY="}
	res, err := Run(context.Background(), Command{Argv: []string{envProg}, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Output, strings.Join(env, "\n")+"\n"; got != want {
		t.Errorf("environment:\n%s\nwant exactly:\n%s", got, want)
	}
	// An empty, non-nil Env is an empty environment.
	if res, err := Run(context.Background(), Command{Argv: []string{envProg}, Env: []string{}}); err != nil || res.Output != "" {
		t.Errorf("empty Env: %q, %v", res.Output, err)
	}
	// Nil Env is resman's own.
	res, err = Run(context.Background(), Command{Argv: []string{envProg}})
	if err != nil || !strings.Contains("\n"+res.Output, "\nPROCEXEC_TEST_INHERITED=from resman\n") {
		t.Errorf("nil Env: %v; output lacks the inherited variable", err)
	}
}

func TestWorkingDirectory(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), Command{Argv: []string{"pwd", "-P"}, Dir: dir})
	if err != nil || strings.TrimSpace(res.Output) != dir {
		t.Fatalf("pwd in %s: %q, %v", dir, res.Output, err)
	}
}

func TestKillGroup(t *testing.T) {
	for _, pgid := range []int{-5, 0, 1} {
		if err := KillGroup(pgid, 0); err == nil {
			t.Errorf("KillGroup(%d) = nil, want it refused", pgid)
		}
	}
	cmd := exec.Command("true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := KillGroup(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Errorf("a group already gone: %v, want nil", err)
	}
}

func TestTail(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		writes  []string
		kept    string // String()
		line    string // Line(0)
		dropped int64
	}{
		{"empty", 10, nil, "", "", 0},
		{"short", 10, []string{"abc"}, "abc", "abc", 0},
		{"keeps the end", 5, []string{"abcdef", "gh"}, "defgh", "defgh", 3},
		{"lines joined", 100, []string{"one\n\n  two  \nthree\n"}, "one\n\n  two  \nthree\n", "one; two; three", 0},
		{"cut rune dropped", 2, []string{"aé!"}, "!", "!", 2}, // é is 2 bytes: the tail starts mid-rune
		{"blank only", 10, []string{"\n \n"}, "\n \n", "", 0},
	}
	for _, tt := range tests {
		b := NewTail(tt.max)
		for _, w := range tt.writes {
			if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("%s: Write = %d, %v", tt.name, n, err)
			}
		}
		if got := b.String(); got != tt.kept {
			t.Errorf("%s: String() = %q, want %q", tt.name, got, tt.kept)
		}
		if got := b.Line(0); got != tt.line {
			t.Errorf("%s: Line(0) = %q, want %q", tt.name, got, tt.line)
		}
		if got := b.Dropped(); got != tt.dropped {
			t.Errorf("%s: Dropped() = %d, want %d", tt.name, got, tt.dropped)
		}
	}
}

func TestOneLine(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\n", 0, "a; b"},
		{"line 1\nline 2\n\nlast\n", 9, "e 2; last"},
		{"x\nété", 3, "té"}, // the cut falls inside the first é
		{"short", 100, "short"},
	}
	for _, tt := range tests {
		if got := OneLine(tt.in, tt.n); got != tt.want {
			t.Errorf("OneLine(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
