package cc

import (
	"context"
	"fmt"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/services"
)

// reconcileLoop moves the follower to what the node's status asks for, one
// transition at a time: a transition runs to its end, then the latest wish
// is read again.
func (f *Follower) reconcileLoop(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		case <-retry.C:
		}
		for ctx.Err() == nil {
			wait, done := f.step(ctx)
			if done {
				break
			}
			if wait > 0 {
				retry.Reset(wait)
				break
			}
		}
	}
}

// step runs the transition the follower needs now, if any. It returns done
// when there is nothing to do, or how long to wait before a retry.
func (f *Follower) step(ctx context.Context) (wait time.Duration, done bool) {
	svcs := f.sup.Status()
	f.mu.Lock()
	cause, epoch := f.cause, f.following.Epoch
	in := wantInput{Reachable: f.following.Reachable, Node: f.following.Status, Mine: f.status,
		RetryIn: time.Until(f.retryAt), Swept: f.swept, Running: anyIn(svcs, services.StateRunning)}
	f.mu.Unlock()
	d := decide(in)
	switch d.Move {
	case moveWait:
		return d.Wait, false
	case moveStart:
		f.activate(ctx, cause, epoch)
		return 0, false
	case moveStop:
		f.deactivate(ctx, cause, epoch)
		return 0, false
	case moveSweep:
		// Inactive from the start, but services were found running (units
		// left active): make sure they are stopped, once.
		f.deactivate(ctx, cause+"; stopping the services found running", epoch)
		return 0, false
	}
	return 0, true // unreachable, activating, not seen yet, or nothing to change
}

// move audits a transition, then makes it visible: whoever sees the new
// status finds its audit entry. Only the reconciler moves the status.
func (f *Follower) move(e api.AuditEntry) {
	f.record(e)
	f.setStatus(e.To, e.Cause)
}

func (f *Follower) current() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

// setStatus moves the follower's own status and returns the transition.
func (f *Follower) setStatus(to, cause string) (from string) {
	f.mu.Lock()
	from = f.status
	now := time.Now()
	f.status, f.since = to, now
	f.last = &api.Transition{From: from, To: to, Cause: cause, At: now.UTC()}
	// Under the lock: whoever reads the status finds the metric already
	// saying so, and two moves cannot set the metric in the other order.
	f.metrics.setStatus(to)
	f.mu.Unlock()
	if from != to {
		f.log.Info("status", "from", from, "to", to, "cause", cause)
	}
	return from
}

// activate starts the services; a failure rolls back (services stopped,
// Inactive) and schedules a retry with backoff.
func (f *Follower) activate(ctx context.Context, cause string, epoch uint64) {
	from := f.current()
	f.move(api.AuditEntry{Action: "start services", Cause: cause, Outcome: api.OutcomeOK, Epoch: epoch,
		From: from, To: api.StatusActivating})
	err := f.sup.Start(ctx)
	if ctx.Err() != nil {
		// Shutting down: the services stay as they are.
		f.setStatus(from, "shutdown during the start")
		return
	}
	if err == nil {
		f.mu.Lock()
		f.failures, f.retryAt, f.lastErr = 0, time.Time{}, ""
		f.mu.Unlock()
		f.move(api.AuditEntry{Action: "activated", Cause: "services started", Outcome: api.OutcomeOK, Epoch: epoch,
			From: api.StatusActivating, To: api.StatusActive})
		return
	}
	rollback := f.sup.Stop(ctx)
	f.mu.Lock()
	f.failures++
	wait := retryBackoff(f.failures)
	f.retryAt = time.Now().Add(wait)
	f.lastErr = err.Error()
	f.mu.Unlock()
	detail := err.Error()
	if rollback != nil {
		detail += "; rollback: " + rollback.Error()
	}
	f.move(api.AuditEntry{Action: "activated", Cause: "start failed, services stopped again", Detail: detail,
		Outcome: api.OutcomeFailed, Epoch: epoch, From: api.StatusActivating, To: api.StatusInactive})
	f.log.Warn("start failed; retrying while the paired node stays active", "retry_in", wait, "error", err)
}

// deactivate stops the services. A stop that fails leaves the follower
// Inactive with the error: the node is not Active, so neither is it.
func (f *Follower) deactivate(ctx context.Context, cause string, epoch uint64) {
	from := f.current()
	f.move(api.AuditEntry{Action: "stop services", Cause: cause, Outcome: api.OutcomeOK, Epoch: epoch,
		From: from, To: api.StatusDeactivating})
	err := f.sup.Stop(ctx)
	if ctx.Err() != nil {
		f.setStatus(from, "shutdown during the stop")
		return
	}
	f.mu.Lock()
	f.failures, f.retryAt, f.swept = 0, time.Time{}, true
	f.lastErr = ""
	if err != nil {
		f.lastErr = err.Error()
	}
	f.mu.Unlock()
	e := api.AuditEntry{Action: "deactivated", Cause: "services stopped", Outcome: api.OutcomeOK, Epoch: epoch,
		From: api.StatusDeactivating, To: api.StatusInactive}
	if err != nil {
		e.Cause, e.Outcome, e.Detail = "services stopped with errors", api.OutcomeFailed, err.Error()
		f.log.Warn("stop failed", "error", fmt.Errorf("stop: %w", err))
	}
	f.move(e)
}
