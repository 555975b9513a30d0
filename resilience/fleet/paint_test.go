package fleet

// The fleet page's first paint with 500 pairs, in headless Chromium: the
// page served by the real aggregator over the 500-pair simulator, loaded
// again and again after logging in, timed by the browser itself
// (performance paint entries, and performance.now() in the page when the
// 500th row is in the DOM). It measures and logs; it asserts only what
// the page shows (500 rows, worst first), never a speed.
//
//	go test -p 2 -run TestFleetPageFirstPaint500 -v ./resilience/fleet/ | grep measured:
//	go test -p 2 -run '^$' -bench BenchmarkFleetPage500 -benchtime 10x ./resilience/fleet/

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/web/browsertest"
)

// paintProbe runs in the page before its own scripts (on every load): it
// notes, with the page's clock, when the rows' body first holds %d rows
// (window.__fleetProbe.rows), and when the frame after that was painted
// (rowsPainted: the next animation frame, then a task after it).
const paintProbe = `(() => {
  const want = %d;
  const p = window.__fleetProbe = {};
  const seen = () => {
    const b = document.getElementById("rows");
    if (p.rows !== undefined || !b || b.children.length < want) return;
    p.rows = performance.now();
    requestAnimationFrame(() => setTimeout(() => { p.rowsPainted = performance.now(); }, 0));
  };
  new MutationObserver(seen).observe(document, {childList: true, subtree: true});
})();`

// pageLoad is what one load of the page measured, in milliseconds since
// the navigation started.
type pageLoad struct {
	FirstPaint           float64 `json:"fp"`
	FirstContentfulPaint float64 `json:"fcp"`
	DOMContentLoaded     float64 `json:"dcl"`
	FleetAnswered        float64 `json:"fleet"`  // GET /api/v1/fleet's responseEnd
	EventsAnswered       float64 `json:"events"` // GET /api/v1/fleet/events's responseEnd
	Rows                 float64 `json:"rows"`
	RowsPainted          float64 `json:"rowsPainted"`
}

// paintRead reads a load's timings once its rows are in and painted.
const paintRead = `(() => {
  const p = window.__fleetProbe || {};
  const paint = (n) => (performance.getEntriesByName(n, "paint")[0] || {startTime: -1}).startTime;
  const res = (path) => {
    const e = performance.getEntriesByType("resource").find((r) => new URL(r.name).pathname === path);
    return e ? e.responseEnd : -1;
  };
  const nav = performance.getEntriesByType("navigation")[0] || {};
  return {fp: paint("first-paint"), fcp: paint("first-contentful-paint"), dcl: nav.domContentLoadedEventEnd || -1,
    fleet: res("/api/v1/fleet"), events: res("/api/v1/fleet/events"),
    rows: p.rows, rowsPainted: p.rowsPainted};
})()`

// fleetPage500 is the 500-pair simulator with a few pairs not ready, the
// real aggregator over it (default interval and concurrency, every pair
// read), and Chromium logged in to its page, the paint probe installed.
// It returns the browser, the page's URL and the rows' names as
// GET /api/v1/fleet orders them.
func fleetPage500(tb testing.TB) (ctx context.Context, pageURL string, want []string) {
	tb.Helper()
	ctx = browsertest.Start(tb)
	const n = 500
	s := newSim(tb, n)
	// Two split brains (critical), an HA not ready and a node unreachable
	// (a refused token; both warnings): the worst first, each severity by
	// name, then the ready pairs by name.
	for _, p := range []string{"p00417", "p00042"} {
		s.set(p, "b", func(st *api.Status) { st.Status = api.StatusActive; st.Epoch = 2 })
	}
	s.set("p00250", "a", func(st *api.Status) { st.HA = api.HA{Reasons: []string{"peer p00250-b unhealthy"}} })
	s.mu.Lock()
	s.nodes["/p00300/b"].token = "another-token-0123456789abcdef"
	s.mu.Unlock()
	_, url, _ := startAggregator(tb, s, Config{}, Options{})
	hc := &http.Client{}
	waitAllPolled(tb, hc, url, 20*time.Second)
	for _, p := range getFleet(tb, hc, url) {
		want = append(want, p.Name)
	}
	if len(want) != n {
		tb.Fatalf("%d pairs in %s, want %d", len(want), PathAPI, n)
	}
	if head := want[:4]; !slices.Equal(head, []string{"p00042", "p00417", "p00250", "p00300"}) {
		tb.Fatalf("%s begins with %v, want the split brains, then the HA not ready and the unreachable node", PathAPI, head)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: fmt.Sprintf(paintProbe, n)}); err != nil {
		tb.Fatalf("install the paint probe: %v", err)
	}
	pageURL = url + PathPage
	browsertest.Do(tb, ctx, "the token form", chromedp.Navigate(pageURL), chromedp.WaitVisible(chromedp.CSS("#token")))
	browsertest.Do(tb, ctx, "log in",
		chromedp.SendKeys(chromedp.CSS("#token"), aggToken),
		chromedp.Click(chromedp.CSS("#login-form button")))
	until(tb, ctx, "500 rows after logging in", `document.querySelectorAll("#rows tr").length === 500`)
	return ctx, pageURL, want
}

// loadPage loads the page once more (the token is in the tab's session
// storage: no login) and returns what the browser measured.
func loadPage(tb testing.TB, ctx context.Context, pageURL string) pageLoad {
	tb.Helper()
	browsertest.Do(tb, ctx, "load the page", chromedp.Navigate(pageURL))
	until(tb, ctx, "the 500 rows painted", `!!window.__fleetProbe && window.__fleetProbe.rowsPainted !== undefined`)
	return browsertest.Eval[pageLoad](tb, ctx, paintRead)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return -1
	}
	return s[len(s)/2]
}

// medians is the median of each timing over loads.
func medians(loads []pageLoad) pageLoad {
	col := func(f func(pageLoad) float64) float64 {
		var xs []float64
		for _, l := range loads {
			xs = append(xs, f(l))
		}
		return median(xs)
	}
	return pageLoad{
		FirstPaint:           col(func(l pageLoad) float64 { return l.FirstPaint }),
		FirstContentfulPaint: col(func(l pageLoad) float64 { return l.FirstContentfulPaint }),
		DOMContentLoaded:     col(func(l pageLoad) float64 { return l.DOMContentLoaded }),
		FleetAnswered:        col(func(l pageLoad) float64 { return l.FleetAnswered }),
		EventsAnswered:       col(func(l pageLoad) float64 { return l.EventsAnswered }),
		Rows:                 col(func(l pageLoad) float64 { return l.Rows }),
		RowsPainted:          col(func(l pageLoad) float64 { return l.RowsPainted }),
	}
}

func (l pageLoad) String() string {
	return fmt.Sprintf("first paint %.0f ms, first contentful paint %.0f ms, DOMContentLoaded %.0f ms, GET %s answered %.0f ms, GET %s answered %.0f ms, 500 rows in the DOM %.0f ms, painted %.0f ms",
		l.FirstPaint, l.FirstContentfulPaint, l.DOMContentLoaded, PathAPI, l.FleetAnswered, PathEvents, l.EventsAnswered, l.Rows, l.RowsPainted)
}

// TestFleetPageFirstPaint500: the page of 500 pairs in Chromium, loaded 7
// times after logging in: its rows are the 500 pairs, worst first (as
// GET /api/v1/fleet orders them), and the browser's timings are logged
// (the median of the loads), not asserted.
func TestFleetPageFirstPaint500(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium on 500 pairs")
	}
	ctx, pageURL, want := fleetPage500(t)
	const loads = 7
	var ls []pageLoad
	for i := range loads {
		l := loadPage(t, ctx, pageURL)
		if l.FirstPaint < 0 || l.FirstContentfulPaint < 0 || l.FleetAnswered < 0 {
			t.Errorf("load %d: a timing is missing: %+v", i, l)
		}
		t.Logf("load %d: %s", i+1, l)
		ls = append(ls, l)
	}
	names := browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll("#rows td.name")].map(e => e.textContent)`)
	if !slices.Equal(names, want) {
		t.Errorf("the page's %d rows are not GET %s's 500 pairs in its order (worst first, then by name); first rows %v, want %v",
			len(names), PathAPI, names[:min(6, len(names))], want[:6])
	}
	sev := browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll("#rows tr")].slice(0, 5).map(e => e.className)`)
	if wantSev := []string{"sev-critical", "sev-critical", "sev-warning", "sev-warning", "sev-ok"}; !slices.Equal(sev, wantSev) {
		t.Errorf("the first rows' classes %v, want %v", sev, wantSev)
	}
	m := medians(ls)
	t.Logf("measured: 500 pairs in headless Chromium, median of %d loads after logging in: %s", loads, m)
}

// BenchmarkFleetPage500 is the same measurement as a benchmark: one load
// of the page of 500 pairs per iteration, the medians reported.
func BenchmarkFleetPage500(b *testing.B) {
	ctx, pageURL, _ := fleetPage500(b)
	var ls []pageLoad
	b.ResetTimer()
	for b.Loop() {
		ls = append(ls, loadPage(b, ctx, pageURL))
	}
	m := medians(ls)
	b.ReportMetric(m.FirstPaint, "fp-ms")
	b.ReportMetric(m.FirstContentfulPaint, "fcp-ms")
	b.ReportMetric(m.Rows, "rows-ms")
	b.ReportMetric(m.RowsPainted, "painted-ms")
}
