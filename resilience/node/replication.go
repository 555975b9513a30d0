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

// RunReplication runs one replication job, or all, now: only from the
// Active node, toward its peer. It waits up to ReplWait for the jobs, then
// answers with their status while they go on; a job that failed makes the
// answer ErrFailed with its error.
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
	// One asked run at a time: a script or a double click must not start
	// a copy per request.
	if !n.replRunning.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("%w: a replication run asked earlier is still under way; its jobs show as running", resilience.ErrConflict)
	}
	select {
	case <-n.runsCtx.Done():
		n.replRunning.Store(false)
		return nil, errStopped
	default:
	}
	n.runs.Add(1)
	cur := n.Status()
	n.record(resilience.Record{Who: who, Action: "run replication", Reason: req.Reason, Cause: "admin command: " + what,
		Outcome: resilience.OutcomeOK, Epoch: cur.Epoch, From: resilience.Status(cur.Status), To: resilience.Status(cur.Status)})
	type outcome struct {
		results []replication.Result
		err     error
	}
	done := make(chan outcome, 1)
	go func() {
		defer n.runs.Done()
		defer n.replRunning.Store(false)
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
	wait := time.NewTimer(n.d.ReplWait)
	defer wait.Stop()
	select {
	case o := <-done:
		switch {
		case errors.Is(o.err, replication.ErrUnknownJob):
			return nil, fmt.Errorf("%w: %s: no such replication job", resilience.ErrInvalid, req.Job)
		case o.err != nil:
			return n.Status().Replication, fmt.Errorf("%w: replication of %s: %v", resilience.ErrFailed, what, o.err)
		}
	case <-wait.C:
	case <-ctx.Done():
	}
	return n.Status().Replication, nil
}
