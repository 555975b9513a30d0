package node

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/hooks"
)

// The long work of a transition, run by a worker goroutine, and the hooks.

// runWork carries out the long actions of one transition in order, then
// reports the completion to the loop. Before starting the services it runs
// the before_activate hooks: a veto is reported as a failed start, so the
// core rolls back as it does for any failed start.
func (n *Node) runWork(ctx context.Context, work []resilience.Action, t hooks.Transition) {
	for _, a := range work {
		var done resilience.Event
		vetoed := false
		switch a.(type) {
		case resilience.UnregisterSIP:
			if n.d.Registrar != nil {
				uctx, cancel := context.WithTimeout(ctx, n.d.UnregisterTimeout)
				if err := n.d.Registrar.Deactivate(uctx); err != nil {
					// Never blocks the node's own transition.
					n.log.Warn("sip unregistration incomplete", "err", err)
				}
				cancel()
			}
			continue
		case resilience.StartServices:
			if err := n.hooks.Before(ctx, t); err != nil {
				done, vetoed = resilience.ServicesStarted{Err: err.Error()}, true
				break
			}
			done = resilience.ServicesStarted{Err: errText(n.d.Services.Start(ctx))}
		case resilience.StopServices:
			done = resilience.ServicesStopped{Err: errText(n.d.Services.Stop(ctx))}
		}
		select {
		case n.msgs <- workDone{ev: done, vetoed: vetoed}:
		case <-ctx.Done():
		}
	}
}

// transition is what the hooks are told of the transition that the record
// r (with audit ID id) begins.
func (n *Node) transition(id uint64, r resilience.Record) hooks.Transition {
	to := resilience.Active
	if r.To == resilience.Deactivating {
		to = resilience.Inactive
	}
	tid := strconv.FormatUint(id, 10)
	if id == 0 { // the audit log could not take the entry
		// Unique, not a time reading: the real clock, even under a fake one.
		tid = fmt.Sprintf("%d-%d", r.Epoch, time.Now().UnixNano())
	}
	return hooks.Transition{ID: tid, Node: n.d.Core.Name, Role: string(n.d.Core.Role), Mode: string(n.d.Core.Mode),
		From: string(r.From), To: string(to), Epoch: r.Epoch, Cause: r.Cause}
}

// hookFailed audits an after hook that failed; the status stays as it is.
func (n *Node) hookFailed(p hooks.Phase, t hooks.Transition, f *hooks.Failure) {
	s := n.Status()
	detail := f.Status
	if f.Output != "" {
		detail += "; output: " + f.Output
	}
	n.record(resilience.Record{Who: resilience.Self, Action: "hook", Outcome: resilience.OutcomeFailed,
		Cause:  fmt.Sprintf("%s hook %s failed (transition %s: %s -> %s, epoch %d)", p, f.Hook, t.ID, t.From, t.To, t.Epoch),
		Detail: detail, Epoch: s.Epoch, From: resilience.Status(s.Status), To: resilience.Status(s.Status)})
}

// SetHooks replaces the hooks (a config reload): the next transitions run
// the new ones. Safe from any goroutine.
func (n *Node) SetHooks(s hooks.Set) { n.hooks.SetHooks(s) }

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
