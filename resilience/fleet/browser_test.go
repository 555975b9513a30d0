package fleet

// The fleet page in headless Chromium against the simulator: the token
// form, the rows worst first, the filter, the links to the node pages,
// and the token refused.

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/web/browsertest"
)

func until(t testing.TB, ctx context.Context, what, expr string) {
	t.Helper()
	if err := browsertest.Poll(ctx, expr, 20*time.Second); err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

func TestFleetPageInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	ctx := browsertest.Start(t)
	s := newSim(t, 4)
	s.set("p00002", "b", func(st *api.Status) { st.Status = api.StatusActive; st.Epoch = 2 })
	s.set("p00003", "a", func(st *api.Status) { st.HA = api.HA{Reasons: []string{"peer p00003-b unhealthy"}} })
	_, url, _ := startAggregator(t, s, Config{Interval: 200 * time.Millisecond}, Options{})
	waitAllPolled(t, &http.Client{}, url, 5*time.Second)

	browsertest.Do(t, ctx, "the token form", chromedp.Navigate(url+PathPage), chromedp.WaitVisible(chromedp.CSS("#token")))
	browsertest.Do(t, ctx, "a wrong token",
		chromedp.SendKeys(chromedp.CSS("#token"), "wrong-token-0123456789"),
		chromedp.Click(chromedp.CSS("#login-form button")))
	until(t, ctx, "the refusal", `document.getElementById("login-error").textContent.includes("refused")`)
	browsertest.Do(t, ctx, "the right token",
		chromedp.SendKeys(chromedp.CSS("#token"), aggToken),
		chromedp.Click(chromedp.CSS("#login-form button")))
	until(t, ctx, "the rows", `document.querySelectorAll("#rows tr").length === 4`)

	names := browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll("#rows td.name")].map(e => e.textContent)`)
	if want := []string{"p00002", "p00003", "p00000", "p00001"}; !equal(names, want) {
		t.Errorf("rows %v, want %v (split brain, HA not ready, then ok by name)", names, want)
	}
	if cls := browsertest.Eval[string](t, ctx, `document.querySelector("#rows tr").className`); cls != "sev-critical" {
		t.Errorf("first row class %q", cls)
	}
	href := browsertest.Eval[string](t, ctx, `document.querySelector("#rows tr .node a").href`)
	if want := s.srv.URL + "/p00002/a/"; href != want {
		t.Errorf("link %q, want %q", href, want)
	}
	if got := browsertest.Eval[string](t, ctx, `document.querySelector("#rows tr ul.reasons").textContent`); got == "" {
		t.Error("no reasons on the split brain row")
	}
	if dir := os.Getenv("FLEET_SCREENSHOT_DIR"); dir != "" {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
		cancel()
		if err == nil {
			_ = os.WriteFile(filepath.Join(dir, "fleet.png"), png, 0o644)
		}
	}

	browsertest.Do(t, ctx, "filter", chromedp.SendKeys(chromedp.CSS("#filter"), "unhealthy"))
	until(t, ctx, "one row", `document.querySelectorAll("#rows tr").length === 1`)
	if n := browsertest.Eval[string](t, ctx, `document.querySelector("#rows td.name").textContent`); n != "p00003" {
		t.Errorf("filtered row %q", n)
	}
	browsertest.Do(t, ctx, "clear the filter, not ready only",
		chromedp.Evaluate[chromedp.Void](`document.getElementById("filter").value = ""; document.getElementById("filter").dispatchEvent(new Event("input"))`),
		chromedp.Click(chromedp.CSS("#only-bad")))
	until(t, ctx, "two rows", `document.querySelectorAll("#rows tr").length === 2`)

	// A change on a pair reaches the page.
	s.set("p00002", "b", func(st *api.Status) { st.Status = api.StatusInactive })
	until(t, ctx, "p00002 ready again", `document.querySelectorAll("#rows tr").length === 1`)

	// The feed of changes: newest first, what went wrong at the start and
	// what cleared since.
	until(t, ctx, "the feed", `(document.querySelector("#events li") || {textContent: ""}).textContent.includes("pair p00002: ready again")`)
	feed := browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll("#events li .event-text")].map(e => e.textContent)`)
	if !slices.Contains(feed, "pair p00003: HA not ready because p00003-a: peer p00003-b unhealthy") ||
		!slices.ContainsFunc(feed, func(s string) bool { return strings.HasPrefix(s, "pair p00002: split brain because two Active nodes") }) {
		t.Errorf("feed %q", feed)
	}
	if cls := browsertest.Eval[string](t, ctx, `document.querySelector("#events li .pill").className`); cls != "pill pill-ok" {
		t.Errorf("the ready event's pill %q", cls)
	}

	browsertest.Do(t, ctx, "forget the token", chromedp.Click(chromedp.CSS("#forget")), chromedp.WaitVisible(chromedp.CSS("#token")))
	if v := browsertest.Eval[bool](t, ctx, `sessionStorage.getItem("resman-fleet-token") === null`); !v {
		t.Error("the token is still stored")
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
