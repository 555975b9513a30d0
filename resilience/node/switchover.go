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
		return n.Status(), fmt.Errorf("%w: switchover refused: %s", resilience.ErrPrecondition, strings.Join(missing, "; "))
	}
	note(resilience.OutcomeOK, fmt.Sprintf("begins: from this node to %s (sync: %t)", peerName, req.Sync), "")

	if req.Sync {
		if _, err := n.d.ReplSender.RunAll(ctx); err != nil {
			note(resilience.OutcomeFailed, "the final sync failed: nothing was changed", err.Error())
			return n.Status(), fmt.Errorf("%w: switchover %s: the final sync failed, nothing was changed: %v", resilience.ErrFailed, id, err)
		}
		note(resilience.OutcomeOK, "final sync done", "")
	}
	if n.d.Drain != nil {
		note(resilience.OutcomeOK, "draining: waiting until no call is active", "")
		if err := n.d.Drain(ctx); err != nil {
			note(resilience.OutcomeFailed, "the drain check did not pass: nothing was changed", err.Error())
			return n.Status(), fmt.Errorf("%w: switchover %s: calls are still active, nothing was changed: %v", resilience.ErrFailed, id, err)
		}
		note(resilience.OutcomeOK, "drained", "")
	}
	// From the stop on, the switchover runs to its end (done or rolled
	// back) even when the caller stops waiting: a caller gone must not
	// leave both nodes stopped, nor this one held.
	ctx = context.WithoutCancel(ctx)
	if _, err := n.command(ctx, "switchover", resilience.Inactive, resilience.SwitchoverStop{Who: who, Reason: req.Reason, ID: id}); err != nil {
		note(resilience.OutcomeFailed, "stopping here failed", err.Error())
		// Release the hold, should the stop have taken one (a no-op
		// otherwise).
		n.endSwitchover(ctx, id)
		return n.Status(), err
	}
	// Every way out from here ends the switchover, once the peer started
	// or this node's rollback ended: the hold that kept this node from
	// taking the Active role back meanwhile is released.
	end := func(err error) (api.Status, error) {
		n.endSwitchover(ctx, id)
		return n.Status(), err
	}
	ps, err := n.d.Peer.StartServices(ctx, api.StartRequest{Reason: fmt.Sprintf("switchover %s from %s: %s", id, n.d.Core.Name, req.Reason)})
	if err != nil {
		note(resilience.OutcomeFailed, fmt.Sprintf("%s did not start; starting here again", peerName), err.Error())
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
				note(resilience.OutcomeOK, fmt.Sprintf("done after all: %s is Active (epoch %d)", peerName, now.Epoch), "")
				return end(nil)
			}
		}
		if rerr != nil {
			note(resilience.OutcomeFailed, "the rollback failed too: check both nodes", rerr.Error())
			return end(fmt.Errorf("%w: switchover %s: %s did not start (%v) and the rollback failed: %v",
				resilience.ErrFailed, id, peerName, err, rerr))
		}
		note(resilience.OutcomeOK, "rolled back: this node is Active again", "")
		return end(fmt.Errorf("%w: switchover %s rolled back: %s did not start: %v; this node is Active again",
			resilience.ErrFailed, id, peerName, err))
	}
	note(resilience.OutcomeOK, fmt.Sprintf("done: %s is %s (epoch %d)", peerName, ps.Status, ps.Epoch), "")
	return end(nil)
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
