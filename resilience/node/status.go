package node

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
)

// What the node shows: its status, the audit log and the event stream.

// peerRole is the role of the peer of a node of role r.
func peerRole(r resilience.Role) resilience.Role {
	if r == resilience.RoleMain {
		return resilience.RoleStandby
	}
	return resilience.RoleMain
}

// Brief is what the second path answers with: the status, epoch, health
// and hold, read without asking the services or the registrar (answers must
// not wait on them).
func (n *Node) Brief() (status string, epoch uint64, healthy, holding bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return string(n.snap.status), n.snap.epoch, len(n.snap.unhealthy) == 0, n.snap.holding
}

// Status is the node's current status. It does not block on I/O.
func (n *Node) Status() api.Status {
	n.mu.RLock()
	s := n.snap
	n.mu.RUnlock()
	st := api.Status{
		Node: n.d.Core.Name, Role: string(n.d.Core.Role), Mode: string(s.mode),
		Status: string(s.status), Epoch: s.epoch, Since: s.since.UTC(), Version: n.d.Version,
		Healthy:     len(s.unhealthy) == 0,
		Services:    n.d.Services.Status(),
		Replication: []api.Replication{},
		XDS:         []api.Registration{},
		LastChange:  s.last,
	}
	st.SwitchoverRun = n.switchover.shown(n.now())
	if n.d.Registrar != nil {
		st.XDS = n.d.Registrar.Status()
	}
	in := resilience.ReadinessInput{
		Self: resilience.NodeFacts{Name: n.d.Core.Name, Role: n.d.Core.Role, Status: s.status, Epoch: s.epoch,
			Version: n.d.Version, Unhealthy: len(s.unhealthy) > 0, HeldByAdmin: s.adminHold},
		PersistError: s.persistErr,
	}
	if e := n.auditErr.Load(); e != nil {
		in.AuditError = *e
	}
	if s.calls != nil && s.mode == resilience.ModeAuto {
		c := *s.calls
		st.Calls, in.Self.Calls, in.Self.CallsKnown = &c, c, true
	}
	if n.d.ReplSender != nil && n.d.ReplReceiver != nil {
		now := n.now()
		st.Replication = append(n.d.ReplSender.Status(now), n.d.ReplReceiver.Status(now)...)
		// The Active side answers for what it sent, the other for what it
		// received: a Standby never replicated is not ready to take over.
		if s.status == resilience.Active || s.status == resilience.Activating {
			in.StaleJobs = n.d.ReplSender.StaleJobs(now)
		} else {
			in.StaleJobs = n.d.ReplReceiver.StaleJobs(now)
		}
	}
	st.Failover.Switchover = s.switchover // a hold in either mode
	if s.mode == resilience.ModeAuto {
		in.PeerNotInGossip = n.d.Peer != nil && !s.peerInGossip
		in.WitnessConfigured, in.WitnessAlive = s.witness, s.witnessAlive
		st.Failover.Holding, st.Failover.HeldByAdmin = s.holding, s.adminHold
		if u := s.failoverUntil; u != nil {
			st.Failover.Manual, st.Failover.Until = true, u
			in.Self.FailoverUntil = failoverTime(*u)
		}
		st.Failover.FailbackAt, st.Failover.BootGraceUntil = s.failbackAt, s.bootGraceUntil
	}
	if s.peer != nil {
		p := *s.peer
		st.Peer = &p
		in.PeerReachable, in.PeerError = p.Reachable, p.Error
		in.Peer = resilience.NodeFacts{Name: p.Name, Role: peerRole(n.d.Core.Role), Status: resilience.Status(p.Status),
			Epoch: p.Epoch, Version: p.Version, Unhealthy: p.Reachable && !s.peerHealth, HeldByAdmin: p.Reachable && p.HeldByAdmin}
		if p.FailoverUntil != nil {
			in.Peer.FailoverUntil = failoverTime(*p.FailoverUntil)
		}
		if p.Calls != nil && p.Reachable && p.Error == "" {
			in.Peer.Calls, in.Peer.CallsKnown = *p.Calls, true
		}
		if s.mode == resilience.ModeAuto && p.Reachable && p.Via != api.ViaSecondPath {
			in.SecondPathSilent = n.secondPathSilent()
		}
	}
	st.HA.Ready, st.HA.Reasons = resilience.Readiness(in)
	if n.d.Core.Role == resilience.RoleWitness {
		st.HA.Ready, st.HA.Reasons = resilience.WitnessReadiness(s.pairSeen)
		st.Peer = nil // a witness has none: it sees both nodes
		for name, role := range s.pairSeen {
			st.Sees = append(st.Sees, api.Member{Name: name, Role: string(role)})
		}
		slices.SortFunc(st.Sees, func(a, b api.Member) int { return strings.Compare(a.Name, b.Name) })
	}
	if st.HA.Reasons == nil {
		st.HA.Reasons = []string{}
	}
	return st
}

// Active is the minimal answer of GET /active.
func (n *Node) Active() api.Active {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return api.Active{Status: string(n.snap.status), Epoch: n.snap.epoch}
}

// Audit returns audit entries, newest first.
func (n *Node) Audit(_ context.Context, limit int, beforeID uint64) ([]api.AuditEntry, error) {
	return n.d.Audit.List(limit, beforeID)
}

// Subscribe streams status and audit events; the first is the status.
func (n *Node) Subscribe() (<-chan api.Event, func()) {
	return n.hub.subscribe(api.Event{Name: api.EventStatus, Data: n.Status()})
}

// publishStatus sends a status event when anything but timestamps changed.
func (n *Node) publishStatus() {
	st := n.Status()
	key := st
	if key.Peer != nil {
		p := *key.Peer
		p.CheckedAt = time.Time{}
		key.Peer = &p
	}
	raw, _ := json.Marshal(key)
	n.mu.Lock()
	same := slices.Equal(raw, n.published)
	n.published = raw
	n.mu.Unlock()
	if same {
		return
	}
	ready := boolGauge(st.HA.Ready)
	n.metrics.haReady.Set(ready)
	n.metrics.healthy.Set(boolGauge(st.Healthy))
	n.hub.publish(api.Event{Name: api.EventStatus, Data: st})
}
