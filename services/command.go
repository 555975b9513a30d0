package services

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/resman-pbx/resman/resilience/procexec"
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
	res, err := procexec.Run(ctx, procexec.Command{
		Argv:        argv,
		Env:         s.environ(),
		Timeout:     timeout,
		WaitDelay:   commandWaitDelay,
		OutputLimit: tailSize,
	})
	if err == nil {
		return nil
	}
	cause := err
	var perr *procexec.Error
	if errors.As(err, &perr) {
		// The exit status, the start's error or the context's: the
		// message names the command itself.
		cause = perr.Err
	}
	name := strings.Join(argv, " ")
	if errors.Is(cause, context.DeadlineExceeded) {
		return fmt.Errorf("run %q: timed out after %s: %w%s", name, timeout, cause, quote(res.Line(0)))
	}
	return fmt.Errorf("run %q: %w%s", name, cause, quote(res.Line(0)))
}

// quote is ": <output>" for an error message, or nothing without output.
func quote(output string) string {
	if output != "" {
		return ": " + output
	}
	return ""
}

// lineLogger logs a run: process's output line by line at debug, and
// copies it to a tail for the exit error.
type lineLogger struct {
	log    *slog.Logger
	stream string
	tail   *procexec.Tail

	mu      sync.Mutex
	partial []byte
}

func newLineLogger(log *slog.Logger, stream string, tail *procexec.Tail) *lineLogger {
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
