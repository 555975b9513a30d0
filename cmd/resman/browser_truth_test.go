package main

// The page at 3 a.m. against two real nodes in auto mode, in headless
// Chromium, one tab on each node's page: both pages judge the pair alike;
// the tab of a node killed with -9 greys both cards and sends the admin to
// the peer's page, while the peer's page shows it took over; the failback
// countdown shows on both pages once the Main is back; then both agree
// again.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/resilience/web/browsertest"
	"golang.org/x/crypto/bcrypt"
)

// browserAutoPair is browserPair in auto mode: gossip on loopback, the
// second path on the API's port, failback after failbackHold.
func browserAutoPair(t *testing.T, failbackHold string) (mainP, standbyP *proc) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(browserPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	spec := func(name, role, peer, host string) nodeSpec {
		return nodeSpec{name: name, role: role, peer: peer, host: host, dataDir: t.TempDir(),
			apiPort: freePort(t, host), sipPort: freePort(t, host)}
	}
	m, s := spec("xivo-main", "main", "xivo-standby", "127.0.0.1"), spec("xivo-standby", "standby", "xivo-main", "127.0.0.2")
	m.peerURL, s.peerURL = fmt.Sprintf("http://%s:%d", s.host, s.apiPort), fmt.Sprintf("http://%s:%d", m.host, m.apiPort)
	gossip := map[string]string{m.name: fmt.Sprintf("%s:%d", m.host, freePort(t, m.host)), s.name: fmt.Sprintf("%s:%d", s.host, freePort(t, s.host))}
	auto := func(sp nodeSpec) string {
		raw, err := os.ReadFile(browserNodeConfig(t, sp, string(hash)))
		if err != nil {
			t.Fatal(err)
		}
		cfg := string(raw)
		for _, r := range [][2]string{
			{"  mode: manual\n", "  mode: auto\n"},
			{"  api: " + sp.peerURL + "\n", "  api: " + sp.peerURL + "\n  gossip: " + gossip[sp.peer] + "\n"},
		} {
			if !strings.Contains(cfg, r[0]) {
				t.Fatalf("the node's file has no %q line:\n%s", r[0], cfg)
			}
			cfg = strings.Replace(cfg, r[0], r[1], 1)
		}
		cfg += fmt.Sprintf("gossip: {bind: %q, key: %q}\nfailover: {failback: auto, failback_hold: %s}\n", gossip[sp.name], gossipKey, failbackHold)
		path := filepath.Join(t.TempDir(), sp.name+"-auto.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	standbyP = startProc(t, "standby", auto(s), m.peerURL)
	mainP = startProc(t, "main", auto(m), s.peerURL)
	return mainP, standbyP
}

// browserTab starts a browser of its own on url's page, logged in: two
// tabs of one headless browser do not both get input and timers.
func browserTab(t *testing.T, url string) context.Context {
	t.Helper()
	tab := browsertest.Start(t)
	browsertest.Do(t, tab, "login form of "+url, chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.CSS("#user")))
	browsertest.Do(t, tab, "log in to "+url,
		chromedp.SendKeys(chromedp.CSS("#user"), browserUser),
		chromedp.SendKeys(chromedp.CSS("#password"), browserPassword),
		chromedp.Click(chromedp.CSS("#login-submit")))
	browsertest.Do(t, tab, "the page of "+url, chromedp.WaitVisible(chromedp.CSS("#node-local .status-text")))
	return tab
}

// browserWaitAcrossNavigation is browserWait for a page that navigates
// meanwhile: an evaluation cut by the navigation is tried again.
func browserWaitAcrossNavigation(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s (%s): %v", what, expr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// summaryOf is the pair's summary line and its reasons, as a tab shows
// them.
func summaryOf(t *testing.T, tab context.Context) string {
	t.Helper()
	return browsertest.Eval[string](t, tab, browserQ("#summary")+".textContent + ' | ' + "+
		"[...document.querySelectorAll('#summary-reasons li')].map((l) => l.textContent).join(' / ')")
}

// browserWaitBoth waits until both tabs show the same summary, which says
// want.
func browserWaitBoth(t *testing.T, tabs [2]context.Context, what, want string) string {
	t.Helper()
	expr := browserQ("#summary") + ".textContent.includes(" + fmt.Sprintf("%q", want) + ")"
	for _, tab := range tabs {
		browserWait(t, tab, what, expr)
	}
	var got [2]string
	for range 3 { // a tab may repaint between the two reads
		got = [2]string{summaryOf(t, tabs[0]), summaryOf(t, tabs[1])}
		if got[0] == got[1] {
			return got[0]
		}
		browserWait(t, tabs[0], what+" (again)", expr)
	}
	t.Fatalf("%s: the two pages judge the pair differently:\n main's page:    %s\n standby's page: %s", what, got[0], got[1])
	return ""
}

func TestAutoPairTruthInBrowser(t *testing.T) {
	mainP, standbyP := browserAutoPair(t, "8s")
	testkit.Eventually(t, func() bool {
		m, s := status(t, mainP.url), status(t, standbyP.url)
		return m.Status == "active" && s.Status == "inactive" && m.HA.Ready && s.HA.Ready
	}, "main active, standby inactive, HA ready on both")
	tabs := [2]context.Context{browserTab(t, mainP.url), browserTab(t, standbyP.url)}
	browserWaitBoth(t, tabs, "HA ready on both pages", "HA ready")
	browserScreenshot(t, tabs[1], "truth-auto-ready-standby-page", false)

	// kill -9 of the Main's resman, with its tab open.
	mainP.kill(syscall.SIGKILL)
	browserWait(t, tabs[0], "the dead node's tab: both cards grey with their last known state",
		`/^Last known: Active, \d+ s ago$/.test(`+browserQ("#node-local .status-text")+`.textContent) && `+
			`[...document.querySelectorAll('.node-card')].every((c) => c.classList.contains('stale'))`)
	browserWait(t, tabs[0], "the dead node's tab: the summary says it does not answer and where to go",
		`/^This node \(xivo-main\) does not answer/.test(`+browserQ("#summary")+`.textContent) && `+
			`(document.querySelector('#summary-go a') || {}).href === '`+standbyP.url+`/'`)
	if n := browsertest.Eval[int](t, tabs[0], `document.querySelectorAll('.status-active, .status-unreachable').length`); n != 0 {
		t.Errorf("%d status bands still green or red on the dead node's tab", n)
	}
	browserScreenshot(t, tabs[0], "truth-auto-dead-main-tab", false)
	browserWait(t, tabs[1], "the standby's page: it took over, the Main lost",
		browserQ("#node-local .status-text")+".textContent === 'Active' && "+
			browserQ("#summary")+".textContent.includes('HA not ready')")
	browserScreenshot(t, tabs[1], "truth-auto-standby-took-over", false)

	// The Main comes back: Inactive, and the Standby hands back after the
	// failback hold, counted down on both pages.
	mainP = startProc(t, "main", mainP.cfg, mainP.url)
	// Sessions live in the node's memory: the restarted node sends its
	// tab to the login, saying that it restarted.
	browserWaitAcrossNavigation(t, tabs[0], "the restarted node's tab asks to log in again",
		`!!document.querySelector('#user') && /This node restarted at .* since you logged in, which ends every session\. Log in again\./.test(document.body.textContent)`)
	browsertest.Do(t, tabs[0], "log in again",
		chromedp.SendKeys(chromedp.CSS("#user"), browserUser),
		chromedp.SendKeys(chromedp.CSS("#password"), browserPassword),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#node-local .status-text")))
	countdown := `[...document.querySelectorAll('#pending li')].some((l) => /^failback: xivo-standby hands the Active role back to xivo-main at .* \(in \d+ s\)/.test(l.textContent))`
	for i, tab := range tabs {
		browserWait(t, tab, fmt.Sprintf("the failback countdown on page %d", i+1), countdown)
	}
	browserScreenshot(t, tabs[0], "truth-auto-failback-countdown-main-page", false)

	// Failback: the pair as it was, judged alike on both pages.
	testkit.Eventually(t, func() bool {
		return status(t, mainP.url).Status == "active" && status(t, standbyP.url).Status == "inactive"
	}, "failback: main active again")
	got := browserWaitBoth(t, tabs, "HA ready on both pages after the failback", "HA ready")
	if !strings.HasPrefix(got, "xivo-main (Main) is Active") {
		t.Errorf("after the failback both pages say %q", got)
	}
	for i, tab := range tabs {
		if browsertest.Eval[bool](t, tab, countdown) {
			t.Errorf("page %d still counts down a failback that happened", i+1)
		}
	}
}

// A split brain of two real nodes in manual mode (an admin forced a start
// on the Standby): the Main's page names the stale node, the Main with
// the older epoch, and stops it from the alert's button; both pages then
// agree on one Active node.
func TestSplitBrainRealInBrowser(t *testing.T) {
	mainP, standbyP := browserPair(t)
	testkit.Eventually(t, func() bool { return status(t, mainP.url).Status == "active" }, "main active")
	if _, stderr, code := cli(t, "services", "start", "--node", standbyP.url, "--force", "--reason", "split brain test: forced"); code != 0 {
		t.Fatalf("forced start of the standby: exit %d %s", code, stderr)
	}
	m, s := status(t, mainP.url), status(t, standbyP.url)
	if m.Status != "active" || s.Status != "active" || s.Epoch <= m.Epoch {
		t.Fatalf("after the forced start: main %s epoch %d, standby %s epoch %d", m.Status, m.Epoch, s.Status, s.Epoch)
	}
	tabs := [2]context.Context{browserTab(t, mainP.url), browserTab(t, standbyP.url)}
	alert := fmt.Sprintf("xivo-main holds the older claim (epoch %d against %d)", m.Epoch, s.Epoch)
	for i, tab := range tabs {
		browserWait(t, tab, fmt.Sprintf("page %d names the stale node", i+1),
			browserQ("#pair-alert")+".textContent.includes("+fmt.Sprintf("%q", alert)+") && "+
				browserQ("#split-stop")+".textContent === 'Stop services on xivo-main'")
	}
	browserScreenshot(t, tabs[0], "truth-split-brain-real", false)
	browsertest.Do(t, tabs[0], "stop the stale node from the alert", chromedp.Click(chromedp.CSS("#split-stop")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-reason")),
		chromedp.SendKeys(chromedp.CSS("#confirm-reason"), "split brain: older claim"),
		chromedp.Click(chromedp.CSS("#confirm-ok")))
	testkit.Eventually(t, func() bool { return status(t, mainP.url).Status == "inactive" }, "main stopped")
	for i, tab := range tabs {
		browserWait(t, tab, fmt.Sprintf("page %d: the alert gone, one Active node", i+1),
			browserQ("#pair-alert")+".hidden && "+browserQ("#summary")+".textContent.startsWith('xivo-main (Main) is Inactive · xivo-standby (Standby) is Active')")
	}
	stopped := false
	for _, e := range auditEntries(t, mainP.url) {
		stopped = stopped || (e.Action == "stop services" && e.Reason == "split brain: older claim" && strings.HasPrefix(e.Who, "web:"))
	}
	if !stopped {
		t.Error("the stop from the alert is not in the main's audit log, by web:, with its reason")
	}
}
