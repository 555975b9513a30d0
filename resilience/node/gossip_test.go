package node

import (
	"context"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/echo"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// activeMainInAuto boots a Main in auto mode, Active, next to a peer whose
// API answers as the test sets it.
func activeMainInAuto(t *testing.T, peer *fakePeer) (*harness, *fakeMembership) {
	t.Helper()
	gossip := &fakeMembership{events: make(chan cluster.Event, 4)}
	h := startWith(t, t.TempDir(), resilience.RoleMain, peer, &fakeServices{}, func(d *Deps) {
		d.Core = resilience.Config{Name: "node-main", Role: resilience.RoleMain, Mode: resilience.ModeAuto, LostTicks: 2}
		d.Membership, d.TickEvery, d.PeerEvery = gossip, 10*time.Millisecond, 20*time.Millisecond
	})
	h.waitStatus("active")
	return h, gossip
}

// claimActive is the peer's gossip saying it is Active at epoch.
func claimActive(epoch uint64) cluster.Event {
	return cluster.Event{Kind: cluster.Up, Member: cluster.Member{Name: "the-peer", Alive: true,
		Meta: cluster.Meta{Name: "the-peer", Role: "standby", Status: "active", Epoch: epoch, Healthy: true, Version: "2025.10.3"}}}
}

func (h *harness) trust(result string) float64 {
	var m dto.Metric
	if err := h.node.metrics.claims.WithLabelValues(result).Write(&m); err != nil {
		h.t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func (h *harness) waitTrust(result string, atLeast float64) {
	h.t.Helper()
	testkit.Until(h.t, func() float64 { return h.trust(result) }, func(v float64) bool { return v >= atLeast },
		"resman_gossip_trust_total{result=%q} at least %v", result, atLeast)
}

// A member with the gossip key and the peer's name claims Active at a far
// higher epoch while the real peer's API says Inactive: the Main does not
// step down, and the refusal is audited.
func TestGossipClaimRefutedByThePeersAPI(t *testing.T) {
	peer := &fakePeer{}
	peer.set("inactive", 1, nil)
	h, gossip := activeMainInAuto(t, peer)
	gossip.events <- claimActive(1001)
	h.waitTrust("refuted", 1)
	if st := h.node.Status(); st.Status != "active" || st.Peer == nil || st.Peer.Status != "inactive" {
		t.Fatalf("after a refuted claim: status %s, peer %+v; want active next to the API's inactive peer", st.Status, st.Peer)
	}
	entries, err := h.log.List(20, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		if e.Action == "refuse gossip claim" && e.Outcome == resilience.OutcomeRefused &&
			strings.Contains(e.Cause, "claimed active at epoch 1001 over gossip; its API says inactive at epoch 1") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no audit entry for the refuted claim: %+v", entries)
	}
	if got := h.svc.callLog(); got != "start" {
		t.Fatalf("services calls = %q: the Main moved", got)
	}
}

// While the peer's API cannot be reached, the claim is not taken: the Main
// stays Active, shows the claim as unconfirmed, and keeps asking. When the
// API answers the same, the Main gives way.
func TestGossipClaimWaitsForThePeersAPI(t *testing.T) {
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	h, gossip := activeMainInAuto(t, peer)
	gossip.events <- claimActive(1001)
	h.waitTrust("unconfirmed", 3) // asked again at least twice: ticks went by
	st := h.node.Status()
	if st.Status != "active" || st.Peer == nil || !strings.Contains(st.Peer.Error, "not confirmed by its API") {
		t.Fatalf("status %s, peer %+v; want active, the peer's claim shown as not confirmed", st.Status, st.Peer)
	}
	peer.set("active", 1001, nil)
	h.waitStatus("inactive")
	h.waitTrust("confirmed", 1)
	if got := h.svc.callLog(); got != "start,stop" {
		t.Fatalf("services calls = %q, want start,stop", got)
	}
}

// A refused member is audited with the reason the gossip layer gave.
func TestRefusedGossipMemberIsAudited(t *testing.T) {
	peer := &fakePeer{}
	peer.set("inactive", 1, nil)
	h, gossip := activeMainInAuto(t, peer)
	gossip.events <- cluster.Event{Kind: cluster.Refused, Member: cluster.Member{Name: "intruder", Addr: "10.0.0.66:7946"},
		Reason: "it is not a configured member"}
	h.waitTrust("member_refused", 1)
	entries, err := h.log.List(20, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Action == "refuse gossip member" && strings.Contains(e.Cause, "intruder at 10.0.0.66:7946") && e.Detail == "it is not a configured member" {
			return
		}
	}
	t.Fatalf("no audit entry for the refused member: %+v", entries)
}

// A gossip view that lags behind a fresher read of the peer's API (same
// epoch, an earlier status) is not taken: after a switchover back, the
// Main showed a split brain that was over until the gossip caught up.
func TestGossipOlderThanTheAPIViewIsSkipped(t *testing.T) {
	peer := &fakePeer{}
	peer.set("inactive", 1, nil)
	h, gossip := activeMainInAuto(t, peer)
	// An admin command's read: the peer is inactive at epoch 1, below this
	// Main's own (so no claim to confirm).
	h.node.setPeer(h.node.fetchPeer(context.Background()))
	// Gossip still carries the peer's Active meta of epoch 1; a refused
	// member's event after it marks when the loop has handled it.
	gossip.events <- claimActive(1)
	gossip.events <- cluster.Event{Kind: cluster.Refused, Member: cluster.Member{Name: "x", Addr: "10.0.0.9:7946"}, Reason: "barrier"}
	h.waitTrust("member_refused", 1)
	st := h.node.Status()
	if st.Peer == nil || st.Peer.Status != "inactive" {
		t.Fatalf("the older gossip view was taken: %+v", st.Peer)
	}
	for _, r := range st.HA.Reasons {
		if strings.Contains(r, "split brain") {
			t.Fatalf("readiness: %v", st.HA.Reasons)
		}
	}
	// The gossip catching up at the same epoch and status (a hold
	// released, say) is taken.
	held := claimActive(1)
	held.Kind, held.Member.Meta.Status, held.Member.Meta.Holding = cluster.Update, "inactive", true
	gossip.events <- held
	testkit.Until(t, func() *api.Peer { return h.node.Status().Peer }, func(p *api.Peer) bool { return p != nil && p.Holding },
		"the later gossip view (holding) to be taken")
}

// A claim the second path vouches for (an answer of the peer's, made under
// api.token) is taken at once, without the peer's API: on a lossy link the
// API over TCP can take seconds, and two Active nodes would see each other
// all that time. An answer that is not vouched for confirms nothing.
func TestGossipClaimConfirmedByTheSecondPath(t *testing.T) {
	for _, vouched := range []bool{false, true} {
		t.Run(map[bool]string{false: "not vouched", true: "vouched"}[vouched], func(t *testing.T) {
			peer := &fakePeer{}
			peer.set("", 0, errDown)
			sp := &fakeSecondPath{}
			gossip := &fakeMembership{events: make(chan cluster.Event, 4)}
			h := startWith(t, t.TempDir(), resilience.RoleMain, peer, &fakeServices{}, func(d *Deps) {
				d.Core = resilience.Config{Name: "node-main", Role: resilience.RoleMain, Mode: resilience.ModeAuto, LostTicks: 2}
				d.Membership, d.TickEvery, d.PeerEvery = gossip, 10*time.Millisecond, 20*time.Millisecond
				d.SecondPath = func() SecondPath { return sp }
			})
			h.waitStatus("active")
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for {
					sp.set(echo.State{LastAnswer: time.Now(), Vouched: vouched,
						Meta: echo.Meta{Name: "the-peer", Status: "active", Epoch: 1001, Healthy: true}})
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}()
			gossip.events <- claimActive(1001)
			if !vouched {
				h.waitTrust("unconfirmed", 3) // the API asked at least three times meanwhile
				if st := h.node.Status(); st.Status != "active" || h.trust("confirmed") != 0 {
					t.Fatalf("an answer not vouched for: status %s, %v claims confirmed; want active, none", st.Status, h.trust("confirmed"))
				}
				return
			}
			h.waitStatus("inactive")
			h.waitTrust("confirmed", 1)
			if got := h.svc.callLog(); got != "start,stop" {
				t.Fatalf("services calls = %q, want start,stop", got)
			}
		})
	}
}
