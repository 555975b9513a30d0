package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
)

// pairEntries are a failover and a failback as each node's log holds them
// (newest first): the Main stopped by an admin, the Standby started, then
// back.
func pairEntries() (main, standby []api.AuditEntry) {
	t0 := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Second)
	e := func(id uint64, s int, who, action, from, to, cause string) api.AuditEntry {
		return api.AuditEntry{ID: id, Time: t0.Add(time.Duration(s) * time.Second), Who: who, Action: action,
			Outcome: api.OutcomeOK, From: from, To: to, Cause: cause}
	}
	main = []api.AuditEntry{
		e(4, 62, "resman", "activated", "activating", "active", "services started"),
		e(3, 60, "api:bob", "start", "inactive", "activating", "admin command"),
		e(2, 40, "web:alice", "stop", "active", "inactive", "admin command"),
		e(1, 0, "resman", "boot", "", "active", "first start"),
	}
	main[2].Reason = `<img src=x onerror="alert(1)">`
	standby = []api.AuditEntry{
		e(3, 59, "api:bob", "stop", "active", "inactive", "failback"),
		e(2, 44, "api:bob", "start", "inactive", "active", "failover"),
		e(1, 5, "resman", "boot", "", "inactive", "first start"),
	}
	return main, standby
}

func decodePair(t *testing.T, a answer) api.PairAudit {
	t.Helper()
	if a.code != http.StatusOK {
		t.Fatalf("code %d: %s", a.code, a.body)
	}
	var pa api.PairAudit
	if err := json.Unmarshal(a.body, &pa); err != nil {
		t.Fatalf("%v: %s", err, a.body)
	}
	return pa
}

// GET /api/v1/audit/pair: both logs on one axis, with the windows; the
// limit reaches both nodes.
func TestPairAudit(t *testing.T) {
	s, node, _ := newTestServer(t, Options{})
	node.entries, node.peerEntries = pairEntries()
	pa := decodePair(t, do(t, s, "GET", pathPairAudit+"?limit=50", "", nil))
	if pa.Node != "xivo-main" || pa.Peer != "xivo-standby" || pa.PeerError != "" || pa.Limit != 50 || len(pa.Entries) != 7 {
		t.Fatalf("answer %+v", pa)
	}
	var order []string
	for _, e := range pa.Entries {
		order = append(order, fmt.Sprintf("%s/%d", e.Node, e.ID))
	}
	if got := strings.Join(order, " "); got != "xivo-main/4 xivo-main/3 xivo-standby/3 xivo-standby/2 xivo-main/2 xivo-standby/1 xivo-main/1" {
		t.Errorf("order %s", got)
	}
	if len(pa.Windows) != 2 || pa.Summary.NoActiveSeconds != 7 || pa.Summary.LastNoActive == nil {
		t.Errorf("windows %+v summary %+v", pa.Windows, pa.Summary)
	}
	limits := map[string]int{}
	for _, c := range node.Calls() {
		limits[c.Method] = c.Limit
	}
	if limits["audit"] != 50 || limits["peer-audit"] != 50 {
		t.Errorf("limits passed: %v", limits)
	}
	// The default and the bounds.
	decodePair(t, do(t, s, "GET", pathPairAudit, "", nil))
	if c := node.Calls(); c[len(c)-1].Limit != DefaultPairAuditLimit {
		t.Errorf("default limit %d", c[len(c)-1].Limit)
	}
	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=x"} {
		if a := do(t, s, "GET", pathPairAudit+q, "", nil); a.code != 400 || !strings.Contains(apiError(t, a), "limit must be an integer from 1 to 1000") {
			t.Errorf("%s: %d %s", q, a.code, a.body)
		}
	}
	// Read only: a write is 405; no token is 401.
	if a := do(t, s, "POST", pathPairAudit, `{}`, nil); a.code != 405 {
		t.Errorf("POST: %d", a.code)
	}
	if a := do(t, s, "GET", pathPairAudit, "", map[string]string{"Authorization": ""}); a.code != 401 {
		t.Errorf("without a token: %d", a.code)
	}
}

// The peer cannot be read: this node's entries, and why; never a failed
// answer. This node's own log failing is an error.
func TestPairAuditPeerUnreachable(t *testing.T) {
	s, node, logs := newTestServer(t, Options{})
	node.entries, _ = pairEntries()
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: dial tcp 127.0.0.2:8443: connection refused", client.ErrUnreachable), "xivo-standby unreachable: dial tcp 127.0.0.2:8443: connection refused"},
		{&client.Error{StatusCode: 401, Message: "unauthorized"}, "xivo-standby refused this node's API token: unauthorized"},
		{&client.Error{StatusCode: 500, Message: "disk full"}, "xivo-standby answered 500: disk full"},
	} {
		node.peerAuditErr = c.err
		pa := decodePair(t, do(t, s, "GET", pathPairAudit, "", nil))
		if pa.PeerError != c.want || len(pa.Entries) != 4 || len(pa.Windows) != 0 || len(pa.Periods) != 4 {
			t.Errorf("peer error %q (want %q), %d entries, windows %v, periods %v", pa.PeerError, c.want, len(pa.Entries), pa.Windows, pa.Periods)
		}
	}
	if !strings.Contains(logs.String(), "pair timeline without the peer's entries") {
		t.Errorf("not logged:\n%s", logs)
	}
	node.auditErr = fmt.Errorf("%w: the audit log is unreadable", resilience.ErrFailed)
	if a := do(t, s, "GET", pathPairAudit, "", nil); a.code != 500 {
		t.Errorf("this node's log failing: %d %s", a.code, a.body)
	}
}

// A node that cannot reach its peer's log, or has no peer, answers its
// own entries.
func TestPairAuditWithoutPeerAuditNode(t *testing.T) {
	f := newFakeNode()
	f.entries, _ = pairEntries()
	s := New(plainNode{f}, Options{Token: testToken})
	pa := decodePair(t, do(t, s, "GET", pathPairAudit, "", nil))
	if pa.PeerError != "this node cannot read its peer's audit log" || len(pa.Entries) != 4 {
		t.Errorf("%+v", pa)
	}
	f.setStatus(func(st *api.Status) { st.Peer = nil })
	pa = decodePair(t, do(t, s, "GET", pathPairAudit, "", nil))
	if pa.PeerError != "this node has no peer" || pa.Peer != "" {
		t.Errorf("%+v", pa)
	}
}

// A read token and a viewer's session read it.
func TestPairAuditReaders(t *testing.T) {
	s, node, _ := newTestServer(t, Options{ReadTokens: []string{testReadToken}})
	node.entries, node.peerEntries = pairEntries()
	decodePair(t, do(t, s, "GET", pathPairAudit, "", map[string]string{"Authorization": "Bearer " + testReadToken}))

	v, vnode, _, _ := newViewerServer(t)
	vnode.entries, vnode.peerEntries = pairEntries()
	c, _, _ := loginAs(t, v, testViewer)
	if pa := decodePair(t, send(t, v, "GET", pathPairAudit, "", "", c, nil)); len(pa.Entries) != 7 {
		t.Errorf("viewer: %d entries", len(pa.Entries))
	}
}
