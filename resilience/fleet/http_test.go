package fleet

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
)

func do(t *testing.T, method, url, token string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHandler(t *testing.T) {
	t.Parallel()
	s := newSim(t, 3)
	s.set("p00001", "a", func(st *api.Status) { st.Status = api.StatusInactive })
	_, url, _ := startAggregator(t, s, Config{Interval: 100 * time.Millisecond}, Options{})
	hc := &http.Client{}
	ps := waitAllPolled(t, hc, url, 5*time.Second)

	// Sorted by severity: p00001 (no Active) first.
	if ps[0].Name != "p00001" || ps[0].Severity != SeverityCritical || ps[0].Ready ||
		ps[1].Name != "p00000" || ps[2].Name != "p00002" {
		t.Fatalf("order: %+v", ps)
	}

	// The wire form: the documented keys.
	_, body := do(t, http.MethodGet, url+PathAPI, aggToken)
	var raw []map[string]any
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "ready", "severity", "classes", "reasons", "nodes", "active", "epoch", "version_mismatch"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("no %q in %s", k, body[:200])
		}
	}
	n0 := raw[0]["nodes"].([]any)[0].(map[string]any)
	for _, k := range []string{"url", "reachable", "status", "epoch", "version", "checked_at"} {
		if _, ok := n0[k]; !ok {
			t.Errorf("node: no %q in %v", k, n0)
		}
	}
	if strings.Contains(body, simToken) {
		t.Error("a pair's token is in the answer")
	}

	for _, tt := range []struct {
		method, path, token string
		code                int
		ctype               string
	}{
		{http.MethodGet, PathAPI, "", 401, "application/json"},
		{http.MethodGet, PathAPI, simToken, 401, "application/json"},
		{http.MethodPost, PathAPI, "", 401, "application/json"},
		{http.MethodPost, PathAPI, aggToken, 405, "application/json"},
		{http.MethodDelete, PathAPI, aggToken, 405, "application/json"},
		{http.MethodHead, PathAPI, aggToken, 200, "application/json"},
		{http.MethodGet, PathPage, "", 200, "text/html; charset=utf-8"},
		{http.MethodGet, PathPage + "/fleet.js", "", 200, "text/javascript; charset=utf-8"},
		{http.MethodGet, PathPage + "/fleet.css", "", 200, "text/css; charset=utf-8"},
		{http.MethodPost, PathPage, "", 405, "application/json"},
		{http.MethodGet, PathPage + "/nope", "", 404, "application/json"},
		{http.MethodGet, "/api/v1/status", aggToken, 404, "application/json"},
	} {
		resp, body := do(t, tt.method, url+tt.path, tt.token)
		if resp.StatusCode != tt.code || resp.Header.Get("Content-Type") != tt.ctype {
			t.Errorf("%s %s: %d %q, want %d %q (%s)", tt.method, tt.path, resp.StatusCode,
				resp.Header.Get("Content-Type"), tt.code, tt.ctype, body)
		}
		if tt.code == 401 && resp.Header.Get("WWW-Authenticate") != `Bearer realm="resman"` {
			t.Errorf("%s %s: no WWW-Authenticate", tt.method, tt.path)
		}
		if tt.path == PathAPI && resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: Cache-Control %q", tt.method, tt.path, resp.Header.Get("Cache-Control"))
		}
		if strings.HasPrefix(tt.path, PathPage) && tt.code == 200 &&
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("%s: CSP %q", tt.path, resp.Header.Get("Content-Security-Policy"))
		}
	}

	// The page holds no data and no inline script: everything comes from
	// the API with the token the reader types.
	_, page := do(t, http.MethodGet, url+PathPage, "")
	if strings.Contains(page, "p00001") || strings.Contains(page, "<script>") || !strings.Contains(page, `src="/fleet/fleet.js"`) {
		t.Errorf("page:\n%s", page)
	}
	_, js := do(t, http.MethodGet, url+PathPage+"/fleet.js", "")
	if strings.Contains(js, "innerHTML") || !strings.Contains(js, `"/api/v1/fleet"`) {
		t.Error("fleet.js must read /api/v1/fleet and set text with textContent only")
	}
}
