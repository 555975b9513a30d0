package node

import (
	"context"
	"errors"
	"testing"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
)

// auditPeer is a fakePeer that reads the peer's audit log.
type auditPeer struct {
	*fakePeer
	entries []api.AuditEntry
	limit   int
}

func (p *auditPeer) Audit(_ context.Context, limit int, before uint64) ([]api.AuditEntry, error) {
	p.limit = limit
	return p.entries, nil
}

// PeerAudit reads the peer's log through a peer client that can; one that
// cannot is a precondition, not a failure.
func TestPeerAudit(t *testing.T) {
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	h := start(t, t.TempDir(), resilience.RoleMain, peer, &fakeServices{})
	h.waitStatus("active")
	if _, err := h.node.PeerAudit(context.Background(), 10); !errors.Is(err, resilience.ErrPrecondition) {
		t.Errorf("a peer client without Audit: %v, want ErrPrecondition", err)
	}
	ap := &auditPeer{fakePeer: peer, entries: []api.AuditEntry{{ID: 9, Action: "boot"}}}
	h = startWith(t, t.TempDir(), resilience.RoleMain, peer, &fakeServices{}, func(d *Deps) { d.Peer = ap })
	h.waitStatus("active")
	es, err := h.node.PeerAudit(context.Background(), 10)
	if err != nil || len(es) != 1 || es[0].ID != 9 || ap.limit != 10 {
		t.Errorf("PeerAudit: %v %v, limit %d", es, err, ap.limit)
	}
	h = startWith(t, t.TempDir(), resilience.RoleMain, peer, &fakeServices{}, func(d *Deps) { d.Peer = nil })
	if _, err := h.node.PeerAudit(context.Background(), 10); !errors.Is(err, resilience.ErrPrecondition) {
		t.Errorf("no peer: %v", err)
	}
}
