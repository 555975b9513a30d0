package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/replication"
)

// Replication runs asked by an admin.
//
// At most one asked run is under way at a time. A request while one runs is
// refused (ErrConflict, 409), saying which run, asked by whom and since
// when; it is not joined to the run under way: that run may have copied
// before what the admin just changed, so its outcome would not answer the
// second request. The admin asks again once it has ended (its jobs show as
// running in the status until then). Scheduled runs are not counted here:
// the replication runner runs each job once at a time and queues the rest.

// askedRun is the asked replication run under way.
type askedRun struct {
	what, who string
	since     time.Time
}

// RunReplication runs one replication job, or all, now: only from the
// Active node, toward its peer, and one asked run at a time. It waits up to
// ReplWait for the jobs, then answers with their status while they go on; a
// job that failed makes the answer ErrFailed with its error.
func (n *Node) RunReplication(ctx context.Context, who string, req api.ReplicationRunRequest) ([]api.Replication, error) {
	if n.d.ReplSender == nil {
		return nil, fmt.Errorf("%w: no replication jobs are configured", resilience.ErrPrecondition)
	}
	if strings.TrimSpace(req.Reason) == "" {
		return nil, fmt.Errorf("%w: reason is required", resilience.ErrInvalid)
	}
	if st := n.Active(); st.Status != string(resilience.Active) {
		return nil, fmt.Errorf("%w: replication runs from the Active node; this node is %s", resilience.ErrConflict, st.Status)
	}
	what := "all jobs"
	if req.Job != "" {
		what = "job " + req.Job
	}
	if err := n.beginRun(askedRun{what: what, who: who, since: n.now()}); err != nil {
		return nil, err
	}
	cur := n.Status()
	n.record(resilience.Record{Who: who, Action: "run replication", Reason: req.Reason, Cause: "admin command: " + what,
		Outcome: resilience.OutcomeOK, Epoch: cur.Epoch, From: resilience.Status(cur.Status), To: resilience.Status(cur.Status)})
	type outcome struct {
		results []replication.Result
		err     error
	}
	done := make(chan outcome, 1)
	go func() {
		defer n.endRun()
		// The run outlives the request, so that a long copy is not cut by a
		// client that stops waiting, but not the node.
		if req.Job != "" {
			r, err := n.d.ReplSender.RunNow(n.runsCtx, req.Job)
			done <- outcome{[]replication.Result{r}, err}
			return
		}
		rs, err := n.d.ReplSender.RunAll(n.runsCtx)
		done <- outcome{rs, err}
	}()
	wait, stop := n.d.clock.NewTimer(n.d.ReplWait)
	defer stop()
	select {
	case o := <-done:
		switch {
		case errors.Is(o.err, replication.ErrUnknownJob):
			return nil, fmt.Errorf("%w: %s: no such replication job", resilience.ErrInvalid, req.Job)
		case o.err != nil:
			return n.Status().Replication, fmt.Errorf("%w: replication of %s: %v", resilience.ErrFailed, what, o.err)
		}
	case <-wait:
	case <-ctx.Done():
	}
	return n.Status().Replication, nil
}

// beginRun takes the one place of an asked run for r, or says why not: a
// run under way, or the node ending. The caller runs it, then calls endRun.
func (n *Node) beginRun(r askedRun) error {
	n.runsMu.Lock()
	defer n.runsMu.Unlock()
	if n.runsCtx.Err() != nil {
		return errStopped
	}
	if a := n.asked; a != nil {
		by := a.who
		if by == "" {
			by = "an admin"
		}
		return fmt.Errorf("%w: a replication run of %s, asked by %s at %s UTC, is still under way (its jobs show as running); ask again once it has ended",
			resilience.ErrConflict, a.what, by, a.since.UTC().Format(time.TimeOnly))
	}
	n.asked = &r
	// Under runsMu: endRuns cannot have begun its Wait, so Add is not
	// racing it, and the run is waited for.
	n.runs.Add(1)
	return nil
}

// endRun frees the place of the asked run that has ended.
func (n *Node) endRun() {
	n.runsMu.Lock()
	n.asked = nil
	n.runsMu.Unlock()
	n.runs.Done()
}

// endRuns cancels the asked run under way, if any, and waits for it; no run
// begins after it. Run calls it on its way out.
func (n *Node) endRuns() {
	n.runsMu.Lock()
	n.stopRuns()
	n.runsMu.Unlock()
	n.runs.Wait()
}
