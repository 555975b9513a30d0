package fleet

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
)

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func node(name, status string, epoch uint64, mod ...func(*api.Status)) read {
	st := api.Status{Node: name, Role: "main", Mode: "auto", Status: status, Epoch: epoch, Version: "2025.10.3",
		Healthy: true, HA: api.HA{Ready: true}}
	for _, m := range mod {
		m(&st)
	}
	return read{url: "http://" + name + ":9440", polled: true, st: st, checkedAt: t0}
}

func down(name string, err error) read {
	return read{url: "http://" + name + ":9440", polled: true, err: err, checkedAt: t0}
}

func TestDerivePair(t *testing.T) {
	t.Parallel()
	unreachable := fmt.Errorf("%w: GET /api/v1/status: dial tcp: connection refused", client.ErrUnreachable)
	until := t0.Add(30 * time.Minute)
	for _, tt := range []struct {
		name     string
		reads    []read
		severity string
		ready    bool
		classes  []string
		reasons  []string // substrings, in order
	}{
		{"healthy", []read{node("a", "active", 3), node("b", "inactive", 3)},
			SeverityOK, true, []string{}, nil},
		{"not polled yet", []read{{url: "http://a"}, {url: "http://b"}},
			SeverityWarning, false, []string{ClassNotPolled}, []string{"not read yet"}},
		{"split brain", []read{node("a", "active", 3), node("b", "active", 4)},
			SeverityCritical, false, []string{ClassSplitBrain}, []string{"two Active nodes: a and b"}},
		{"no active", []read{node("a", "inactive", 3), node("b", "inactive", 3)},
			SeverityCritical, false, []string{ClassNoActive}, []string{"no Active node"}},
		{"activating is not no-active", []read{node("a", "activating", 3), node("b", "inactive", 3)},
			SeverityInfo, true, []string{ClassTransition}, []string{"a is activating"}},
		{"one unreachable", []read{node("a", "active", 3), down("b", unreachable)},
			SeverityWarning, false, []string{ClassUnreachable}, []string{"http://b:9440 unreachable: node unreachable"}},
		{"one unreachable, the other inactive", []read{node("a", "inactive", 3), down("b", unreachable)},
			SeverityCritical, false, []string{ClassNoActive, ClassUnreachable},
			[]string{"no Active node among those that answer", "http://b:9440 unreachable"}},
		{"both unreachable", []read{down("a", unreachable), down("b", unreachable)},
			SeverityCritical, false, []string{ClassUnreachable}, []string{"http://a:9440 unreachable", "http://b:9440 unreachable"}},
		{"token refused", []read{node("a", "active", 3), down("b", &client.Error{StatusCode: 401, Message: "a valid bearer token is required"})},
			SeverityWarning, false, []string{ClassUnreachable}, []string{"refused the fleet's token for this pair (401)"}},
		{"ha not ready", []read{
			node("a", "active", 3, func(s *api.Status) { s.HA = api.HA{Reasons: []string{"peer unhealthy", "replication stale"}} }),
			node("b", "inactive", 3)},
			SeverityWarning, false, []string{ClassHANotReady}, []string{"a: peer unhealthy", "a: replication stale"}},
		{"manual failover", []read{
			node("a", "inactive", 4, func(s *api.Status) { s.Failover = api.Failover{Manual: true, Until: &until, Holding: true} }),
			node("b", "active", 4)},
			SeverityInfo, true, []string{ClassManualFailover}, []string{"manual HA failover on a until 2026-12-07T10:30:00Z"}},
		{"version mismatch", []read{node("a", "active", 3), node("b", "inactive", 3, func(s *api.Status) { s.Version = "2025.11.0" })},
			SeverityInfo, true, []string{ClassVersionMismatch}, []string{`versions differ: a runs "2025.10.3", b runs "2025.11.0"`}},
		{"replication stale", []read{
			node("a", "active", 3, func(s *api.Status) {
				s.Replication = []api.Replication{{Name: "db", LastSuccess: t0.Add(-time.Hour), Stale: true}}
			}),
			node("b", "inactive", 3)},
			SeverityWarning, false, []string{ClassReplicationStale}, []string{"replication job db is stale on a"}},
		{"worst first", []read{
			node("a", "active", 3, func(s *api.Status) { s.Version = "x"; s.HA = api.HA{Reasons: []string{"r"}} }),
			node("b", "active", 3)},
			SeverityCritical, false, []string{ClassSplitBrain, ClassHANotReady, ClassVersionMismatch},
			[]string{"two Active", "a: r", "versions differ"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := derivePair("x", tt.reads)
			if p.Severity != tt.severity || p.Ready != tt.ready || !slices.Equal(p.Classes, tt.classes) {
				t.Errorf("severity %s ready %v classes %v, want %s %v %v (reasons %q)",
					p.Severity, p.Ready, p.Classes, tt.severity, tt.ready, tt.classes, p.Reasons)
			}
			if len(p.Reasons) != len(tt.reasons) {
				t.Fatalf("reasons %q, want %d like %q", p.Reasons, len(tt.reasons), tt.reasons)
			}
			for i, want := range tt.reasons {
				if !strings.Contains(p.Reasons[i], want) {
					t.Errorf("reason %d %q, want it to contain %q", i, p.Reasons[i], want)
				}
			}
			if len(p.Nodes) != len(tt.reads) {
				t.Errorf("%d nodes, want %d", len(p.Nodes), len(tt.reads))
			}
		})
	}
}

func TestDeriveDetails(t *testing.T) {
	t.Parallel()
	moved := t0.Add(-time.Minute)
	a := node("a", "inactive", 5, func(s *api.Status) {
		s.LastChange = &api.Transition{From: "active", To: "inactive", Cause: "unhealthy", At: moved.Add(-time.Second)}
		s.Replication = []api.Replication{{Name: "db", LastSuccess: t0.Add(-10 * time.Minute)}, {Name: "files", LastSuccess: t0.Add(-3 * time.Minute)}}
	})
	b := node("b", "active", 5, func(s *api.Status) {
		s.Version = "2025.10.4"
		s.LastChange = &api.Transition{From: "inactive", To: "active", Cause: "peer lost", At: moved}
		s.Replication = []api.Replication{{Name: "db", LastSuccess: t0.Add(-5 * time.Minute)}}
	})
	p := derivePair("x", []read{a, b}).withAge(t0)
	if p.LastChange == nil || p.LastChange.Node != "b" || p.LastChange.Cause != "peer lost" || !p.LastChange.At.Equal(moved) {
		t.Errorf("last change %+v", p.LastChange)
	}
	if p.LastFailover == nil || !p.LastFailover.Equal(moved) {
		t.Errorf("last failover %v, want %v", p.LastFailover, moved)
	}
	// db's newest success is b's (5 min), files' is a's (3 min): the
	// oldest of them is 5 min.
	if p.ReplicationAgeSeconds == nil || *p.ReplicationAgeSeconds != 300 {
		t.Errorf("replication age %v, want 300", p.ReplicationAgeSeconds)
	}
	if !p.VersionMismatch || p.Epoch != 5 || !slices.Equal(p.Active, []string{"b"}) {
		t.Errorf("mismatch %v epoch %d active %v", p.VersionMismatch, p.Epoch, p.Active)
	}
	if p.Nodes[1].Name != "b" || p.Nodes[1].Version != "2025.10.4" || !p.Nodes[1].Reachable || !p.Nodes[1].CheckedAt.Equal(t0) {
		t.Errorf("node b %+v", p.Nodes[1])
	}

	// A job that never succeeded: the age is unknown (+Inf in metrics).
	c := node("c", "active", 1, func(s *api.Status) {
		s.Replication = []api.Replication{{Name: "db", LastSuccess: t0}, {Name: "new"}}
	})
	p = derivePair("y", []read{c, node("d", "inactive", 1)}).withAge(t0)
	if p.ReplicationAgeSeconds != nil || !slices.Equal(p.ReplicationNever, []string{"new"}) {
		t.Errorf("age %v never %v", p.ReplicationAgeSeconds, p.ReplicationNever)
	}
}

func TestSortPairs(t *testing.T) {
	t.Parallel()
	ps := []Pair{{Name: "b", Severity: SeverityOK}, {Name: "z", Severity: SeverityCritical}, {Name: "a", Severity: SeverityOK},
		{Name: "c", Severity: SeverityInfo}, {Name: "m", Severity: SeverityWarning}, {Name: "d", Severity: SeverityCritical}}
	SortPairs(ps)
	var got []string
	for _, p := range ps {
		got = append(got, p.Name)
	}
	if want := []string{"d", "z", "m", "c", "a", "b"}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}
