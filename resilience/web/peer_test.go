package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
)

func TestPeerRoutes(t *testing.T) {
	s, node, _ := newTestServer(t, Options{})
	a := do(t, s, "GET", pathPeerStatus, "", nil)
	var st api.Status
	if a.code != 200 || json.Unmarshal(a.body, &st) != nil || st.Node != "xivo-standby" || st.Status != api.StatusInactive {
		t.Fatalf("peer status: %d %s", a.code, a.body)
	}
	if a.header.Get("Cache-Control") != "no-store" {
		t.Errorf("peer status Cache-Control = %q", a.header.Get("Cache-Control"))
	}
	a = do(t, s, "POST", pathPeerStart, `{"reason":"failover","force":true}`, map[string]string{HeaderActor: "alice@host"})
	if a.code != 200 || json.Unmarshal(a.body, &st) != nil || st.Status != api.StatusActive {
		t.Fatalf("peer start: %d %s", a.code, a.body)
	}
	a = do(t, s, "POST", pathPeerStop, `{"reason":"failback"}`, nil)
	if a.code != 200 || json.Unmarshal(a.body, &st) != nil || st.Status != api.StatusInactive {
		t.Fatalf("peer stop: %d %s", a.code, a.body)
	}
	want := []call{
		{Method: "peer-status"},
		{Method: "peer-start", Who: "api:alice@host", Start: api.StartRequest{Reason: "failover", Force: true}},
		{Method: "peer-stop", Who: "api", Stop: api.StopRequest{Reason: "failback"}},
	}
	if got := node.Calls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls = %+v\nwant %+v", got, want)
	}

	// The same rules as the node's own routes: token, body, reason, method.
	for _, tc := range []struct {
		method, path, body string
		hdr                map[string]string
		code               int
	}{
		{"GET", pathPeerStatus, "", map[string]string{"Authorization": ""}, 401},
		{"POST", pathPeerStart, `{"reason":"x"}`, map[string]string{"Authorization": "Bearer nope"}, 401},
		{"POST", pathPeerStop, `{"force":true}`, nil, 400},
		{"POST", pathPeerStart, `{}`, nil, 400},
		{"POST", pathPeerStart, `{"reason":"x","now":1}`, nil, 400},
		{"POST", pathPeerStop, `{"reason":"x"}`, map[string]string{"Content-Type": "text/plain"}, 415},
		{"GET", pathPeerStart, "", nil, 405},
		{"POST", pathPeerStatus, `{"reason":"x"}`, nil, 405},
	} {
		s, node, _ := newTestServer(t, Options{})
		a := do(t, s, tc.method, tc.path, tc.body, tc.hdr)
		if a.code != tc.code {
			t.Errorf("%s %s %s: %d, want %d", tc.method, tc.path, tc.body, a.code, tc.code)
		}
		apiError(t, a)
		if calls := node.Calls(); len(calls) != 0 {
			t.Errorf("%s %s %s: the node saw %+v", tc.method, tc.path, tc.body, calls)
		}
	}
}

func TestPeerErrors(t *testing.T) {
	unreachable := fmt.Errorf("%w: GET /api/v1/status: dial tcp 127.0.0.2:9440: connect: connection refused", client.ErrUnreachable)
	tests := []struct {
		name string
		err  error
		code int
		msg  string
	}{
		{"peer refuses", &client.Error{StatusCode: 409, Message: "the peer xivo-main is Active (epoch 3): conflict"}, 409, "the peer xivo-main is Active (epoch 3): conflict"},
		{"peer busy", &client.Error{StatusCode: 409, Message: "starting services: transition in progress"}, 409, "starting services: transition in progress"},
		{"peer precondition", &client.Error{StatusCode: 412, Message: "auto mode: precondition failed"}, 412, "auto mode: precondition failed"},
		{"peer failed", &client.Error{StatusCode: 500, Message: "failed: start: asterisk did not start"}, 500, "failed: start: asterisk did not start"},
		{"peer refuses our token", &client.Error{StatusCode: 401, Message: "invalid bearer token"}, 502, "peer xivo-standby refused this node's API token: invalid bearer token"},
		{"unreachable", unreachable, 502, "peer xivo-standby unreachable: GET /api/v1/status: dial tcp 127.0.0.2:9440: connect: connection refused"},
		{"no peer", fmt.Errorf("%w: no peer configured", resilience.ErrPrecondition), 412, "precondition failed: no peer configured"},
		{"other", errors.New("secret detail"), 500, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, node, logs := newTestServer(t, Options{})
			node.peerErr, node.peerStartErr, node.peerStopErr = tt.err, tt.err, tt.err
			for _, r := range []struct{ method, path, body string }{
				{"GET", pathPeerStatus, ""},
				{"POST", pathPeerStart, `{"reason":"r"}`},
				{"POST", pathPeerStop, `{"reason":"r"}`},
			} {
				a := do(t, s, r.method, r.path, r.body, nil)
				if a.code != tt.code {
					t.Errorf("%s: code = %d, want %d", r.path, a.code, tt.code)
				}
				if msg := apiError(t, a); msg != tt.msg {
					t.Errorf("%s: error = %q, want %q", r.path, msg, tt.msg)
				}
				if a.code == 401 && a.header.Get("WWW-Authenticate") != "" {
					t.Errorf("%s: the peer's 401 challenges the caller", r.path)
				}
			}
			if tt.name == "other" && !strings.Contains(logs.String(), "secret detail") {
				t.Errorf("the detail of a 500 is not logged")
			}
		})
	}
}

// plainNode is a Node that is not a PeerNode.
type plainNode struct{ Node }

func TestPeerRoutesWithoutPeerNode(t *testing.T) {
	s := New(plainNode{newFakeNode()}, Options{Token: testToken})
	for _, r := range []struct{ method, path, body string }{
		{"GET", pathPeerStatus, ""},
		{"POST", pathPeerStart, `{"reason":"r"}`},
	} {
		a := do(t, s, r.method, r.path, r.body, nil)
		if a.code != 412 {
			t.Errorf("%s: %d, want 412", r.path, a.code)
		}
		apiError(t, a)
	}
}

func TestFailedCommandMessage(t *testing.T) {
	s, node, logs := newTestServer(t, Options{})
	node.startErr = fmt.Errorf("%w: start: service asterisk did not become healthy; rolled back", resilience.ErrFailed)
	a := do(t, s, "POST", pathStart, `{"reason":"r"}`, nil)
	if a.code != 500 {
		t.Fatalf("code = %d", a.code)
	}
	if msg := apiError(t, a); msg != "failed: start: service asterisk did not become healthy; rolled back" {
		t.Errorf("error = %q, want the node's message", msg)
	}
	if !strings.Contains(logs.String(), "node command failed") {
		t.Errorf("the failure is not logged:\n%s", logs)
	}
}
