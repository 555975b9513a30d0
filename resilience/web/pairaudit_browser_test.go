package web

// The Pair timeline in headless Chromium against the fake node, as the
// read-only viewer: both logs on one axis, a window with two Active nodes
// in the strip, routine runs folded into one line that opens, an admin's
// reason shown as text, and the peer unreadable. The real processes'
// failover and failback: cmd/resman/pairtimeline_browser_test.go.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
	"github.com/resman-pbx/resman/resilience/web/browsertest"
)

func TestPairTimelineInBrowser(t *testing.T) {
	ctx := browsertest.Start(t)
	node := newFakeNode()
	dressUp(node)
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	e := func(id uint64, s int, who, action, from, to, cause string) api.AuditEntry {
		return api.AuditEntry{ID: id, Time: at(s), Who: who, Action: action, Outcome: api.OutcomeOK, From: from, To: to, Cause: cause, Epoch: 2}
	}
	// The Standby forced Active while the Main still was: two Active
	// nodes for 5 s; the Main then stopped. Three routine replication
	// runs of the Standby after.
	node.entries = []api.AuditEntry{
		e(4, 600, "resman", "sip unregister", "inactive", "inactive", "unregistered from MDS mds1"),
		e(3, 305, "web:alice", "stop services", "active", "inactive", "admin command"),
		e(2, 0, "resman", "activated", "activating", "active", "services started"),
		e(1, 0, "resman", "boot", "", "activating", "first start"),
	}
	node.entries[1].Reason = `<img src=x onerror="document.title='owned'"> split brain`
	node.peerEntries = []api.AuditEntry{
		e(6, 900, "resman", "replication", "active", "active", "schedule job db took 4ms"),
		e(5, 800, "resman", "replication", "active", "active", "schedule job db took 5ms"),
		e(4, 700, "resman", "replication", "active", "active", "schedule job db took 3ms"),
		e(3, 300, "api:bob@ops1", "start services", "inactive", "active", "forced: admin command"),
		e(2, 290, "api:bob@ops1", "start services", "inactive", "inactive", "xivo-main is Active"),
		e(1, 0, "resman", "boot", "", "inactive", "first start"),
	}
	node.peerEntries[4].Outcome = api.OutcomeRefused
	base := serveViewer(t, node)
	logInAs(t, ctx, base, testViewer)
	waitJS(t, ctx, "the pair timeline", `document.querySelectorAll('#pt-body tr.pt-entry[data-node="xivo-standby"]').length > 0`)

	texts := func(sel string) []string {
		return browsertest.Eval[[]string](t, ctx, fmt.Sprintf(`[...document.querySelectorAll(%q)].map(e => e.textContent)`, sel))
	}
	// Routine runs: one line with the count, that opens and folds.
	fold := texts("#pt-body tr.pt-fold")
	if len(fold) != 1 || !strings.Contains(fold[0], "3 routine entries (replication runs that went well) on xivo-standby") {
		t.Errorf("fold lines %q", fold)
	}
	if n := len(texts(`#pt-body tr.pt-entry`)); n != 7 {
		t.Errorf("%d entries shown, want 7 (3 folded)", n)
	}
	browsertest.Do(t, ctx, "open the routine runs", chromedp.Click(chromedp.CSS("#pt-body .pt-fold-btn")))
	if n := len(texts(`#pt-body tr.pt-entry`)); n != 10 {
		t.Errorf("%d entries shown opened, want 10", n)
	}
	if got := browsertest.Eval[string](t, ctx, q("#pt-body .pt-fold-btn")+".getAttribute('aria-expanded')"); got != "true" {
		t.Errorf("aria-expanded %q", got)
	}
	browsertest.Do(t, ctx, "fold them", chromedp.Click(chromedp.CSS("#pt-body .pt-fold-btn")))

	// The reason is text.
	if browsertest.Eval[int](t, ctx, `document.querySelectorAll('#pair-timeline img').length`) != 0 ||
		browsertest.Eval[string](t, ctx, "document.title") == "owned" {
		t.Fatal("an admin's reason ran as markup")
	}
	if !strings.Contains(strings.Join(texts("#pt-body .pt-reason"), "|"), `<img src=x onerror="document.title='owned'"> split brain`) {
		t.Errorf("the reason is not shown as written: %q", texts("#pt-body .pt-reason"))
	}

	// The strip: the window with two Active nodes, and the summary.
	if kinds := browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll('#pt-strip rect.pt-win')].map(r => r.dataset.kind)`); strings.Join(kinds, ",") != "two_active" {
		t.Errorf("windows %q, want one with two Active nodes", kinds)
	}
	if s := browsertest.Eval[string](t, ctx, q("#pt-summary")+".textContent"); !strings.Contains(s, "Two Active nodes: 5 s") || !strings.Contains(s, "No Active node: never") {
		t.Errorf("summary %q", s)
	}
	// The failures filter: the refused start only.
	browsertest.Do(t, ctx, "failures", chromedp.Click(chromedp.CSS("#pt-f-failures")))
	if rows := texts("#pt-body tr.pt-entry"); len(rows) != 1 || !strings.Contains(rows[0], "refused") {
		t.Errorf("failures: %q", rows)
	}
	browsertest.Do(t, ctx, "all", chromedp.Click(chromedp.CSS("#pt-f-all")))
	browsertest.Do(t, ctx, "scroll", chromedp.ScrollIntoView(chromedp.CSS("#pair-timeline")))
	screenshot(t, ctx, "pair-timeline-two-active")

	// The peer unreadable: this node's entries, and why.
	node.mu.Lock()
	node.peerAuditErr = fmt.Errorf("%w: dial tcp 10.0.0.2:8443: connect: connection refused", client.ErrUnreachable)
	node.mu.Unlock()
	waitJS(t, ctx, "the peer's error", "!"+q("#pt-peer-error")+".hidden")
	if msg := browsertest.Eval[string](t, ctx, q("#pt-peer-error")+".textContent"); msg != "Only xivo-main's entries: xivo-standby unreachable: dial tcp 10.0.0.2:8443: connect: connection refused." {
		t.Errorf("peer error %q", msg)
	}
	if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('#pt-body tr[data-node="xivo-standby"], #pt-strip rect.pt-win').length`); n != 0 {
		t.Errorf("%d rows of the peer or windows left", n)
	}
	if l := browsertest.Eval[string](t, ctx, q(`#pt-strip .pt-label[data-lane="1"]`)+".textContent"); l != "xivo-standby not read" {
		t.Errorf("the peer's lane says %q", l)
	}
	if s := browsertest.Eval[string](t, ctx, q("#pt-summary")+".textContent"); !strings.Contains(s, "cannot be told") {
		t.Errorf("summary %q", s)
	}
	screenshot(t, ctx, "pair-timeline-peer-unreachable")
}
