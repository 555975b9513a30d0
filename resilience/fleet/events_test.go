package fleet

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// texts lists the events' texts, in order.
func texts(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Text)
	}
	return out
}

// The events of one pair as its nodes' reads come in: nothing until both
// nodes are read, then what goes wrong, a failover, what clears; an
// old change seen again (a node back from unreachable) is no event.
func TestWatchEvents(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	node := func(name, status string, ready bool, reasons []string, change *api.Transition) api.Status {
		return api.Status{Node: name, Status: status, Version: "v1", Healthy: true,
			HA: api.HA{Ready: ready, Reasons: reasons}, LastChange: change}
	}
	ok := func(s api.Status) read { return read{url: "http://" + s.Node, polled: true, st: s} }
	boot := &api.Transition{From: "inactive", To: "active", Cause: "boot", At: t0.Add(-time.Hour)}
	main := node("xivo-main", api.StatusActive, true, nil, boot)
	standby := node("xivo-standby", api.StatusInactive, true, nil, nil)

	var w watch
	steps := []struct {
		what  string
		reads []read
		want  []string
	}{
		{"one node read", []read{ok(main), {url: "http://xivo-standby"}}, nil},
		{"both read, all well: nothing to say", []read{ok(main), ok(standby)}, nil},
		{"HA not ready", []read{ok(main), ok(node("xivo-standby", api.StatusInactive, false, []string{"replication db is stale"}, nil))},
			[]string{"pair paris-1: HA not ready because xivo-standby: replication db is stale"}},
		{"the same again: nothing new", []read{ok(main), ok(node("xivo-standby", api.StatusInactive, false, []string{"replication db is stale"}, nil))}, nil},
		{"ready again", []read{ok(main), ok(standby)}, []string{"pair paris-1: ready again"}},
		{"a failover", []read{
			{url: "http://xivo-main", polled: true, err: errors.New("connection refused")},
			ok(node("xivo-standby", api.StatusActive, true, nil, &api.Transition{From: "inactive", To: "active", Cause: "failover: xivo-main lost", At: t0}))},
			[]string{
				"pair paris-1: xivo-standby became Active at 2026-12-07T01:00:00Z (from inactive: failover: xivo-main lost)",
				"pair paris-1: a node unreachable because http://xivo-main unreachable: connection refused",
			}},
		{"the old Main back, its old change seen again", []read{
			ok(node("xivo-main", api.StatusInactive, true, nil, &api.Transition{From: "active", To: "inactive", Cause: "demoted", At: t0.Add(-time.Minute)})),
			ok(node("xivo-standby", api.StatusActive, true, nil, &api.Transition{From: "inactive", To: "active", Cause: "failover: xivo-main lost", At: t0}))},
			[]string{"pair paris-1: ready again"}},
	}
	for _, s := range steps {
		got := texts(w.update(derivePair("paris-1", s.reads)))
		if strings.Join(got, "\n") != strings.Join(s.want, "\n") {
			t.Errorf("%s:\n got %q\nwant %q", s.what, got, s.want)
		}
	}

	// A pair wrong from the first complete read says so at once.
	var w2 watch
	got := texts(w2.update(derivePair("lyon-1", []read{ok(main), ok(node("xivo-standby", api.StatusActive, true, nil, nil))})))
	if len(got) != 1 || !strings.HasPrefix(got[0], "pair lyon-1: split brain because two Active nodes") {
		t.Errorf("a pair in split brain from the start: %q", got)
	}
}

// The ring keeps the newest MaxEvents, numbered, newest first; after
// returns only the newer ones.
func TestEventLog(t *testing.T) {
	t.Parallel()
	var l eventLog
	now := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	for i := range MaxEvents + 5 {
		l.add(now, []Event{{Pair: "p", Text: strings.Repeat("x", i%3)}})
	}
	all := l.list(0)
	if len(all) != MaxEvents || all[0].Seq != MaxEvents+5 || all[len(all)-1].Seq != 6 || !all[0].At.Equal(now) {
		t.Fatalf("%d events, newest %d, oldest %d", len(all), all[0].Seq, all[len(all)-1].Seq)
	}
	if got := l.list(MaxEvents + 3); len(got) != 2 || got[0].Seq != MaxEvents+5 {
		t.Errorf("after: %+v", got)
	}
}

// GET /api/v1/fleet/events: the feed of the simulated fleet, with the
// aggregator's token, read-only.
func TestEventsEndpoint(t *testing.T) {
	t.Parallel()
	s := newSim(t, 3)
	_, url, _ := startAggregator(t, s, Config{Interval: 100 * time.Millisecond}, Options{})
	waitAllPolled(t, &http.Client{}, url, 5*time.Second)
	s.set("p00001", "b", func(st *api.Status) {
		st.HA = api.HA{Ready: false, Reasons: []string{"peer not seen over gossip"}}
	})
	testkit.Until(t, func() string {
		resp, body := do(t, http.MethodGet, url+PathEvents, aggToken)
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get("Cache-Control"), body)
		}
		return body
	}, func(body string) bool {
		return strings.Contains(body, `"text":"pair p00001: HA not ready because p00001-b: peer not seen over gossip"`) &&
			strings.Contains(body, `"severity":"warning"`) && strings.Contains(body, `"class":"ha_not_ready"`)
	}, "the HA event")
	if resp, _ := do(t, http.MethodGet, url+PathEvents, ""); resp.StatusCode != 401 {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	if resp, _ := do(t, http.MethodPost, url+PathEvents, aggToken); resp.StatusCode != 405 {
		t.Errorf("POST: %d", resp.StatusCode)
	}
	if resp, _ := do(t, http.MethodGet, url+PathEvents+"?after=x", aggToken); resp.StatusCode != 400 {
		t.Errorf("after=x: %d", resp.StatusCode)
	}
}
