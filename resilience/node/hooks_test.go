package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/hooks"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// shHook runs script with sh; $0 is the hook's name, $1 is arg.
func shHook(name, script, arg string) hooks.Hook {
	return hooks.Hook{Name: name, Run: []string{"sh", "-c", script, name, arg}, Timeout: 10 * time.Second}
}

// hookLog is a hook that appends "name|phase|from|to|epoch|id|mode|node|role|cause"
// to file, between a begin and an end line a little apart: hooks that ran
// at once would interleave.
func hookLog(name, file string) hooks.Hook {
	return shHook(name, `echo "begin $0" >> "$1"
echo "$0|$RESMAN_HOOK|$RESMAN_FROM|$RESMAN_TO|$RESMAN_EPOCH|$RESMAN_TRANSITION_ID|$RESMAN_MODE|$RESMAN_NODE|$RESMAN_ROLE|$RESMAN_CAUSE" >> "$1"
sleep 0.2
echo "end $0" >> "$1"`, file)
}

func readLines(t *testing.T, file string) []string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
}

func (h *harness) waitHooks() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.node.hooks.Wait(ctx); err != nil {
		h.t.Fatalf("hooks did not end: %v", err)
	}
}

// auditID is the ID of the newest entry with action and to.
func (h *harness) auditID(action, to string) string {
	h.t.Helper()
	es, err := h.node.Audit(context.Background(), 100, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, e := range es {
		if e.Action == action && e.To == to {
			return strconv.FormatUint(e.ID, 10)
		}
	}
	h.t.Fatalf("no audit entry %s -> %s in %+v", action, to, es)
	return ""
}

// A vetoing before_activate hook keeps the node Inactive, through the
// failed-start path: the services are never started, the admin's command
// fails naming the hook, and the audit log and the status say why.
func TestBeforeActivateHookVetoesTheStart(t *testing.T) {
	dir := t.TempDir()
	log, veto := filepath.Join(dir, "hooks.log"), filepath.Join(dir, "veto")
	if err := os.WriteFile(veto, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	svc := &fakeServices{}
	h := startWith(t, dir, resilience.RoleStandby, peer, svc, func(d *Deps) {
		d.Hooks = hooks.Set{
			BeforeActivate: []hooks.Hook{
				shHook("pass", `echo "$0" >> "$1"`, log),
				shHook("check-trunk", `if [ -e "$1" ]; then echo "trunk sip-op1 down" >&2; exit 3; fi`, veto),
			},
			AfterDeactivate: []hooks.Hook{shHook("deactivated", `echo "$0 $RESMAN_TRANSITION_ID" >> "$1"`, log)},
		}
	})
	h.waitStatus("inactive")

	st, err := h.node.StartServices(context.Background(), "bob", api.StartRequest{Reason: "main is down"})
	const why = "before_activate hook check-trunk vetoed the activation: exit status 3; output: trunk sip-op1 down"
	if !errors.Is(err, resilience.ErrFailed) || !strings.Contains(err.Error(), why) {
		t.Fatalf("want ErrFailed naming the hook, got %v", err)
	}
	if st.Status != "inactive" {
		t.Fatalf("a vetoed start left the node %s", st.Status)
	}
	if got := svc.callLog(); got != "stop,stop" {
		t.Fatalf("services calls = %q, want the boot stop and the rollback stop, never a start", got)
	}
	if lc := st.LastChange; lc == nil || lc.To != "inactive" || !strings.Contains(lc.Cause, why) {
		t.Fatalf("last change must name the hook: %+v", lc)
	}
	es, err := h.node.Audit(context.Background(), 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range es {
		if e.Outcome == api.OutcomeFailed && e.Who == "bob" && strings.Contains(e.Cause, why) && strings.Contains(e.Detail, "exit status 3") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no failed audit entry naming the hook: %+v", es)
	}

	// The veto runs no after_deactivate (nothing was started); the boot's
	// deactivation did.
	h.waitHooks()
	bootID := h.auditID("boot", "deactivating")
	if got := strings.Join(readLines(t, log), ","); got != "deactivated "+bootID+",pass" {
		t.Fatalf("hooks ran: %q, want the boot's after_deactivate, then pass", got)
	}

	// The check passes again: the start goes through.
	os.Remove(veto)
	st, err = h.node.StartServices(context.Background(), "bob", api.StartRequest{Reason: "main is down"})
	if err != nil || st.Status != "active" {
		t.Fatalf("start after the veto was lifted: %s %v", st.Status, err)
	}
	if got := svc.callLog(); got != "stop,stop,start" {
		t.Fatalf("services calls = %q", got)
	}
}

// After hooks see their transition in the environment, run in order, and
// the hooks of two quick transitions never overlap.
func TestAfterHooksRunInOrderAcrossQuickTransitions(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "hooks.log")
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	h := startWith(t, dir, resilience.RoleStandby, peer, &fakeServices{}, func(d *Deps) {
		d.Hooks = hooks.Set{
			BeforeActivate:  []hooks.Hook{hookLog("b1", log)},
			AfterActivate:   []hooks.Hook{hookLog("a1", log), hookLog("a2", log)},
			AfterDeactivate: []hooks.Hook{hookLog("d1", log)},
		}
	})
	h.waitStatus("inactive")
	// The boot's after_deactivate: the status may say Inactive a moment
	// before the hook is queued, so wait for the hook itself.
	testkit.Until(t, func() []string { return readLines(t, log) }, func(l []string) bool { return slices.Contains(l, "end d1") },
		"the boot's after_deactivate hook to run")
	os.Remove(log)

	ctx := context.Background()
	if st, err := h.node.StartServices(ctx, "carol", api.StartRequest{Reason: "r"}); err != nil || st.Status != "active" {
		t.Fatalf("start: %s %v", st.Status, err)
	}
	// At once, while the after_activate hooks still run.
	if st, err := h.node.StopServices(ctx, "carol", api.StopRequest{Reason: "r"}); err != nil || st.Status != "inactive" {
		t.Fatalf("stop: %s %v", st.Status, err)
	}
	h.waitHooks()

	startID, stopID := h.auditID("start services", "activating"), h.auditID("stop services", "deactivating")
	const node = "|manual|node-standby|standby|"
	want := []string{
		"begin b1", "b1|before_activate|inactive|active|1|" + startID + node + "admin command; peer the-peer is unreachable", "end b1",
		"begin a1", "a1|after_activate|inactive|active|1|" + startID + node + "admin command; peer the-peer is unreachable", "end a1",
		"begin a2", "a2|after_activate|inactive|active|1|" + startID + node + "admin command; peer the-peer is unreachable", "end a2",
		"begin d1", "d1|after_deactivate|active|inactive|1|" + stopID + node + "admin command", "end d1",
	}
	if got := readLines(t, log); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("hook log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// An after hook's failure is audited and changes nothing.
func TestAfterHookFailureIsAudited(t *testing.T) {
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	h := startWith(t, t.TempDir(), resilience.RoleStandby, peer, &fakeServices{}, func(d *Deps) {
		d.Hooks = hooks.Set{AfterActivate: []hooks.Hook{shHook("page-oncall", `echo "pager unreachable"; exit 2`, "")}}
	})
	h.waitStatus("inactive")
	if _, err := h.node.StartServices(context.Background(), "dave", api.StartRequest{Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	h.waitHooks()
	if st := h.node.Status(); st.Status != "active" {
		t.Fatalf("a failed after hook changed the status to %s", st.Status)
	}
	startID := h.auditID("start services", "activating")
	es, _ := h.node.Audit(context.Background(), 1, 0)
	want := "after_activate hook page-oncall failed (transition " + startID + ": inactive -> active, epoch 1)"
	if len(es) != 1 || es[0].Action != "hook" || es[0].Outcome != api.OutcomeFailed || es[0].Cause != want ||
		es[0].Detail != "exit status 2; output: pager unreachable" {
		t.Fatalf("newest audit entry: %+v\nwant cause %q", es, want)
	}

	// A reload replaces the hooks for the next transitions.
	log := filepath.Join(t.TempDir(), "log")
	h.node.SetHooks(hooks.Set{AfterDeactivate: []hooks.Hook{shHook("new", `echo "$0" >> "$1"`, log)}})
	if _, err := h.node.StopServices(context.Background(), "dave", api.StopRequest{Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	h.waitHooks()
	if got := readLines(t, log); len(got) != 1 || got[0] != "new" {
		t.Fatalf("after SetHooks the new hook must run: %q", got)
	}
}

// fakeMembership is an auto-mode heartbeat that reports what the test
// sends on events (nothing when nil) and records the metas announced.
type fakeMembership struct {
	mu       sync.Mutex
	statuses []string
	events   chan cluster.Event // nil: never reports anyone
}

func (f *fakeMembership) SetMeta(m cluster.Meta) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses = append(f.statuses, m.Status)
}

func (f *fakeMembership) Events() <-chan cluster.Event { return f.events }

func (f *fakeMembership) announced() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.statuses)
}

// In auto mode a vetoed takeover is a failed start to the core: each veto
// is rolled back (one stop), the node never claims Active, and the retry
// is the core's usual one; once the check passes the node takes over.
func TestVetoInAutoModeTakesTheFailedStartPath(t *testing.T) {
	dir := t.TempDir()
	veto := filepath.Join(dir, "veto")
	vetoes := veto + ".count"
	if err := os.WriteFile(veto, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	svc := &fakeServices{}
	gossip := &fakeMembership{}
	h := startWith(t, dir, resilience.RoleStandby, peer, svc, func(d *Deps) {
		d.Core = resilience.Config{Name: "node-standby", Role: resilience.RoleStandby, Mode: resilience.ModeAuto, LostTicks: 2}
		d.Membership = gossip
		d.Hooks = hooks.Set{BeforeActivate: []hooks.Hook{
			shHook("check-trunk", `if [ -e "$1" ]; then echo veto >> "$1.count"; exit 1; fi`, veto)}}
	})
	testkit.Until(t, func() int { return len(readLines(t, vetoes)) }, func(n int) bool { return n >= 3 },
		"the takeover to be retried (three vetoes)")
	if st := h.node.Status(); st.Status == "active" {
		t.Fatal("active while the hook vetoes")
	}
	os.Remove(veto)
	h.waitStatus("active")

	n := len(readLines(t, vetoes))
	want := "stop" + strings.Repeat(",stop", n) + ",start"
	if got := svc.callLog(); got != want {
		t.Fatalf("services calls = %q, want the boot stop, one rollback stop per veto (%d), then the start", got, n)
	}
	// Active is announced once, at the very end. The status is published
	// a moment before the announce: wait for it.
	var statuses []string
	testkit.Poll(testkit.Patience, func() bool { statuses = gossip.announced(); return slices.Contains(statuses, "active") })
	if i := slices.Index(statuses, "active"); i != len(statuses)-1 {
		t.Fatalf("announced %v: the node claimed Active before the veto was lifted", statuses)
	}
	es, _ := h.node.Audit(context.Background(), 1000, 0)
	failed := 0
	for _, e := range es {
		if e.Action == "activation" && e.Outcome == api.OutcomeFailed && strings.Contains(e.Cause, "before_activate hook check-trunk vetoed") {
			failed++
		}
	}
	if failed != n {
		t.Fatalf("%d failed activations audited, want one per veto (%d)", failed, n)
	}
}
