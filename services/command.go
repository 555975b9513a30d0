package services

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// tailSize is how much of a command's output an error quotes.
	tailSize = 300
	// commandWaitDelay is how long a command that has exited may keep its
	// output pipes open: an init script whose daemon inherits them must
	// not hang the start.
	commandWaitDelay = time.Second
	// maxLogLine cuts a run: process's output line that never ends.
	maxLogLine = 4096
)

// runCommand runs argv to completion within timeout and ctx. A non-zero
// exit is an error with the exit status and the tail of the output; on
// timeout the command's whole process group is killed. An empty argv does
// nothing.
func (s *Supervisor) runCommand(ctx context.Context, timeout time.Duration, argv []string) error {
	if len(argv) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := newTailBuffer(tailSize)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = s.environ()
	cmd.SysProcAttr = commandProcAttr()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = commandWaitDelay
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		// It exited 0; something it started still holds its output.
		err = nil
	}
	if err == nil {
		return nil
	}
	name := strings.Join(argv, " ")
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("run %q: timed out after %s: %w%s", name, timeout, ctxErr, out.suffix())
		}
		return fmt.Errorf("run %q: %w%s", name, ctxErr, out.suffix())
	}
	return fmt.Errorf("run %q: %w%s", name, err, out.suffix())
}

// killGroup sends sig to the process group pgid; a group already gone is
// not an error.
func killGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 0 {
		return fmt.Errorf("invalid process group %d", pgid)
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal process group %d: %w", pgid, err)
	}
	return nil
}

// tailBuffer keeps the last bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// String is the tail on one line: lines joined with "; ", blanks dropped,
// a rune cut by the truncation removed.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	text := strings.ToValidUTF8(string(t.buf), "")
	t.mu.Unlock()
	var lines []string
	for line := range strings.SplitSeq(text, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "; ")
}

// suffix is ": <tail>" for an error message, or nothing without output.
func (t *tailBuffer) suffix() string {
	if s := t.String(); s != "" {
		return ": " + s
	}
	return ""
}

// lineLogger logs a run: process's output line by line at debug, and
// copies it to a tail for the exit error.
type lineLogger struct {
	log    *slog.Logger
	stream string
	tail   *tailBuffer

	mu      sync.Mutex
	partial []byte
}

func newLineLogger(log *slog.Logger, stream string, tail *tailBuffer) *lineLogger {
	return &lineLogger{log: log, stream: stream, tail: tail}
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.tail.Write(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	rest := l.partial
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		l.emit(rest[:i])
		rest = rest[i+1:]
	}
	if len(rest) >= maxLogLine {
		l.emit(rest)
		rest = nil
	}
	// Keep the unfinished line at the start of the buffer (copy handles
	// the overlap).
	l.partial = append(l.partial[:0], rest...)
	return len(p), nil
}

// flush logs what is left after the last newline.
func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.emit(l.partial)
		l.partial = nil
	}
}

func (l *lineLogger) emit(line []byte) {
	l.log.Debug("output", "stream", l.stream, "line", string(bytes.TrimRight(line, "\r")))
}
