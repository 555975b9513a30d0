package web

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

const testReadToken = "r3ad-only-T0ken-value"

// TestReadTokens: a read token (Options.ReadTokens) reads every GET route
// and writes nothing: each write answers 403, reaches no node, and is
// logged; a wrong token is still a 401.
func TestReadTokens(t *testing.T) {
	s, node, logs := newTestServer(t, Options{ReadTokens: []string{"another-read-token-1234", testReadToken}, MetricsAuth: true})
	read := map[string]string{"Authorization": "Bearer " + testReadToken, HeaderActor: "fleet"}

	for _, tc := range []struct{ method, path, body string }{
		{"POST", pathStart, `{"reason":"r"}`},
		{"POST", pathStop, `{"reason":"r"}`},
		{"POST", pathPeerStart, `{"reason":"r"}`},
		{"POST", pathPeerStop, `{"reason":"r"}`},
		{"POST", "/api/v1/replication/run", `{"reason":"r"}`},
		{"POST", "/api/v1/failover", `{"reason":"r"}`},
		{"DELETE", "/api/v1/failover", `{"reason":"r"}`},
		{"POST", "/api/v1/switchover", `{"reason":"r"}`},
	} {
		a := do(t, s, tc.method, tc.path, tc.body, read)
		if a.code != http.StatusForbidden {
			t.Errorf("%s %s with a read token: code = %d, want 403; body %s", tc.method, tc.path, a.code, a.body)
			continue
		}
		if msg := apiError(t, a); !strings.Contains(msg, "this token may only read") {
			t.Errorf("%s %s: message %q, want it to say the token may only read", tc.method, tc.path, msg)
		}
		if a.header.Get("WWW-Authenticate") != "" {
			t.Errorf("%s %s: a 403 with WWW-Authenticate: the token is right, only not for this", tc.method, tc.path)
		}
	}
	if calls := node.Calls(); len(calls) != 0 {
		t.Errorf("writes with a read token reached the node: %+v", calls)
	}
	out := logs.String()
	if !strings.Contains(out, "write refused: the token may only read") || !strings.Contains(out, "route=/api/v1/switchover") || !strings.Contains(out, "who=api:fleet") {
		t.Errorf("the refusals are not logged with route and who:\n%s", out)
	}
	if strings.Contains(out, testReadToken) {
		t.Errorf("the log holds the read token:\n%s", out)
	}

	for _, tc := range []struct{ method, path string }{
		{"GET", pathStatus},
		{"HEAD", pathStatus},
		{"GET", pathAudit},
		{"GET", pathPeerStatus},
		{"GET", pathMetrics},
	} {
		if a := do(t, s, tc.method, tc.path, "", read); a.code != http.StatusOK {
			t.Errorf("%s %s with a read token: code = %d, want 200; body %s", tc.method, tc.path, a.code, a.body)
		}
	}

	// The event stream, on a real listener.
	base, _ := serve(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", base+pathEvents, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testReadToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("events with a read token: code %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	// Wrong tokens are still 401, for reads and writes; the full token
	// still writes.
	for _, tok := range []string{testReadToken + "x", "r3ad-only-T0ken-valu", ""} {
		for _, m := range []string{"GET", "POST"} {
			path := pathStatus
			if m == "POST" {
				path = pathStart
			}
			a := do(t, s, m, path, `{"reason":"r"}`, map[string]string{"Authorization": "Bearer " + tok})
			if a.code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: code = %d, want 401", m, path, tok, a.code)
			}
		}
	}
	if a := do(t, s, "POST", pathStart, `{"reason":"r"}`, nil); a.code != http.StatusOK {
		t.Errorf("the full token: start code = %d, want 200; body %s", a.code, a.body)
	}
}

// TestReadTokensOnly: a node with read tokens but no api.token reads with
// them and refuses every write.
func TestReadTokensOnly(t *testing.T) {
	node := newFakeNode()
	s := New(node, Options{ReadTokens: []string{testReadToken}})
	read := map[string]string{"Authorization": "Bearer " + testReadToken}
	if a := do(t, s, "GET", pathStatus, "", read); a.code != http.StatusOK {
		t.Errorf("status: code = %d, want 200", a.code)
	}
	if a := do(t, s, "POST", pathStart, `{"reason":"r"}`, read); a.code != http.StatusForbidden {
		t.Errorf("start: code = %d, want 403", a.code)
	}
}
