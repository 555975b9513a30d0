package node

import (
	"context"
	"errors"
	"fmt"
	"os"
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

// breakState makes state.json a non-empty directory, so that the rename
// saving a decision fails, even as root.
func breakState(t *testing.T, dir string) {
	t.Helper()
	path := filepath.Join(dir, "state.json")
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := saveState(path, resilience.Saved{Status: resilience.Active, Epoch: 9}, time.Now()); err == nil {
		t.Fatal("saveState over a non-empty directory succeeded: the test would prove nothing")
	}
}

func repairState(t *testing.T, dir string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(dir, "state.json")); err != nil {
		t.Fatal(err)
	}
}

// notDurableReason is the readiness reason of a node that cannot persist.
func notDurableReason(st api.Status) string {
	for _, r := range st.HA.Reasons {
		if strings.Contains(r, "cannot persist its decisions (") && strings.Contains(r, "node.data_dir") {
			return r
		}
	}
	return ""
}

// failedEntry is the newest failed audit entry of action, if any.
func (h *harness) failedEntry(action string) (api.AuditEntry, bool) {
	h.t.Helper()
	es, err := h.node.Audit(context.Background(), 100, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, e := range es {
		if e.Action == action && e.Outcome == api.OutcomeFailed {
			return e, true
		}
	}
	return api.AuditEntry{}, false
}

// A Start whose decision cannot be persisted is not carried out: the
// services are never started, the node stays Inactive, the admin gets
// ErrNotDurable, the audit log and HA readiness say why. Once the disk is
// repaired, a Start works.
func TestStartNotDurableIsNotCarriedOut(t *testing.T) {
	dir := t.TempDir()
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	svc := &fakeServices{}
	h := start(t, dir, resilience.RoleStandby, peer, svc)
	h.waitStatus("inactive")
	breakState(t, dir)

	st, err := h.node.StartServices(context.Background(), "alice", api.StartRequest{Reason: "disk test"})
	if !errors.Is(err, resilience.ErrNotDurable) || !strings.Contains(err.Error(), "state.json") {
		t.Fatalf("want ErrNotDurable naming the state file, got %v", err)
	}
	if st.Status != "inactive" || h.node.Status().Status != "inactive" {
		t.Fatalf("status after a start not persisted = %s, want inactive", st.Status)
	}
	if got := svc.callLog(); got != "stop" {
		t.Fatalf("services calls = %q: only the boot stop, the start must not run", got)
	}
	e, ok := h.failedEntry("start services")
	if !ok || e.Who != "alice" || !strings.Contains(e.Cause, "could not be persisted") || e.Detail == "" {
		t.Fatalf("audit: want alice's failed start with the cause, got %+v (found %t)", e, ok)
	}
	if st := h.node.Status(); st.HA.Ready || notDurableReason(st) == "" {
		t.Fatalf("readiness must say the node cannot persist: ready=%t %q", st.HA.Ready, st.HA.Reasons)
	}

	repairState(t, dir)
	st, err = h.node.StartServices(context.Background(), "alice", api.StartRequest{Reason: "disk repaired"})
	if err != nil || st.Status != "active" {
		t.Fatalf("start after the repair: %s, %v", st.Status, err)
	}
	if got := svc.callLog(); got != "stop,start" {
		t.Fatalf("services calls = %q, want stop,start", got)
	}
	if r := notDurableReason(h.node.Status()); r != "" {
		t.Fatalf("the reason stays after a durable decision: %q", r)
	}
	saved, err := loadState(filepath.Join(dir, "state.json"))
	if err != nil || saved == nil || saved.Status != resilience.Active || saved.Epoch != st.Epoch {
		t.Fatalf("state file = %+v, %v; want active at epoch %d", saved, err, st.Epoch)
	}
}

// A Stop of an Active node whose decision cannot be persisted is not
// carried out: the services keep running.
func TestStopNotDurableKeepsServicesRunning(t *testing.T) {
	dir := t.TempDir()
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	svc := &fakeServices{}
	h := start(t, dir, resilience.RoleMain, peer, svc)
	before := h.waitStatus("active")
	breakState(t, dir)

	st, err := h.node.StopServices(context.Background(), "bob", api.StopRequest{Reason: "maintenance"})
	if !errors.Is(err, resilience.ErrNotDurable) {
		t.Fatalf("want ErrNotDurable, got %v", err)
	}
	if st.Status != "active" || st.Epoch != before.Epoch {
		t.Fatalf("after a stop not persisted: %s epoch %d, want active epoch %d", st.Status, st.Epoch, before.Epoch)
	}
	if got := svc.callLog(); got != "start" {
		t.Fatalf("services calls = %q: the services must keep running", got)
	}
	if e, ok := h.failedEntry("stop services"); !ok || e.Who != "bob" || !strings.Contains(e.Cause, "nothing was started or stopped") {
		t.Fatalf("audit: want bob's failed stop, got %+v (found %t)", e, ok)
	}
	if st := h.node.Status(); st.HA.Ready || notDurableReason(st) == "" {
		t.Fatalf("readiness must say the node cannot persist: ready=%t %q", st.HA.Ready, st.HA.Reasons)
	}

	repairState(t, dir)
	if st, err := h.node.StopServices(context.Background(), "bob", api.StopRequest{Reason: "maintenance"}); err != nil || st.Status != "inactive" {
		t.Fatalf("stop after the repair: %s, %v", st.Status, err)
	}
	if got := svc.callLog(); got != "start,stop" {
		t.Fatalf("services calls = %q, want start,stop", got)
	}
}

// A failed start whose rollback cannot be persisted at first still ends
// rolled back: the services are stopped again, the node is Inactive, and
// the admin gets the start's failure.
func TestFailedStartRollbackNotDurableAtFirst(t *testing.T) {
	var mu sync.Mutex
	failures := 0
	save := func(path string, st resilience.Saved, now time.Time) error {
		mu.Lock()
		defer mu.Unlock()
		if st.Status == resilience.Inactive && st.Epoch > 0 && failures == 0 {
			failures++
			return errors.New("no space left on device")
		}
		return saveState(path, st, now)
	}
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	svc := &fakeServices{startErr: errors.New("asterisk: exit status 1")}
	h := startWith(t, t.TempDir(), resilience.RoleStandby, peer, svc, func(d *Deps) { d.saveState = save })
	h.waitStatus("inactive")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := h.node.StartServices(ctx, "bob", api.StartRequest{Reason: "try"})
	if !errors.Is(err, resilience.ErrFailed) || !strings.Contains(err.Error(), "asterisk: exit status 1") {
		t.Fatalf("want ErrFailed with the service error, got %v", err)
	}
	if st.Status != "inactive" {
		t.Fatalf("status %s, want inactive", st.Status)
	}
	if got := svc.callLog(); got != "stop,start,stop" {
		t.Fatalf("calls = %q, want boot stop, start, rollback stop", got)
	}
	es, _ := h.node.Audit(context.Background(), 100, 0)
	found := false
	for _, e := range es {
		found = found || (e.Outcome == api.OutcomeFailed && strings.Contains(e.Cause, "could not be persisted"))
	}
	if !found {
		t.Fatalf("the persist failure is not in the audit log: %+v", es)
	}
}

// bootDeps is a node's Deps for a test that runs the node itself.
func bootDeps(t *testing.T, dir string, role resilience.Role, svc *fakeServices, al *audit.Log) Deps {
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	return Deps{
		Core:    resilience.Config{Name: "node-" + string(role), Role: role, Mode: resilience.ModeManual},
		Version: "2025.10.3", Peer: peer, PeerName: "the-peer", PeerEvery: time.Hour,
		IsUnreachable: func(err error) bool { return errors.Is(err, errDown) },
		Services:      svc, Audit: al, DataDir: dir,
		Logger: testkit.Logger(t),
	}
}

// A node whose boot decision cannot be persisted refuses to run, naming
// the cause; a restart with the same decision already saved still runs.
func TestBootNotDurableRefusesToRun(t *testing.T) {
	dir := t.TempDir()
	al, err := audit.Open(filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	full := func(string, resilience.Saved, time.Time) error { return errors.New("no space left on device") }

	svc := &fakeServices{}
	d := bootDeps(t, dir, resilience.RoleMain, svc, al)
	d.saveState = full
	n, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = n.Run(ctx)
	if !errors.Is(err, resilience.ErrNotDurable) || !strings.Contains(err.Error(), "no space left on device") ||
		!strings.Contains(err.Error(), "state.json") {
		t.Fatalf("Run = %v; want ErrNotDurable naming the file and the cause", err)
	}
	if got := svc.callLog(); got != "" {
		t.Fatalf("services calls = %q, want none", got)
	}
	es, _ := al.List(10, 0)
	if len(es) == 0 || es[0].Action != "boot" || es[0].Outcome != api.OutcomeFailed {
		t.Fatalf("audit: want the failed boot, got %+v", es)
	}

	// A Standby's first start is durable; its restart with a full disk
	// restores the same decision, which needs no write.
	sdir := t.TempDir()
	sal, err := audit.Open(filepath.Join(sdir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sal.Close()
	if err := saveState(filepath.Join(sdir, "state.json"), resilience.Saved{Status: resilience.Inactive}, time.Now()); err != nil {
		t.Fatal(err)
	}
	d = bootDeps(t, sdir, resilience.RoleStandby, &fakeServices{}, sal)
	d.saveState = full
	if n, err = New(d); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(rctx) }()
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("a restart with the decision already saved refused to run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no boot")
	}
	rcancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// switchoverHarness is a Main, Active, whose peer answers Inactive.
func switchoverHarness(t *testing.T) (*harness, *fakeServices) {
	t.Helper()
	peer := &fakePeer{}
	peer.set("inactive", 0, nil)
	svc := &fakeServices{}
	h := startWith(t, t.TempDir(), resilience.RoleMain, peer, svc, nil)
	h.waitStatus("active")
	return h, svc
}

// switchoverHeld reports the switchover that holds the node, if any.
func (h *harness) switchoverHeld() (string, bool) {
	h.node.mu.RLock()
	holding := h.node.snap.holding
	h.node.mu.RUnlock()
	return h.node.Status().Failover.Switchover, holding
}

// Whatever the end of a switchover after the stop, the hold it put on
// this node is released when the call returns.
func TestSwitchoverEndReleasesTheHold(t *testing.T) {
	for _, tc := range []struct {
		name      string
		peerStart func(p *fakePeer) func(api.StartRequest) (api.Status, error)
		failStart bool // the rollback start fails too
		wantErr   string
		want      string
		// steps: the switchover's steps as the status shows them, then
		// its outcome.
		steps string
	}{
		{name: "done", want: "inactive", steps: "preconditions=done stop here=done start the peer=done verify=done: done", peerStart: func(p *fakePeer) func(api.StartRequest) (api.Status, error) {
			return func(api.StartRequest) (api.Status, error) {
				p.set("active", 3, nil)
				return api.Status{Status: "active", Epoch: 3}, nil
			}
		}},
		{name: "rolled back", want: "active", wantErr: "rolled back",
			steps: "preconditions=done stop here=done start the peer=failed verify=skipped rollback=done: rolled back"},
		{name: "rollback failed", want: "inactive", failStart: true, wantErr: "the rollback failed",
			steps: "preconditions=done stop here=done start the peer=failed verify=skipped rollback=failed: failed"},
		{name: "done after all", want: "inactive",
			steps: "preconditions=done stop here=done start the peer=done verify=done rollback=skipped: done", peerStart: func(p *fakePeer) func(api.StartRequest) (api.Status, error) {
				return func(api.StartRequest) (api.Status, error) {
					p.set("active", 3, nil)
					return api.Status{}, errors.New("timeout awaiting the answer")
				}
			}},
		{name: "unreadable after the failed start", want: "inactive", wantErr: "the rollback failed",
			steps: "preconditions=done stop here=done start the peer=failed verify=skipped rollback=failed: failed",
			peerStart: func(p *fakePeer) func(api.StartRequest) (api.Status, error) {
				return func(api.StartRequest) (api.Status, error) {
					p.set("", 0, errors.New("401: unauthorized"))
					return api.Status{}, errors.New("timeout awaiting the answer")
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, svc := switchoverHarness(t)
			peer := h.peer
			if tc.peerStart != nil {
				peer.mu.Lock()
				peer.start = tc.peerStart(peer)
				peer.mu.Unlock()
			}
			if tc.failStart {
				svc.mu.Lock()
				svc.startErr = errors.New("asterisk: exit status 1")
				svc.mu.Unlock()
			}
			st, err := h.node.Switchover(context.Background(), "alice", api.SwitchoverRequest{Reason: "test"})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("switchover: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("switchover error = %v, want %q", err, tc.wantErr)
			}
			if st.Status != tc.want {
				t.Fatalf("status after the switchover = %s, want %s", st.Status, tc.want)
			}
			if id, holding := h.switchoverHeld(); id != "" || holding {
				t.Fatalf("after the call: switchover %q holding=%t, want released", id, holding)
			}
			if got := stepsShown(st.SwitchoverRun); got != tc.steps {
				t.Fatalf("steps shown:\n%s\nwant\n%s", got, tc.steps)
			}
		})
	}
}

// A caller that stops waiting does not cut a switchover once this node
// has stopped: it runs to its end and the hold is released.
func TestSwitchoverOutlivesItsCaller(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h, _ := switchoverHarness(t)
	h.peer.mu.Lock()
	h.peer.start = func(api.StartRequest) (api.Status, error) {
		cancel() // the caller is gone while the peer starts
		h.peer.set("active", 3, nil)
		return api.Status{Status: "active", Epoch: 3}, nil
	}
	h.peer.mu.Unlock()
	if _, err := h.node.Switchover(ctx, "alice", api.SwitchoverRequest{Reason: "test"}); err != nil {
		t.Fatalf("switchover: %v", err)
	}
	if id, holding := h.switchoverHeld(); id != "" || holding {
		t.Fatalf("switchover %q holding=%t, want released", id, holding)
	}
}

// A state file with an absurd epoch is refused like a corrupt one.
func TestLoadStateRefusesAnAbsurdEpoch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	epoch := resilience.MaxEpoch + 1
	if err := os.WriteFile(path, fmt.Appendf(nil, `{"status":"active","epoch":%d}`, epoch), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadState(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), fmt.Sprint(epoch)) {
		t.Fatalf("loadState = %v; want an error naming the file and the epoch", err)
	}
	if err := os.WriteFile(path, fmt.Appendf(nil, `{"status":"active","epoch":%d}`, resilience.MaxEpoch), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := loadState(path); err != nil || s.Epoch != resilience.MaxEpoch {
		t.Fatalf("the largest epoch: %+v, %v", s, err)
	}

	// The node refuses to run on it.
	dir := t.TempDir()
	al, err := audit.Open(filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	if err := os.WriteFile(filepath.Join(dir, "state.json"), fmt.Appendf(nil, `{"status":"inactive","epoch":%d}`, epoch), 0o600); err != nil {
		t.Fatal(err)
	}
	svc := &fakeServices{}
	n, err := New(bootDeps(t, dir, resilience.RoleMain, svc, al))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "state.json") {
		t.Fatalf("Run = %v, want the state file refused", err)
	}
	if got := svc.callLog(); got != "" {
		t.Fatalf("services calls = %q, want none", got)
	}
}

// A peer answering with an absurd epoch counts as a peer that answers but
// cannot be read: it may be Active, so a Start needs force.
func TestPeerAbsurdEpochIsUnreadable(t *testing.T) {
	peer := &fakePeer{}
	peer.set("inactive", resilience.MaxEpoch+1, nil)
	h := start(t, t.TempDir(), resilience.RoleStandby, peer, &fakeServices{})
	st := h.waitStatus("inactive")
	if p := st.Peer; p == nil || !p.Reachable || p.Status != "" || p.Epoch != 0 ||
		!strings.Contains(p.Error, "cannot be read") || !strings.Contains(p.Error, fmt.Sprint(resilience.MaxEpoch+1)) {
		t.Fatalf("peer = %+v; want reachable, unread, with an error saying why", st.Peer)
	}
	_, err := h.node.StartServices(context.Background(), "alice", api.StartRequest{Reason: "x"})
	if !errors.Is(err, resilience.ErrConflict) {
		t.Fatalf("start next to an unreadable peer: %v, want a conflict", err)
	}
	st, err = h.node.StartServices(context.Background(), "alice", api.StartRequest{Reason: "x", Force: true})
	if err != nil || st.Status != "active" || st.Epoch > resilience.MaxEpoch || resilience.EpochTakenBy(st.Epoch) != resilience.RoleStandby {
		t.Fatalf("forced start: %s epoch %d, %v; want active with an epoch of the Standby", st.Status, st.Epoch, err)
	}

	// A switchover toward it is refused.
	peer.set("inactive", resilience.MaxEpoch+1, nil)
	st, err = h.node.Switchover(context.Background(), "alice", api.SwitchoverRequest{Reason: "x"})
	if !errors.Is(err, resilience.ErrPrecondition) || !strings.Contains(err.Error(), "cannot be read") {
		t.Fatalf("switchover toward an unreadable peer: %v", err)
	}
	if got, want := stepsShown(st.SwitchoverRun), "preconditions=failed stop here=skipped start the peer=skipped verify=skipped: refused"; got != want {
		t.Fatalf("a refused switchover's steps: %s, want %s", got, want)
	}
}

// The same over gossip, should the gossip layer let such a meta through.
func TestGossipAbsurdEpochIsUnreadable(t *testing.T) {
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	gossip := &fakeMembership{events: make(chan cluster.Event, 4)}
	h := startWith(t, t.TempDir(), resilience.RoleStandby, peer, &fakeServices{}, func(d *Deps) {
		d.Core = resilience.Config{Name: "node-standby", Role: resilience.RoleStandby, Mode: resilience.ModeAuto, LostTicks: 2}
		d.Membership = gossip
	})
	gossip.events <- cluster.Event{Kind: cluster.Up, Member: cluster.Member{Name: "the-peer", Alive: true,
		Meta: cluster.Meta{Name: "the-peer", Role: "main", Status: "inactive", Epoch: resilience.MaxEpoch + 1, Healthy: true}}}
	p := testkit.Until(t, func() *api.Peer { return h.node.Status().Peer }, func(p *api.Peer) bool {
		return p != nil && p.Reachable && strings.Contains(p.Error, "cannot be read")
	}, "the peer shown as unreadable")
	if p.Epoch != 0 || p.Status != "" {
		t.Fatalf("peer = %+v: the absurd meta was taken", p)
	}
	// An unreadable peer moves nothing: no takeover.
	time.Sleep(300 * time.Millisecond)
	if st := h.node.Status(); st.Status != "inactive" {
		t.Fatalf("status %s next to an unreadable peer", st.Status)
	}
}

// stepsShown writes a switchover's steps as "name=state ...: outcome".
func stepsShown(run *api.SwitchoverProgress) string {
	if run == nil {
		return "none"
	}
	var parts []string
	for _, s := range run.Steps {
		parts = append(parts, s.Name+"="+s.State)
	}
	return strings.Join(parts, " ") + ": " + run.Outcome
}

// A persist error ends once the data directory takes writes again: the
// node probes it, and its status stops saying it cannot persist; the end
// is audited. Before, the reason stayed until the next decision, which a
// settled node may not make for days.
func TestPersistErrorEndsWhenTheStoreTakesWrites(t *testing.T) {
	var mu sync.Mutex
	full := false
	save := func(path string, st resilience.Saved, now time.Time) error {
		mu.Lock()
		defer mu.Unlock()
		if full {
			return errors.New("no space left on device")
		}
		return saveState(path, st, now)
	}
	failedProbes := 0
	probe := func(string) error {
		mu.Lock()
		defer mu.Unlock()
		if full {
			failedProbes++
			return errors.New("no space left on device")
		}
		return nil
	}
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	// The probes tick on a fake clock: each one runs when the test moves
	// the clock, not after some real milliseconds.
	clk := testkit.NewFakeClock(time.Now())
	const probeEvery = 2 * time.Second
	h := startWith(t, t.TempDir(), resilience.RoleMain, peer, &fakeServices{}, func(d *Deps) {
		d.saveState, d.probeStore, d.probeEvery, d.clock = save, probe, probeEvery, clk
	})
	h.waitStatus("active")
	mu.Lock()
	full = true
	mu.Unlock()
	if _, err := h.node.StopServices(context.Background(), "alice", api.StopRequest{Reason: "maintenance"}); !errors.Is(err, resilience.ErrNotDurable) {
		t.Fatalf("a stop on a full disk: %v, want ErrNotDurable", err)
	}
	reason := func() bool {
		for _, r := range h.node.Status().HA.Reasons {
			if strings.Contains(r, "cannot persist its decisions") {
				return true
			}
		}
		return false
	}
	probes := func() int {
		mu.Lock()
		defer mu.Unlock()
		return failedProbes
	}
	// One probe interval at a time (a tick the loop has not taken yet is
	// not doubled, as with a real ticker), until three probes have failed.
	testkit.Until(t, func() int { clk.Advance(probeEvery); return probes() },
		func(n int) bool { return n >= 3 }, "three failed probes of the full data directory")
	// Probes ran and failed: the error must still stand.
	if !reason() {
		t.Fatalf("while the disk is full: reasons %q, want the persist error", h.node.Status().HA.Reasons)
	}
	mu.Lock()
	full = false
	mu.Unlock()
	testkit.Eventually(t, func() bool { clk.Advance(probeEvery); return !reason() },
		"the persist error to end once the disk takes writes again")
	es, _ := h.node.Audit(context.Background(), 20, 0)
	if len(es) == 0 || es[0].Action != "persist" || es[0].Outcome != api.OutcomeOK || !strings.Contains(es[0].Cause, "takes writes again") {
		t.Fatalf("the end of the persist error is not the last audit entry: %+v", es)
	}
	if st := h.node.Status(); st.Status != "active" {
		t.Fatalf("status %s after the disk came back, want active (the refused stop changed nothing)", st.Status)
	}
}

// An audit log cut short under the running node (a restore over it, a
// mistaken "> audit.db") neither crashes nor hangs the node: commands are
// still carried out (an admin must be able to act at 3 a.m.), each failed
// write is logged, and HA readiness says the log cannot be written.
func TestAuditLogCutWhileRunningIsReported(t *testing.T) {
	dir := t.TempDir()
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	svc := &fakeServices{}
	h := start(t, dir, resilience.RoleStandby, peer, svc)
	h.waitStatus("inactive")
	if err := os.Truncate(filepath.Join(dir, "audit.db"), 0); err != nil {
		t.Fatal(err)
	}

	st, err := h.node.StartServices(context.Background(), "alice", api.StartRequest{Reason: "audit cut"})
	if err != nil || st.Status != "active" {
		t.Fatalf("start with the audit log cut: %s, %v; want active", st.Status, err)
	}
	reason := ""
	for _, r := range h.node.Status().HA.Reasons {
		if strings.Contains(r, "cannot write its audit log (") && strings.Contains(r, "audit.db") {
			reason = r
		}
	}
	if reason == "" {
		t.Fatalf("readiness does not say the audit log cannot be written: %q", h.node.Status().HA.Reasons)
	}
	if _, err := h.node.Audit(context.Background(), 10, 0); !errors.Is(err, audit.ErrCorrupt) {
		t.Errorf("reading the cut audit log: %v, want ErrCorrupt", err)
	}
	st, err = h.node.StopServices(context.Background(), "alice", api.StopRequest{Reason: "audit still cut"})
	if err != nil || st.Status != "inactive" {
		t.Fatalf("stop with the audit log cut: %s, %v; want inactive", st.Status, err)
	}
}
