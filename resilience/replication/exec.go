package replication

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// outputTail is how much of an exec job's output a Result keeps.
	outputTail = 2048
	// errorTail is how much of it the error message quotes.
	errorTail = 300
	// execWaitDelay is how long a command that has exited may leave its
	// output open (a daemon it started): then it counts as done.
	execWaitDelay = 2 * time.Second
)

// runExec runs an exec job's command in its own process group, within ctx
// (the job's timeout): on timeout or cancellation the whole group is
// killed. The command gets RESMAN_JOB (the job's name) and RESMAN_PEER_API
// (the peer's API URL) in its environment.
func (r *Runner) runExec(ctx context.Context, js *jobState, res *Result) error {
	job := &js.job
	out := &tail{max: outputTail}
	cmd := exec.CommandContext(ctx, job.Run[0], job.Run[1:]...)
	cmd.Env = append(os.Environ(), "RESMAN_JOB="+job.Name, "RESMAN_PEER_API="+r.peerURL)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Cancel = func() error {
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill process group %d: %w", cmd.Process.Pid, err)
		}
		return nil
	}
	cmd.WaitDelay = execWaitDelay
	err := cmd.Run()
	res.Output = out.String()
	if errors.Is(err, exec.ErrWaitDelay) {
		// It exited 0; something it started still holds its output.
		err = nil
	}
	if err == nil {
		return nil
	}
	quote := out.last(errorTail)
	if quote != "" {
		quote = ": " + quote
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("timed out after %s, process group killed: %w%s", job.Timeout, ctxErr, quote)
		}
		return fmt.Errorf("cancelled, process group killed: %w%s", ctxErr, quote)
	}
	return fmt.Errorf("%s: %w%s", job.Run[0], err, quote)
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// String is the tail as text, a rune cut by the truncation dropped.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.ToValidUTF8(string(t.buf), "")
}

// last is the last n bytes (about) of the tail on one line: lines joined
// with "; ", blank ones dropped.
func (t *tail) last(n int) string {
	var lines []string
	for line := range strings.SplitSeq(t.String(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	s := strings.Join(lines, "; ")
	if len(s) > n {
		s = strings.ToValidUTF8(s[len(s)-n:], "")
	}
	return s
}
