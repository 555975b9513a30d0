package web

// The read-only viewer and Replicate now, in headless Chromium against the
// fake node.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/resilience/web/browsertest"
)

// listenLow listens on a loopback port below the kernel's ephemeral range
// (testkit.Port), so that no client's connection takes it meanwhile: a
// test that stops its server and listens again on the same address relies
// on it, and the port is reserved against the other test processes.
func listenLow(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", testkit.Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveViewer serves node with an admin (alice) and a viewer (wall).
func serveViewer(t *testing.T, node *fakeNode) string {
	t.Helper()
	s := New(node, Options{Token: testToken, Users: viewerUsers(t)})
	ln := listenLow(t)
	go s.Serve(ln)
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return "http://" + ln.Addr().String()
}

func logInAs(t *testing.T, ctx context.Context, base, user string) {
	t.Helper()
	browsertest.Do(t, ctx, "log in as "+user, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), testPassword),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#node-local .status-text")))
}

// visibleButtons lists the buttons shown on the page (the dialog's are
// not: it is closed) with their state, as "id-or-text|disabled|title".
const visibleButtons = `[...document.querySelectorAll('button')].filter((b) => b.offsetParent !== null && !b.closest('dialog'))
	.map((b) => (b.id || b.textContent.trim()) + '|' + b.disabled + '|' + b.title)`

// readButtons are the buttons that only read or leave: they stay enabled
// for a viewer.
var readButtons = map[string]bool{"logout": true, "audit-more": true}

// TestViewerInBrowser: logged in as a viewer, the page shows both nodes,
// the replication table, the audit log and live updates, and every write
// button is disabled with the reason "read-only viewer", where an admin's
// page in the same state has them enabled. A write sent anyway from the
// page is refused by the node.
func TestViewerInBrowser(t *testing.T) {
	ctx := browsertest.Start(t)
	node := newFakeNode()
	dressUp(node)
	node.status.Replication = []api.Replication{{Name: "db", Kind: "exec", Direction: "send", LastRun: time.Now().Add(-time.Minute), OK: true, LastSuccess: time.Now().Add(-time.Minute)}}
	base := serveViewer(t, node)

	// The admin first: the same state has enabled write buttons (else the
	// viewer's check below would prove nothing).
	logInAs(t, ctx, base, testUser)
	waitJS(t, ctx, "the admin's page", q("#node-peer .status-text")+".textContent === 'Inactive' && !"+q("#replicate")+".hidden")
	for _, id := range []string{"#node-local .btn-stop", "#node-peer .btn-start", "#btn-switchover", "#btn-replicate"} {
		waitJS(t, ctx, id+" enabled for the admin", q(id)+".disabled === false")
	}
	if browsertest.Eval[bool](t, ctx, q("#viewer-tag")+" !== null") {
		t.Error("the admin's page is marked read-only")
	}
	browsertest.Do(t, ctx, "admin logout", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-submit")))

	logInAs(t, ctx, base, testViewer)
	waitJS(t, ctx, "the viewer's page", q("#node-peer .status-text")+".textContent === 'Inactive' && "+
		q("#node-local .status-text")+".textContent === 'Active' && !"+q("#replicate")+".hidden")
	waitJS(t, ctx, "the audit log", q("#audit-body")+".textContent.includes('failback after maintenance')")
	if got := browsertest.Eval[string](t, ctx, visibleText("#viewer-tag")); got != "read-only viewer" {
		t.Errorf("the viewer tag says %q", got)
	}
	buttons := browsertest.Eval[[]string](t, ctx, visibleButtons)
	writes := 0
	for _, b := range buttons {
		id, rest, _ := strings.Cut(b, "|")
		disabled, title, _ := strings.Cut(rest, "|")
		if readButtons[id] {
			continue
		}
		writes++
		if disabled != "true" || !strings.Contains(title, "read-only viewer") {
			t.Errorf("write button %q for a viewer: disabled %s, title %q; want disabled with the reason read-only viewer", id, disabled, title)
		}
	}
	// Start and Stop on both cards, Switchover, Manual HA failover and
	// Replicate now.
	if writes < 7 {
		t.Errorf("%d write buttons shown to the viewer, want 7 (disabled): %q", writes, buttons)
	}
	if note := browsertest.Eval[string](t, ctx, q("#node-local-note")+".textContent"); note != "read-only viewer" {
		t.Errorf("the local card's note: %q", note)
	}
	// A click on a disabled button opens no dialog.
	browsertest.Eval[bool](t, ctx, q("#node-local .btn-stop")+".click(), true")
	if browsertest.Eval[bool](t, ctx, q("#confirm")+".open") {
		t.Error("the Stop dialog opened for a viewer")
	}

	// Live updates reach the viewer.
	node.setStatus(func(st *api.Status) { st.Status = api.StatusDeactivating })
	waitJS(t, ctx, "the live update", q("#node-local .status-band")+".classList.contains('status-deactivating')")
	if title := browsertest.Eval[string](t, ctx, q("#node-local .btn-start")+".title"); !strings.Contains(title, "read-only viewer") {
		t.Errorf("during a transition the viewer's Start says %q, want read-only viewer", title)
	}
	node.setStatus(func(st *api.Status) { st.Status = api.StatusActive })
	waitJS(t, ctx, "back to Active", q("#node-local .status-text")+".textContent === 'Active'")
	screenshot(t, ctx, "viewer")

	// A write sent from the viewer's page anyway, with its CSRF token.
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	got, err := chromedp.Run(fctx, chromedp.Evaluate[string](`(async () => {
		const csrf = document.querySelector('meta[name="csrf-token"]').content;
		const r = await fetch('/api/v1/services/stop', { method: 'POST', credentials: 'same-origin',
			headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf }, body: JSON.stringify({ reason: 'wall' }) });
		return r.status + ' ' + (await r.json()).error;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("a write from the viewer's page: %v", err)
	}
	if !strings.HasPrefix(got, "403 ") || !strings.Contains(got, "read-only viewer") {
		t.Errorf("a viewer's stop sent from the page: %q, want 403 read-only viewer", got)
	}
	for _, c := range node.Calls() {
		if c.Method == "stop" {
			t.Errorf("the viewer's stop reached the node: %+v", c)
		}
	}
}

// TestReplicateNowInBrowser: on the Active node with jobs it sends,
// Replicate now asks a reason, runs the jobs through POST
// /api/v1/replication/run (with the CSRF token, as web:alice) and shows
// the outcome; the table shows the last attempt and the last success
// apart. A failed run shows its failure; on the Inactive node the button
// is disabled with its reason; with no jobs it is not shown.
func TestReplicateNowInBrowser(t *testing.T) {
	ctx := browsertest.Start(t)
	node := newFakeNode()
	dressUp(node)
	now := time.Now().UTC().Truncate(time.Second)
	node.status.Replication = []api.Replication{
		// The last attempt failed; the last success is older.
		{Name: "db", Kind: "exec", Direction: "send", LastRun: now.Add(-2 * time.Minute), OK: false, Error: "pg_dump: connection refused",
			LastSuccess: now.Add(-3 * time.Hour)},
		{Name: "asterisk-conf", Kind: "files", Direction: "send", LastRun: now.Add(-time.Minute), OK: true, LastSuccess: now.Add(-time.Minute)},
		{Name: "asterisk-conf", Kind: "files", Direction: "receive"},
	}
	base := serveViewer(t, node)
	logInAs(t, ctx, base, testUser)

	row := func(job string) string {
		return fmt.Sprintf(`[...document.querySelectorAll('#node-local tbody tr')].find((r) => r.querySelector('th') && r.querySelector('th').textContent === %q && r.querySelector('.repl-attempt'))`, job)
	}
	waitJS(t, ctx, "the replication table", row("db")+" !== undefined")
	if head := browsertest.Eval[string](t, ctx, `[...document.querySelectorAll('#node-local thead')].map((h) => h.textContent).find((h) => h.includes('Direction'))`); !strings.Contains(head, "Last attempt") || !strings.Contains(head, "Last success") {
		t.Errorf("the replication table's head: %q, want Last attempt and Last success", head)
	}
	attempt := browsertest.Eval[string](t, ctx, row("db")+".querySelector('.repl-attempt time').dateTime")
	success := browsertest.Eval[string](t, ctx, row("db")+".querySelector('.repl-success time').dateTime")
	if !strings.HasPrefix(attempt, now.Add(-2*time.Minute).Format("2006-01-02T15:04:05")) || !strings.HasPrefix(success, now.Add(-3*time.Hour).Format("2006-01-02T15:04:05")) {
		t.Errorf("db: last attempt %s, last success %s; want %s and %s", attempt, success, now.Add(-2*time.Minute), now.Add(-3*time.Hour))
	}

	// Replicate now: the dialog, a reason, the run.
	waitJS(t, ctx, "Replicate now enabled", q("#btn-replicate")+".disabled === false")
	browsertest.Do(t, ctx, "open Replicate now", chromedp.Click(chromedp.CSS("#btn-replicate")), chromedp.WaitVisible(chromedp.CSS("#confirm-reason")))
	if title := browsertest.Eval[string](t, ctx, q("#confirm-title")+".textContent"); title != "Replicate now from xivo-main to xivo-standby?" {
		t.Errorf("dialog title %q", title)
	}
	if cq := browsertest.Eval[string](t, ctx, q("#confirm-consequence")+".textContent"); !strings.Contains(cq, "db, asterisk-conf") {
		t.Errorf("the dialog does not name the jobs: %q", cq)
	}
	screenshot(t, ctx, "replicate-now-dialog")
	browsertest.Do(t, ctx, "confirm", chromedp.SendKeys(chromedp.CSS("#confirm-reason"), "before the upgrade"),
		chromedp.Click(chromedp.CSS("#confirm-ok")))
	waitJS(t, ctx, "dialog closed", "!"+q("#confirm")+".open")
	c := lastCall(t, node, "replication-run")
	if c.Who != "web:"+testUser || c.Repl.Reason != "before the upgrade" || c.Repl.Job != "" {
		t.Errorf("the node saw %+v", c)
	}
	waitJS(t, ctx, "the outcome", q("#replicate-outcome")+".textContent.includes('done')")
	if out := browsertest.Eval[string](t, ctx, q("#replicate-outcome")+".textContent"); out != "Replicate now from xivo-main: done: db: ok, asterisk-conf: ok." {
		t.Errorf("outcome %q", out)
	}
	// The table: db's last attempt and last success are now the same run.
	waitJS(t, ctx, "db succeeded", row("db")+".querySelector('.repl-success time').dateTime === "+row("db")+".querySelector('.repl-attempt time').dateTime")
	screenshot(t, ctx, "replicate-now-done")

	// A failed run: its failure is the outcome.
	node.mu.Lock()
	node.replErr = errors.New("rsync: connection reset by peer")
	node.mu.Unlock()
	browsertest.Do(t, ctx, "open Replicate now again", chromedp.Click(chromedp.CSS("#btn-replicate")), chromedp.WaitVisible(chromedp.CSS("#confirm-reason")),
		chromedp.SendKeys(chromedp.CSS("#confirm-reason"), "retry"), chromedp.Click(chromedp.CSS("#confirm-ok")))
	waitJS(t, ctx, "the failure", q("#replicate-outcome")+".textContent.includes('failed')")
	if out := browsertest.Eval[string](t, ctx, q("#replicate-outcome")+".textContent"); out != "Replicate now from xivo-main: failed: replication of all jobs: rsync: connection reset by peer" ||
		!browsertest.Eval[bool](t, ctx, q("#replicate-outcome")+".classList.contains('outcome-bad')") {
		t.Errorf("failed run outcome %q", out)
	}
	screenshot(t, ctx, "replicate-now-failed")

	// The node becomes Inactive: the button says why it is disabled.
	node.setStatus(func(st *api.Status) { st.Status = api.StatusInactive })
	waitJS(t, ctx, "disabled on the Inactive node", q("#btn-replicate")+".disabled === true")
	if note := browsertest.Eval[string](t, ctx, q("#replicate-note")+".textContent"); !strings.Contains(note, "this node is Inactive: replication runs from the Active node") {
		t.Errorf("the Inactive node's Replicate now note: %q", note)
	}
	// No jobs: no button.
	node.setStatus(func(st *api.Status) { st.Status = api.StatusActive; st.Replication = []api.Replication{} })
	waitJS(t, ctx, "no button without jobs", q("#replicate")+".hidden === true")
}
