package cc

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/services"
)

func TestFollowsActiveAndInactive(t *testing.T) {
	node := newFakeNode(t, api.StatusInactive, 3)
	f := startFollower(t, node, []services.Service{sleeper("xuc"), sleeper("recording")})
	testkit.Eventually(t, func() bool { return f.Status().Following.Status == api.StatusInactive }, "the node seen")
	if st := f.Status(); st.Status != api.StatusInactive || st.Services[0].State != services.StateStopped {
		t.Fatalf("with the node inactive: %+v", st)
	}

	node.Set(api.StatusActive, 4)
	f.waitStatus(t, api.StatusActive)
	st := f.Status()
	for _, s := range st.Services {
		if s.State != services.StateRunning {
			t.Errorf("service %s is %s with the node active", s.Name, s.State)
		}
	}
	if fw := st.Following; fw.Node != "xivo-main" || !fw.Reachable || fw.Epoch != 4 || fw.Since.IsZero() || fw.URL != node.URL() {
		t.Errorf("following = %+v", fw)
	}
	if st.LastChange == nil || st.LastChange.To != api.StatusActive {
		t.Errorf("last change = %+v", st.LastChange)
	}

	node.Set(api.StatusDeactivating, 4)
	f.waitStatus(t, api.StatusInactive)
	for _, s := range f.Status().Services {
		if s.State != services.StateStopped {
			t.Errorf("service %s is %s with the node deactivating", s.Name, s.State)
		}
	}
	node.Set(api.StatusInactive, 4)
	node.Set(api.StatusActive, 6)
	f.waitStatus(t, api.StatusActive)

	want := []string{
		"boot: following " + node.URL(),
		"start services: paired node xivo-main went active (epoch 4)",
		"activated: services started",
		"stop services: paired node xivo-main went deactivating (epoch 4)",
		"deactivated: services stopped",
		"start services: paired node xivo-main went active (epoch 6)",
		"activated: services started",
	}
	if got := f.causes(t); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if v := testkit.Metric(t, f.reg, "resman_cc_status", map[string]string{"status": "active"}); v != 1 {
		t.Errorf("resman_cc_status{active} = %v", v)
	}
	if v := testkit.Metric(t, f.reg, "resman_cc_transitions_total", map[string]string{"from": "inactive", "to": "activating"}); v != 2 {
		t.Errorf("transitions inactive->activating = %v, want 2", v)
	}
	if v := testkit.Metric(t, f.reg, "resman_cc_follow_reachable", nil); v != 1 {
		t.Errorf("resman_cc_follow_reachable = %v", v)
	}
}

// Without an event stream, the polls follow the node.
func TestFollowsByPollingWithoutStream(t *testing.T) {
	node := newFakeNode(t, api.StatusActive, 2)
	node.RefuseEvents(true)
	f := startFollower(t, node, []services.Service{sleeper("xuc")})
	f.waitStatus(t, api.StatusActive)
	node.Set(api.StatusInactive, 2)
	f.waitStatus(t, api.StatusInactive)
	if f.Status().Following.Stream {
		t.Error("following.stream is true with no event stream")
	}
}

// With polls far apart, only the event stream can bring the news quickly,
// and it is reconnected after the node restarts.
func TestStreamReconnects(t *testing.T) {
	node := newFakeNode(t, api.StatusInactive, 1)
	f := startFollower(t, node, []services.Service{sleeper("xuc")}, func(o *Options) { o.CheckInterval = time.Hour })
	testkit.Eventually(t, func() bool { return f.Status().Following.Stream }, "stream connected")
	node.Set(api.StatusActive, 2)
	f.waitStatus(t, api.StatusActive)

	// The node restarts: its stream ends, it does not answer for a while.
	node.SetDown(true)
	testkit.Eventually(t, func() bool { return !f.Status().Following.Reachable }, "node unreachable")
	node.SetDown(false)
	testkit.Eventually(t, func() bool {
		streams, _ := node.Counts()
		return f.Status().Following.Stream && streams >= 2
	}, "stream reconnected")
	node.Set(api.StatusInactive, 2)
	f.waitStatus(t, api.StatusInactive)
}

func TestKeepsItsStateWhenTheNodeIsUnreachable(t *testing.T) {
	node := newFakeNode(t, api.StatusActive, 5)
	f := startFollower(t, node, []services.Service{sleeper("xuc")})
	f.waitStatus(t, api.StatusActive)

	node.SetDown(true)
	testkit.Eventually(t, func() bool { return !f.Status().Following.Reachable }, "node unreachable")
	// Polls keep failing; nothing moves.
	seen := f.Status().Following.CheckedAt
	testkit.Eventually(t, func() bool { return f.Status().Following.CheckedAt.After(seen) }, "another failed poll")
	st := f.Status()
	if st.Status != api.StatusActive || st.Services[0].State != services.StateRunning {
		t.Fatalf("unreachable node: follower %s, service %s; want active, running", st.Status, st.Services[0].State)
	}
	if st.Following.Error == "" || st.Following.Status != api.StatusActive || st.Following.Epoch != 5 {
		t.Errorf("following while unreachable = %+v", st.Following)
	}
	if v := testkit.Metric(t, f.reg, "resman_cc_follow_reachable", nil); v != 0 {
		t.Errorf("resman_cc_follow_reachable = %v while unreachable", v)
	}
	causes := f.causes(t)
	if !has(causes, "follow: paired node xivo-main unreachable: keeping active") {
		t.Errorf("audit lacks the unreachable entry:\n%s", strings.Join(causes, "\n"))
	}

	// It comes back Inactive: the follower stops.
	node.Set(api.StatusInactive, 5)
	node.SetDown(false)
	f.waitStatus(t, api.StatusInactive)
	causes = f.causes(t)
	if !has(causes, "follow: paired node xivo-main reachable again (inactive, epoch 5)") ||
		!has(causes, "stop services: paired node xivo-main went inactive (epoch 5)") {
		t.Errorf("audit after the node came back:\n%s", strings.Join(causes, "\n"))
	}
	// Exactly one unreachable entry: the follower says it once.
	n := 0
	for _, c := range causes {
		if strings.Contains(c, "unreachable: keeping") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d unreachable entries, want 1:\n%s", n, strings.Join(causes, "\n"))
	}
}

// A node that answers but cannot be read (wrong token) counts as not
// seen: the follower keeps its state.
func TestWrongTokenKeepsState(t *testing.T) {
	node := newFakeNode(t, api.StatusActive, 1)
	f := startFollower(t, node, []services.Service{sleeper("xuc")}, func(o *Options) { o.Config.Token = "wrong-token-0123456789" })
	testkit.Eventually(t, func() bool { return strings.Contains(f.Status().Following.Error, "401") }, "an error")
	// The audit entry is written just after the error is recorded: wait
	// for it rather than read the log at once.
	want := "follow: paired node " + node.URL() + " cannot be read: keeping inactive"
	testkit.Eventually(t, func() bool { return has(f.causes(t), want) }, "the audit entry")
	if st := f.Status(); st.Status != api.StatusInactive || st.Services[0].State != services.StateStopped {
		t.Errorf("with a wrong token: %s, %s", st.Status, st.Services[0].State)
	}
}

func TestFailedStartRollsBackAndRetries(t *testing.T) {
	node := newFakeNode(t, api.StatusActive, 1)
	f := startFollower(t, node, []services.Service{sleeper("xuc"),
		{Name: "broken", Run: []string{"false"}, Timeout: 5 * time.Second}})
	testkit.Eventually(t, func() bool {
		n := 0
		for _, c := range f.causes(t) {
			if strings.HasSuffix(c, "[failed]") {
				n++
			}
		}
		return n >= 2
	}, "two failed starts")
	st := f.Status()
	if st.Status == api.StatusActive || !strings.Contains(st.Error, "broken") {
		t.Errorf("after failed starts: %s, error %q", st.Status, st.Error)
	}
	testkit.Eventually(t, func() bool {
		s := f.Status()
		return s.Status == api.StatusInactive && s.Services[0].State == services.StateStopped
	}, "rolled back")
	// The node goes inactive: no more retries, no error left.
	node.Set(api.StatusInactive, 1)
	testkit.Eventually(t, func() bool { return f.Status().Status == api.StatusInactive }, "settled inactive")
}

// One transition at a time: a change of the node during a transition
// waits for its end, then the follower moves to the node's last status.
// The start of service a waits for a gate the test opens, so the changes
// of the node surely come during the start, however slow the machine.
func TestOneTransitionAtATime(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "gate")
	gated := services.Service{Name: "a", Start: []string{"sh", "-c", `while [ ! -e "$0" ]; do sleep 0.01; done`, gate},
		Stop: []string{"true"}, Timeout: time.Minute}
	openGate := func() {
		t.Helper()
		if err := os.WriteFile(gate, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	node := newFakeNode(t, api.StatusInactive, 1)
	f := startFollower(t, node, []services.Service{gated, sleeper("b")})
	testkit.Eventually(t, func() bool { return f.Status().Following.Reachable }, "the node seen")
	seen := func(status string, epoch uint64) {
		t.Helper()
		testkit.Eventually(t, func() bool {
			fw := f.Status().Following
			return fw.Status == status && fw.Epoch == epoch
		}, "the node seen %s (epoch %d)", status, epoch)
		if st := f.Status().Status; st != api.StatusActivating {
			t.Fatalf("follower %s while the start is held", st)
		}
	}

	node.Set(api.StatusActive, 2)
	f.waitStatus(t, api.StatusActivating)
	node.Set(api.StatusInactive, 2) // during the start
	seen(api.StatusInactive, 2)
	openGate()
	f.waitStatus(t, api.StatusInactive)
	if err := os.Remove(gate); err != nil {
		t.Fatal(err)
	}

	node.Set(api.StatusActive, 3)
	f.waitStatus(t, api.StatusActivating)
	node.Set(api.StatusInactive, 3)
	seen(api.StatusInactive, 3)
	node.Set(api.StatusActive, 4) // back before the start ended: nothing to undo
	seen(api.StatusActive, 4)
	openGate()
	f.waitStatus(t, api.StatusActive)
	testkit.Eventually(t, func() bool {
		c := f.causes(t)
		return strings.HasPrefix(c[len(c)-1], "activated")
	}, "settled")
	var open string
	starts := 0
	for _, c := range f.causes(t) {
		action, _, _ := strings.Cut(c, ":")
		switch action {
		case "start services", "stop services":
			if open != "" {
				t.Fatalf("%q began while %q was running:\n%s", action, open, strings.Join(f.causes(t), "\n"))
			}
			open = action
			if action == "start services" {
				starts++
			}
		case "activated", "deactivated":
			open = ""
		}
	}
	if starts != 2 {
		t.Errorf("%d starts, want 2:\n%s", starts, strings.Join(f.causes(t), "\n"))
	}
}

func TestAPI(t *testing.T) {
	node := newFakeNode(t, api.StatusActive, 7)
	f := startFollower(t, node, []services.Service{sleeper("xuc")}, func(o *Options) { o.Standalone = true })
	f.waitStatus(t, api.StatusActive)
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	do := func(method, path string, auth bool) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+ccToken)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for _, p := range []string{PathStatus, PathAudit, PathNodeStatus, PathNodeAudit} {
		if code, _ := do("GET", p, false); code != 401 {
			t.Errorf("GET %s without a token = %d", p, code)
		}
	}
	code, body := do("GET", PathStatus, true)
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != 200 || st.Name != "cc-main" || st.Status != "active" ||
		st.Following.Node != "xivo-main" || !st.Following.Reachable || st.Following.Epoch != 7 || len(st.Services) != 1 {
		t.Errorf("GET %s = %d %s", PathStatus, code, body)
	}
	code, body = do("GET", PathNodeStatus, true)
	var ns api.Status
	if err := json.Unmarshal([]byte(body), &ns); err != nil || code != 200 || ns.Node != "cc-main" || ns.Role != Role ||
		ns.Status != "active" || ns.Epoch != 7 || ns.Peer == nil || ns.Peer.Name != "xivo-main" || !ns.HA.Ready {
		t.Errorf("GET %s = %d %s", PathNodeStatus, code, body)
	}
	if code, body = do("GET", PathActive, false); code != 200 || strings.TrimSpace(body) != `{"status":"active","epoch":7}` {
		t.Errorf("GET /active = %d %s", code, body)
	}
	code, body = do("GET", PathAudit+"?limit=2", true)
	var entries []api.AuditEntry
	if err := json.Unmarshal([]byte(body), &entries); err != nil || code != 200 || len(entries) != 2 || entries[0].Action != "activated" {
		t.Errorf("GET audit?limit=2 = %d %s", code, body)
	}
	code, body = do("GET", PathAudit+"?before="+itoa(entries[1].ID), true)
	if err := json.Unmarshal([]byte(body), &entries); err != nil || code != 200 || len(entries) != 1 || entries[0].Action != "boot" {
		t.Errorf("GET audit?before = %d %s", code, body)
	}
	for _, bad := range []string{"?limit=0", "?limit=x", "?before=-1"} {
		if code, _ := do("GET", PathAudit+bad, true); code != 400 {
			t.Errorf("GET audit%s = %d, want 400", bad, code)
		}
	}
	if code, _ := do("POST", PathStatus, true); code != 405 {
		t.Errorf("POST status = %d", code)
	}
	if code, _ := do("GET", "/api/v1/cc/nope", true); code != 404 {
		t.Errorf("GET nope = %d", code)
	}

	node.Set(api.StatusInactive, 7)
	f.waitStatus(t, api.StatusInactive)
	if code, body = do("GET", PathActive, false); code != 503 || !strings.Contains(body, `"inactive"`) {
		t.Errorf("GET /active when inactive = %d %s", code, body)
	}
}

// Not standalone: the node-shaped paths are the node's, not the
// follower's.
func TestAPINotStandalone(t *testing.T) {
	node := newFakeNode(t, api.StatusActive, 7)
	f := startFollower(t, node, nil)
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	for _, p := range []string{PathActive, PathNodeStatus, PathNodeAudit} {
		req, _ := http.NewRequest("GET", srv.URL+p, nil)
		req.Header.Set("Authorization", "Bearer "+ccToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 404 {
			t.Errorf("GET %s = %d, want 404", p, res.StatusCode)
		}
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Options{Config: Config{Name: "cc"}, DataDir: t.TempDir()}); err == nil {
		t.Error("New without a node to follow succeeded")
	}
	if _, err := New(Options{Config: Config{Name: "cc", Follow: "http://127.0.0.1:1"}}); err == nil {
		t.Error("New without a data dir succeeded")
	}
	dup := []services.Service{sleeper("a"), sleeper("a")}
	if _, err := New(Options{Config: Config{Name: "cc", Follow: "http://127.0.0.1:1", Services: dup}, DataDir: t.TempDir()}); err == nil {
		t.Error("New with a duplicate service succeeded")
	}
}

func itoa(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
