package main

// The Resilience Management page in headless Chromium against two real
// resman processes (tier 3): log in, see both nodes, be refused a second
// Active (the dialog explains and offers force), stop services with a
// reason, watch the pair change live without a reload, log out.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/resilience/web/browsertest"
	"golang.org/x/crypto/bcrypt"
)

const (
	browserUser     = "admin"
	browserPassword = "pbx-admin-passw0rd"
)

// browserNodeConfig is writeNodeConfig's file with a web user added.
func browserNodeConfig(t *testing.T, s nodeSpec, hash string) string {
	t.Helper()
	raw, err := os.ReadFile(writeNodeConfig(t, s))
	if err != nil {
		t.Fatal(err)
	}
	tokenLine := "  token: " + testToken + "\n"
	if !strings.Contains(string(raw), tokenLine) {
		t.Fatalf("writeNodeConfig's file has no %q line:\n%s", tokenLine, raw)
	}
	users := fmt.Sprintf("  users:\n    - name: %s\n      password_hash: %q\n", browserUser, hash)
	cfg := strings.Replace(string(raw), tokenLine, tokenLine+users, 1)
	path := filepath.Join(t.TempDir(), s.name+"-web.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// browserPair starts a Main on 127.0.0.1 and a Standby on 127.0.0.2, as
// pair does, with a web user on both.
func browserPair(t *testing.T) (mainP, standbyP *proc) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(browserPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	mainSpec := nodeSpec{name: "xivo-main", role: "main", peer: "xivo-standby", host: "127.0.0.1",
		dataDir: t.TempDir(), apiPort: freePort(t, "127.0.0.1"), sipPort: freePort(t, "127.0.0.1")}
	standbySpec := nodeSpec{name: "xivo-standby", role: "standby", peer: "xivo-main", host: "127.0.0.2",
		dataDir: t.TempDir(), apiPort: freePort(t, "127.0.0.2"), sipPort: freePort(t, "127.0.0.2")}
	mainURL := fmt.Sprintf("http://127.0.0.1:%d", mainSpec.apiPort)
	standbyURL := fmt.Sprintf("http://127.0.0.2:%d", standbySpec.apiPort)
	mainSpec.peerURL, standbySpec.peerURL = standbyURL, mainURL
	standbyP = startProc(t, "standby", browserNodeConfig(t, standbySpec, string(hash)), standbyURL)
	mainP = startProc(t, "main", browserNodeConfig(t, mainSpec, string(hash)), mainURL)
	return mainP, standbyP
}

// browserWait waits until the JavaScript expression is true.
func browserWait(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if err := browsertest.Poll(ctx, expr, 35*time.Second); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
		t.Fatalf("waiting for %s (%s): %v\npage:\n%s", what, expr, err, page)
	}
}

// browserScreenshot writes a PNG of the full page, or of the viewport (a
// modal dialog), to testout/screenshots/ at the repository root.
func browserScreenshot(t *testing.T, ctx context.Context, name string, viewport bool) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	shot := chromedp.FullScreenshot(100) // 100: PNG
	if viewport {
		shot = chromedp.CaptureScreenshot() // PNG
	}
	png, err := chromedp.Run(c, shot)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "..", "testout", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func browserQ(sel string) string { return fmt.Sprintf("document.querySelector(%q)", sel) }

func TestBrowserFailover(t *testing.T) {
	ctx := browsertest.Start(t)
	mainP, standbyP := browserPair(t)
	testkit.Eventually(t, func() bool { return status(t, mainP.url).Status == "active" }, "main active")
	for _, p := range []*proc{mainP, standbyP} {
		testkit.Eventually(t, func() bool {
			st := status(t, p.url)
			return st.Peer != nil && st.Peer.Reachable && st.HA.Ready
		}, "%s sees its peer", p.name)
	}

	// Log in to the Main's page.
	browsertest.Do(t, ctx, "login form", chromedp.Navigate(mainP.url+"/"), chromedp.WaitVisible(chromedp.CSS("#user")))
	browsertest.Do(t, ctx, "log in",
		chromedp.SendKeys(chromedp.CSS("#user"), browserUser),
		chromedp.SendKeys(chromedp.CSS("#password"), browserPassword),
		chromedp.Click(chromedp.CSS("#login-submit")))
	browsertest.Do(t, ctx, "the page after login", chromedp.WaitVisible(chromedp.CSS("#node-local .status-text, .form-error")))
	if msg := browsertest.Eval[string](t, ctx, `Array.from(document.querySelectorAll('.form-error'), e => e.textContent).join(' ')`); msg != "" {
		t.Fatalf("login refused: %s (is api.users passed in web.Options by cmd/resman/run.go?)", msg)
	}
	browsertest.Eval[bool](t, ctx, "window.__noReload = true")

	// Both nodes, side by side.
	browserWait(t, ctx, "both nodes",
		browserQ("#node-local .node-name")+".textContent === 'xivo-main' && "+
			browserQ("#node-local .status-text")+".textContent === 'Active' && "+
			browserQ("#node-peer .node-name")+".textContent === 'xivo-standby' && "+
			browserQ("#node-peer .status-text")+".textContent === 'Inactive' && "+
			browserQ("#node-peer .btn-start")+".disabled === false && "+
			browserQ("#node-peer .facts")+".textContent.includes('xivo-main reachable')")
	browserWait(t, ctx, "the boot in the audit log", browserQ("#audit-body tr[data-id]")+" !== null")
	browserScreenshot(t, ctx, "pair-normal", false)

	// A second Active: the dialog says so and offers force; without it
	// the Standby refuses, and the dialog shows its reason.
	browsertest.Do(t, ctx, "start on the standby", chromedp.Click(chromedp.CSS("#node-peer .btn-start")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-reason")))
	if got := browsertest.Eval[string](t, ctx, browserQ("#confirm-consequence")+".textContent"); !strings.Contains(got, "xivo-main is Active: starting xivo-standby makes two Active nodes") {
		t.Errorf("consequence = %q", got)
	}
	if browsertest.Eval[bool](t, ctx, browserQ("#force-box")+".hidden") {
		t.Error("the force option is not offered")
	}
	browsertest.Do(t, ctx, "submit without force",
		chromedp.SendKeys(chromedp.CSS("#confirm-reason"), "browser test: second active"),
		chromedp.Click(chromedp.CSS("#confirm-ok")))
	browserWait(t, ctx, "the refusal", "!"+browserQ("#confirm-error")+".hidden")
	if msg := browsertest.Eval[string](t, ctx, browserQ("#confirm-error")+".textContent"); !strings.Contains(msg, "xivo-standby refused") || !strings.Contains(msg, "xivo-main is active") {
		t.Errorf("refusal shown = %q, want the standby's reason naming the Active main", msg)
	}
	if !browsertest.Eval[bool](t, ctx, browserQ("#confirm")+".open && !"+browserQ("#force-box")+".hidden") {
		t.Error("after the refusal the dialog is closed or no longer offers force")
	}
	browserScreenshot(t, ctx, "refused-second-active", true)
	if st := status(t, standbyP.url); st.Status != "inactive" {
		t.Fatalf("the standby is %s after the refused start", st.Status)
	}
	browsertest.Do(t, ctx, "cancel", chromedp.Click(chromedp.CSS("#confirm-cancel")))
	browserWait(t, ctx, "dialog closed", "!"+browserQ("#confirm")+".open")

	// Stop services on the Main, with a reason.
	browsertest.Do(t, ctx, "stop on the main", chromedp.Click(chromedp.CSS("#node-local .btn-stop")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-reason")))
	if !browsertest.Eval[bool](t, ctx, browserQ("#force-box")+".hidden") {
		t.Error("a stop offers force")
	}
	browsertest.Do(t, ctx, "confirm the stop",
		chromedp.SendKeys(chromedp.CSS("#confirm-reason"), "browser failover test"),
		chromedp.Click(chromedp.CSS("#confirm-ok")))
	browserWait(t, ctx, "main inactive", "!"+browserQ("#confirm")+".open && "+
		browserQ("#node-local .status-text")+".textContent === 'Inactive'")
	browserWait(t, ctx, "the stop in the audit log", `[...document.querySelectorAll('#audit-body tr')].some(r =>
		r.textContent.includes('web:admin') && r.textContent.includes('browser failover test'))`)
	if st := status(t, mainP.url); st.Status != "inactive" {
		t.Fatalf("main is %s after the stop from the page", st.Status)
	}

	// Changes made elsewhere show up live: the Standby started from the
	// CLI, then the Main started again after the Standby stopped.
	if _, stderr, code := cli(t, "services", "start", "--node", standbyP.url, "--reason", "failover from the CLI"); code != 0 {
		t.Fatalf("start standby: exit %d %s", code, stderr)
	}
	browserWait(t, ctx, "standby active, live", browserQ("#node-peer .status-text")+".textContent === 'Active'")
	if !browsertest.Eval[bool](t, ctx, browserQ("#node-local .btn-stop")+".disabled && "+browserQ("#node-peer .btn-start")+".disabled") {
		t.Error("Stop on the Inactive main or Start on the Active standby is enabled")
	}
	if _, stderr, code := cli(t, "services", "stop", "--node", standbyP.url, "--reason", "failback"); code != 0 {
		t.Fatalf("stop standby: exit %d %s", code, stderr)
	}
	if _, stderr, code := cli(t, "services", "start", "--node", mainP.url, "--reason", "failback"); code != 0 {
		t.Fatalf("start main: exit %d %s", code, stderr)
	}
	browserWait(t, ctx, "main active again, live", browserQ("#node-local .status-text")+".textContent === 'Active' && "+
		browserQ("#node-peer .status-text")+".textContent === 'Inactive'")
	if !browsertest.Eval[bool](t, ctx, "window.__noReload === true") {
		t.Error("the page reloaded")
	}

	// Log out: the login form, and the session is gone.
	browsertest.Do(t, ctx, "log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-submit")))
	if txt := browsertest.Eval[string](t, ctx, "document.body.innerText"); !strings.Contains(txt, "You are logged out.") {
		t.Errorf("after logout: %q", txt)
	}
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	code, err := chromedp.Run(c, chromedp.Evaluate[int](`fetch('/api/v1/status').then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || code != 401 {
		t.Errorf("GET /api/v1/status after logout: %d %v, want 401", code, err)
	}
}
