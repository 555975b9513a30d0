package main

// The pair timeline of the Resilience Management page in headless Chromium
// against two real resman processes: a failover (the Main stopped, the
// Standby started) and a failback (back), then the timeline shows both
// nodes' transitions in order with their reasons and causes, and the strip
// each node's Active periods and the two windows with no Active node.
// Screenshots in testout/screenshots/pair-timeline-*.png.

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/resilience/web/browsertest"
)

func TestBrowserPairTimeline(t *testing.T) {
	ctx := browsertest.Start(t)
	mainP, standbyP := browserPair(t)
	testkit.Eventually(t, func() bool { return status(t, mainP.url).Status == "active" }, "main active")
	for _, p := range []*proc{mainP, standbyP} {
		testkit.Eventually(t, func() bool {
			st := status(t, p.url)
			return st.Peer != nil && st.Peer.Reachable && st.HA.Ready
		}, "%s sees its peer", p.name)
	}
	run := func(url, verb, reason string) {
		t.Helper()
		if _, stderr, code := cli(t, "services", verb, "--node", url, "--reason", reason); code != 0 {
			t.Fatalf("%s %s: exit %d %s", verb, url, code, stderr)
		}
	}
	// sees waits until a node sees its peer in a status (a manual Start
	// is refused while the peer is seen Active).
	sees := func(p *proc, want string) {
		t.Helper()
		testkit.Eventually(t, func() bool {
			st := status(t, p.url)
			return st.Peer != nil && st.Peer.Status == want
		}, "%s sees its peer %s", p.name, want)
	}

	// The failover: the Main stopped (an admin reason with markup, which
	// the page must show as text), a second without an Active node, the
	// Standby started. Then the failback.
	run(mainP.url, "stop", `timeline: failover <b>main down</b>`)
	sees(standbyP, "inactive")
	time.Sleep(1200 * time.Millisecond)
	run(standbyP.url, "start", "timeline: failover start standby")
	testkit.Eventually(t, func() bool { return status(t, standbyP.url).Status == "active" }, "standby active")
	time.Sleep(1200 * time.Millisecond)
	run(standbyP.url, "stop", "timeline: failback stop standby")
	sees(mainP, "inactive")
	time.Sleep(1200 * time.Millisecond)
	run(mainP.url, "start", "timeline: failback start main")
	testkit.Eventually(t, func() bool { return status(t, mainP.url).Status == "active" }, "main active again")

	// The CLI tells the same pair.
	out, stderr, code := cli(t, "audit", "--pair", "--node", mainP.url, "--limit", "200")
	if code != 0 {
		t.Fatalf("audit --pair: exit %d %s", code, stderr)
	}
	if !strings.Contains(out, "timeline: failover start standby") || !strings.Contains(out, "no Active node for") ||
		!strings.Contains(out, "two Active nodes for 0s") {
		t.Errorf("resman audit --pair:\n%s", out)
	}

	// The Main's page.
	ptLogin(t, ctx, mainP.url)
	browserWait(t, ctx, "the pair timeline with both nodes", `[...document.querySelectorAll('#pt-body tr.pt-entry')].some(r =>
		r.dataset.node === 'xivo-standby') && document.querySelector('#pt-strip rect.pt-win') !== null`)
	if !browsertest.Eval[bool](t, ctx, browserQ("#pt-peer-error")+".hidden") {
		t.Errorf("peer error shown: %s", browsertest.Eval[string](t, ctx, browserQ("#pt-peer-error")+".textContent"))
	}

	// The entries: both nodes' commands in order, newest first, with who,
	// the reason (as text) and the cause.
	type row = ptRow
	rows := func() []row { return ptRows(t, ctx) }
	all := rows()
	// find is the command itself (the entries that follow from it carry
	// its reason too).
	find := func(node, action, reason string) int {
		i := slices.IndexFunc(all, func(r row) bool {
			return r.Node == node && strings.HasPrefix(r.What, action) && strings.Contains(r.Why, reason)
		})
		if i < 0 {
			t.Fatalf("no %s of %s with %q among:\n%+v", action, node, reason, all)
		}
		if r := all[i]; !strings.HasPrefix(r.Who, "api") || r.Outcome != "ok" || !strings.HasSuffix(r.When, "UTC") {
			t.Errorf("entry %+v: want who api…, outcome ok, a time in UTC", r)
		}
		return i
	}
	failoverStop := find("xivo-main", "stop services", "timeline: failover <b>main down</b>")
	failoverStart := find("xivo-standby", "start services", "timeline: failover start standby")
	failbackStop := find("xivo-standby", "stop services", "timeline: failback stop standby")
	failbackStart := find("xivo-main", "start services", "timeline: failback start main")
	if !(failbackStart < failbackStop && failbackStop < failoverStart && failoverStart < failoverStop) {
		t.Errorf("not in order, newest first: failback start %d, failback stop %d, failover start %d, failover stop %d",
			failbackStart, failbackStop, failoverStart, failoverStop)
	}
	if !strings.Contains(all[failoverStop].What, "Active → Deactivating") || !strings.Contains(all[failoverStop].Why, "admin command") ||
		!strings.Contains(all[failoverStart].What, "Inactive → Activating") {
		t.Errorf("the failover shows no change or cause: %+v, %+v", all[failoverStop], all[failoverStart])
	}
	// The causes the nodes wrote: the services stopped and started on each.
	for _, n := range []string{"xivo-main", "xivo-standby"} {
		for _, c := range []string{"Deactivating → Inactive", "Activating → Active"} {
			cause := map[bool]string{true: "services stopped", false: "services started"}[strings.HasPrefix(c, "Deac")]
			if !slices.ContainsFunc(all, func(r row) bool {
				return r.Node == n && strings.Contains(r.What, c) && strings.Contains(r.Why, cause)
			}) {
				t.Errorf("no %s (%s) of %s", c, cause, n)
			}
		}
	}
	if browsertest.Eval[int](t, ctx, `document.querySelectorAll('#pt-body b, #pt-body img').length`) != 0 {
		t.Error("an admin's reason was rendered as markup")
	}

	// The strip: each node's periods in order, the Standby Active between
	// the Main's two, and the windows with no Active node exactly between.
	ptPicture(t, ctx, "all")
	bands, windows := ptStrip(t, ctx)
	tm := func(s string) time.Time { return ptTime(t, s) }
	ma, sa := ptActive(bands, "xivo-main"), ptActive(bands, "xivo-standby")
	if len(ma) != 2 || len(sa) != 1 {
		t.Fatalf("Active bands: main %+v, standby %+v; want two and one\nall: %+v", ma, sa, bands)
	}
	if !tm(ma[0].End).Before(tm(sa[0].Start)) || !tm(sa[0].End).Before(tm(ma[1].Start)) {
		t.Errorf("the bands do not alternate: main %+v, standby %+v", ma, sa)
	}
	// The boot of the Main is a window too (nobody Active while it
	// started): the last two are the failover's and the failback's.
	if len(windows) < 2 {
		t.Fatalf("windows %+v", windows)
	}
	windows = windows[len(windows)-2:]
	if windows[0].Status != "no_active" || windows[1].Status != "no_active" ||
		!tm(windows[0].Start).Equal(tm(ma[0].End)) || !tm(windows[0].End).Equal(tm(sa[0].Start)) ||
		!tm(windows[1].Start).Equal(tm(sa[0].End)) || !tm(windows[1].End).Equal(tm(ma[1].Start)) {
		t.Errorf("windows %+v, want no Active node from the end of each Active band to the start of the next\nbands %+v", windows, bands)
	}
	for _, w := range windows {
		if d := tm(w.End).Sub(tm(w.Start)); d < time.Second || d > 30*time.Second {
			t.Errorf("a window lasts %v: %+v", d, w)
		}
	}
	summary := browsertest.Eval[string](t, ctx, browserQ("#pt-summary")+".textContent")
	if !strings.Contains(summary, "No Active node: ") || !strings.Contains(summary, "Two Active nodes: never") || !strings.Contains(summary, "(last ") {
		t.Errorf("summary %q", summary)
	}
	ptPicture(t, ctx, "last")
	if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('#pt-strip rect.pt-win[data-kind="no_active"]').length`); n < 2 {
		t.Errorf("the last transitions show %d windows, want the failover's and the failback's", n)
	}

	// The filters.
	filter := func(f string) []row {
		t.Helper()
		browsertest.Do(t, ctx, "filter "+f, chromedp.Click(chromedp.CSS("#pt-f-"+f)))
		return rows()
	}
	for _, r := range filter("admin") {
		if !strings.HasPrefix(r.Who, "api") && !strings.HasPrefix(r.Who, "web") {
			t.Errorf("admin actions show %+v", r)
		}
	}
	for _, r := range filter("auto") {
		if r.Who != "resman" || !strings.Contains(r.What, "→") {
			t.Errorf("automatic transitions show %+v", r)
		}
	}
	for _, r := range filter("failures") {
		if r.Outcome == "ok" {
			t.Errorf("failures show %+v", r)
		}
	}
	if len(filter("all")) != len(all) {
		t.Errorf("all shows %d entries, was %d", len(rows()), len(all))
	}

	browsertest.Do(t, ctx, "scroll to the timeline", chromedp.ScrollIntoView(chromedp.CSS("#pair-timeline")))
	browserScreenshot(t, ctx, "pair-timeline-failover-failback", false)
	browsertest.Do(t, ctx, "a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	browsertest.Eval[bool](t, ctx, `document.getElementById('pair-timeline').scrollIntoView(), true`)
	if w := browsertest.Eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 400 {
		t.Errorf("the page is %d px wide on a 390 px phone", w)
	}
	browserScreenshot(t, ctx, "pair-timeline-phone", true)
}

// ptLogin logs in to a node's page as the browser user.
func ptLogin(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	browsertest.Do(t, ctx, "login form", chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.CSS("#user")))
	browsertest.Do(t, ctx, "log in",
		chromedp.SendKeys(chromedp.CSS("#user"), browserUser),
		chromedp.SendKeys(chromedp.CSS("#password"), browserPassword),
		chromedp.Click(chromedp.CSS("#login-submit")))
	browsertest.Do(t, ctx, "the page after login", chromedp.WaitVisible(chromedp.CSS("#node-local .status-text")))
}

// ptRow is an entry of the pair timeline as the page shows it.
type ptRow struct{ Node, Who, What, Why, Outcome, When string }

func ptRows(t *testing.T, ctx context.Context) []ptRow {
	t.Helper()
	js := browsertest.Eval[string](t, ctx, `JSON.stringify([...document.querySelectorAll('#pt-body tr.pt-entry')].map(r => ({
		Node: r.children[1].textContent, Who: r.children[2].textContent, What: r.children[3].textContent,
		Why: r.children[4].textContent, Outcome: r.children[5].textContent, When: r.children[0].textContent})))`)
	var rs []ptRow
	if err := json.Unmarshal([]byte(js), &rs); err != nil {
		t.Fatalf("%v: %s", err, js)
	}
	return rs
}

// ptBand is a band of the strip (Status is a window's kind for windows).
type ptBand struct{ Node, Status, Start, End string }

// ptPicture chooses the span of the strip.
func ptPicture(t *testing.T, ctx context.Context, value string) {
	t.Helper()
	browsertest.Do(t, ctx, "picture "+value, chromedp.SetValue(chromedp.CSS("#pt-range"), value))
	browsertest.Eval[bool](t, ctx, `document.querySelector('#pt-range').dispatchEvent(new Event('change')), true`)
}

// ptStrip reads the strip's bands and windows, oldest first.
func ptStrip(t *testing.T, ctx context.Context) (bands, windows []ptBand) {
	t.Helper()
	if err := json.Unmarshal([]byte(browsertest.Eval[string](t, ctx, `JSON.stringify([...document.querySelectorAll('#pt-strip rect.pt-band')].map(r => ({
		Node: r.dataset.node, Status: r.dataset.status, Start: r.dataset.start, End: r.dataset.end})))`)), &bands); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(browsertest.Eval[string](t, ctx, `JSON.stringify([...document.querySelectorAll('#pt-strip rect.pt-win')].map(r => ({
		Status: r.dataset.kind, Start: r.dataset.start, End: r.dataset.end})))`)), &windows); err != nil {
		t.Fatal(err)
	}
	return bands, windows
}

func ptActive(bands []ptBand, node string) []ptBand {
	var out []ptBand
	for _, b := range bands {
		if b.Node == node && b.Status == "active" {
			out = append(out, b)
		}
	}
	return out
}

func ptTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return v
}
