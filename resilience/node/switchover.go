package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/replication"
)

// The planned switchover, run on the Active node.

// Switchover is a planned, ordered swap of the Active side, run on the
// Active node: it checks every precondition (and lists what is missing),
// runs a final replication when asked, stops here, then starts the peer;
// if the peer does not start, it starts here again and reports the
// rollback. Each step is audited under one switchover id.
func (n *Node) Switchover(ctx context.Context, who string, req api.SwitchoverRequest) (api.Status, error) {
	if strings.TrimSpace(req.Reason) == "" {
		return api.Status{}, fmt.Errorf("%w: reason is required", resilience.ErrInvalid)
	}
	id := switchoverID()
	peerName := n.d.PeerName
	steps := []string{api.StepPreconditions}
	if req.Sync {
		steps = append(steps, api.StepSync)
	}
	if n.d.Drain != nil {
		steps = append(steps, api.StepDrain)
	}
	sp := &n.switchover
	sp.begin(id, peerName, who, req.Reason, append(steps, api.StepStop, api.StepStartPeer, api.StepVerify))
	sp.step(api.StepPreconditions, api.StepRunning, "")
	var missing []string
	if self := n.Status(); self.Status != string(resilience.Active) {
		missing = append(missing, fmt.Sprintf("a switchover runs on the Active node; this node is %s", self.Status))
	}
	if n.d.Peer == nil {
		missing = append(missing, "no peer is configured")
	} else {
		pctx, cancel := context.WithTimeout(ctx, n.d.PeerTimeout)
		ps, err := n.d.Peer.Status(pctx)
		cancel()
		switch {
		case err != nil:
			missing = append(missing, fmt.Sprintf("peer %s's API does not answer: %v", peerName, err))
		case resilience.ValidEpoch(ps.Epoch) != nil:
			missing = append(missing, fmt.Sprintf("peer %s's status cannot be read: %v", peerName, resilience.ValidEpoch(ps.Epoch)))
		case ps.Status != string(resilience.Inactive):
			missing = append(missing, fmt.Sprintf("peer %s is %s, not Inactive", peerName, ps.Status))
		case resilience.Major(ps.Version) != resilience.Major(n.d.Version):
			missing = append(missing, fmt.Sprintf("peer %s runs version %s, another major than ours (%s)", peerName, ps.Version, n.d.Version))
		}
	}
	if req.Sync && n.d.ReplSender == nil {
		missing = append(missing, "a sync was asked but no replication job is configured")
	}
	note := func(outcome, cause, detail string) {
		s := n.Status()
		n.record(resilience.Record{Who: who, Action: "switchover", Reason: req.Reason, Cause: fmt.Sprintf("switchover %s: %s", id, cause),
			Outcome: outcome, Detail: detail, Epoch: s.Epoch, From: resilience.Status(s.Status), To: resilience.Status(s.Status)})
	}
	if len(missing) > 0 {
		note(resilience.OutcomeRefused, "refused", strings.Join(missing, "; "))
		sp.step(api.StepPreconditions, api.StepFailed, strings.Join(missing, "; "))
		sp.end(api.SwitchoverRefused)
		return n.Status(), fmt.Errorf("%w: switchover refused: %s", resilience.ErrPrecondition, strings.Join(missing, "; "))
	}
	sp.step(api.StepPreconditions, api.StepDone, "")
	note(resilience.OutcomeOK, fmt.Sprintf("begins: from this node to %s (sync: %t)", peerName, req.Sync), "")
	// failed ends the switchover at a step before the stop: nothing changed.
	failed := func(step, cause string, err error) {
		note(resilience.OutcomeFailed, cause, err.Error())
		sp.step(step, api.StepFailed, err.Error())
		sp.end(api.SwitchoverFailed)
	}

	if req.Sync {
		sp.step(api.StepSync, api.StepRunning, "")
		res, err := n.d.ReplSender.RunAll(ctx)
		if err != nil {
			failed(api.StepSync, "the final sync failed: nothing was changed", err)
			return n.Status(), fmt.Errorf("%w: switchover %s: the final sync failed, nothing was changed: %v", resilience.ErrFailed, id, err)
		}
		sp.step(api.StepSync, api.StepDone, syncSummary(res))
		note(resilience.OutcomeOK, "final sync done", "")
	}
	if n.d.Drain != nil {
		note(resilience.OutcomeOK, "draining: waiting until no call is active", "")
		sp.step(api.StepDrain, api.StepRunning, "waiting until no call is active")
		if err := n.d.Drain(ctx); err != nil {
			failed(api.StepDrain, "the drain check did not pass: nothing was changed", err)
			return n.Status(), fmt.Errorf("%w: switchover %s: calls are still active, nothing was changed: %v", resilience.ErrFailed, id, err)
		}
		sp.step(api.StepDrain, api.StepDone, "no call is active")
		note(resilience.OutcomeOK, "drained", "")
	}
	// From the stop on, the switchover runs to its end (done or rolled
	// back) even when the caller stops waiting: a caller gone must not
	// leave both nodes stopped, nor this one held.
	ctx = context.WithoutCancel(ctx)
	sp.step(api.StepStop, api.StepRunning, "")
	if _, err := n.command(ctx, "switchover", resilience.Inactive, resilience.SwitchoverStop{Who: who, Reason: req.Reason, ID: id}); err != nil {
		failed(api.StepStop, "stopping here failed", err)
		// Release the hold, should the stop have taken one (a no-op
		// otherwise).
		n.endSwitchover(ctx, id)
		return n.Status(), err
	}
	// Every way out from here ends the switchover, once the peer started
	// or this node's rollback ended: the hold that kept this node from
	// taking the Active role back meanwhile is released.
	end := func(outcome string, err error) (api.Status, error) {
		n.endSwitchover(ctx, id)
		sp.end(outcome)
		return n.Status(), err
	}
	sp.step(api.StepStop, api.StepDone, "")
	sp.step(api.StepStartPeer, api.StepRunning, "")
	ps, err := n.d.Peer.StartServices(ctx, api.StartRequest{Reason: fmt.Sprintf("switchover %s from %s: %s", id, n.d.Core.Name, req.Reason)})
	if err != nil {
		note(resilience.OutcomeFailed, fmt.Sprintf("%s did not start; starting here again", peerName), err.Error())
		sp.step(api.StepStartPeer, api.StepFailed, err.Error())
		sp.step(api.StepRollback, api.StepRunning, "starting this node again")
		// The only start the hold lets through: this switchover's own
		// rollback.
		_, rerr := n.startServices(ctx, who, api.StartRequest{Reason: "rollback of switchover " + id}, id)
		if errors.Is(rerr, resilience.ErrConflict) {
			// Refused because the peer claims Active: it may have answered
			// late but started. Done only if it is Active now.
			pctx, cancel := context.WithTimeout(ctx, n.d.PeerTimeout)
			now, serr := n.d.Peer.Status(pctx)
			cancel()
			if serr == nil && now.Status == string(resilience.Active) && resilience.ValidEpoch(now.Epoch) == nil {
				done := fmt.Sprintf("%s is Active after all (epoch %d)", peerName, now.Epoch)
				note(resilience.OutcomeOK, "done after all: "+done, "")
				sp.step(api.StepRollback, api.StepSkipped, "refused: "+done)
				sp.step(api.StepStartPeer, api.StepDone, "its answer was lost; "+done)
				sp.step(api.StepVerify, api.StepDone, done)
				return end(api.SwitchoverDone, nil)
			}
		}
		if rerr != nil {
			note(resilience.OutcomeFailed, "the rollback failed too: check both nodes", rerr.Error())
			sp.step(api.StepRollback, api.StepFailed, rerr.Error()+": check both nodes")
			return end(api.SwitchoverFailed, fmt.Errorf("%w: switchover %s: %s did not start (%v) and the rollback failed: %v",
				resilience.ErrFailed, id, peerName, err, rerr))
		}
		note(resilience.OutcomeOK, "rolled back: this node is Active again", "")
		sp.step(api.StepRollback, api.StepDone, "this node is Active again")
		return end(api.SwitchoverRolledBack, fmt.Errorf("%w: switchover %s rolled back: %s did not start: %v; this node is Active again",
			resilience.ErrFailed, id, peerName, err))
	}
	sp.step(api.StepStartPeer, api.StepDone, fmt.Sprintf("%s answered %s (epoch %d)", peerName, ps.Status, ps.Epoch))
	note(resilience.OutcomeOK, fmt.Sprintf("done: %s is %s (epoch %d)", peerName, ps.Status, ps.Epoch), "")
	sp.step(api.StepVerify, api.StepRunning, "")
	n.endSwitchover(ctx, id)
	n.verifySwitchover(n.Status())
	sp.end(api.SwitchoverDone)
	return n.Status(), nil
}

// verifySwitchover checks, once the switchover released this node, that this node and
// its peer (as freshly read by endSwitchover) say what a done switchover
// means: the peer Active at a higher epoch, this node Inactive.
func (n *Node) verifySwitchover(st api.Status) {
	sp := &n.switchover
	switch p := st.Peer; {
	case p == nil || !p.Reachable || p.Error != "":
		sp.step(api.StepVerify, api.StepFailed, "the peer's status cannot be read now: look at its page")
	case p.Status != string(resilience.Active) || p.Epoch <= st.Epoch || st.Status != string(resilience.Inactive):
		sp.step(api.StepVerify, api.StepFailed, fmt.Sprintf("%s is %s (epoch %d), this node %s (epoch %d)",
			p.Name, p.Status, p.Epoch, st.Status, st.Epoch))
	default:
		sp.step(api.StepVerify, api.StepDone, fmt.Sprintf("%s is Active (epoch %d), this node Inactive", p.Name, p.Epoch))
	}
}

// syncSummary says what a final sync did.
func syncSummary(res []replication.Result) string {
	files, changed := 0, 0
	for _, r := range res {
		files += r.FilesSent
		changed += r.FilesChanged
	}
	jobs := "jobs"
	if len(res) == 1 {
		jobs = "job"
	}
	return fmt.Sprintf("%d %s: %d files sent, %d changed on the peer", len(res), jobs, files, changed)
}

// endSwitchover tells the core that switchover id has ended, so the hold
// it put on this node is released (a no-op when already released, e.g.
// by this node's rollback start).
func (n *Node) endSwitchover(ctx context.Context, id string) {
	// A fresh view of the peer goes with it: gossip may still show the
	// peer as it was before the switchover started it, and this node,
	// released, would act on that.
	p := n.fetchPeer(ctx)
	n.setPeer(p)
	if _, err := n.command(ctx, "switchover end", "", resilience.SwitchoverEnded{ID: id, Peer: n.peerView(p)}); err != nil && !errors.Is(err, errStopped) {
		n.log.Error("cannot end the switchover: this node holds until resman restarts", "switchover", id, "err", err)
	}
}

// switchoverID names one switchover in the audit log.
func switchoverID() string {
	b := make([]byte, 3)
	rand.Read(b)
	return "sw-" + hex.EncodeToString(b)
}
