package node

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/echo"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// fakeSecondPath says what the test sets.
type fakeSecondPath struct {
	mu sync.Mutex
	st echo.State
}

func (f *fakeSecondPath) set(st echo.State) {
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
}

func (f *fakeSecondPath) State() echo.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeSecondPath) Window() time.Duration { return 300 * time.Millisecond }
func (f *fakeSecondPath) Peer() string          { return "10.0.0.1:9440" }

// answer is an answer of the Main, Active at epoch 2, now.
func (f *fakeSecondPath) answer() {
	f.set(echo.State{LastAnswer: time.Now(), Meta: echo.Meta{Name: "the-peer", Status: "active", Epoch: 2, Healthy: true}})
}

// keepAlive answers every 20ms until stop.
func (f *fakeSecondPath) keepAlive(stop <-chan struct{}) {
	for {
		f.answer()
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// standbyWithSecondPath is an auto Standby that sees the Main Active at
// epoch 2 over gossip.
func standbyWithSecondPath(t *testing.T, withPath bool) (*harness, *fakeMembership, *fakeSecondPath) {
	t.Helper()
	gossip := &fakeMembership{events: make(chan cluster.Event, 4)}
	sp := &fakeSecondPath{}
	peer := &fakePeer{}
	peer.set("active", 2, nil)
	h := startWith(t, t.TempDir(), resilience.RoleStandby, peer, &fakeServices{}, func(d *Deps) {
		d.Core = resilience.Config{Name: "node-standby", Role: resilience.RoleStandby, Mode: resilience.ModeAuto, LostTicks: 2}
		d.Membership, d.TickEvery, d.PeerEvery = gossip, 10*time.Millisecond, 20*time.Millisecond
		if withPath {
			d.SecondPath = func() SecondPath { return sp }
		}
	})
	h.waitStatus("inactive")
	gossip.events <- cluster.Event{Kind: cluster.Up, Member: cluster.Member{Name: "the-peer", Alive: true,
		Meta: cluster.Meta{Name: "the-peer", Role: "main", Status: "active", Epoch: 2, Healthy: true, Version: "2025.10.3"}}}
	return h, gossip, sp
}

func lostOverGossip() cluster.Event {
	return cluster.Event{Kind: cluster.Down, Member: cluster.Member{Name: "the-peer",
		Meta: cluster.Meta{Name: "the-peer", Role: "main", Status: "active", Epoch: 2, Healthy: true}}}
}

func (h *harness) gossipLosses(verdict string) float64 {
	var m dto.Metric
	if err := h.node.metrics.gossipLoss.WithLabelValues(verdict).Write(&m); err != nil {
		h.t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func (h *harness) waitGossipLosses(verdict string, n float64) {
	h.t.Helper()
	testkit.Until(h.t, func() float64 { return h.gossipLosses(verdict) }, func(v float64) bool { return v >= n },
		"resman_peer_gossip_losses_total{second_path=%q} at %v", verdict, n)
}

// A Main lost over gossip that still answers over the second path is not
// taken as lost: the Standby stays Inactive and shows where its view comes
// from. Once the second path falls silent too, it takes over, and says why.
func TestGossipLossRefutedBySecondPath(t *testing.T) {
	h, gossip, sp := standbyWithSecondPath(t, true)
	stop := make(chan struct{})
	sp.answer()
	go sp.keepAlive(stop)
	gossip.events <- lostOverGossip()
	h.waitGossipLosses("alive", 1)

	// Far longer than LostTicks (2 ticks of 10ms): a loss taken would
	// have made the Standby start by now. A fixed wait: what is checked
	// is that nothing happens.
	for range 50 {
		st := h.node.Status()
		if st.Status != "inactive" {
			t.Fatalf("the Standby took over a Main that answers over the second path: %s", st.Status)
		}
		if st.Peer == nil || !st.Peer.Reachable || st.Peer.Via != api.ViaSecondPath || st.Peer.Status != "active" {
			t.Fatalf("the peer shown: %+v; want reachable, active, via the second path", st.Peer)
		}
		time.Sleep(10 * time.Millisecond)
	}

	close(stop) // the Main's host goes quiet: no answer for the window
	st := h.waitStatus("active")
	if st.Epoch <= 2 {
		t.Fatalf("took over at epoch %d", st.Epoch)
	}
	h.wantFailoverCause("no answer over the second path (10.0.0.1:9440)")
}

// wantFailoverCause fails unless the audit log has a failover whose cause
// says want.
func (h *harness) wantFailoverCause(want string) {
	h.t.Helper()
	es, err := h.log.List(20, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, e := range es {
		if e.Action == "failover" && strings.Contains(e.Cause, want) {
			return
		}
	}
	h.t.Fatalf("no failover entry whose cause says %q: %+v", want, es)
}

// A refusal on the second path (the Main's host runs, its resman does
// not: kill -9) confirms the loss at once.
func TestGossipLossConfirmedByRefusal(t *testing.T) {
	h, gossip, sp := standbyWithSecondPath(t, true)
	now := time.Now()
	sp.set(echo.State{LastAnswer: now.Add(-5 * time.Millisecond), RefusedAt: now})
	gossip.events <- lostOverGossip()
	h.waitStatus("active")
	if h.gossipLosses("refused") != 1 || h.gossipLosses("alive") != 0 {
		t.Fatalf("losses: refused %v, alive %v", h.gossipLosses("refused"), h.gossipLosses("alive"))
	}
	h.wantFailoverCause("resman is not running there")
}

// Without a second path (failover.confirm off) a gossip loss counts alone.
func TestGossipLossWithoutSecondPath(t *testing.T) {
	h, gossip, sp := standbyWithSecondPath(t, false)
	stop := make(chan struct{})
	defer close(stop)
	sp.answer()
	go sp.keepAlive(stop) // would refute the loss, were it asked
	gossip.events <- lostOverGossip()
	h.waitStatus("active")
}

// An Active node counts its calls and shows them; a failing count shows
// none (unknown), and the core decides by epochs again.
func TestCallsCounted(t *testing.T) {
	var fail atomic.Bool
	gossip := &fakeMembership{events: make(chan cluster.Event, 4)}
	peer := &fakePeer{}
	peer.set("inactive", 1, nil)
	h := startWith(t, t.TempDir(), resilience.RoleMain, peer, &fakeServices{}, func(d *Deps) {
		d.Core = resilience.Config{Name: "node-main", Role: resilience.RoleMain, Mode: resilience.ModeAuto, LostTicks: 2}
		d.Membership, d.TickEvery = gossip, 10*time.Millisecond
		d.CallsEvery = 10 * time.Millisecond
		d.CountCalls = func(context.Context) (int, error) {
			if fail.Load() {
				return 0, errors.New("asterisk not answering")
			}
			return 4, nil
		}
	})
	h.waitStatus("active")
	waitCalls := func(want *int) {
		t.Helper()
		testkit.Until(t, func() *int { return h.node.Status().Calls }, func(got *int) bool {
			return (got == nil && want == nil) || (got != nil && want != nil && *got == *want)
		}, "the calls shown to be %v", want)
	}
	four := 4
	waitCalls(&four)
	fail.Store(true)
	waitCalls(nil)
}

// While gossip sees the peer, a second path that gets no answer after
// enough probes (a closed UDP port, failover.confirm set differently) makes
// HA not ready, saying where it asks; one that answers, or has not asked
// enough yet, does not.
func TestSecondPathSilentWhileGossipSeesThePeer(t *testing.T) {
	h, _, sp := standbyWithSecondPath(t, true)
	reasonShown := func() bool {
		for _, r := range h.node.Status().HA.Reasons {
			if strings.Contains(r, "over the second path (10.0.0.1:9440) while gossip sees it") {
				return true
			}
		}
		return false
	}
	testkit.Eventually(t, func() bool { p := h.node.Status().Peer; return p != nil && p.Reachable },
		"the peer to be seen over gossip")
	sp.set(echo.State{Unanswered: 2, Needed: 15}) // asked too little yet
	if reasonShown() {
		t.Fatal("a second path that has not asked enough counts as silent")
	}
	sp.set(echo.State{Unanswered: 15, Needed: 15})
	if !reasonShown() {
		t.Fatalf("a silent second path is not a readiness reason: %q", h.node.Status().HA.Reasons)
	}
	sp.answer()
	if reasonShown() {
		t.Fatal("a second path that answers is still a readiness reason")
	}
}
