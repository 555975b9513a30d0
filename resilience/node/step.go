package node

import (
	"context"
	"fmt"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/hooks"
)

// step: one event fed to the core, its actions carried out, the status
// snapshot and the waiters updated.

// step feeds one event to the core and carries out its actions. Only the
// loop goroutine calls it.
func (n *Node) step(ctx context.Context, ev resilience.Event) error {
	before := n.m.Status()
	acts, err := n.m.Step(ev)
	var work []resilience.Action
	var last resilience.Record
	failedPersist := false
	for i := 0; i < len(acts); i++ {
		switch a := acts[i].(type) {
		case resilience.Persist:
			// Durable before the next action runs; if it cannot be, none
			// of the actions after it run, only what the core answers to
			// PersistFailed.
			if failedPersist {
				n.log.Error("a second decision to persist after a failed one: not persisted", "decision", a.Saved)
				continue
			}
			perr := n.d.saveState(n.statePath(), a.Saved, n.now())
			if perr == nil {
				continue
			}
			failedPersist = true
			var facts []resilience.Action
			facts, err = n.notDurable(ev, a, perr)
			acts = append(acts[:i+1:i+1], facts...)
		case resilience.Record:
			last = a
			if a.Outcome == resilience.OutcomeFailed && a.From != a.To {
				// A failed transition (not a refusal, not a decision that
				// could not be persisted): the waiters are told its cause.
				n.failure = &a
			}
			id := n.record(a)
			if a.From != a.To && (a.To == resilience.Activating || a.To == resilience.Deactivating) {
				n.trans = n.transition(id, a)
			}
		case resilience.RegisterSIP:
			if n.d.Registrar != nil {
				// The core activates only when the peer is not Active or
				// is outranked: a peer contact still at an MDS is a
				// leftover (a peer killed while Active, or stepping down),
				// to remove once this node is registered.
				if rp, ok := n.d.Registrar.(interface{ RemovePeer() }); ok {
					rp.RemovePeer()
				}
				n.d.Registrar.Activate(a.Epoch)
			}
		case resilience.UnregisterSIP, resilience.StartServices, resilience.StopServices:
			work = append(work, a)
		}
	}
	after := n.m.Status()
	n.observeTiming(before, after, last)
	n.mu.Lock()
	n.snap.status, n.snap.epoch = after, n.m.Epoch()
	n.snap.unhealthy = n.m.Unhealthy()
	n.snap.holding, n.snap.adminHold = n.m.Holding(), n.m.AdminHold()
	n.snap.persistErr, n.snap.switchover = n.m.PersistError(), n.m.Switchover()
	var foStarted *time.Time
	foEnded := false
	switch ft := n.m.FailoverTicks(); {
	case ft == 0:
		foEnded = n.snap.failoverUntil != nil
		n.snap.failoverUntil = nil
	case n.snap.failoverUntil == nil:
		until := n.now().Add(time.Duration(ft) * n.d.TickEvery).UTC().Truncate(time.Second)
		n.snap.failoverUntil, foStarted = &until, &until
	}
	n.snap.failbackAt = n.deadline(n.snap.failbackAt, n.m.FailbackTicks())
	n.snap.bootGraceUntil = n.deadline(n.snap.bootGraceUntil, n.m.BootGraceTicks())
	if after != before {
		n.snap.since = n.now()
		cause := last.Cause
		if f := n.failure; f != nil && f.Cause != last.Cause && (after == resilience.Active || after == resilience.Inactive) {
			// The end of a rolled-back start: say what failed, not only
			// that the services stopped.
			cause = f.Cause + "; then " + last.Cause
		}
		n.snap.last = &api.Transition{From: string(before), To: string(after), Cause: cause, At: n.snap.since}
	}
	n.mu.Unlock()
	switch {
	case foStarted != nil:
		n.markFailover(*foStarted)
	case foEnded:
		n.markFailover(time.Time{})
	}
	n.metrics.setStatus(after, n.m.Epoch())
	if before == resilience.Inactive && after != resilience.Inactive && n.d.ReplReceiver != nil {
		// The snapshot says `after`: the receiver refuses from now on.
		// End the transfers begun while Inactive before any service
		// starts: a long run from the old Main must not write here once
		// this node serves calls. Outside n.mu: the receiver's Accept
		// reads the status.
		n.d.ReplReceiver.EndSessions("this node is " + string(after))
	}
	if n.auto() {
		n.announce()
	}
	// The after hooks are queued before the work of a next transition can
	// queue its before hooks: the hooks run in this order.
	if after != before {
		switch after {
		case resilience.Active:
			n.hooks.After(ctx, hooks.AfterActivate, n.trans)
			n.vetoed = false
		case resilience.Inactive:
			if !n.vetoed {
				n.hooks.After(ctx, hooks.AfterDeactivate, n.trans)
			}
			n.vetoed = false
		}
	}
	if len(work) > 0 {
		go n.runWork(ctx, work, n.trans)
	}
	if after != before && (after == resilience.Active || after == resilience.Inactive) {
		if n.failure != nil {
			last = *n.failure
		}
		for _, w := range n.waiters {
			w <- outcome{status: after, rec: last}
		}
		n.waiters, n.failure = nil, nil
	}
	n.publishStatus()
	return err
}

// notDurable reports to the core that the decision p of the Step fed ev
// could not be persisted (perr), and returns the actions the core answers
// with (they replace the rest of the Step's) and the error for an admin
// command, which wraps resilience.ErrNotDurable when the decision was
// taken back. Loop only.
func (n *Node) notDurable(ev resilience.Event, p resilience.Persist, perr error) ([]resilience.Action, error) {
	n.log.Error("cannot persist the decision: not acting on it", "err", perr,
		"decision", fmt.Sprintf("%s (epoch %d)", p.Saved.Status, p.Saved.Epoch), "event", resilience.FormatEvent(ev))
	facts, err := n.m.Step(resilience.PersistFailed{Err: perr.Error()})
	if err == nil && len(facts) == 0 {
		// Nothing to take back, nothing to do: the decision stands, not
		// durable; the caller must still hear of it.
		err = fmt.Errorf("%w: %v", resilience.ErrNotDurable, perr)
	}
	return facts, err
}

// record writes r to the audit log and returns its ID, 0 when it could
// not be written.
func (n *Node) record(r resilience.Record) uint64 {
	e, err := n.d.Audit.Append(api.AuditEntry{
		Who: r.Who, Action: r.Action, Reason: r.Reason, Cause: r.Cause, Outcome: r.Outcome,
		Detail: r.Detail, Epoch: r.Epoch, From: string(r.From), To: string(r.To),
	})
	if err != nil {
		n.log.Error("cannot write the audit log", "err", err, "action", r.Action, "who", r.Who)
		msg := err.Error()
		n.auditErr.Store(&msg)
		return 0
	}
	n.auditErr.Store(nil)
	if r.From != r.To {
		n.metrics.transitions.WithLabelValues(string(r.From), string(r.To), r.Outcome).Inc()
	}
	n.log.Info("audit", "who", r.Who, "action", r.Action, "outcome", r.Outcome, "from", r.From, "to", r.To,
		"epoch", r.Epoch, "cause", r.Cause, "reason", r.Reason)
	n.hub.publish(api.Event{Name: api.EventAudit, Data: e})
	return e.ID
}

// observeTiming feeds the activation and failover histograms. Loop only.
func (n *Node) observeTiming(before, after resilience.Status, last resilience.Record) {
	now := n.now()
	switch {
	case before != resilience.Activating && after == resilience.Activating:
		n.activatingAt, n.activatingAction = now, last.Action
	case before == resilience.Activating && after == resilience.Active && !n.activatingAt.IsZero():
		n.metrics.activation.WithLabelValues(n.activatingAction).Observe(now.Sub(n.activatingAt).Seconds())
		if n.activatingAction == "failover" && !n.peerLostAt.IsZero() {
			n.metrics.failover.Observe(now.Sub(n.peerLostAt).Seconds())
		}
	}
}

// announce gossips this node's meta when it changed. Loop goroutine only.
func (n *Node) announce() {
	m := cluster.Meta{
		Name: n.d.Core.Name, Role: string(n.d.Core.Role), Status: string(n.m.Status()), Version: n.d.Version,
		Epoch: n.m.Epoch(), Healthy: len(n.m.Unhealthy()) == 0, Holding: n.m.Holding(), HeldByAdmin: n.m.AdminHold(),
	}
	m.Calls, m.CallsKnown = n.m.Calls()
	n.mu.RLock()
	if u := n.snap.failoverUntil; u != nil {
		m.FailoverUntil = u.Unix()
	}
	n.mu.RUnlock()
	if m.Equal(n.meta) {
		return
	}
	n.meta = m
	n.d.Membership.SetMeta(m)
}

// deadline turns ticks left into the instant they end, to the second. It
// keeps cur while that is still within a second of it: recomputed at every
// tick, it would change the status (and send an event) each time.
func (n *Node) deadline(cur *time.Time, ticks int) *time.Time {
	if ticks <= 0 {
		return nil
	}
	at := n.now().Add(time.Duration(ticks) * n.d.TickEvery).UTC().Truncate(time.Second)
	if cur != nil && at.Sub(*cur).Abs() <= time.Second {
		return cur
	}
	return &at
}
