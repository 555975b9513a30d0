// Package browsertest starts the headless Chromium that resman's browser
// tests drive (the node's page, the fleet page, the page against real
// processes): where Chromium is, the flags, a fresh profile per browser,
// and a deadline on each run of steps. Test support: imported by tests
// only.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium finds Chromium; without it the test skips, or fails when the
// environment variable CI is set (CI installs it: a skip there would hide
// that no browser test ran). Under -short it skips: browser tests are
// tier 3, and make test runs them.
func Chromium(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("tier 3 (headless Chromium): skipped by -short; make test runs it")
	}
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (apt-get install chromium); CI is set, so the browser test fails instead of skipping")
	}
	t.Skip("chromium is not installed (apt-get install chromium): skipping the browser test")
	return ""
}

// Start starts a headless Chromium with a fresh profile and a 1366×900
// window, stopped at the test's end; the context it returns runs actions
// in one tab.
func Start(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
	}, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser: no deadline on it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// Do runs steps within 30 s, failing the test with what they were for.
func Do(t testing.TB, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Eval evaluates a JavaScript expression in the page within 30 s.
func Eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// Poll waits, for at most within, until the JavaScript expression is true
// in the page. chromedp's poll runs in the page's execution context as it
// finds it; when the page replaces that context as the wait starts (a
// navigation that has just ended, on a loaded machine), the poll fails
// with "Cannot find context with specified id": Poll then starts it again
// in the new context, within the same bound.
func Poll(ctx context.Context, expr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		left := time.Until(deadline)
		c, cancel := context.WithTimeout(ctx, left+5*time.Second)
		_, err := chromedp.Run(c, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(left)))
		cancel()
		if err == nil || !contextReplaced(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// contextReplaced tells the errors of an evaluation whose execution
// context the page has replaced.
func contextReplaced(err error) bool {
	return strings.Contains(err.Error(), "Cannot find context with specified id") ||
		strings.Contains(err.Error(), "Execution context was destroyed")
}
