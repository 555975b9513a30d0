package web

// The page and the CLI tell the truth at 3 a.m., points 4, 5, 7 and 8, in
// headless Chromium against fake nodes: what the auto-mode Stop does and
// the hold it leaves, controls disabled before the click when their
// precondition already fails, where the view of the peer comes from and
// what the pair waits for, one time zone, the audit filters, the login
// page and the phone.

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
	"github.com/resman-pbx/resman/resilience/web/browsertest"
)

// visibleText is the text of sel when it shows, else "".
func visibleText(sel string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e && !e.hidden && e.offsetParent !== null ? e.textContent.trim() : ''; })()`, sel)
}

// TestAutoStopInBrowser (point 4): in auto mode, the Stop dialog of the
// Active Main whose Standby is ready says that the Standby takes over
// within about a second and that the Main is then held; before, it said
// "no node runs the telephony". Once stopped, the held node carries an
// indicator on its card, on its own page and on its peer's.
func TestAutoStopInBrowser(t *testing.T) {
	ctx := browsertest.Start(t)
	p := newPair()
	p.set(func(m, s *api.Status) { m.Mode, s.Mode = "auto", "auto" }, nil)
	_, mainAddr := serveFake(t, p.main)
	_, standbyAddr := serveFake(t, p.standby)
	logIn(t, ctx, "http://"+mainAddr)
	waitShot(t, ctx, "auto-stop", "both nodes", q("#node-local .status-text")+".textContent === 'Active' && "+
		q("#node-peer .status-text")+".textContent === 'Inactive'")

	browsertest.Do(t, ctx, "open stop on the Main", chromedp.Click(chromedp.CSS("#node-local .btn-stop")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-reason")))
	got := browsertest.Eval[string](t, ctx, q("#confirm-consequence")+".textContent")
	if !strings.Contains(got, "xivo-standby takes over within about a second; xivo-main is then held Inactive until you Start services on it.") {
		t.Errorf("the auto-mode Stop dialog says %q, want the takeover and the hold", got)
	}
	if strings.Contains(got, "no node runs the telephony") {
		t.Errorf("the auto-mode Stop dialog still predicts no Active node: %q", got)
	}
	screenshot(t, ctx, "auto-stop-dialog")
	browsertest.Do(t, ctx, "cancel", chromedp.Click(chromedp.CSS("#confirm-cancel")))

	// A Standby that holds (an admin's Stop) would not take over: then
	// the dialog says so, and why.
	p.set(func(m, s *api.Status) { s.Failover.HeldByAdmin, s.Failover.Holding = true, true }, nil)
	waitShot(t, ctx, "auto-stop", "the peer's hold shown", visibleText("#node-peer .held-banner")+".startsWith(\"Held by an admin's Stop: Start services to release.\")")
	browsertest.Do(t, ctx, "open stop on the Main again", chromedp.Click(chromedp.CSS("#node-local .btn-stop")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-reason")))
	if got := browsertest.Eval[string](t, ctx, q("#confirm-consequence")+".textContent"); !strings.Contains(got, "xivo-standby does not take over: it is held by an admin's Stop. No node runs the telephony") {
		t.Errorf("Stop with a held Standby: %q", got)
	}
	browsertest.Do(t, ctx, "cancel", chromedp.Click(chromedp.CSS("#confirm-cancel")))

	// What the Stop did: the Standby took over, the Main is held.
	p.set(func(m, s *api.Status) {
		s.Failover = api.Failover{}
		m.Status, m.Failover.HeldByAdmin, m.Failover.Holding = api.StatusInactive, true, true
		s.Status, s.Epoch = api.StatusActive, 4
	}, nil)
	// The two cards are read apart (this node's stream, the peer's
	// status): wait for both to show the new state, then look.
	waitShot(t, ctx, "auto-stop-held", "the hold on the Main's own card, the Active Standby's card read again",
		visibleText("#node-local .held-banner")+".startsWith(\"Held by an admin's Stop: Start services to release.\") && "+
			q("#node-peer .status-text")+".textContent === 'Active'")
	if txt := browsertest.Eval[string](t, ctx, visibleText("#node-peer .held-banner")); txt != "" {
		t.Errorf("the Active Standby shows a hold: %q", txt)
	}
	screenshot(t, ctx, "auto-stop-held-main")

	// The Standby's page shows the Main's hold too (its peer).
	logIn(t, ctx, "http://"+standbyAddr)
	waitShot(t, ctx, "auto-stop-held", "the Main's hold on the Standby's page",
		visibleText("#node-peer .held-banner")+".startsWith(\"Held by an admin's Stop: Start services to release.\")")
	screenshot(t, ctx, "auto-stop-held-standby")

	// With only the Standby's view of the Main (peer.held_by_admin), as
	// when the Main's full status cannot be read.
	p.standby.mu.Lock()
	p.standby.peerErr = fmt.Errorf("%w: GET /api/v1/status: timeout", client.ErrUnreachable)
	p.standby.mu.Unlock()
	p.standby.setStatus(func(st *api.Status) {
		v := *st.Peer
		v.Reachable, v.Status, v.Error = false, "", "timeout"
		v.HeldByAdmin = true
		st.Peer = &v
	})
	waitShot(t, ctx, "auto-stop-held", "the peer unreachable", q("#node-peer .status-text")+".textContent === 'Unreachable'")
	waitShot(t, ctx, "auto-stop-held", "the hold from peer.held_by_admin",
		visibleText("#node-peer .held-banner")+".startsWith(\"Held by an admin's Stop\")")
}

// TestPreconditionsInBrowser (point 5): each action button is disabled,
// with its reason in its title and on a visible line, when the status the
// page holds already says the node would refuse; before, the switchover
// stayed clickable and was refused only after Confirm.
func TestPreconditionsInBrowser(t *testing.T) {
	ctx := browsertest.Start(t)
	node := newFakeNode()
	dressUp(node)
	node.status.Version, node.peer.Version, node.status.Peer.Version = "2.1.0", "1.9.3", "1.9.3"
	_, addr := serveFake(t, node)
	logIn(t, ctx, "http://"+addr)
	swDisabled := func(why string) string {
		return q("#btn-switchover") + ".disabled && " + q("#btn-switchover") + ".title.includes(" + fmt.Sprintf("%q", why) + ") && " +
			visibleText("#ha-note") + ".includes(" + fmt.Sprintf("%q", "Switchover: "+why) + ")"
	}
	waitShot(t, ctx, "preconditions", "switchover refused for major versions",
		swDisabled("different major versions: xivo-main runs 2.1.0, xivo-standby 1.9.3"))
	screenshot(t, ctx, "preconditions-versions")

	// Same major: the switchover is offered.
	node.setPeer(func(st *api.Status) { st.Version = "2.0.4" })
	node.setStatus(func(st *api.Status) { v := *st.Peer; v.Version = "2.0.4"; st.Peer = &v })
	waitShot(t, ctx, "preconditions", "switchover enabled", "!"+q("#btn-switchover")+".disabled && "+visibleText("#ha-note")+".indexOf('Switchover:') < 0")

	// The peer not Inactive.
	node.setPeer(func(st *api.Status) { st.Status = api.StatusActive })
	node.setStatus(func(st *api.Status) { v := *st.Peer; v.Status = api.StatusActive; st.Peer = &v })
	waitShot(t, ctx, "preconditions", "switchover refused, peer Active", swDisabled("the peer is Active, not Inactive"))
	// Start on the Active node: disabled, said on the card's line.
	if got := browsertest.Eval[string](t, ctx, visibleText("#node-local-note")); got != "Start services: already Active" {
		t.Errorf("the line under the Active node's buttons: %q", got)
	}

	// The peer unreachable.
	node.mu.Lock()
	node.peerErr = fmt.Errorf("%w: GET /api/v1/status: connection refused", client.ErrUnreachable)
	node.mu.Unlock()
	node.setStatus(func(st *api.Status) { v := *st.Peer; v.Reachable, v.Error = false, "connection refused"; st.Peer = &v })
	waitShot(t, ctx, "preconditions", "switchover refused, peer unreachable", swDisabled("the peer is unreachable"))
	waitShot(t, ctx, "preconditions", "the peer's card unreachable", q("#node-peer .status-text")+".textContent === 'Unreachable'")
	if !browsertest.Eval[bool](t, ctx, `[...document.querySelectorAll('#node-peer .btn')].every((b) => b.disabled && b.title.includes('peer unreachable'))`) {
		t.Error("the unreachable peer's Start and Stop are not disabled saying why")
	}
	if got := browsertest.Eval[string](t, ctx, visibleText("#node-peer-note")); got != "peer unreachable" {
		t.Errorf("the line under the unreachable peer's buttons: %q", got)
	}

	// Auto mode, Main Active, HA ready, but the peer's summary says it is
	// unreachable: the manual HA failover would leave no one Active.
	node.setStatus(func(st *api.Status) {
		st.Mode = "auto"
		st.HA = api.HA{Ready: true, Reasons: []string{}}
	})
	waitShot(t, ctx, "preconditions", "failover refused, peer unreachable",
		q("#btn-failover")+".disabled && "+q("#btn-failover")+".title.includes('the peer is unreachable: nobody would take over') && "+
			visibleText("#ha-note")+".includes('Manual HA failover: the peer is unreachable')")
	screenshot(t, ctx, "preconditions-unreachable")

	// This node Inactive, the peer back and Active.
	node.mu.Lock()
	node.peerErr = nil
	node.mu.Unlock()
	node.setStatus(func(st *api.Status) {
		st.Status = api.StatusInactive
		v := *st.Peer
		v.Reachable, v.Error, v.Status = true, "", api.StatusActive
		st.Peer = &v
	})
	waitShot(t, ctx, "preconditions", "switchover refused, this node Inactive", swDisabled("this node is Inactive: open xivo-standby's page"))
	// A switchover stopped this node and starts the peer: the node refuses
	// a Start until it ends, and the page knows it.
	node.setStatus(func(st *api.Status) { st.Failover.Switchover = "sw-7f3a" })
	waitShot(t, ctx, "preconditions", "Start disabled during a switchover",
		q("#node-local .btn-start")+".disabled && "+visibleText("#node-local-note")+
			" === 'Start: switchover sw-7f3a is starting xivo-standby: wait until it ends · Stop: already Inactive'")
	if got := browsertest.Eval[string](t, ctx, visibleText("#pending")); got != "switchover sw-7f3a: xivo-main held Inactive until it ends" {
		t.Errorf("the pending line during a switchover: %q", got)
	}
	node.setStatus(func(st *api.Status) { st.Failover.Switchover = "" })

	// The node's refusal after Confirm stays the last word for what the
	// page cannot know (here, a stale replication job).
	node.setPeer(func(st *api.Status) { st.Status = api.StatusInactive })
	node.setStatus(func(st *api.Status) {
		st.Status = api.StatusActive
		v := *st.Peer
		v.Status = api.StatusInactive
		st.Peer = &v
	})
	node.mu.Lock()
	node.switchErr = fmt.Errorf("%w: not ready for a switchover: replication db is stale", resilience.ErrPrecondition)
	node.mu.Unlock()
	waitShot(t, ctx, "preconditions", "switchover enabled", "!"+q("#btn-switchover")+".disabled")
	browsertest.Do(t, ctx, "switchover refused after confirm", chromedp.Click(chromedp.CSS("#btn-switchover")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-reason")),
		chromedp.SendKeys(chromedp.CSS("#confirm-reason"), "kernel update"), chromedp.Click(chromedp.CSS("#confirm-ok")))
	waitShot(t, ctx, "preconditions", "the refusal in the dialog", visibleText("#confirm-error")+".includes('replication db is stale')")
}

// TestPeerFreshnessInBrowser (point 7): the view of the peer says where
// it comes from (gossip in auto mode, polls in manual mode), an
// unreachable peer that answered this page says when it last did, and
// a manual HA failover's hold shows on both nodes' pages with its end.
func TestPeerFreshnessInBrowser(t *testing.T) {
	ctx := browsertest.Start(t)
	p := newPair()
	p.set(func(m, s *api.Status) { m.Mode, s.Mode = "auto", "auto" }, nil)
	// The view came from gossip that last changed it 9 minutes ago.
	old := time.Now().Add(-9 * time.Minute).UTC()
	p.main.setStatus(func(st *api.Status) { v := *st.Peer; v.CheckedAt = old; st.Peer = &v })
	_, mainAddr := serveFake(t, p.main)
	_, standbyAddr := serveFake(t, p.standby)
	logIn(t, ctx, "http://"+mainAddr)
	seen := `[...document.querySelectorAll('#node-local .facts .freshness')].map((e) => e.textContent).join('|')`
	waitShot(t, ctx, "freshness", "the peer seen over gossip", seen+" === 'over gossip, live'")

	// Manual mode: the view comes from polls, with the last answer's age.
	p.set(func(m, s *api.Status) { m.Mode, s.Mode = "manual", "manual" }, nil)
	waitShot(t, ctx, "freshness", "the peer polled", `/^last answer (just now|\d+ s ago)$/.test(`+seen+`)`)

	// The peer stops answering after this page read it: the card says when
	// it last answered, never "never answered".
	p.main.mu.Lock()
	p.main.peerErr = fmt.Errorf("%w: GET /api/v1/status: connection refused", client.ErrUnreachable)
	p.main.mu.Unlock()
	p.main.setStatus(func(st *api.Status) {
		v := *st.Peer
		v.Reachable, v.Status, v.Error = false, "", "connection refused"
		st.Peer = &v
	})
	waitShot(t, ctx, "freshness", "the peer unreachable", q("#node-peer .status-text")+".textContent === 'Unreachable'")
	last := browsertest.Eval[string](t, ctx, `[...document.querySelectorAll('#node-peer .facts dt')].filter((d) => d.textContent === 'Last answer').map((d) => d.nextElementSibling.textContent).join('')`)
	if !regexp.MustCompile(`^Inactive, epoch 2 · last answer (just now|\d+ s ago) \(read by this page\)$`).MatchString(last) {
		t.Errorf("the unreachable peer's last answer: %q", last)
	}
	if body := browsertest.Eval[string](t, ctx, "document.body.textContent"); strings.Contains(body, "never answered") {
		t.Error("the page says the peer never answered, after it answered")
	}
	screenshot(t, ctx, "freshness-unreachable")
	p.main.mu.Lock()
	p.main.peerErr = nil
	p.main.mu.Unlock()

	// A manual HA failover holds the Main for 12 minutes: both pages say
	// so, with the end in UTC and how far it is.
	until := time.Now().Add(12*time.Minute + 20*time.Second).UTC().Truncate(time.Second)
	p.set(func(m, s *api.Status) {
		m.Mode, s.Mode = "auto", "auto"
		m.Status, s.Status = api.StatusInactive, api.StatusActive
		m.Failover = api.Failover{Manual: true, Until: &until, Holding: true}
	}, nil)
	want := "manual failover: xivo-main held until " + until.Format("15:04:05") + " UTC (in 12 min)"
	waitShot(t, ctx, "pending-main", "the pending hold on the Main's page", visibleText("#pending")+" === "+fmt.Sprintf("%q", want))
	screenshot(t, ctx, "pending-main")
	logIn(t, ctx, "http://"+standbyAddr)
	waitShot(t, ctx, "pending-standby", "the pending hold on the Standby's page", visibleText("#pending")+" === "+fmt.Sprintf("%q", want))
	// From peer.failover_until alone, when the Main cannot be read.
	p.standby.mu.Lock()
	p.standby.peerErr = fmt.Errorf("%w: GET /api/v1/status: timeout", client.ErrUnreachable)
	p.standby.mu.Unlock()
	p.standby.setStatus(func(st *api.Status) { st.Epoch++ })
	waitShot(t, ctx, "pending-standby", "the peer unreachable", q("#node-peer .status-text")+".textContent === 'Unreachable'")
	if got := browsertest.Eval[string](t, ctx, visibleText("#pending")); got != want {
		t.Errorf("the Standby's page with only peer.failover_until: %q, want %q", got, want)
	}
	screenshot(t, ctx, "pending-standby")
	p.standby.mu.Lock()
	p.standby.peerErr = nil
	p.standby.mu.Unlock()

	// The manual failover over, the Standby counts down its failback.
	back := time.Now().Add(2*time.Minute + 20*time.Second).UTC().Truncate(time.Second)
	p.set(func(m, s *api.Status) {
		m.Failover = api.Failover{}
		s.Failover = api.Failover{FailbackAt: &back}
	}, nil)
	want = "failback: xivo-standby hands the Active role back to xivo-main at " + back.Format("15:04:05") + " UTC (in 2 min), if it stays up and ready"
	waitShot(t, ctx, "pending-failback", "the failback countdown", visibleText("#pending")+" === "+fmt.Sprintf("%q", want))
	screenshot(t, ctx, "pending-failback")
}

// TestTimesAuditLoginPhoneInBrowser (point 8): a browser in New York
// shows every time in UTC, saying so; the audit log folds routine entries
// and filters the rest; the login page names the node; on a phone the
// peer's card is on the first screen.
func TestTimesAuditLoginPhoneInBrowser(t *testing.T) {
	ctx := browsertest.Start(t, chromedp.Env("TZ=America/New_York"))
	node := newFakeNode()
	dressUp(node)
	base := node.status.Since
	for i := 0; i < 12; i++ {
		node.entries = append(node.entries, api.AuditEntry{ID: uint64(10 + i), Time: base.Add(time.Duration(i) * time.Minute),
			Who: "resman", Action: "replication", Cause: "replication db ok", Outcome: api.OutcomeOK, Epoch: 3})
	}
	node.entries = append(node.entries,
		api.AuditEntry{ID: 30, Time: base.Add(20 * time.Minute), Who: "resman", Action: "replication", Cause: "replication db failed",
			Outcome: api.OutcomeFailed, Detail: "exit status 1", Epoch: 3},
		api.AuditEntry{ID: 31, Time: base.Add(21 * time.Minute), Who: "resman", Action: "deactivated", Cause: "peer lost",
			Outcome: api.OutcomeOK, Epoch: 3, From: api.StatusActive, To: api.StatusInactive})
	_, addr := serveFake(t, node)

	// The login page names the node.
	browsertest.Do(t, ctx, "login form", chromedp.Navigate("http://"+addr+"/"), chromedp.WaitVisible(chromedp.CSS("#user")))
	if got := browsertest.Eval[string](t, ctx, visibleText("#login-node")); got != "Node xivo-main (Main)" {
		t.Errorf("the login page names %q, want the node", got)
	}
	if title := browsertest.Eval[string](t, ctx, "document.title"); !strings.Contains(title, "xivo-main") {
		t.Errorf("the login page's title %q does not name the node", title)
	}
	screenshot(t, ctx, "login-node")
	logIn(t, ctx, "http://"+addr)
	waitShot(t, ctx, "times", "the audit log", `document.querySelectorAll('#audit-body tr[data-id]').length > 0`)

	// The browser is in New York; every time says UTC and is the UTC one.
	if tz := browsertest.Eval[string](t, ctx, "Intl.DateTimeFormat().resolvedOptions().timeZone"); tz != "America/New_York" {
		t.Logf("the browser's zone is %q, not New York: the test shows less", tz)
	}
	bad := browsertest.Eval[string](t, ctx, `[...document.querySelectorAll('time')].map((e) => e.textContent).filter((x) => !/\d\d:\d\d:\d\d UTC/.test(x)).join(' | ')`)
	if bad != "" {
		t.Errorf("times without their zone: %s", bad)
	}
	sinceUTC := node.status.Since.Format("2006-01-02 15:04:05") + " UTC"
	if sub := browsertest.Eval[string](t, ctx, q("#node-local .status-sub")+".textContent"); !strings.Contains(sub, "since "+sinceUTC) {
		t.Errorf("the status band says %q, want since %s", sub, sinceUTC)
	}

	// The audit log: routine entries folded by default.
	ids := func() string {
		return browsertest.Eval[string](t, ctx, `[...document.querySelectorAll('#audit-body tr[data-id]')].map((r) => r.dataset.id).join(',')`)
	}
	if got := ids(); got != "31,30,3,2,1" {
		t.Errorf("audit rows by default: %s, want the routine ones folded", got)
	}
	if got := browsertest.Eval[string](t, ctx, visibleText("#audit-folded")); !strings.HasPrefix(got, "12 routine entries (replication runs that went well) folded") {
		t.Errorf("the folded line: %q", got)
	}
	screenshot(t, ctx, "audit-filters")
	browsertest.Do(t, ctx, "failures only", chromedp.Click(chromedp.CSS("#audit-f-failed")))
	if got := ids(); got != "30,2" {
		t.Errorf("failures and refusals only: %s", got)
	}
	browsertest.Do(t, ctx, "no failures filter", chromedp.Click(chromedp.CSS("#audit-f-failed")), chromedp.Click(chromedp.CSS("#audit-f-auto")))
	if got := ids(); got != "3,2" {
		t.Errorf("admin actions only: %s", got)
	}
	browsertest.Do(t, ctx, "routine too", chromedp.Click(chromedp.CSS("#audit-f-auto")), chromedp.Click(chromedp.CSS("#audit-f-routine")))
	if got := strings.Count(ids(), ",") + 1; got != 17 {
		t.Errorf("every entry: %d rows, want 17", got)
	}

	// A phone: the peer's status and controls on the first screen.
	browsertest.Do(t, ctx, "phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
	browsertest.Eval[bool](t, ctx, "(() => { window.scrollTo(0, 0); return true; })()")
	waitShot(t, ctx, "phone-compact", "the details folded", "!"+q("#node-local details.more")+".open")
	bottom := browsertest.Eval[float64](t, ctx, q("#node-peer .buttons")+".getBoundingClientRect().bottom")
	if bottom > 844 {
		t.Errorf("on a 390x844 phone the peer's buttons end at %v px, below the first screen", bottom)
	}
	if w := browsertest.Eval[float64](t, ctx, "document.documentElement.scrollWidth"); w > 392 {
		t.Errorf("the page is %v px wide on a 390 px phone", w)
	}
	screenshot(t, ctx, "phone-compact")
	browsertest.Do(t, ctx, "open the details", chromedp.Click(chromedp.CSS("#node-peer .more-summary")))
	waitShot(t, ctx, "phone-compact", "the peer's details open", q("#node-peer details.more")+".open && "+visibleText("#node-peer .details h3")+" === 'Services'")
}

// TestReplicationTableInBrowser (point 6): on a healthy pair the Active
// node's table shows what it sends, with its direction; the receiving
// side's rows (never received while Active) are not shown as failures.
func TestReplicationTableInBrowser(t *testing.T) {
	ctx := browsertest.Start(t)
	node := newFakeNode()
	dressUp(node)
	now := time.Now().UTC().Truncate(time.Second)
	node.status.Replication = []api.Replication{
		{Name: "asterisk-conf", Kind: "files", Direction: "send", LastRun: now.Add(-time.Minute), OK: true, LastSuccess: now.Add(-time.Minute)},
		{Name: "asterisk-conf", Kind: "files", Direction: "receive", Stale: true, Error: "never received"},
	}
	_, addr := serveFake(t, node)
	logIn(t, ctx, "http://"+addr)
	rows := `[...document.querySelectorAll('#node-local table')].filter((t) => t.textContent.includes('Direction')).flatMap((t) => [...t.querySelectorAll('tbody tr')]).map((r) => r.textContent)`
	waitJS(t, ctx, "the replication table", rows+".length === 1")
	got := browsertest.Eval[string](t, ctx, rows+".join('|')")
	if !strings.Contains(got, "asterisk-conf") || !strings.Contains(got, "sent to the peer") || !strings.Contains(got, "ok") ||
		strings.Contains(got, "never received") || strings.Contains(got, "failed") {
		t.Errorf("the Active node's replication rows: %q", got)
	}
	screenshot(t, ctx, "replication-table")
}
