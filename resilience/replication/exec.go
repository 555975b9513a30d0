package replication

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/resman-pbx/resman/resilience/procexec"
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
	out, err := procexec.Run(ctx, procexec.Command{
		Argv:        job.Run,
		Env:         append(os.Environ(), "RESMAN_JOB="+job.Name, "RESMAN_PEER_API="+r.peerURL),
		WaitDelay:   execWaitDelay,
		OutputLimit: outputTail,
	})
	res.Output = out.Output
	if err == nil {
		return nil
	}
	quote := out.Line(errorTail)
	if quote != "" {
		quote = ": " + quote
	}
	cause := err
	var perr *procexec.Error
	if errors.As(err, &perr) {
		cause = perr.Err
		// ctx carries the job's timeout: its end is a cancellation here.
		if perr.Reason == procexec.Cancelled {
			if errors.Is(cause, context.DeadlineExceeded) {
				return fmt.Errorf("timed out after %s, process group killed: %w%s", job.Timeout, cause, quote)
			}
			return fmt.Errorf("cancelled, process group killed: %w%s", cause, quote)
		}
	}
	return fmt.Errorf("%s: %w%s", job.Run[0], cause, quote)
}
