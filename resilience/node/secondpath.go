package node

import (
	"context"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/echo"
)

// SecondPath is the check of the peer over a path independent of gossip
// (package echo). A peer lost over gossip counts as lost only when this
// path says so too.
type SecondPath interface {
	State() echo.State
	Window() time.Duration
	Peer() string
}

// secondPathState follows a peer lost over gossip while the second path
// is asked about it. Loop goroutine only.
type secondPathState struct {
	// lost: the peer's gossip says it is lost; seen is its last view
	// over gossip while it was alive.
	lost bool
	seen api.Peer
	// fed is the verdict last given to the core during the loss: Alive
	// (the peer answered), or a loss (Silent or Refused). -1: none yet.
	fed     echo.Verdict
	fedMeta echo.Meta
}

// secondPath is the second path running now, or nil (off, manual mode).
func (n *Node) secondPath() SecondPath {
	if n.d.SecondPath == nil {
		return nil
	}
	return n.d.SecondPath()
}

// peerGossipLost handles the peer lost over gossip: with a second path, it
// is asked first; it returns false when the loss is to be taken as it is.
func (n *Node) peerGossipLost(ctx context.Context) bool {
	if n.secondPath() == nil {
		return false
	}
	n.sp.lost, n.sp.fed = true, -1
	n.checkSecondPath(ctx)
	return true
}

// checkSecondPath gives the core what the second path says of a peer lost
// over gossip: alive, with the status and epoch it answers with, or lost,
// with why. Called at the loss and on every tick until gossip sees the
// peer again; the core hears of a change only.
func (n *Node) checkSecondPath(ctx context.Context) {
	sp := n.secondPath()
	if !n.sp.lost || sp == nil {
		return
	}
	now := n.now()
	st := sp.State()
	v := st.Verdict(now, sp.Window())
	if v == n.sp.fed && (v != echo.Alive || st.Meta == n.sp.fedMeta) {
		return
	}
	first := n.sp.fed == -1
	n.sp.fed, n.sp.fedMeta = v, st.Meta
	why := st.Describe(now, sp.Window(), sp.Peer())
	if first {
		// Counted once the view is taken: a reader that waits for the
		// count then finds the peer as this loss shows it.
		defer n.metrics.gossipLoss.WithLabelValues(v.String()).Inc()
	}
	if v != echo.Alive {
		if !first {
			n.log.Warn("peer lost over gossip and now over the second path too", "peer", n.d.PeerName, "second_path", why)
		}
		p := api.Peer{Name: n.d.PeerName, URL: n.d.PeerURL, CheckedAt: now.UTC(), Error: "lost over gossip; " + why, LostWhy: why}
		n.claim.pending = nil
		n.takePeerGossip(ctx, p)
		return
	}
	if first {
		n.log.Warn("peer lost over gossip, but it answers over the second path: not taken as lost",
			"peer", n.d.PeerName, "second_path", why, "status", st.Meta.Status, "epoch", st.Meta.Epoch)
	}
	p := n.sp.seen
	p.Name, p.URL, p.Reachable, p.Error, p.CheckedAt, p.Via = n.d.PeerName, n.d.PeerURL, true, "", now.UTC(), api.ViaSecondPath
	p.Status, p.Epoch, p.Healthy, p.Holding = st.Meta.Status, st.Meta.Epoch, st.Meta.Healthy, st.Meta.Holding
	n.takePeerView(ctx, p)
}

// peerGossipBack ends a loss: gossip sees the peer again.
func (n *Node) peerGossipBack(p api.Peer) {
	n.sp.lost, n.sp.seen = false, p
}

// secondPathSilent is the second path's peer address when it has asked
// enough to know and gets no answer (or is refused), "" otherwise or
// without a second path. Called while gossip sees the peer: a path that
// should answer and does not is a firewall or a config that differs.
func (n *Node) secondPathSilent() string {
	sp := n.secondPath()
	if sp == nil {
		return ""
	}
	st := sp.State()
	if st.Verdict(n.now(), sp.Window()) == echo.Alive || st.Unanswered < st.Needed {
		return ""
	}
	return sp.Peer()
}
