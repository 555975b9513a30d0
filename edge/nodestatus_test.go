package edge

import (
	"strings"
	"testing"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// The standalone Edge's GET /api/v1/status has a node's shape, so that
// resman status prints it: role edge, mode proxy, active while a side has
// the traffic, reasons naming the sides otherwise, no peer, lists empty
// rather than null.
func TestNodeStatus(t *testing.T) {
	main, standby := newFakeNode(t, inactive(3)), newFakeNode(t, inactive(2))
	e := startEdge(t, fast(), []sideSpec{side1("main", main, newUpstream(t, "main")), side1("standby", standby, newUpstream(t, "standby"))},
		func(o *Options) { o.Standalone = true })
	srv := newAPIServer(t, e.APIHandler())
	read := func() (api.Status, string) {
		t.Helper()
		var st api.Status
		raw := authJSON(t, srv+PathNodeStatus, &st)
		return st, string(raw)
	}
	testkit.Eventually(t, func() bool {
		ss := e.Status().Sides
		return ss[0].Health == HealthDown && ss[1].Health == HealthDown
	}, "both sides down")

	st, raw := read()
	if st.Node != "127.0.0.1" || st.Role != "edge" || st.Mode != "proxy" || st.Status != api.StatusInactive || st.Epoch != 3 ||
		!st.Healthy || st.HA.Ready || st.Since.IsZero() || st.Peer != nil || st.LastChange != nil {
		t.Errorf("no side active: %+v", st)
	}
	want := []string{"no side is Active: users get the 503 page",
		"side main is down: its node is inactive (epoch 3)", "side standby is down: its node is inactive (epoch 2)"}
	if strings.Join(st.HA.Reasons, "\n") != strings.Join(want, "\n") {
		t.Errorf("reasons:\n%s\nwant:\n%s", strings.Join(st.HA.Reasons, "\n"), strings.Join(want, "\n"))
	}
	for _, s := range []string{`"services":[]`, `"replication":[]`, `"xds":[]`} {
		if !strings.Contains(raw, s) {
			t.Errorf("answer lacks %s: %s", s, raw)
		}
	}
	if strings.Contains(raw, `"peer"`) || strings.Contains(raw, "null") {
		t.Errorf("answer has a peer or a null: %s", raw)
	}

	main.SetAnswer(active(4))
	e.waitRouted(t, "main")
	st, raw = read()
	if st.Status != api.StatusActive || st.Epoch != 4 || !st.HA.Ready || !st.Healthy || !strings.Contains(raw, `"reasons":[]`) {
		t.Errorf("main routed: %s", raw)
	}
	if lc := st.LastChange; lc == nil || lc.From != api.StatusInactive || lc.To != api.StatusActive ||
		lc.Cause != "routed to side main (epoch 4)" || !lc.At.Equal(st.Since) {
		t.Errorf("last change %+v, since %v", lc, st.Since)
	}

	// Both claim Active, the higher epoch wins.
	standby.SetAnswer(active(5))
	e.waitRouted(t, "standby")
	if st, _ = read(); st.Epoch != 5 || st.LastChange == nil || st.LastChange.From != api.StatusActive ||
		st.LastChange.Cause != "routed to side standby (epoch 5), was side main" {
		t.Errorf("standby routed: %+v %+v", st, st.LastChange)
	}

	standby.SetAnswer(cut())
	main.SetAnswer(inactive(4))
	e.waitRouted(t, "")
	testkit.Eventually(t, func() bool { return e.Status().Sides[1].Health == HealthDown }, "standby down")
	st, _ = read()
	reasons := strings.Join(st.HA.Reasons, "\n")
	if st.Status != api.StatusInactive || st.Epoch != 5 || st.HA.Ready || !strings.Contains(reasons, "side main is down: its node is inactive (epoch 4)") ||
		!strings.Contains(reasons, "side standby is down: checks of its node fail: ") {
		t.Errorf("no side after a failure: %+v", st)
	}
	if lc := st.LastChange; lc == nil || lc.From != api.StatusActive || lc.To != api.StatusInactive || !strings.Contains(lc.Cause, "lost Active") {
		t.Errorf("last change %+v", lc)
	}
}

// Before Serve (or after), the proxy does not listen: not healthy, not
// ready, and the reasons say so.
func TestNodeStatusNotServing(t *testing.T) {
	e, err := New(Options{Config: Config{Listen: "0.0.0.0:8443", Sides: []Side{{Name: "main", Node: "http://127.0.0.1:1",
		Routes: []Route{{Path: "/", Upstream: "http://127.0.0.1:1"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	st := e.NodeStatus()
	want := []string{"the proxy does not listen on 0.0.0.0:8443", "no side is Active: users get the 503 page",
		"side main is not up yet: its node has not answered yet"}
	if st.Node != "edge" || st.Healthy || st.HA.Ready || strings.Join(st.HA.Reasons, "\n") != strings.Join(want, "\n") {
		t.Errorf("not serving: %+v", st)
	}
}

func TestEdgeName(t *testing.T) {
	for listen, want := range map[string]string{
		"0.0.0.0:8443": "edge", ":443": "edge", "[::]:443": "edge", "10.0.0.40:443": "10.0.0.40",
		"edge.example.com:443": "edge.example.com", "[2001:db8::40]:443": "2001:db8::40", "nonsense": "edge",
	} {
		if got := edgeName(listen); got != want {
			t.Errorf("edgeName(%q) = %q, want %q", listen, got, want)
		}
	}
}
