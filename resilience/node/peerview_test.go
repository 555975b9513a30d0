package node

import (
	"context"
	"errors"
	"testing"

	"github.com/resman-pbx/resman/resilience"
)

// An admin's Start steps with a view of the peer read from its API. That
// view once lacked the peer's hold and health: after a switchover to the
// Standby, a Start on the Active Standby made it believe the Main no longer
// held, and it stepped down for failback to a Main that never took over
// (no node Active, found by the chaos run). The view from the API now
// carries what the gossip view carries.
func TestPeerViewFromTheAPIKeepsHoldAndHealth(t *testing.T) {
	peer := &fakePeer{}
	peer.set("inactive", 2, nil)
	h := startWith(t, t.TempDir(), resilience.RoleStandby, peer, &fakeServices{}, nil)
	ctx := context.Background()

	if v := h.node.peerView(h.node.fetchPeer(ctx)); v.Holding || v.Unhealthy || !v.Reachable {
		t.Fatalf("a free, healthy peer: %+v", v)
	}

	peer.mu.Lock()
	peer.st.Failover.Holding, peer.st.Failover.HeldByAdmin, peer.st.Healthy = true, true, false
	peer.mu.Unlock()
	p := h.node.fetchPeer(ctx)
	if !p.Holding || !p.HeldByAdmin {
		t.Fatalf("the fetched peer lost its hold: %+v", p)
	}
	if v := h.node.peerView(p); !v.Holding || !v.Unhealthy {
		t.Fatalf("a holding, unhealthy peer seen as %+v", v)
	}

	// An answer that cannot be read says nothing of hold or health.
	peer.set("", 0, errors.New("401: invalid bearer token"))
	if v := h.node.peerView(h.node.fetchPeer(ctx)); !v.Unreadable || v.Holding || v.Unhealthy {
		t.Fatalf("an unreadable peer: %+v", v)
	}
}
