package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
)

// An admin's commands on this node and, forwarded, on its peer.

// StartServices is an admin's Start services: refused (409) while the peer
// is seen Active unless forced; blocks until the node is Active, the start
// failed and was rolled back, or ctx ends.
func (n *Node) StartServices(ctx context.Context, who string, req api.StartRequest) (api.Status, error) {
	return n.startServices(ctx, who, req, "")
}

// startServices is StartServices; rollback names the switchover whose
// rollback this start is (the hold of that switchover lets it through).
func (n *Node) startServices(ctx context.Context, who string, req api.StartRequest, rollback string) (api.Status, error) {
	if strings.TrimSpace(req.Reason) == "" {
		return api.Status{}, fmt.Errorf("%w: reason is required", resilience.ErrInvalid)
	}
	// A fresh view of the peer: the two-Active guard is only as good as it.
	var view resilience.PeerView
	if n.d.Peer != nil {
		p := n.fetchPeer(ctx)
		n.setPeer(p)
		view = n.peerView(p)
	}
	return n.command(ctx, "start services", resilience.Active,
		resilience.AdminStart{Who: who, Reason: req.Reason, Force: req.Force, Peer: view, Rollback: rollback})
}

// StopServices is an admin's Stop services; blocks until the node is
// Inactive or ctx ends.
func (n *Node) StopServices(ctx context.Context, who string, req api.StopRequest) (api.Status, error) {
	if strings.TrimSpace(req.Reason) == "" {
		return api.Status{}, fmt.Errorf("%w: reason is required", resilience.ErrInvalid)
	}
	return n.command(ctx, "stop services", resilience.Inactive, resilience.AdminStop{Who: who, Reason: req.Reason})
}

func (n *Node) command(ctx context.Context, name string, want resilience.Status, ev resilience.Event) (api.Status, error) {
	select {
	case <-n.ready:
	case <-n.stopped:
		return api.Status{}, errStopped
	case <-ctx.Done():
		return api.Status{}, ctx.Err()
	}
	reply := make(chan commandReply, 1)
	select {
	case n.msgs <- command{ev: ev, reply: reply}:
	case <-n.stopped:
		return api.Status{}, errStopped
	case <-ctx.Done():
		return api.Status{}, ctx.Err()
	}
	r := <-reply
	if r.err != nil {
		outcome := resilience.OutcomeRefused
		if errors.Is(r.err, resilience.ErrNotDurable) {
			outcome = resilience.OutcomeFailed
		}
		n.metrics.commands.WithLabelValues(name, outcome).Inc()
		return n.Status(), r.err
	}
	if r.wait != nil {
		select {
		case <-n.stopped:
			return n.Status(), errStopped
		case o := <-r.wait:
			if want != "" && o.status != want {
				n.metrics.commands.WithLabelValues(name, resilience.OutcomeFailed).Inc()
				return n.Status(), fmt.Errorf("%w: %s: %s", resilience.ErrFailed, name, o.rec.Cause)
			}
		case <-ctx.Done():
			// The transition goes on; the caller sees where it stands.
			return n.Status(), nil
		}
	}
	n.metrics.commands.WithLabelValues(name, resilience.OutcomeOK).Inc()
	return n.Status(), nil
}

// PeerStatus asks the peer for its full status now, so one page can show
// both nodes side by side.
func (n *Node) PeerStatus(ctx context.Context) (api.Status, error) {
	if n.d.Peer == nil {
		return api.Status{}, fmt.Errorf("%w: no peer configured", resilience.ErrPrecondition)
	}
	return n.d.Peer.Status(ctx)
}

// PeerAuditClient is a PeerClient that reads the peer's audit log
// (*client.Client is one): PeerAudit needs it.
type PeerAuditClient interface {
	Audit(ctx context.Context, limit int, before uint64) ([]api.AuditEntry, error)
}

// PeerAudit reads up to limit entries of the peer's audit log, newest
// first, for the pair timeline. No peer, or a peer client that cannot read
// it, is ErrPrecondition.
func (n *Node) PeerAudit(ctx context.Context, limit int) ([]api.AuditEntry, error) {
	if n.d.Peer == nil {
		return nil, fmt.Errorf("%w: no peer configured", resilience.ErrPrecondition)
	}
	pa, ok := n.d.Peer.(PeerAuditClient)
	if !ok {
		return nil, fmt.Errorf("%w: this node's peer client cannot read the peer's audit log", resilience.ErrPrecondition)
	}
	return pa.Audit(ctx, limit, 0)
}

// PeerStartServices and PeerStopServices forward an admin command to the
// peer, so the admin fails over from one place. The peer applies its own
// rules (its two-Active guard included) and audits the command under the
// token's actor name, which the wiring sets to "<this node's name>"; who is
// recorded here.
func (n *Node) PeerStartServices(ctx context.Context, who string, req api.StartRequest) (api.Status, error) {
	if n.d.Peer == nil {
		return api.Status{}, fmt.Errorf("%w: no peer configured", resilience.ErrPrecondition)
	}
	st, err := n.d.Peer.StartServices(ctx, req)
	n.recordForward(who, "start services on peer", req.Reason, err)
	return st, err
}

// PeerStopServices: see PeerStartServices.
func (n *Node) PeerStopServices(ctx context.Context, who string, req api.StopRequest) (api.Status, error) {
	if n.d.Peer == nil {
		return api.Status{}, fmt.Errorf("%w: no peer configured", resilience.ErrPrecondition)
	}
	st, err := n.d.Peer.StopServices(ctx, req)
	n.recordForward(who, "stop services on peer", req.Reason, err)
	return st, err
}

// Note records an event of a part of the node that the core does not
// decide (an MDS registration lost or regained, for instance) in the audit
// log, and publishes the status it changed. Safe from any goroutine.
func (n *Node) Note(action, outcome, cause, detail string) {
	s := n.Status()
	n.record(resilience.Record{Who: resilience.Self, Action: action, Cause: cause, Outcome: outcome, Detail: detail,
		Epoch: s.Epoch, From: resilience.Status(s.Status), To: resilience.Status(s.Status)})
	n.publishStatus()
}

func (n *Node) recordForward(who, action, reason string, err error) {
	outcome, detail := resilience.OutcomeOK, ""
	if err != nil {
		outcome, detail = resilience.OutcomeFailed, err.Error()
	}
	s := n.Status()
	n.record(resilience.Record{Who: who, Action: action, Reason: reason, Cause: "forwarded to peer " + n.d.PeerName,
		Outcome: outcome, Detail: detail, Epoch: s.Epoch, From: resilience.Status(s.Status), To: resilience.Status(s.Status)})
}
