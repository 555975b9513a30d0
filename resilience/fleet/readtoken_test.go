package fleet_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/fleet"
	"github.com/resman-pbx/resman/resilience/web"
)

// readOnlyNode is a web.Node that only reads: a command reaching it
// fails the test.
type readOnlyNode struct {
	t  *testing.T
	st api.Status
}

func (n *readOnlyNode) Status() api.Status { return n.st }
func (n *readOnlyNode) Active() api.Active {
	return api.Active{Status: n.st.Status, Epoch: n.st.Epoch}
}
func (n *readOnlyNode) StartServices(context.Context, string, api.StartRequest) (api.Status, error) {
	n.t.Error("the fleet started services")
	return n.st, errors.New("no")
}
func (n *readOnlyNode) StopServices(context.Context, string, api.StopRequest) (api.Status, error) {
	n.t.Error("the fleet stopped services")
	return n.st, errors.New("no")
}
func (n *readOnlyNode) Audit(context.Context, int, uint64) ([]api.AuditEntry, error) {
	return []api.AuditEntry{}, nil
}
func (n *readOnlyNode) Subscribe() (<-chan api.Event, func()) {
	ch := make(chan api.Event)
	return ch, func() {}
}

// serveNode serves a real node API (package web) over n, with its tokens.
func serveNode(t *testing.T, n web.Node, token string, readTokens []string) string {
	t.Helper()
	srv := web.New(n, web.Options{Token: token, ReadTokens: readTokens})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}

// The fleet reads a pair with one of its nodes' api.read_tokens, which
// may not write: the aggregator only reads. A token the nodes do not know
// at all is still refused (the control: the read token is what works).
func TestFleetWithAReadToken(t *testing.T) {
	t.Parallel()
	const full, read = "pair-full-token-0123456789abcdef", "pair-read-token-0123456789abcdef"
	now := time.Now().UTC()
	status := func(name, role, st string) api.Status {
		return api.Status{Node: name, Role: role, Mode: "manual", Status: st, Epoch: 1, Version: "2025.10.3",
			Healthy: true, HA: api.HA{Ready: true, Reasons: []string{}}, Since: now}
	}
	main := serveNode(t, &readOnlyNode{t: t, st: status("xivo-main", "main", api.StatusActive)}, full, []string{read})
	standby := serveNode(t, &readOnlyNode{t: t, st: status("xivo-standby", "standby", api.StatusInactive)}, full, []string{"another-read-token-0123456789", read})

	// The read token cannot act on the pair: the token is safe to hand out.
	req, _ := http.NewRequest(http.MethodPost, main+"/api/v1/services/stop", strings.NewReader(`{"reason":"r"}`))
	req.Header.Set("Authorization", "Bearer "+read)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a write with the read token: %d, want 403", resp.StatusCode)
	}

	_, url, _ := fleet.StartAggregatorOf(t, fleet.Config{Interval: 100 * time.Millisecond, Pairs: []fleet.PairConfig{
		{Name: "paris-1", Nodes: []string{main, standby}, Token: read},
		{Name: "paris-2", Nodes: []string{main, standby}, Token: "unknown-token-0123456789abcdef"},
	}}, fleet.Options{})
	ps := fleet.WaitAllPolled(t, &http.Client{}, url, 5*time.Second)
	byName := map[string]fleet.Pair{}
	for _, p := range ps {
		byName[p.Name] = p
	}
	if len(byName) != 2 {
		t.Fatalf("%d pairs: %+v", len(ps), ps)
	}
	if p := byName["paris-1"]; !p.Ready || p.Severity != "ok" || len(p.Active) != 1 || p.Active[0] != "xivo-main" {
		t.Errorf("paris-1, read with a read token: %+v", p)
	}
	p := byName["paris-2"]
	if p.Ready || !slices.Contains(p.Classes, fleet.ClassUnreachable) || len(p.Nodes) != 2 || !strings.Contains(p.Nodes[0].Error, "401") {
		t.Errorf("paris-2, with a token the nodes do not know: want unreachable (401), got %+v", p)
	}
}
