package node

import (
	"context"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
)

// Reading the peer's API: the manual mode's poll and the admin commands' fresh reads.

// pollPeer reads the peer's status every PeerEvery until ctx ends.
func (n *Node) pollPeer(ctx context.Context) {
	ticks, stop := n.d.clock.NewTicker(n.d.PeerEvery)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		p := n.fetchPeer(ctx)
		select {
		case n.msgs <- peerSeen{peer: p}:
		case <-ctx.Done():
			return
		}
	}
}

func (n *Node) fetchPeer(ctx context.Context) api.Peer {
	p := api.Peer{Name: n.d.PeerName, URL: n.d.PeerURL, CheckedAt: n.now().UTC()}
	if n.d.Peer == nil {
		return p
	}
	cctx, cancel := context.WithTimeout(ctx, n.d.PeerTimeout)
	defer cancel()
	st, err := n.d.Peer.Status(cctx)
	switch {
	case err == nil && resilience.ValidEpoch(st.Epoch) != nil:
		// An answer, but not one to act on: it counts as a peer that
		// answers and cannot be read (possibly Active).
		p.Reachable, p.Error = true, "the peer's answer cannot be read: "+resilience.ValidEpoch(st.Epoch).Error()
		n.warnAbsurdEpoch("api", st.Epoch)
	case err == nil:
		p.Reachable, p.Status, p.Epoch, p.Version = true, st.Status, st.Epoch, st.Version
		p.Healthy, p.Holding, p.HeldByAdmin = st.Healthy, st.Failover.Holding, st.Failover.HeldByAdmin
	case n.d.IsUnreachable(err):
		p.Error = err.Error()
	default:
		p.Reachable, p.Error = true, err.Error()
	}
	return p
}

// warnAbsurdEpoch logs a peer's epoch refused as absurd, once per source
// and value: the poller would repeat it every few seconds.
func (n *Node) warnAbsurdEpoch(source string, epoch uint64) {
	n.absurdMu.Lock()
	seen := n.absurd[source] == epoch
	if n.absurd == nil {
		n.absurd = map[string]uint64{}
	}
	n.absurd[source] = epoch
	n.absurdMu.Unlock()
	if !seen {
		n.log.Warn("peer's status refused: its epoch is absurd; the peer counts as answering but unreadable",
			"peer", n.d.PeerName, "via", source, "epoch", epoch, "err", resilience.ValidEpoch(epoch))
	}
}

func (n *Node) setPeer(p api.Peer) {
	n.metrics.peerUp.Set(boolGauge(p.Reachable && p.Error == ""))
	n.mu.Lock()
	n.snap.peer = &p
	n.snap.peerHealth = p.Healthy
	n.mu.Unlock()
}

func (n *Node) peerView(p api.Peer) resilience.PeerView {
	if n.d.Peer == nil {
		return resilience.PeerView{}
	}
	// A whole view, from gossip or from the API alike: an admin's Start
	// steps with a view from the API, and a view without the peer's hold
	// once made a Standby step down for failback to a Main that held.
	readable := p.Reachable && p.Error == ""
	v := resilience.PeerView{
		Name: p.Name, Reachable: p.Reachable, Unreadable: p.Reachable && p.Error != "",
		Status: resilience.Status(p.Status), Epoch: p.Epoch,
		Holding: readable && p.Holding, Unhealthy: readable && !p.Healthy,
		Why: p.LostWhy,
	}
	if readable && p.Calls != nil {
		v.Calls, v.CallsKnown = *p.Calls, true
	}
	return v
}
