package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/pairaudit"
)

// A failover and a failback on both nodes' logs: the windows with no
// Active node are counted from the Main leaving Active to the Standby
// being Active, and back.
func TestPairWindows(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 4, 13, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tr := func(s int, from, to string) api.AuditEntry {
		return api.AuditEntry{Time: at(s), Who: "resman", Action: "x", Outcome: "ok", From: from, To: to}
	}
	rows := pairaudit.Merge(map[string][]api.AuditEntry{
		"xivo-main": {tr(0, "inactive", "activating"), tr(1, "activating", "active"), tr(40, "active", "deactivating"),
			tr(41, "deactivating", "inactive"), tr(60, "inactive", "activating"), tr(62, "activating", "active")},
		"xivo-standby": {tr(5, "", "inactive"), tr(43, "inactive", "activating"), tr(44, "activating", "active"),
			tr(59, "active", "deactivating"), tr(60, "deactivating", "inactive")},
	})
	w := pairaudit.ComputeWindows(rows, []string{"xivo-main", "xivo-standby"}, at(100))
	if !w.From.Equal(at(5)) || w.None != 7*time.Second || w.Two != 0 {
		t.Fatalf("from %v, none %v, two %v; want from +5s, no Active node for 4s (40 to 44) and 3s (59 to 62), none two", w.From, w.None, w.Two)
	}
	if !w.LastNone.Equal(at(59)) || w.LastNoneD != 3*time.Second {
		t.Errorf("last window without an Active node at %v for %v, want +59s for 3s", w.LastNone, w.LastNoneD)
	}
	// Two Active nodes: the Standby takes over while the Main still is.
	rows = pairaudit.Merge(map[string][]api.AuditEntry{
		"xivo-main":    {tr(0, "activating", "active"), tr(12, "active", "deactivating")},
		"xivo-standby": {tr(1, "", "inactive"), tr(9, "inactive", "activating"), tr(10, "activating", "active")},
	})
	if w := pairaudit.ComputeWindows(rows, []string{"xivo-main", "xivo-standby"}, at(20)); w.Two != 2*time.Second || !w.LastTwo.Equal(at(10)) {
		t.Errorf("two Active nodes: %v from %v, want 2s from +10s", w.Two, w.LastTwo)
	}
}

// resman audit --pair reads both nodes (the peer at the address the node
// knows it by), merges them on one axis, folds routine entries and says
// how long the pair had no Active node.
func TestAuditPairCommand(t *testing.T) {
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	serve := func(st api.Status, entries []api.AuditEntry) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if strings.HasSuffix(r.URL.Path, "/audit") {
				json.NewEncoder(w).Encode(entries)
				return
			}
			json.NewEncoder(w).Encode(st)
		}))
	}
	e := func(s int, who, action, outcome, from, to, cause string) api.AuditEntry {
		return api.AuditEntry{Time: t0.Add(time.Duration(s) * time.Second), Who: who, Action: action, Outcome: outcome, From: from, To: to, Cause: cause}
	}
	standby := serve(api.Status{Node: "xivo-standby"}, []api.AuditEntry{
		e(0, "resman", "boot", "ok", "", "inactive", "first start"),
		e(42, "resman", "failover", "ok", "inactive", "activating", "xivo-main lost for 100ms"),
		e(43, "resman", "activated", "ok", "activating", "active", "services started"),
	})
	defer standby.Close()
	main := serve(api.Status{Node: "xivo-main", Peer: &api.Peer{Name: "xivo-standby", URL: standby.URL}}, []api.AuditEntry{
		e(1, "resman", "boot", "ok", "", "active", "first start"),
		e(20, "resman", "replication", "ok", "active", "active", "schedule job asterisk-conf took 5ms"),
		e(40, "resman", "step down", "ok", "active", "deactivating", "critical services unhealthy (asterisk)"),
		e(41, "resman", "deactivated", "ok", "deactivating", "inactive", "services stopped"),
	})
	defer main.Close()
	out, stderr, code := cli(t, "audit", "--pair", "--node", main.URL, "--token", "token-0123456789abcdef")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(out, "\n")
	if !strings.Contains(lines[1], "xivo-standby") || !strings.Contains(lines[1], "activating->active") ||
		!strings.Contains(lines[3], "xivo-main") || !strings.Contains(lines[3], "deactivating->inactive") {
		t.Errorf("not one time axis, newest first:\n%s", out)
	}
	for _, want := range []string{"(1 routine replication entries folded: --routine shows them)",
		"no Active node for 3s", "two Active nodes for 0s"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "schedule job") {
		t.Errorf("a routine entry was not folded:\n%s", out)
	}
	out, _, _ = cli(t, "audit", "--pair", "--only", "auto", "--node", main.URL, "--token", "token-0123456789abcdef")
	if strings.Contains(out, " boot ") == false || strings.Contains(out, "schedule job") {
		t.Errorf("--only auto:\n%s", out)
	}
	if _, stderr, code := cli(t, "audit", "--only", "sometimes", "--node", main.URL, "--token", "token-0123456789abcdef"); code != exitUsage ||
		!strings.Contains(stderr, "--only must be all, admin, auto or failures") {
		t.Errorf("a bad --only: exit %d %s", code, stderr)
	}
}
