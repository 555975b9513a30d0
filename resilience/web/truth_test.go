package web

// The page at 3 a.m., in headless Chromium: what it shows when the node
// serving it dies, the pair's readiness worded the same on both nodes'
// pages, and which node to stop in a split brain.

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/web/browsertest"
)

// serveFake serves node on a fresh local port; the server is shut down at
// the end of the test.
func serveFake(t *testing.T, node *fakeNode) (*Server, string) {
	t.Helper()
	s := New(node, Options{Token: testToken, Users: testUsers(t)})
	ln := listenLow(t) // some tests listen again on the address
	go s.Serve(ln)
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s, ln.Addr().String()
}

// logIn opens the page at base in the tab of ctx and logs in.
func logIn(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	browsertest.Do(t, ctx, "log in on "+base, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), testUser),
		chromedp.SendKeys(chromedp.CSS("#password"), testPassword),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#node-local .status-text")))
}

// waitShot waits like waitJS; when the wait fails it keeps a screenshot
// of what the page showed instead (name-failed), with the page's words in
// the failure.
func waitShot(t *testing.T, ctx context.Context, name, what, expr string) {
	t.Helper()
	err := browsertest.Poll(ctx, expr, 15*time.Second)
	if err == nil {
		return
	}
	words := pageWords(t, ctx)
	screenshot(t, ctx, name+"-failed")
	t.Fatalf("waiting for %s: %v\nthe page says: %s", what, err, words)
}

// pageWords is what the admin reads at the top of the page: the alert,
// the summary and both status bands.
func pageWords(t *testing.T, ctx context.Context) string {
	t.Helper()
	return browsertest.Eval[string](t, ctx, `['#conn-banner', '#pair-alert', '#summary', '#summary-reasons', '#summary-go', '#node-local .status-band', '#node-peer .status-band']
		.map((s) => { const e = document.querySelector(s); return e && !e.hidden ? s + ': ' + e.textContent.trim() : null; })
		.filter(Boolean).join(' | ')`)
}

var ageRE = regexp.MustCompile(`(\d+) s ago$`)

// TestDeadNodeInBrowser: the node serving the page dies. Before, the page
// kept it green Active and showed its healthy peer red Unreachable with
// "HA ready"; now both cards turn grey with their last known state and
// its age, the summary says this node does not answer and how old the
// page is, and sends the admin to the peer's own page.
func TestDeadNodeInBrowser(t *testing.T) {
	ctx := browsertest.Start(t)
	node := newFakeNode()
	dressUp(node)
	node.mu.Lock()
	node.status.Peer.URL = "http://10.0.0.2:9440"
	node.mu.Unlock()
	s, addr := serveFake(t, node)
	base := "http://" + addr
	logIn(t, ctx, base)

	// Alive: the truth, in colour.
	waitJS(t, ctx, "both nodes", q("#node-local .status-band")+".classList.contains('status-active') && "+
		q("#node-peer .status-band")+".classList.contains('status-inactive')")
	waitJS(t, ctx, "HA ready", q("#summary")+".textContent.includes('HA ready')")
	screenshot(t, ctx, "dead-node-before")

	// This node dies: its server goes away, the stream breaks, every
	// read of this node fails.
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitShot(t, ctx, "dead-node-after", "this node's card grey, with its last known state and age",
		`/^Last known: Active, \d+ s ago$/.test(`+q("#node-local .status-text")+`.textContent) && `+
			q("#node-local .status-band")+`.classList.contains('status-stale')`)
	waitShot(t, ctx, "dead-node-after", "the peer's card grey, with its last known state and age",
		`/^Last known: Inactive, \d+ s ago$/.test(`+q("#node-peer .status-text")+`.textContent) && `+
			q("#node-peer .status-band")+`.classList.contains('status-stale')`)
	waitShot(t, ctx, "dead-node-after", "the summary saying this node does not answer",
		`/^This node \(xivo-main\) does not answer: what is shown is \d+ s old\.$/.test(`+q("#summary")+`.textContent)`)
	words := pageWords(t, ctx)
	for _, bad := range []string{"Unreachable", "HA ready", "HA not ready"} {
		if regexp.MustCompile(`\b` + bad + `\b`).MatchString(words) {
			t.Errorf("a dead node's page still says %q: %s", bad, words)
		}
	}
	if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('.status-active, .status-unreachable').length`); n != 0 {
		t.Errorf("%d status bands are still green or red on a dead node's page: %s", n, words)
	}
	if !browsertest.Eval[bool](t, ctx, `[...document.querySelectorAll('.node-card')].every((c) => c.classList.contains('stale'))`) {
		t.Error("not both cards are greyed")
	}
	// Where the truth is: the peer's own page, linked at the address this
	// node knows it by (peer.api).
	if got := browsertest.Eval[string](t, ctx, q("#summary-go")+".hidden ? '' : "+q("#summary-go")+".textContent"); got != "Open xivo-standby's own page (http://10.0.0.2:9440/): it answers for itself and sees the pair from there." {
		t.Errorf("where to go: %q", got)
	}
	if href := browsertest.Eval[string](t, ctx, `(document.querySelector('#summary-go a') || {}).href || ''`); href != "http://10.0.0.2:9440/" {
		t.Errorf("the link to the peer's page: %q", href)
	}
	if !browsertest.Eval[bool](t, ctx, `[...document.querySelectorAll('.node-card .btn:not(#btn-failover-stop)')].every((b) => b.disabled && b.title.includes('this node does not answer'))`) {
		t.Error("controls of a dead node's page are not all disabled saying this node does not answer")
	}
	if !browsertest.Eval[bool](t, ctx, q("#pair-alert")+".hidden") {
		t.Errorf("an alert computed from old data shows: %s", words)
	}
	// The age grows while the node stays silent.
	age := func() int {
		m := ageRE.FindStringSubmatch(browsertest.Eval[string](t, ctx, q("#node-local .status-text")+".textContent"))
		if m == nil {
			t.Fatalf("no age in %s", pageWords(t, ctx))
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	first := age()
	time.Sleep(2500 * time.Millisecond)
	if second := age(); second < first+2 {
		t.Errorf("the age did not grow: %d s, then %d s 2.5 s later", first, second)
	}
	if got := browsertest.Eval[string](t, ctx, "document.title"); got != "xivo-main does not answer · Resilience Management · resman" {
		t.Errorf("title = %q", got)
	}
	screenshot(t, ctx, "dead-node-after")

	// It comes back: the page shows the truth again, in colour.
	node.setStatus(func(st *api.Status) { st.Epoch = 3 })
	s2 := New(node, Options{Token: testToken, Users: testUsers(t)})
	s2.auth = s.auth // the same sessions, as if they had survived
	var ln2 net.Listener
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ln2, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	go s2.Serve(ln2)
	t.Cleanup(func() { _ = s2.Shutdown(context.Background()) })
	waitShot(t, ctx, "dead-node-back", "the page back to the live state",
		q("#node-local .status-band")+".classList.contains('status-active') && "+
			q("#node-peer .status-band")+".classList.contains('status-inactive') && "+
			q("#summary")+".textContent.includes('HA ready') && "+q("#summary-go")+".hidden && "+
			`![...document.querySelectorAll('.node-card')].some((c) => c.classList.contains('stale'))`)
}

// freezer is a TCP proxy that can freeze: the connections stay open and
// nothing more passes, as when the node's host loses power (no reset, no
// answer).
type freezer struct {
	ln     net.Listener
	target string
	frozen chan struct{}
}

func newFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target, frozen: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *freezer) serve(c net.Conn) {
	select {
	case <-f.frozen:
		return // accepted, never answered; kept open until the test ends
	default:
	}
	u, err := net.Dial("tcp", f.target)
	if err != nil {
		c.Close()
		return
	}
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			select {
			case <-f.frozen:
				return // swallowed: nothing passes any more
			default:
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					dst.Close()
				}
				return
			}
		}
	}
	go pipe(u, c)
	go pipe(c, u)
}

// TestSilentNodeInBrowser: the node's host stops answering without
// closing anything (power loss): the event stream stays open and reads
// hang. The page notices by its own reads' timeouts, not by the stream.
func TestSilentNodeInBrowser(t *testing.T) {
	ctx := browsertest.Start(t)
	node := newFakeNode()
	dressUp(node)
	_, addr := serveFake(t, node)
	fr := newFreezer(t, addr)
	logIn(t, ctx, "http://"+fr.ln.Addr().String())
	waitJS(t, ctx, "both nodes", q("#node-local .status-band")+".classList.contains('status-active') && "+
		q("#node-peer .status-band")+".classList.contains('status-inactive')")
	close(fr.frozen)
	waitShot(t, ctx, "silent-node-after", "the page greyed, saying this node does not answer",
		`/^This node \(xivo-main\) does not answer: what is shown is \d+ s old\.$/.test(`+q("#summary")+`.textContent) && `+
			`/^Last known: Active, \d+ s ago$/.test(`+q("#node-local .status-text")+`.textContent) && `+
			`/^Last known: Inactive, \d+ s ago$/.test(`+q("#node-peer .status-text")+`.textContent)`)
}

// pair holds two fake nodes that see each other: what each one's status
// says of itself, of its peer, and the pair's readiness, computed by the
// core's rules as the node computes it.
type pair struct {
	main, standby *fakeNode
}

func newPair() *pair {
	m, s := newFakeNode(), newFakeNode()
	dressUp(m)
	dressUp(s)
	s.status, s.peer = m.peer, m.status
	return &pair{main: m, standby: s}
}

// set gives the pair a state: mut changes each node's own status (the
// Main's first); the views of the peer and HA readiness follow.
// localOnly adds a reason only that node sees (its replication, its disk).
func (p *pair) set(mut func(main, standby *api.Status), localOnly map[string]string) {
	p.main.mu.Lock()
	p.standby.mu.Lock()
	ms, ss := p.main.status, p.standby.status
	mut(&ms, &ss)
	facts := func(st api.Status) resilience.NodeFacts {
		f := resilience.NodeFacts{Name: st.Node, Role: resilience.Role(st.Role), Status: resilience.Status(st.Status),
			Epoch: st.Epoch, Version: st.Version, Unhealthy: !st.Healthy, HeldByAdmin: st.Failover.HeldByAdmin}
		if st.Failover.Manual && st.Failover.Until != nil {
			f.FailoverUntil = st.Failover.Until.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		return f
	}
	view := func(st api.Status) *api.Peer {
		v := &api.Peer{Name: st.Node, Reachable: true, Status: st.Status, Epoch: st.Epoch, Version: st.Version,
			Healthy: st.Healthy, CheckedAt: time.Now().UTC(), HeldByAdmin: st.Failover.HeldByAdmin}
		if st.Failover.Manual {
			v.FailoverUntil = st.Failover.Until
		}
		return v
	}
	ready := func(self, peer api.Status) api.HA {
		in := resilience.ReadinessInput{Self: facts(self), Peer: facts(peer), PeerReachable: true}
		if j := localOnly[self.Node]; j != "" {
			in.StaleJobs = []string{j}
		}
		ok, reasons := resilience.Readiness(in)
		if reasons == nil {
			reasons = []string{}
		}
		return api.HA{Ready: ok, Reasons: reasons}
	}
	ms.Peer, ss.Peer = view(ss), view(ms)
	ms.HA, ss.HA = ready(ms, ss), ready(ss, ms)
	p.main.status, p.main.peer = ms, ss
	p.standby.status, p.standby.peer = ss, ms
	p.standby.mu.Unlock()
	p.main.mu.Unlock()
	p.main.publish(api.Event{Name: api.EventStatus, Data: ms})
	p.standby.publish(api.Event{Name: api.EventStatus, Data: ss})
}

// summaryOf is the pair summary of a page: its line and its reasons.
func summaryOf(t *testing.T, ctx context.Context) string {
	t.Helper()
	return browsertest.Eval[string](t, ctx, q("#summary")+".textContent + ' | ' + [...document.querySelectorAll('#summary-reasons li')].map((li) => li.textContent).join(' / ')")
}

// TestPairSummaryInBrowser: the pages of both nodes of a pair, in the same
// states, say the same of the pair. Before, each page took its own node's
// view ("xivo-main (Main, this node) is …"; during a manual HA failover
// the Standby's page said "HA ready" while the Main's said "not ready").
func TestPairSummaryInBrowser(t *testing.T) {
	ctx := browsertest.Start(t)
	p := newPair()
	_, mainAddr := serveFake(t, p.main)
	_, standbyAddr := serveFake(t, p.standby)
	// One browser per page, as two admins (or two windows) would have
	// them: each page live and painted.
	mainTab, standbyTab := ctx, browsertest.Start(t)
	logIn(t, mainTab, "http://"+mainAddr)
	logIn(t, standbyTab, "http://"+standbyAddr)
	tabs := map[string]context.Context{"main": mainTab, "standby": standbyTab}

	// shown waits until both pages show the Main and the Standby in
	// these states, then compares their summaries.
	shown := func(state, mainStatus, standbyStatus string) string {
		t.Helper()
		for name, tab := range tabs {
			local, peer := mainStatus, standbyStatus
			if name == "standby" {
				local, peer = peer, local
			}
			waitShot(t, tab, "pair-summary-"+state+"-"+name, state+" on the "+name+"'s page",
				q("#node-local .status-band")+".classList.contains('status-"+local+"') && "+
					q("#node-peer .status-band")+".classList.contains('status-"+peer+"')")
		}
		// The peer's side follows a poll of up to 3 s: the same facts on
		// both pages once both have read both nodes.
		var a, b string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			a, b = summaryOf(t, mainTab), summaryOf(t, standbyTab)
			if a == b || time.Now().After(deadline) {
				break
			}
		}
		if a != b {
			screenshot(t, mainTab, "pair-summary-"+state+"-main-failed")
			screenshot(t, standbyTab, "pair-summary-"+state+"-standby-failed")
			t.Fatalf("%s: the pages of the pair disagree:\n main's:    %s\n standby's: %s", state, a, b)
		}
		return a
	}
	class := func(tab context.Context) string { return browsertest.Eval[string](t, tab, q("#summary")+".className") }

	// Normal: the Main Active, the Standby Inactive, ready.
	p.set(func(m, s *api.Status) {
		m.Status, m.Epoch, s.Status, s.Epoch = api.StatusActive, 4, api.StatusInactive, 3
	}, nil)
	got := shown("normal", "active", "inactive")
	if want := "xivo-main (Main) is Active · xivo-standby (Standby) is Inactive · HA ready | "; got != want {
		t.Errorf("normal: summary %q, want %q", got, want)
	}
	for name, tab := range tabs {
		if c := class(tab); c != "summary-line summary-ok" {
			t.Errorf("normal, %s's page: summary class %q", name, c)
		}
	}

	// A manual HA failover of the Main: not redundant, on both pages; a
	// reason only the Standby sees (its replication) shows on both pages.
	until := time.Now().Add(30 * time.Minute).UTC().Truncate(time.Second)
	p.set(func(m, s *api.Status) {
		m.Mode, s.Mode = "auto", "auto"
		m.Status, m.Failover = api.StatusInactive, api.Failover{Manual: true, Until: &until, Holding: true}
		s.Status, s.Epoch = api.StatusActive, 5
	}, map[string]string{"xivo-standby": "db"})
	got = shown("failover", "inactive", "active")
	if !regexp.MustCompile(`^xivo-main \(Main\) is Inactive · xivo-standby \(Standby\) is Active · HA not ready \| ` +
		`not redundant: a manual failover holds xivo-main Inactive until [^/]+ / ` +
		`replication job db has not succeeded within its max_age \(or never ran\), seen from xivo-standby$`).MatchString(got) {
		t.Errorf("manual HA failover: summary %q", got)
	}
	for name, tab := range tabs {
		if c := class(tab); c != "summary-line summary-warn" {
			t.Errorf("manual HA failover, %s's page: summary class %q", name, c)
		}
	}
	screenshot(t, mainTab, "pair-summary-failover-main")
	screenshot(t, standbyTab, "pair-summary-failover-standby")

	// No node Active: red, on both pages.
	p.set(func(m, s *api.Status) {
		m.Failover, s.Status = api.Failover{}, api.StatusInactive
	}, nil)
	got = shown("no-active", "inactive", "inactive")
	if want := "No node is Active · xivo-main (Main) is Inactive · xivo-standby (Standby) is Inactive · HA not ready | " +
		"no node is Active: the telephony runs on neither xivo-main nor xivo-standby"; got != want {
		t.Errorf("no node Active: summary %q, want %q", got, want)
	}
	for name, tab := range tabs {
		if c := class(tab); c != "summary-line summary-bad" {
			t.Errorf("no node Active, %s's page: summary class %q, want red", name, c)
		}
		if col := browsertest.Eval[string](t, tab, "getComputedStyle("+q("#summary")+").color"); col != "rgb(142, 27, 27)" {
			t.Errorf("no node Active, %s's page: summary colour %s, want red ink", name, col)
		}
	}
	screenshot(t, mainTab, "pair-summary-no-active-main")
	screenshot(t, standbyTab, "pair-summary-no-active-standby")
}

// TestSplitBrainInBrowser: two Active nodes. Before, the page said "stop
// services on one of them"; now it names the node with the older claim
// (the lower epoch; on equal epochs the Main keeps the role), offers to
// stop that one, and the Stop dialog says why.
func TestSplitBrainInBrowser(t *testing.T) {
	ctx := browsertest.Start(t)
	p := newPair()
	p.set(func(m, s *api.Status) {
		m.Status, m.Epoch, s.Status, s.Epoch = api.StatusActive, 3, api.StatusActive, 5
	}, nil)
	node := p.main // the page of the Main
	_, addr := serveFake(t, node)
	logIn(t, ctx, "http://"+addr)

	waitShot(t, ctx, "split-brain", "the split brain naming the stale node",
		q("#pair-alert")+".textContent.includes('xivo-main holds the older claim (epoch 3 against 5)') && "+
			q("#split-stop")+".textContent === 'Stop services on xivo-main' && !"+q("#split-stop")+".disabled")
	if got := browsertest.Eval[string](t, ctx, q("#pair-alert .alert-text")+".textContent"); got != "Two Active nodes: xivo-main (epoch 3) and xivo-standby (epoch 5) both run the telephony. "+
		"xivo-main holds the older claim (epoch 3 against 5): stop services there; xivo-standby keeps the role." {
		t.Errorf("split brain alert: %q", got)
	}
	screenshot(t, ctx, "split-brain")
	browsertest.Do(t, ctx, "open the stop of the stale node", chromedp.Click(chromedp.CSS("#split-stop")), chromedp.WaitVisible(chromedp.CSS("#confirm-reason")))
	if got := browsertest.Eval[string](t, ctx, q("#confirm-title")+".textContent"); got != "Stop services on xivo-main?" {
		t.Errorf("dialog title %q", got)
	}
	if got := browsertest.Eval[string](t, ctx, q("#confirm-consequence")+".textContent"); got != "Two Active nodes: xivo-main holds the older claim (epoch 3 against 5). "+
		"Stopping services on xivo-main ends its calls; xivo-standby stays Active and alone runs the telephony." {
		t.Errorf("stop dialog: %q", got)
	}
	screenshot(t, ctx, "split-brain-dialog")
	browsertest.Do(t, ctx, "stop the stale node", chromedp.SendKeys(chromedp.CSS("#confirm-reason"), "split brain: older claim"),
		chromedp.Click(chromedp.CSS("#confirm-ok")))
	waitJS(t, ctx, "dialog closed", "!"+q("#confirm")+".open")
	if c := lastCall(t, node, "stop"); c.Stop.Reason != "split brain: older claim" {
		t.Errorf("stop call = %+v", c)
	}

	// The Stop of the node with the newer claim warns that it is the one
	// to keep.
	p.set(func(m, s *api.Status) {
		m.Status, m.Epoch, s.Status, s.Epoch = api.StatusActive, 5, api.StatusActive, 5
	}, nil)
	waitShot(t, ctx, "split-brain-equal", "equal epochs: the Standby is stale",
		q("#pair-alert .alert-text")+".textContent.includes('xivo-standby holds the older claim (epoch 5 against 5: on equal epochs the Main keeps the role)') && "+
			q("#split-stop")+".textContent === 'Stop services on xivo-standby'")
	browsertest.Do(t, ctx, "open the stop of the newer claim", chromedp.Click(chromedp.CSS("#node-local .btn-stop")), chromedp.WaitVisible(chromedp.CSS("#confirm-reason")))
	if got := browsertest.Eval[string](t, ctx, q("#confirm-consequence")+".textContent"); got != "Two Active nodes: xivo-main holds the newer claim (epoch 5 against 5: on equal epochs the Main keeps the role): "+
		"it is the one to keep. Stop services on xivo-standby instead, unless you mean to move the telephony there." {
		t.Errorf("stop dialog of the newer claim: %q", got)
	}
	if !browsertest.Eval[bool](t, ctx, q("#confirm-consequence")+".classList.contains('consequence-warn')") {
		t.Error("stopping the newer claim is not shown as a warning")
	}
	browsertest.Do(t, ctx, "cancel", chromedp.Click(chromedp.CSS("#confirm-cancel")))
	waitJS(t, ctx, "dialog closed", "!"+q("#confirm")+".open")
	browsertest.Do(t, ctx, "stop the stale peer", chromedp.Click(chromedp.CSS("#split-stop")), chromedp.WaitVisible(chromedp.CSS("#confirm-reason")))
	if got := browsertest.Eval[string](t, ctx, q("#confirm-consequence")+".textContent"); got != "Two Active nodes: xivo-standby holds the older claim (epoch 5 against 5: on equal epochs the Main keeps the role). "+
		"Stopping services on xivo-standby ends its calls; xivo-main stays Active and alone runs the telephony." {
		t.Errorf("stop dialog of the stale peer: %q", got)
	}
	browsertest.Do(t, ctx, "stop the stale peer", chromedp.SendKeys(chromedp.CSS("#confirm-reason"), "split brain, equal epochs"),
		chromedp.Click(chromedp.CSS("#confirm-ok")))
	if c := lastCall(t, node, "peer-stop"); c.Stop.Reason != "split brain, equal epochs" {
		t.Errorf("peer stop call = %+v", c)
	}
}
