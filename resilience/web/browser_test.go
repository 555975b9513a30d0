package web

// The page in headless Chromium against the fake node: what needs states
// that real processes hardly hold still (a transition, an unreachable
// peer), the phone layout and the reconnection after a server restart.
// The failover itself runs against real processes in cmd/resman.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
	"github.com/resman-pbx/resman/resilience/web/browsertest"
)

// waitJS waits until the JavaScript expression is true.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if err := browsertest.Poll(ctx, expr, 25*time.Second); err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

// screenshot writes a full-page PNG to testout/screenshots/ at the
// repository root.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	out := filepath.Join(dir, "testout", "screenshots")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// dressUp gives the fake node what a real pair shows: recent times, MDS
// registrations, replication and an audit log.
func dressUp(f *fakeNode) {
	now := time.Now().UTC().Truncate(time.Second)
	f.status.Since = now.Add(-3*time.Hour - 12*time.Minute)
	f.status.Peer.CheckedAt = now
	f.status.XDS = []api.Registration{
		{MDS: "mds1", Registered: true, Reachable: true, StatusCode: 200, ExpiresAt: now.Add(50 * time.Minute)},
		{MDS: "mds2", Registered: false, Reachable: false, StatusCode: 0, Error: "no answer to OPTIONS"},
	}
	f.status.Replication = []api.Replication{{Name: "db", LastRun: now.Add(-4 * time.Minute), OK: true}}
	f.status.LastChange = &api.Transition{From: api.StatusInactive, To: api.StatusActive, Cause: "admin start", At: f.status.Since}
	f.peer.Since = now.Add(-3*time.Hour - 12*time.Minute)
	f.peer.Peer.CheckedAt = now
	f.peer.Replication = []api.Replication{{Name: "db", LastRun: now.Add(-4 * time.Minute), OK: true}}
	f.entries = []api.AuditEntry{
		{ID: 3, Time: f.status.Since, Who: "web:alice", Action: "start services", Reason: "failback after maintenance", Cause: "admin", Outcome: api.OutcomeOK, Epoch: 3, From: api.StatusInactive, To: api.StatusActive},
		{ID: 2, Time: f.status.Since.Add(-40 * time.Minute), Who: "api:bob@ops1", Action: "start services", Reason: "try", Outcome: api.OutcomeRefused, Detail: "the peer xivo-standby is Active (epoch 2): conflict", Epoch: 2},
		{ID: 1, Time: f.status.Since.Add(-2 * time.Hour), Who: "resman", Action: "boot", Cause: "first start: the Main starts Active", Outcome: api.OutcomeOK, Epoch: 1, To: api.StatusActive},
	}
}

// q is a JavaScript expression for the element of a CSS selector.
func q(sel string) string { return fmt.Sprintf("document.querySelector(%q)", sel) }

func TestPageInBrowser(t *testing.T) {
	ctx := browsertest.Start(t)
	node := newFakeNode()
	dressUp(node)
	s := New(node, Options{Token: testToken, Users: testUsers(t)})
	ln := listenLow(t) // listened again on when the node comes back
	addr := ln.Addr().String()
	go s.Serve(ln)
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	base := "http://" + addr

	// Log in.
	browsertest.Do(t, ctx, "login form", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#user")))
	screenshot(t, ctx, "login")
	browsertest.Do(t, ctx, "log in",
		chromedp.SendKeys(chromedp.CSS("#user"), testUser),
		chromedp.SendKeys(chromedp.CSS("#password"), testPassword),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#node-local .status-text")))
	waitJS(t, ctx, "both nodes", q("#node-local .status-text")+".textContent === 'Active' && "+
		q("#node-peer .status-text")+".textContent === 'Inactive'")
	if title := browsertest.Eval[string](t, ctx, q("#node-local .btn-start")+".title"); !strings.Contains(title, "already Active") {
		t.Errorf("Start on the Active node: title %q, want it to say already Active", title)
	}
	if title := browsertest.Eval[string](t, ctx, q("#node-peer .btn-stop")+".title"); !strings.Contains(title, "already Inactive") {
		t.Errorf("Stop on the Inactive peer: title %q", title)
	}

	// The dialog: the consequence and the force option when the other node
	// is Active; focus in the reason; Escape closes it.
	browsertest.Do(t, ctx, "open start on the peer", chromedp.Click(chromedp.CSS("#node-peer .btn-start")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-reason")))
	if got := browsertest.Eval[string](t, ctx, q("#confirm-consequence")+".textContent"); !strings.Contains(got, "xivo-main is Active: starting xivo-standby makes two Active nodes") {
		t.Errorf("consequence = %q", got)
	}
	if !browsertest.Eval[bool](t, ctx, "!"+q("#force-box")+".hidden && document.activeElement.id === 'confirm-reason'") {
		t.Error("the force option is not offered, or the focus is not on the reason")
	}
	browsertest.Do(t, ctx, "escape", chromedp.KeyEvent("\x1b"))
	waitJS(t, ctx, "dialog closed", "!"+q("#confirm")+".open")
	// Stop on the Active node: no force option.
	browsertest.Do(t, ctx, "open stop", chromedp.Click(chromedp.CSS("#node-local .btn-stop")), chromedp.WaitVisible(chromedp.CSS("#confirm-reason")))
	if !browsertest.Eval[bool](t, ctx, q("#force-box")+".hidden") {
		t.Error("the force option is offered for a stop")
	}
	// Tab stays in the dialog: from its last control back to its first.
	browsertest.Do(t, ctx, "tab past the end", chromedp.Focus(chromedp.CSS("#confirm-ok")), chromedp.KeyEvent("\t"))
	if id := browsertest.Eval[string](t, ctx, "document.activeElement.id"); id != "confirm-reason" {
		t.Errorf("Tab from the last control of the dialog went to %q, want confirm-reason", id)
	}
	browsertest.Do(t, ctx, "cancel", chromedp.Click(chromedp.CSS("#confirm-cancel")))
	waitJS(t, ctx, "dialog closed", "!"+q("#confirm")+".open")

	// A transition: every control disabled, saying why.
	node.setStatus(func(st *api.Status) { st.Status = api.StatusDeactivating })
	waitJS(t, ctx, "transition shown", q("#node-local .status-band")+".classList.contains('status-deactivating')")
	waitJS(t, ctx, "controls disabled", `[...document.querySelectorAll('.node-card .btn:not(#btn-failover-stop)')].every(b => b.disabled && b.title.includes('a transition is under way'))`)
	screenshot(t, ctx, "transition")

	// The peer unreachable: its side says so and its controls are off.
	node.mu.Lock()
	node.peerErr = fmt.Errorf("%w: GET /api/v1/status: dial tcp 127.0.0.2:9440: connect: connection refused", client.ErrUnreachable)
	node.mu.Unlock()
	node.setStatus(func(st *api.Status) {
		st.Status = api.StatusActive
		p := *st.Peer
		p.Reachable, p.Error = false, "dial tcp 127.0.0.2:9440: connect: connection refused"
		st.Peer = &p
		st.HA = api.HA{Ready: false, Reasons: []string{"peer xivo-standby unreachable"}}
	})
	waitJS(t, ctx, "peer unreachable", q("#node-peer .status-text")+".textContent === 'Unreachable'")
	waitJS(t, ctx, "peer controls off", `[...document.querySelectorAll('#node-peer .btn')].every(b => b.disabled && b.title.includes('peer unreachable'))`)
	if !browsertest.Eval[bool](t, ctx, q("#node-local .btn-stop")+".disabled === false") {
		t.Error("the local Stop is disabled while the peer is unreachable")
	}
	screenshot(t, ctx, "peer-unreachable")

	// Back to normal, on a phone: the nodes stack.
	node.mu.Lock()
	node.peerErr = nil
	node.mu.Unlock()
	node.setStatus(func(st *api.Status) {
		p := *st.Peer
		p.Reachable, p.Error = true, ""
		st.Peer = &p
		st.HA = api.HA{Ready: true, Reasons: []string{}}
	})
	waitJS(t, ctx, "peer back", q("#node-peer .status-text")+".textContent === 'Inactive'")
	browsertest.Do(t, ctx, "phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
	waitJS(t, ctx, "stacked", q("#node-peer")+".getBoundingClientRect().top >= "+q("#node-local")+".getBoundingClientRect().bottom")
	if w := browsertest.Eval[float64](t, ctx, "document.documentElement.scrollWidth"); w > 392 {
		t.Errorf("the page is %v px wide on a 390 px phone", w)
	}
	screenshot(t, ctx, "phone")
	browsertest.Do(t, ctx, "laptop", chromedp.EmulateViewport(1366, 900))

	// The server restarts: the page says it is reconnecting, then catches
	// up with what changed meanwhile, without a reload.
	browsertest.Eval[bool](t, ctx, "window.__noReload = true")
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "reconnecting banner", "!"+q("#conn-banner")+".hidden")
	node.setStatus(func(st *api.Status) { st.Status = api.StatusInactive; st.Epoch = 3 })
	s2 := New(node, Options{Token: testToken, Users: testUsers(t)})
	s2.auth = s.auth // the same sessions, as if they had survived
	var ln2 net.Listener
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln2, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	go s2.Serve(ln2)
	t.Cleanup(func() { _ = s2.Shutdown(context.Background()) })
	waitJS(t, ctx, "reconnected", q("#conn-banner")+".hidden && "+q("#node-local .status-text")+".textContent === 'Inactive'")
	if !browsertest.Eval[bool](t, ctx, "window.__noReload === true") {
		t.Error("the page reloaded")
	}

	// Logout.
	browsertest.Do(t, ctx, "logout", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-submit")))
	if txt := browsertest.Eval[string](t, ctx, "document.body.textContent"); !strings.Contains(txt, "You are logged out.") {
		t.Errorf("after logout: %q", txt)
	}
}

// lastCall is the last call of method the fake node saw, waiting for it
// up to a deadline.
func lastCall(t *testing.T, f *fakeNode, method string) call {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		calls := f.Calls()
		for i := len(calls) - 1; i >= 0; i-- {
			if calls[i].Method == method {
				return calls[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fake node saw no %s call", method)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHAControlsInBrowser drives the switchover and the manual HA
// failover of this node from the page.
func TestHAControlsInBrowser(t *testing.T) {
	ctx := browsertest.Start(t)
	node := newFakeNode()
	dressUp(node)
	// This node starts Inactive, its peer Active.
	node.status.Status = api.StatusInactive
	node.status.Peer.Status = api.StatusActive
	node.peer.Status = api.StatusActive
	node.status.Replication[0].Direction = "send"
	s := New(node, Options{Token: testToken, Users: testUsers(t)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	base := "http://" + ln.Addr().String()

	browsertest.Do(t, ctx, "log in", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), testUser),
		chromedp.SendKeys(chromedp.CSS("#password"), testPassword),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#node-local .status-text")))
	waitJS(t, ctx, "both nodes", q("#node-local .status-text")+".textContent === 'Inactive' && "+
		q("#node-peer .status-text")+".textContent === 'Active'")

	// Inactive, manual mode: both disabled, saying why.
	waitJS(t, ctx, "switchover disabled", q("#btn-switchover")+".disabled && "+
		q("#btn-switchover")+".title.includes(\"this node is Inactive: open xivo-standby's page\")")
	if title := browsertest.Eval[string](t, ctx, q("#btn-failover")+".title"); !browsertest.Eval[bool](t, ctx, q("#btn-failover")+".disabled") ||
		!strings.Contains(title, "manual mode: use Stop services here and Start services on the peer") {
		t.Errorf("manual HA failover in manual mode: title %q, want disabled saying manual mode", title)
	}
	if !browsertest.Eval[bool](t, ctx, q("#failover-banner")+".hidden") {
		t.Error("the manual failover banner shows with no manual failover")
	}

	// Active with the peer Inactive: the switchover is offered.
	node.setPeer(func(st *api.Status) { st.Status = api.StatusInactive })
	node.setStatus(func(st *api.Status) {
		st.Status = api.StatusActive
		p := *st.Peer
		p.Status = api.StatusInactive
		st.Peer = &p
	})
	waitJS(t, ctx, "switchover enabled", "!"+q("#btn-switchover")+".disabled")
	browsertest.Do(t, ctx, "open switchover", chromedp.Click(chromedp.CSS("#btn-switchover")), chromedp.WaitVisible(chromedp.CSS("#confirm-reason")))
	if got := browsertest.Eval[string](t, ctx, q("#confirm-consequence")+".textContent"); !strings.Contains(got, "xivo-main stops, then xivo-standby starts; calls move to xivo-standby") {
		t.Errorf("switchover consequence = %q", got)
	}
	if !browsertest.Eval[bool](t, ctx, "!"+q("#sync-box")+".hidden && "+q("#for-box")+".hidden && "+q("#force-box")+".hidden && document.activeElement.id === 'confirm-reason'") {
		t.Error("the switchover dialog: want the sync option only, and the focus on the reason")
	}
	// A refusal shows in the dialog.
	node.mu.Lock()
	node.switchErr = fmt.Errorf("%w: not ready for a switchover: replication db is stale", resilience.ErrPrecondition)
	node.mu.Unlock()
	browsertest.Do(t, ctx, "refused switchover", chromedp.SendKeys(chromedp.CSS("#confirm-reason"), "kernel update"),
		chromedp.Click(chromedp.CSS("#confirm-sync")), chromedp.Click(chromedp.CSS("#confirm-ok")))
	waitJS(t, ctx, "refusal shown", "!"+q("#confirm-error")+".hidden && "+q("#confirm-error")+".textContent.includes('replication db is stale')")
	node.mu.Lock()
	node.switchErr = nil
	node.mu.Unlock()
	browsertest.Do(t, ctx, "switchover", chromedp.Click(chromedp.CSS("#confirm-ok")))
	waitJS(t, ctx, "switchover done", "!"+q("#confirm")+".open && "+q("#node-local .status-text")+".textContent === 'Inactive'")
	if c := lastCall(t, node, "switchover"); c.Switch.Reason != "kernel update" || !c.Switch.Sync || !strings.HasPrefix(c.Who, "web:") {
		t.Errorf("switchover call = %+v, want reason %q, sync, by web:", c, "kernel update")
	}
	waitJS(t, ctx, "switchover disabled again", q("#btn-switchover")+".disabled")

	// Auto mode on the Main, Active, HA ready: the manual HA failover.
	node.setPeer(func(st *api.Status) { st.Status = api.StatusInactive; st.Mode = "auto" })
	node.setStatus(func(st *api.Status) {
		st.Status, st.Mode = api.StatusActive, "auto"
		st.HA = api.HA{Ready: false, Reasons: []string{"replication db is stale"}}
		p := *st.Peer
		p.Status = api.StatusInactive
		st.Peer = &p
	})
	waitJS(t, ctx, "failover disabled, HA not ready", q("#btn-failover")+".disabled && "+
		q("#btn-failover")+".title.includes('HA is not ready: replication db is stale')")
	node.setStatus(func(st *api.Status) { st.HA = api.HA{Ready: true, Reasons: []string{}} })
	waitJS(t, ctx, "failover enabled", "!"+q("#btn-failover")+".disabled")
	browsertest.Do(t, ctx, "open failover", chromedp.Click(chromedp.CSS("#btn-failover")), chromedp.WaitVisible(chromedp.CSS("#confirm-for")))
	browsertest.Eval[bool](t, ctx, `(() => { const s = document.getElementById('confirm-for'); s.value = '1h'; s.dispatchEvent(new Event('change')); return true; })()`)
	if got := browsertest.Eval[string](t, ctx, q("#confirm-consequence")+".textContent"); !strings.Contains(got, "xivo-main steps down and holds Inactive until ") ||
		!strings.Contains(got, "xivo-standby carries the load; the pair is not redundant meanwhile") {
		t.Errorf("failover consequence = %q", got)
	}
	if !browsertest.Eval[bool](t, ctx, q("#sync-box")+".hidden") {
		t.Error("the sync option shows for a manual HA failover")
	}
	browsertest.Do(t, ctx, "failover", chromedp.SendKeys(chromedp.CSS("#confirm-reason"), "test the standby"), chromedp.Click(chromedp.CSS("#confirm-ok")))
	waitJS(t, ctx, "failover banner", "!"+q("#confirm")+".open && !"+q("#failover-banner")+".hidden && "+
		q("#failover-text")+".textContent.startsWith('Manual HA failover until ') && !"+q("#btn-failover-stop")+".disabled")
	if c := lastCall(t, node, "failover-start"); c.Fail.For != "1h" || c.Fail.Reason != "test the standby" {
		t.Errorf("failover call = %+v, want for 1h", c)
	}
	if title := browsertest.Eval[string](t, ctx, q("#btn-failover")+".title"); !strings.Contains(title, "a manual HA failover is under way") {
		t.Errorf("failover button during a manual failover: title %q", title)
	}
	screenshot(t, ctx, "ha-controls")

	// Stop it.
	browsertest.Do(t, ctx, "open stop failover", chromedp.Click(chromedp.CSS("#btn-failover-stop")), chromedp.WaitVisible(chromedp.CSS("#confirm-reason")))
	if !browsertest.Eval[bool](t, ctx, q("#for-box")+".hidden && "+q("#sync-box")+".hidden") {
		t.Error("the stop dialog offers a duration or sync")
	}
	browsertest.Do(t, ctx, "stop failover", chromedp.SendKeys(chromedp.CSS("#confirm-reason"), "done testing"), chromedp.Click(chromedp.CSS("#confirm-ok")))
	waitJS(t, ctx, "banner gone", "!"+q("#confirm")+".open && "+q("#failover-banner")+".hidden")
	if c := lastCall(t, node, "failover-stop"); c.Stop.Reason != "done testing" {
		t.Errorf("stop failover call = %+v", c)
	}
}
