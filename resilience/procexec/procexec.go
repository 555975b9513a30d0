// Package procexec runs an external command to completion in its own
// process group, bounded by a timeout and a context, and keeps the end of
// its output. The services supervisor runs its start, stop and check
// commands with it, replication its exec jobs, and resilience/hooks its
// notification hooks.
//
// Run puts the command in a new process group (Setpgid), so that whatever
// it spawns can be reached as a whole: when Command.Timeout expires or ctx
// ends, the whole group is killed with SIGKILL, not just the command. A
// command that exits but leaves a child holding its output open counts as
// done after Command.WaitDelay (the output is then closed); with
// Command.KillLeftovers, whatever it left running in its group is killed
// when it exits. There is no Pdeathsig: a start command may be mid-way
// through an init script that must not be cut by resman's death.
//
// stdout and stderr are kept together, interleaved, the last
// Command.OutputLimit bytes; Result.Dropped counts what was cut before
// them. A failed run returns an *Error saying how it ended (Exited,
// NotStarted, TimedOut or Cancelled), with the cause it wraps.
//
// The package is for Unix: it relies on process groups and kill(2).
package procexec

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// DefaultWaitDelay is Command.WaitDelay when it is 0.
	DefaultWaitDelay = time.Second
	// DefaultOutputLimit is Command.OutputLimit when it is 0.
	DefaultOutputLimit = 4096
)

// Command is one command to run.
type Command struct {
	// Argv is the program and its arguments, no shell. A program without
	// a slash is looked up in resman's PATH.
	Argv []string
	// Env is the command's environment, exactly (KEY=VALUE entries, the
	// last of duplicate keys wins). Nil gives it resman's own
	// environment, as os/exec does.
	Env []string
	// Dir is its working directory; "" is resman's.
	Dir string
	// Timeout bounds the run besides ctx; 0 leaves it to ctx alone.
	Timeout time.Duration
	// WaitDelay is how long the command's output may stay open after it
	// exits (a daemon it started inherited it) before the run counts as
	// done; DefaultWaitDelay when 0.
	WaitDelay time.Duration
	// KillLeftovers kills what the command left running in its process
	// group when it exits, so that nothing of it outlives the run (a
	// hook). Without it a daemon started by the command lives on (an init
	// script), though its output is closed after WaitDelay.
	KillLeftovers bool
	// OutputLimit is how many bytes of output are kept, the last ones;
	// DefaultOutputLimit when 0.
	OutputLimit int
}

// Result is what a run left behind, whether it failed or not.
type Result struct {
	// Output is the end of stdout and stderr, interleaved as written, at
	// most Command.OutputLimit bytes (a rune cut at its start is dropped).
	Output string
	// Dropped is how many bytes of output were cut before Output: 0 when
	// Output is all of it.
	Dropped int64
	// Duration is how long the run took, from the start to the end of the
	// wait (the kill of leftovers included).
	Duration time.Duration
}

// Truncated reports whether output was cut before r.Output.
func (r Result) Truncated() bool { return r.Dropped > 0 }

// Line is r.Output on one line, at most n bytes of its end (no limit when
// n <= 0); see OneLine.
func (r Result) Line(n int) string { return OneLine(r.Output, n) }

// Reason is how a failed run ended.
type Reason int

// The reasons, as Error.Reason.
const (
	// Exited: the command ran and exited with a status other than 0 (or
	// was killed by a signal not sent by Run).
	Exited Reason = iota + 1
	// NotStarted: the command could not be started (not found, not
	// executable, no such working directory, an empty Argv).
	NotStarted
	// TimedOut: Command.Timeout expired and Run killed the process group.
	TimedOut
	// Cancelled: ctx ended (cancelled, or its own deadline passed) and Run
	// killed the process group, or ctx had ended before the start.
	Cancelled
)

func (r Reason) String() string {
	switch r {
	case Exited:
		return "exited"
	case NotStarted:
		return "not started"
	case TimedOut:
		return "timed out"
	case Cancelled:
		return "cancelled"
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// Error is a run that did not end with exit status 0.
type Error struct {
	Argv   []string
	Reason Reason
	// Err is the cause: the *exec.ExitError (Exited), the error of the
	// start (NotStarted: errors.Is(err, exec.ErrNotFound) or
	// fs.ErrNotExist for a missing program), context.DeadlineExceeded
	// (TimedOut) or ctx's error (Cancelled).
	Err error
	// Timeout is Command.Timeout.
	Timeout time.Duration
}

var errEmpty = errors.New("empty command")

// Status says how the run ended, without the command:
//
//	exit status 3
//	signal: segmentation fault
//	cannot run: exec: "nope": executable file not found in $PATH
//	timed out after 5s, process group killed
//	cancelled, process group killed
func (e *Error) Status() string {
	switch e.Reason {
	case Exited:
		return e.Err.Error()
	case NotStarted:
		return "cannot run: " + e.Err.Error()
	case TimedOut:
		return fmt.Sprintf("timed out after %s, process group killed", e.Timeout)
	case Cancelled:
		return "cancelled, process group killed"
	}
	return e.Err.Error()
}

// Error is `run "ARGV": STATUS`, followed for Cancelled by ctx's error.
func (e *Error) Error() string {
	s := fmt.Sprintf("run %q: %s", strings.Join(e.Argv, " "), e.Status())
	if e.Reason == Cancelled {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// ExitCode is the command's exit status when it Exited, else -1 (-1 too
// when a signal ended it).
func (e *Error) ExitCode() int {
	var ee *exec.ExitError
	if e.Reason == Exited && errors.As(e.Err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// Run runs c to its end, within c.Timeout and ctx, in its own process
// group. The error is nil when the command exited 0 (even if a child kept
// its output open past WaitDelay), else an *Error. The Result holds the
// end of the output either way.
func Run(ctx context.Context, c Command) (Result, error) {
	if len(c.Argv) == 0 {
		return Result{}, &Error{Reason: NotStarted, Err: errEmpty, Timeout: c.Timeout}
	}
	rctx := ctx
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	limit := c.OutputLimit
	if limit <= 0 {
		limit = DefaultOutputLimit
	}
	wait := c.WaitDelay
	if wait <= 0 {
		wait = DefaultWaitDelay
	}
	out := NewTail(limit)
	cmd := exec.CommandContext(rctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = c.Env
	cmd.Dir = c.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = out, out
	// Called only once the command has started: its pid is its group's.
	cmd.Cancel = func() error { return KillGroup(cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = wait
	start := time.Now()
	err := cmd.Run()
	if c.KillLeftovers && cmd.Process != nil {
		// What the command left in its group ends with it.
		KillGroup(cmd.Process.Pid, syscall.SIGKILL)
	}
	res := Result{Output: out.String(), Dropped: out.Dropped(), Duration: time.Since(start)}
	if errors.Is(err, exec.ErrWaitDelay) {
		// It exited 0; something it started still held its output.
		err = nil
	}
	if err == nil {
		return res, nil
	}
	e := &Error{Argv: c.Argv, Err: err, Timeout: c.Timeout}
	var ee *exec.ExitError
	switch {
	case rctx.Err() != nil && ctx.Err() == nil:
		e.Reason, e.Err = TimedOut, rctx.Err()
	case ctx.Err() != nil:
		e.Reason, e.Err = Cancelled, ctx.Err()
	case errors.As(err, &ee):
		e.Reason = Exited
	default:
		e.Reason = NotStarted
	}
	return res, e
}

// KillGroup sends sig to the process group pgid; a group already gone is
// not an error. pgid must be a group's leader (a command started by Run,
// or with Setpgid): 0 and 1 are refused, as kill(2) would take them for
// the caller's own group or every process.
func KillGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return fmt.Errorf("invalid process group %d", pgid)
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal process group %d: %w", pgid, err)
	}
	return nil
}

// Tail is an io.Writer that keeps the last bytes written to it and counts
// the others. It is safe for concurrent use (stdout and stderr of one
// command).
type Tail struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped int64
}

// NewTail returns a Tail that keeps the last max bytes.
func NewTail(max int) *Tail { return &Tail{max: max} }

// Write keeps the end of p; it never fails.
func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.dropped += int64(over)
	}
	return len(p), nil
}

// String is the kept bytes as text, a rune cut by the truncation (and any
// invalid UTF-8) dropped.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.ToValidUTF8(string(t.buf), "")
}

// Dropped is how many bytes were cut before the kept ones.
func (t *Tail) Dropped() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

// Line is the kept text on one line, at most n bytes (n <= 0: all); see
// OneLine.
func (t *Tail) Line(n int) string { return OneLine(t.String(), n) }

// OneLine puts output on one line for an error message: its lines trimmed
// and joined with "; ", blank ones dropped. When n > 0 only the last n
// bytes (at most) are kept, a rune cut at the start dropped.
func OneLine(s string, n int) string {
	var lines []string
	for line := range strings.SplitSeq(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	s = strings.Join(lines, "; ")
	if n > 0 && len(s) > n {
		s = strings.ToValidUTF8(s[len(s)-n:], "")
	}
	return s
}
