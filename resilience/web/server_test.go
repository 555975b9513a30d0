package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
)

const testToken = "s3cret-T0ken-value"

type answer struct {
	code   int
	header http.Header
	body   []byte
}

func newTestServer(t *testing.T, opts Options) (*Server, *fakeNode, *testkit.Buffer) {
	t.Helper()
	node := newFakeNode()
	logs := &testkit.Buffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.Token == "" {
		opts.Token = testToken
	}
	return New(node, opts), node, logs
}

// do sends one request through app.Test. hdr holds extra headers; a
// "Authorization" of "" sends none, and by default the right token is sent.
func do(t *testing.T, s *Server, method, target, body string, hdr map[string]string) answer {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	// A generous bound: a login's bcrypt under -race on a loaded
	// machine takes seconds.
	resp, err := s.App().Test(req, 120000)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, target, err)
	}
	return answer{code: resp.StatusCode, header: resp.Header, body: b}
}

// apiError checks a is a JSON api.Error and returns its message.
func apiError(t *testing.T, a answer) string {
	t.Helper()
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var e api.Error
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("body %q is not an api.Error: %v", a.body, err)
	}
	if e.Error == "" {
		t.Errorf("body %q: empty error message", a.body)
	}
	return e.Error
}

func TestBadInput(t *testing.T) {
	long := strings.Repeat("é", MaxReasonLength+1)
	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		hdr     map[string]string
		code    int
		msg     string // exact message, when set
		contain string // part of the message, when set
		allow   string
	}{
		{name: "invalid JSON", method: "POST", path: pathStart, body: `{"reason":`, code: 400, contain: "invalid JSON"},
		{name: "invalid JSON stop", method: "POST", path: pathStop, body: `{reason:"x"}`, code: 400, contain: "invalid JSON"},
		{name: "unknown field", method: "POST", path: pathStart, body: `{"reason":"x","forse":true}`, code: 400, contain: "forse"},
		{name: "unknown field stop", method: "POST", path: pathStop, body: `{"reason":"x","force":true}`, code: 400, contain: "force"},
		{name: "wrong type", method: "POST", path: pathStart, body: `{"reason":"x","force":"yes"}`, code: 400, contain: "invalid JSON"},
		{name: "trailing object", method: "POST", path: pathStart, body: `{"reason":"x"} {}`, code: 400, contain: "after the object"},
		{name: "trailing garbage", method: "POST", path: pathStop, body: `{"reason":"x"}x`, code: 400, contain: "after the object"},
		{name: "array", method: "POST", path: pathStart, body: `[{"reason":"x"}]`, code: 400, msg: "the request body must be a JSON object"},
		{name: "null", method: "POST", path: pathStart, body: `null`, code: 400, msg: "the request body must be a JSON object"},
		{name: "empty body", method: "POST", path: pathStart, body: "", hdr: map[string]string{"Content-Type": "application/json"}, code: 400, msg: "the request body must be a JSON object"},
		{name: "missing reason", method: "POST", path: pathStart, body: `{"force":true}`, code: 400, msg: "reason is required"},
		{name: "null reason", method: "POST", path: pathStop, body: `{"reason":null}`, code: 400, msg: "reason is required"},
		{name: "blank reason", method: "POST", path: pathStop, body: `{"reason":" \t\n "}`, code: 400, msg: "reason is required"},
		{name: "reason too long", method: "POST", path: pathStart, body: `{"reason":"` + long + `"}`, code: 400, msg: "reason is longer than 500 characters"},
		{name: "no content type", method: "POST", path: pathStart, body: `{"reason":"x"}`, hdr: map[string]string{"Content-Type": ""}, code: 415},
		{name: "text content type", method: "POST", path: pathStart, body: `{"reason":"x"}`, hdr: map[string]string{"Content-Type": "text/plain"}, code: 415},
		{name: "form content type", method: "POST", path: pathStop, body: `{"reason":"x"}`, hdr: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, code: 415},
		{name: "bad content type", method: "POST", path: pathStop, body: `{"reason":"x"}`, hdr: map[string]string{"Content-Type": "application/json; ="}, code: 415},
		{name: "content encoding", method: "POST", path: pathStart, body: `{"reason":"x"}`, hdr: map[string]string{"Content-Encoding": "gzip"}, code: 415},
		{name: "no token", method: "POST", path: pathStart, body: `{"reason":"x"}`, hdr: map[string]string{"Authorization": ""}, code: 401},
		{name: "wrong token", method: "POST", path: pathStop, body: `{"reason":"x"}`, hdr: map[string]string{"Authorization": "Bearer nope"}, code: 401},
		{name: "token prefix", method: "POST", path: pathStop, body: `{"reason":"x"}`, hdr: map[string]string{"Authorization": "Bearer " + testToken[:5]}, code: 401},
		{name: "basic auth", method: "GET", path: pathStatus, hdr: map[string]string{"Authorization": "Basic " + testToken}, code: 401},
		{name: "bare token", method: "GET", path: pathStatus, hdr: map[string]string{"Authorization": testToken}, code: 401},
		{name: "no token status", method: "GET", path: pathStatus, hdr: map[string]string{"Authorization": ""}, code: 401},
		{name: "no token audit", method: "GET", path: pathAudit, hdr: map[string]string{"Authorization": ""}, code: 401},
		{name: "no token events", method: "GET", path: pathEvents, hdr: map[string]string{"Authorization": ""}, code: 401},
		{name: "actor too long", method: "POST", path: pathStart, body: `{"reason":"x"}`, hdr: map[string]string{HeaderActor: strings.Repeat("a", MaxActorLength+1)}, code: 400, contain: HeaderActor},
		{name: "actor not ASCII", method: "POST", path: pathStart, body: `{"reason":"x"}`, hdr: map[string]string{HeaderActor: "zoé@host"}, code: 400, contain: HeaderActor},
		{name: "actor control", method: "POST", path: pathStop, body: `{"reason":"x"}`, hdr: map[string]string{HeaderActor: "a\tb"}, code: 400, contain: HeaderActor},
		{name: "GET on start", method: "GET", path: pathStart, code: 405, allow: "POST"},
		{name: "PUT on stop", method: "PUT", path: pathStop, body: `{"reason":"x"}`, code: 405, allow: "POST"},
		{name: "POST on status", method: "POST", path: pathStatus, body: `{"reason":"x"}`, code: 405, allow: "GET, HEAD"},
		{name: "DELETE on audit", method: "DELETE", path: pathAudit, code: 405, allow: "GET, HEAD"},
		{name: "HEAD on events", method: "HEAD", path: pathEvents, code: 405, allow: "GET"},
		{name: "POST on active", method: "POST", path: pathActive, code: 405, allow: "GET, HEAD"},
		{name: "POST on healthz", method: "POST", path: pathHealthz, code: 405, allow: "GET, HEAD"},
		{name: "unknown method", method: "BREW", path: pathStatus, code: 405, allow: "GET, HEAD"},
		{name: "unknown method elsewhere", method: "BREW", path: "/coffee", code: 404},
		{name: "unknown path", method: "GET", path: "/nope", code: 404, msg: "not found"},
		{name: "unknown api path", method: "GET", path: "/api/v1/nope", code: 404, msg: "not found"},
		{name: "trailing slash", method: "GET", path: pathStatus + "/", code: 404},
		{name: "other case", method: "GET", path: "/API/v1/status", code: 404},
		{name: "limit zero", method: "GET", path: pathAudit + "?limit=0", code: 400, contain: "limit"},
		{name: "limit too big", method: "GET", path: pathAudit + "?limit=1001", code: 400, contain: "limit"},
		{name: "limit negative", method: "GET", path: pathAudit + "?limit=-5", code: 400, contain: "limit"},
		{name: "limit not a number", method: "GET", path: pathAudit + "?limit=ten", code: 400, contain: "limit"},
		{name: "limit empty", method: "GET", path: pathAudit + "?limit=", code: 400, contain: "limit"},
		{name: "before negative", method: "GET", path: pathAudit + "?before=-1", code: 400, contain: "before"},
		{name: "before not a number", method: "GET", path: pathAudit + "?before=x1", code: 400, contain: "before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, node, _ := newTestServer(t, Options{})
			a := do(t, s, tt.method, tt.path, tt.body, tt.hdr)
			if a.code != tt.code {
				t.Fatalf("code = %d, want %d; body %s", a.code, tt.code, a.body)
			}
			if tt.method != "HEAD" {
				msg := apiError(t, a)
				if tt.msg != "" && msg != tt.msg {
					t.Errorf("error = %q, want %q", msg, tt.msg)
				}
				if tt.contain != "" && !strings.Contains(msg, tt.contain) {
					t.Errorf("error = %q, want it to mention %q", msg, tt.contain)
				}
				if strings.Contains(msg, testToken) {
					t.Errorf("error %q echoes the token", msg)
				}
			}
			if tt.allow != "" && a.header.Get("Allow") != tt.allow {
				t.Errorf("Allow = %q, want %q", a.header.Get("Allow"), tt.allow)
			}
			if tt.code == 401 && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want Bearer", a.header.Get("WWW-Authenticate"))
			}
			if calls := node.Calls(); len(calls) != 0 {
				t.Errorf("the node saw %+v, want no call", calls)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	s, node, _ := newTestServer(t, Options{})
	a := do(t, s, "GET", pathStatus, "", nil)
	if a.code != 200 {
		t.Fatalf("code = %d; body %s", a.code, a.body)
	}
	var st api.Status
	if err := json.Unmarshal(a.body, &st); err != nil {
		t.Fatal(err)
	}
	if st.Node != "xivo-main" || st.Epoch != 3 || !st.Since.Equal(node.status.Since) || len(st.Services) != 1 {
		t.Errorf("status = %+v", st)
	}
	if cc := a.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q", cc)
	}
}

func TestStartStop(t *testing.T) {
	s, node, _ := newTestServer(t, Options{})
	a := do(t, s, "POST", pathStart, `{"reason":"maintenance window","force":true}`, map[string]string{"Content-Type": "application/json; charset=utf-8"})
	if a.code != 200 {
		t.Fatalf("start: code = %d; body %s", a.code, a.body)
	}
	var st api.Status
	if err := json.Unmarshal(a.body, &st); err != nil || st.Status != api.StatusActive {
		t.Fatalf("start: status %s, err %v", a.body, err)
	}
	// At the limit, in characters, not bytes.
	reason := strings.Repeat("é", MaxReasonLength)
	a = do(t, s, "POST", pathStop, `{"reason":"`+reason+`"}`, map[string]string{HeaderActor: "alice@host"})
	if a.code != 200 {
		t.Fatalf("stop: code = %d; body %s", a.code, a.body)
	}
	if err := json.Unmarshal(a.body, &st); err != nil || st.Status != api.StatusInactive {
		t.Fatalf("stop: status %s, err %v", a.body, err)
	}
	want := []call{
		{Method: "start", Who: "api", Start: api.StartRequest{Reason: "maintenance window", Force: true}},
		{Method: "stop", Who: "api:alice@host", Stop: api.StopRequest{Reason: reason}},
	}
	got := node.Calls()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls = %+v\nwant %+v", got, want)
	}
}

func TestNodeErrors(t *testing.T) {
	secret := "disk on fire: secret detail"
	tests := []struct {
		name string
		err  error
		code int
		msg  string
	}{
		{"conflict", fmt.Errorf("the peer xivo-standby is Active (epoch 3): %w", resilience.ErrConflict), 409, "the peer xivo-standby is Active (epoch 3): conflict"},
		{"busy", fmt.Errorf("stopping services: %w", resilience.ErrBusy), 409, "stopping services: transition in progress"},
		{"invalid", fmt.Errorf("bad: %w", resilience.ErrInvalid), 400, "bad: invalid command"},
		{"precondition", fmt.Errorf("auto mode: %w", resilience.ErrPrecondition), 412, "auto mode: precondition failed"},
		{"other", errors.New(secret), 500, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, node, logs := newTestServer(t, Options{})
			node.startErr, node.stopErr, node.auditErr = tt.err, tt.err, tt.err
			for _, r := range []struct{ method, path, body string }{
				{"POST", pathStart, `{"reason":"r"}`},
				{"POST", pathStop, `{"reason":"r"}`},
				{"GET", pathAudit, ""},
			} {
				a := do(t, s, r.method, r.path, r.body, nil)
				if a.code != tt.code {
					t.Errorf("%s: code = %d, want %d", r.path, a.code, tt.code)
				}
				if msg := apiError(t, a); msg != tt.msg {
					t.Errorf("%s: error = %q, want %q", r.path, msg, tt.msg)
				}
				if strings.Contains(string(a.body), "secret") {
					t.Errorf("%s: the answer leaks the detail: %s", r.path, a.body)
				}
			}
			if tt.code == 500 && !strings.Contains(logs.String(), secret) {
				t.Errorf("the detail of a 500 is not logged:\n%s", logs)
			}
		})
	}
}

// A decision the node could not persist was not carried out: 503, with
// the node's message, which says why.
func TestNotDurableIs503(t *testing.T) {
	s, node, logs := newTestServer(t, Options{})
	msg := "decision not persisted: the decision could not be persisted, so nothing was started or stopped: no space left on device"
	node.startErr = fmt.Errorf("%w: the decision could not be persisted, so nothing was started or stopped: no space left on device", resilience.ErrNotDurable)
	node.stopErr = node.startErr
	for _, path := range []string{pathStart, pathStop} {
		a := do(t, s, "POST", path, `{"reason":"r"}`, nil)
		if a.code != 503 {
			t.Errorf("%s: code = %d, want 503", path, a.code)
		}
		if got := apiError(t, a); got != msg {
			t.Errorf("%s: error = %q, want %q", path, got, msg)
		}
	}
	if !strings.Contains(logs.String(), "could not be persisted") {
		t.Errorf("the failure is not logged:\n%s", logs)
	}
}

// A node shutting down takes no more commands: 503 with its message, not
// a generic 500 (a script retries a 503; an admin reads the message).
func TestStoppingNodeIs503(t *testing.T) {
	s, node, _ := newTestServer(t, Options{})
	node.startErr = resilience.ErrStopping
	node.stopErr = resilience.ErrStopping
	node.replErr = resilience.ErrStopping
	for _, path := range []string{pathStart, pathStop, "/api/v1/replication/run"} {
		a := do(t, s, "POST", path, `{"reason":"r"}`, nil)
		if a.code != 503 {
			t.Errorf("%s: code = %d, want 503", path, a.code)
		}
		if got := apiError(t, a); got != "node is shutting down" {
			t.Errorf("%s: error = %q, want %q", path, got, "node is shutting down")
		}
	}
}

func TestPanic(t *testing.T) {
	s, node, logs := newTestServer(t, Options{})
	node.panicky = true
	a := do(t, s, "GET", pathStatus, "", nil)
	if a.code != 500 {
		t.Fatalf("code = %d", a.code)
	}
	if msg := apiError(t, a); msg != "internal error" {
		t.Errorf("error = %q", msg)
	}
	if !strings.Contains(logs.String(), "status exploded") {
		t.Errorf("the panic is not logged:\n%s", logs)
	}
	// The server still serves.
	node.mu.Lock()
	node.panicky = false
	node.mu.Unlock()
	if a := do(t, s, "GET", pathStatus, "", nil); a.code != 200 {
		t.Errorf("after a panic: code = %d", a.code)
	}
}

func TestAudit(t *testing.T) {
	s, node, _ := newTestServer(t, Options{})
	a := do(t, s, "GET", pathAudit, "", nil)
	if a.code != 200 || strings.TrimSpace(string(a.body)) != "[]" {
		t.Fatalf("empty audit: code %d body %s", a.code, a.body)
	}
	node.entries = []api.AuditEntry{
		{ID: 41, Who: "api:alice@host", Action: "stop", Reason: "r", Outcome: api.OutcomeOK, Epoch: 3},
		{ID: 40, Who: "resman", Action: "start", Cause: "boot", Outcome: api.OutcomeOK, Epoch: 3},
	}
	a = do(t, s, "GET", pathAudit+"?limit=1000&before=42", "", nil)
	if a.code != 200 {
		t.Fatalf("code %d body %s", a.code, a.body)
	}
	var got []api.AuditEntry
	if err := json.Unmarshal(a.body, &got); err != nil || len(got) != 2 || got[0].ID != 41 {
		t.Fatalf("entries %s, err %v", a.body, err)
	}
	want := []call{{Method: "audit", Limit: DefaultAuditLimit}, {Method: "audit", Limit: 1000, Before: 42}}
	if fmt.Sprint(node.Calls()) != fmt.Sprint(want) {
		t.Errorf("calls = %+v, want %+v", node.Calls(), want)
	}
}

func TestActive(t *testing.T) {
	for _, tt := range []struct {
		status string
		code   int
	}{
		{api.StatusActive, 200},
		{api.StatusInactive, 503},
		{api.StatusActivating, 503},
		{api.StatusDeactivating, 503},
	} {
		t.Run(tt.status, func(t *testing.T) {
			s, node, _ := newTestServer(t, Options{})
			node.active = api.Active{Status: tt.status, Epoch: 7}
			// No auth, and a wrong token does not matter.
			for _, auth := range []string{"", "Bearer wrong"} {
				a := do(t, s, "GET", pathActive, "", map[string]string{"Authorization": auth})
				if a.code != tt.code {
					t.Fatalf("code = %d, want %d", a.code, tt.code)
				}
				var m map[string]any
				if err := json.Unmarshal(a.body, &m); err != nil {
					t.Fatal(err)
				}
				if len(m) != 2 || m["status"] != tt.status || m["epoch"] != float64(7) {
					t.Errorf("body = %s, want exactly status and epoch", a.body)
				}
			}
		})
	}
}

func TestHealthz(t *testing.T) {
	s, _, _ := newTestServer(t, Options{})
	a := do(t, s, "GET", pathHealthz, "", map[string]string{"Authorization": ""})
	if a.code != 200 || strings.TrimSpace(string(a.body)) != `{"status":"ok"}` {
		t.Errorf("healthz: %d %s", a.code, a.body)
	}
	if a := do(t, s, "HEAD", pathHealthz, "", map[string]string{"Authorization": ""}); a.code != 200 {
		t.Errorf("HEAD healthz: %d", a.code)
	}
}

func TestNoTokenConfigured(t *testing.T) {
	node := newFakeNode()
	s := New(node, Options{})
	for _, auth := range []string{"", "Bearer ", "Bearer x"} {
		a := do(t, s, "GET", pathStatus, "", map[string]string{"Authorization": auth})
		if a.code != 401 {
			t.Errorf("Authorization %q: code = %d, want 401", auth, a.code)
		}
	}
}

func TestTokenNeverLogged(t *testing.T) {
	s, _, logs := newTestServer(t, Options{})
	do(t, s, "GET", pathStatus, "", nil)
	do(t, s, "GET", pathStatus, "", map[string]string{"Authorization": "Bearer " + testToken + "x"})
	do(t, s, "POST", pathStart, `{"reason":"r"}`, map[string]string{HeaderActor: "bob"})
	do(t, s, "GET", "/nope", "", nil)
	do(t, s, "POST", pathStart, `{"reason":`, nil)
	do(t, s, "GET", pathAudit+"?limit=x", "", nil)
	out := logs.String()
	if !strings.Contains(out, "route="+pathStatus) || !strings.Contains(out, "component=api") {
		t.Errorf("no access log:\n%s", out)
	}
	for _, secret := range []string{testToken, "Bearer", "Authorization"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q:\n%s", secret, out)
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	probe := prometheus.NewCounter(prometheus.CounterOpts{Name: "resman_probe_total", Help: "A test metric."})
	reg.MustRegister(probe)
	probe.Add(2)
	s, _, _ := newTestServer(t, Options{Gatherer: reg, Registerer: reg})
	do(t, s, "GET", pathStatus, "", nil)
	do(t, s, "GET", "/nope/"+testToken, "", nil)
	a := do(t, s, "GET", pathMetrics, "", map[string]string{"Authorization": ""})
	if a.code != 200 {
		t.Fatalf("code = %d; body %s", a.code, a.body)
	}
	body := string(a.body)
	for _, want := range []string{
		"resman_probe_total 2",
		`resman_http_requests_total{code="200",method="GET",route="/api/v1/status"} 1`,
		`resman_http_requests_total{code="404",method="GET",route="other"} 1`,
		`resman_http_request_duration_seconds_count{route="/api/v1/status"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, testToken) {
		t.Errorf("a path made a label value:\n%s", body)
	}

	// Two servers on one registry share the metrics.
	New(newFakeNode(), Options{Token: testToken, Registerer: reg})
}

func TestMetricsNilGatherer(t *testing.T) {
	s, _, _ := newTestServer(t, Options{})
	if a := do(t, s, "GET", pathMetrics, "", map[string]string{"Authorization": ""}); a.code != 200 {
		t.Errorf("code = %d", a.code)
	}
}

func TestMetricsAuth(t *testing.T) {
	s, _, _ := newTestServer(t, Options{MetricsAuth: true})
	if a := do(t, s, "GET", pathMetrics, "", map[string]string{"Authorization": ""}); a.code != 401 {
		t.Errorf("no token: code = %d, want 401", a.code)
	}
	if a := do(t, s, "GET", pathMetrics, "", nil); a.code != 200 {
		t.Errorf("token: code = %d, want 200", a.code)
	}
}

func TestMountsAndNoNode(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/cc/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"cc":"ok"}`))
	})
	s := New(nil, Options{Token: "t0123456789abcdef", Mounts: []Mount{{Prefix: "/api/v1/cc", Handler: mux}}})
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/api/v1/cc/status", 200, `{"cc":"ok"}`},
		{"/healthz", 200, ""},
		{"/active", 404, ""},        // no node: no node routes
		{"/api/v1/status", 404, ""}, // no node: no node API
	} {
		resp, err := s.App().Test(httptest.NewRequest("GET", tc.path, nil))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.code || (tc.body != "" && string(raw) != tc.body) {
			t.Errorf("%s: %d %s, want %d %s", tc.path, resp.StatusCode, raw, tc.code, tc.body)
		}
	}
}
