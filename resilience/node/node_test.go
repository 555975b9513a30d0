package node

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/audit"
	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// fakeServices records calls; startErr makes Start fail.
type fakeServices struct {
	mu       sync.Mutex
	running  bool
	calls    []string
	startErr error
}

func (f *fakeServices) Start(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "start")
	if f.startErr != nil {
		return f.startErr
	}
	f.running = true
	return nil
}

func (f *fakeServices) Stop(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "stop")
	f.running = false
	return nil
}

func (f *fakeServices) Status() []api.Service {
	f.mu.Lock()
	defer f.mu.Unlock()
	state := "stopped"
	if f.running {
		state = "running"
	}
	return []api.Service{{Name: "asterisk", State: state, Healthy: f.running, Critical: true}}
}

func (f *fakeServices) Unhealthy() []string { return nil }

func (f *fakeServices) callLog() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, ",")
}

// fakePeer answers with a settable status or error; start, when set,
// answers StartServices (called without the lock held).
type fakePeer struct {
	mu    sync.Mutex
	st    api.Status
	err   error
	start func(api.StartRequest) (api.Status, error)
}

func (p *fakePeer) Status(context.Context) (api.Status, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st, p.err
}

func (p *fakePeer) StartServices(_ context.Context, req api.StartRequest) (api.Status, error) {
	p.mu.Lock()
	start := p.start
	p.mu.Unlock()
	if start != nil {
		return start(req)
	}
	return api.Status{}, errors.New("not used")
}

func (p *fakePeer) StopServices(context.Context, api.StopRequest) (api.Status, error) {
	return api.Status{}, errors.New("not used")
}

func (p *fakePeer) set(status string, epoch uint64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st, p.err = api.Status{Status: status, Epoch: epoch, Version: "2025.10.1", Healthy: true}, err
}

var errDown = errors.New("connection refused")

type harness struct {
	t      *testing.T
	dir    string
	svc    *fakeServices
	peer   *fakePeer
	node   *Node
	cancel context.CancelFunc
	done   chan error
	log    *audit.Log
}

func start(t *testing.T, dir string, role resilience.Role, peer *fakePeer, svc *fakeServices) *harness {
	t.Helper()
	return startWith(t, dir, role, peer, svc, nil)
}

// startWith is start with tweak applied to the node's Deps.
func startWith(t *testing.T, dir string, role resilience.Role, peer *fakePeer, svc *fakeServices, tweak func(*Deps)) *harness {
	t.Helper()
	al, err := audit.Open(filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	d := Deps{
		Core:          resilience.Config{Name: "node-" + string(role), Role: role, Mode: resilience.ModeManual},
		Version:       "2025.10.3",
		Peer:          peer,
		PeerName:      "the-peer",
		PeerEvery:     time.Hour, // tests feed fresh views through commands
		IsUnreachable: func(err error) bool { return errors.Is(err, errDown) },
		Services:      svc,
		Audit:         al,
		DataDir:       dir,
		Logger:        testkit.Logger(t),
	}
	if tweak != nil {
		tweak(&d)
	}
	n, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, dir: dir, svc: svc, peer: peer, node: n, cancel: cancel, done: make(chan error, 1), log: al}
	go func() { h.done <- n.Run(ctx) }()
	t.Cleanup(h.stop)
	select {
	case <-n.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("node did not boot")
	}
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
	h.log.Close()
	h.cancel = nil
}

// waitStatus waits for a stable status, failing after a generous deadline.
func (h *harness) waitStatus(want string) api.Status {
	h.t.Helper()
	ch, cancel := h.node.Subscribe()
	defer cancel()
	deadline := time.After(10 * time.Second)
	for {
		if st := h.node.Status(); st.Status == want {
			return st
		}
		select {
		case <-ch:
		case <-deadline:
			h.t.Fatalf("status is %s, want %s", h.node.Status().Status, want)
		}
	}
}

func TestMainBootsActiveAndStandbyInactive(t *testing.T) {
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	m := start(t, t.TempDir(), resilience.RoleMain, peer, &fakeServices{})
	st := m.waitStatus("active")
	if st.Epoch == 0 || resilience.EpochTakenBy(st.Epoch) != resilience.RoleMain || st.Peer == nil || st.Peer.Reachable {
		t.Fatalf("main: want an epoch of the Main and an unreachable peer, got %+v", st)
	}
	if got := m.svc.callLog(); got != "start" {
		t.Fatalf("main services calls = %q, want start", got)
	}

	s := start(t, t.TempDir(), resilience.RoleStandby, peer, &fakeServices{})
	s.waitStatus("inactive")
	if got := s.svc.callLog(); got != "stop" {
		t.Fatalf("standby makes sure services are stopped at boot, calls = %q", got)
	}
}

func TestStartGuardForceAndAudit(t *testing.T) {
	peer := &fakePeer{}
	peer.set("active", 4, nil)
	h := start(t, t.TempDir(), resilience.RoleStandby, peer, &fakeServices{})
	h.waitStatus("inactive")
	ctx := context.Background()

	if _, err := h.node.StartServices(ctx, "alice", api.StartRequest{}); !errors.Is(err, resilience.ErrInvalid) {
		t.Fatalf("no reason: want ErrInvalid, got %v", err)
	}
	st, err := h.node.StartServices(ctx, "alice", api.StartRequest{Reason: "test"})
	if !errors.Is(err, resilience.ErrConflict) || !strings.Contains(err.Error(), "the-peer is active (epoch 4)") {
		t.Fatalf("peer active: want a conflict naming the peer, got %v", err)
	}
	if st.Status != "inactive" {
		t.Fatalf("refused start changed the status to %s", st.Status)
	}

	st, err = h.node.StartServices(ctx, "alice", api.StartRequest{Reason: "main unreachable by phones", Force: true})
	if err != nil || st.Status != "active" || st.Epoch != 5 {
		t.Fatalf("forced start: want active epoch 5, got %s %d err %v", st.Status, st.Epoch, err)
	}
	if !st.HA.Ready && !strings.Contains(strings.Join(st.HA.Reasons, ";"), "split brain") {
		t.Fatalf("two Actives must show as split brain, got %q", st.HA.Reasons)
	}

	entries, err := h.node.Audit(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var forced, refused bool
	for _, e := range entries {
		if e.Outcome == api.OutcomeRefused && e.Who == "alice" && e.Action == "start services" {
			refused = true
		}
		if e.Outcome == api.OutcomeOK && strings.Contains(e.Cause, "forced") && e.Reason == "main unreachable by phones" {
			forced = true
		}
	}
	if !refused || !forced {
		t.Fatalf("audit must hold the refusal and the forced start: %+v", entries)
	}
}

func TestUnreachablePeerLetsStartProceed(t *testing.T) {
	peer := &fakePeer{}
	peer.set("active", 2, nil)
	h := start(t, t.TempDir(), resilience.RoleStandby, peer, &fakeServices{})
	h.waitStatus("inactive")
	peer.set("", 0, errDown)
	st, err := h.node.StartServices(context.Background(), "bob", api.StartRequest{Reason: "main is down"})
	if err != nil || st.Status != "active" || st.Epoch != 3 {
		t.Fatalf("want active epoch 3 past the last seen peer epoch, got %s %d %v", st.Status, st.Epoch, err)
	}
	if st.Peer.Reachable {
		t.Fatal("status must show the peer unreachable")
	}
}

func TestUnreadablePeerIsNotUnreachable(t *testing.T) {
	peer := &fakePeer{}
	peer.set("", 0, errors.New("401: unauthorized"))
	h := start(t, t.TempDir(), resilience.RoleStandby, peer, &fakeServices{})
	h.waitStatus("inactive")
	_, err := h.node.StartServices(context.Background(), "bob", api.StartRequest{Reason: "x"})
	if !errors.Is(err, resilience.ErrConflict) || !strings.Contains(err.Error(), "api.token") {
		t.Fatalf("want a conflict pointing at the token, got %v", err)
	}
}

func TestFailedStartRollsBack(t *testing.T) {
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	svc := &fakeServices{startErr: errors.New("asterisk: exit status 1")}
	h := start(t, t.TempDir(), resilience.RoleStandby, peer, svc)
	h.waitStatus("inactive")
	st, err := h.node.StartServices(context.Background(), "bob", api.StartRequest{Reason: "try"})
	if !errors.Is(err, resilience.ErrFailed) || !strings.Contains(err.Error(), "asterisk: exit status 1") {
		t.Fatalf("want ErrFailed with the service error, got %v", err)
	}
	if st.Status != "inactive" {
		t.Fatalf("after a failed start the node is inactive, got %s", st.Status)
	}
	if got := svc.callLog(); got != "stop,start,stop" {
		t.Fatalf("calls = %q, want boot stop, start, rollback stop", got)
	}
}

func TestDecisionAndAuditSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	h := start(t, dir, resilience.RoleStandby, peer, &fakeServices{})
	h.waitStatus("inactive")
	if _, err := h.node.StartServices(context.Background(), "carol", api.StartRequest{Reason: "failover"}); err != nil {
		t.Fatal(err)
	}
	h.stop()

	// The Standby comes back Active with the same epoch: the persisted
	// decision wins over the role.
	h2 := start(t, dir, resilience.RoleStandby, peer, &fakeServices{})
	st := h2.waitStatus("active")
	if st.Epoch != 1 {
		t.Fatalf("epoch after restart = %d, want 1", st.Epoch)
	}
	entries, err := h2.node.Audit(context.Background(), 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		if e.Who == "carol" && e.Reason == "failover" {
			found = true
		}
	}
	if !found {
		t.Fatalf("carol's command is missing from the audit log after restart: %+v", entries)
	}
}

func TestSubscribeSeesTransitions(t *testing.T) {
	peer := &fakePeer{}
	peer.set("inactive", 0, nil)
	h := start(t, t.TempDir(), resilience.RoleStandby, peer, &fakeServices{})
	h.waitStatus("inactive")
	ch, cancel := h.node.Subscribe()
	defer cancel()
	first := <-ch
	if first.Name != api.EventStatus {
		t.Fatalf("first event %q, want status", first.Name)
	}
	go h.node.StartServices(context.Background(), "dave", api.StartRequest{Reason: "r"})
	seen := map[string]bool{}
	deadline := time.After(10 * time.Second)
	for !seen["active"] || !seen["audit"] {
		select {
		case ev := <-ch:
			switch d := ev.Data.(type) {
			case api.Status:
				seen[d.Status] = true
			case api.AuditEntry:
				seen["audit"] = true
			}
		case <-deadline:
			t.Fatalf("events seen: %v", seen)
		}
	}
	if !seen["activating"] {
		t.Fatalf("the in-between status must be published, saw %v", seen)
	}
}

// A reload that keeps the mode (new failover timings) keeps what gossip
// showed: the pair stays HA-ready instead of saying "not seen over gossip"
// until the peer's next update.
func TestReconfigureKeepsWhatGossipShowed(t *testing.T) {
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	gossip := &fakeMembership{events: make(chan cluster.Event, 4)}
	core := resilience.Config{Name: "node-standby", Role: resilience.RoleStandby, Mode: resilience.ModeAuto, LostTicks: 2, FailbackHoldTicks: 2}
	h := startWith(t, t.TempDir(), resilience.RoleStandby, peer, &fakeServices{}, func(d *Deps) {
		d.Core, d.Membership = core, gossip
	})
	gossip.events <- cluster.Event{Kind: cluster.Up, Member: cluster.Member{Name: "the-peer", Alive: true,
		Meta: cluster.Meta{Name: "the-peer", Role: "main", Status: "active", Epoch: 1, Healthy: true, Version: "2025.10.3"}}}
	notSeen := func() bool {
		for _, r := range h.node.Status().HA.Reasons {
			if strings.Contains(r, "not seen over gossip") {
				return true
			}
		}
		return false
	}
	testkit.Until(t, func() []string { return h.node.Status().HA.Reasons }, func([]string) bool { return !notSeen() },
		"the peer's gossip event to be taken")
	core.FailbackHoldTicks = 5
	if err := h.node.Reconfigure(context.Background(), "test", core, gossip); err != nil {
		t.Fatal(err)
	}
	if notSeen() {
		t.Fatalf("after a reload in the same mode: %q", h.node.Status().HA.Reasons)
	}
}
