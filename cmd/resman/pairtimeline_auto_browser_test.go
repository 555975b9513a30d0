package main

// The pair timeline after a manual HA failover and its failback in auto
// mode, against two real resman processes on the loopback: the Standby
// takes over and hands back by itself, and the page shows it as resman's
// transitions, with their causes, the strip drawing what the node's API
// answers. Screenshot: testout/screenshots/pair-timeline-auto.png.

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/resilience/web/browsertest"
)

// autoBrowserPair starts a Main and a Standby in auto mode on the
// loopback (browserAutoPair, failback after 3 s) and waits until each
// sees the other, HA ready.
func autoBrowserPair(t *testing.T) (mainURL, standbyURL string) {
	t.Helper()
	mainP, standbyP := browserAutoPair(t, "3s")
	testkit.Eventually(t, func() bool {
		m, s := status(t, mainP.url), status(t, standbyP.url)
		return m.Status == "active" && s.Status == "inactive" && m.HA.Ready && s.HA.Ready &&
			s.Peer != nil && s.Peer.Status == "active" && m.Peer != nil && m.Peer.Status == "inactive"
	}, "main active, standby inactive, HA ready, each seeing the other")
	return mainP.url, standbyP.url
}

func TestBrowserPairTimelineAuto(t *testing.T) {
	ctx := browsertest.Start(t)
	mainURL, standbyURL := autoBrowserPair(t)

	// A manual HA failover: the Main holds Inactive, the Standby takes
	// over by itself; stopped, the Main takes back (failback).
	if _, stderr, code := cli(t, "failover", "start", "--node", mainURL, "--for", "1h", "--reason", "timeline: manual HA failover"); code != 0 {
		t.Fatalf("failover start: exit %d %s", code, stderr)
	}
	testkit.Eventually(t, func() bool { return status(t, standbyURL).Status == "active" }, "standby active")
	time.Sleep(1500 * time.Millisecond)
	if _, stderr, code := cli(t, "failover", "stop", "--node", mainURL, "--reason", "timeline: failback"); code != 0 {
		t.Fatalf("failover stop: exit %d %s", code, stderr)
	}
	testkit.Eventually(t, func() bool {
		return status(t, mainURL).Status == "active" && status(t, standbyURL).Status == "inactive"
	}, "main active again, standby inactive")

	ptLogin(t, ctx, mainURL)
	browserWait(t, ctx, "the standby's take-over and the main's take-back on the timeline", `(() => {
		const rows = [...document.querySelectorAll('#pt-body tr.pt-entry')];
		const s = rows.findIndex(r => r.dataset.node === 'xivo-standby' && r.children[3].textContent.includes('Activating → Active'));
		const m = rows.findIndex(r => r.dataset.node === 'xivo-main' && r.children[3].textContent.includes('Activating → Active'));
		return s > 0 && m >= 0 && m < s;
	})()`)
	rows := ptRows(t, ctx)
	idx := func(node, what, why string) int {
		return slices.IndexFunc(rows, func(r ptRow) bool {
			return r.Node == node && strings.Contains(r.What, what) && strings.Contains(r.Why, why)
		})
	}
	start := idx("xivo-main", "", "timeline: manual HA failover")
	stop := idx("xivo-main", "", "timeline: failback")
	// The Standby's transitions are resman's, with its cause.
	takeOver := slices.IndexFunc(rows, func(r ptRow) bool {
		return r.Node == "xivo-standby" && r.Who == "resman" && strings.Contains(r.What, "Inactive → Activating")
	})
	handBack := slices.IndexFunc(rows, func(r ptRow) bool {
		return r.Node == "xivo-standby" && r.Who == "resman" && strings.Contains(r.What, "Active → Deactivating")
	})
	if start < 0 || stop < 0 || takeOver < 0 || handBack < 0 {
		t.Fatalf("failover start %d, stop %d, take-over %d, hand-back %d among:\n%+v", start, stop, takeOver, handBack, rows)
	}
	if !(stop < start && handBack < takeOver && takeOver < start) {
		t.Errorf("not in order, newest first: stop %d, hand-back %d, take-over %d, start %d", stop, handBack, takeOver, start)
	}
	for _, i := range []int{takeOver, handBack} {
		if strings.TrimSpace(rows[i].Why) == "" || rows[i].Why == "—" {
			t.Errorf("an automatic transition without its cause: %+v", rows[i])
		}
	}
	t.Logf("take-over: %+v\nhand-back: %+v", rows[takeOver], rows[handBack])

	// The strip draws what the API answers: the bands and the windows.
	ptPicture(t, ctx, "all")
	bands, windows := ptStrip(t, ctx)
	ma, sa := ptActive(bands, "xivo-main"), ptActive(bands, "xivo-standby")
	if len(ma) != 2 || len(sa) != 1 || !ptTime(t, ma[0].End).Before(ptTime(t, sa[0].Start)) ||
		!ptTime(t, sa[0].End).Before(ptTime(t, ma[1].Start)) {
		t.Errorf("Active bands: main %+v, standby %+v; want the Standby's between the Main's two", ma, sa)
	}
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	raw, err := chromedp.Run(c, chromedp.Evaluate[string](`fetch('/api/v1/audit/pair?limit=200').then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	var pa api.PairAudit
	if err := json.Unmarshal([]byte(raw), &pa); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	var want []string
	for _, w := range pa.Windows {
		want = append(want, w.Kind+" "+w.Start.Format(time.RFC3339Nano)+" "+w.End.Format(time.RFC3339Nano))
	}
	var got []string
	for _, w := range windows {
		got = append(got, w.Status+" "+ptTime(t, w.Start).Format(time.RFC3339Nano)+" "+ptTime(t, w.End).Format(time.RFC3339Nano))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the strip's windows:\n%s\nthe API's:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	hasNone := slices.ContainsFunc(pa.Windows, func(w api.PairWindow) bool {
		return w.Kind == api.WindowNoActive && !w.Start.Before(ptTime(t, ma[0].End)) && !w.End.After(ptTime(t, sa[0].Start))
	})
	if !hasNone {
		t.Errorf("no window without an Active node during the take-over: %+v", pa.Windows)
	}
	ptPicture(t, ctx, "last")
	browsertest.Do(t, ctx, "scroll to the timeline", chromedp.ScrollIntoView(chromedp.CSS("#pair-timeline")))
	browserScreenshot(t, ctx, "pair-timeline-auto", false)
}
