package pairaudit

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
)

var t0 = time.Date(2026, 12, 7, 4, 13, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func tr(id uint64, s int, who, action, from, to, cause string) api.AuditEntry {
	return api.AuditEntry{ID: id, Time: at(s), Who: who, Action: action, Outcome: api.OutcomeOK, From: from, To: to, Cause: cause}
}

// A failover and a failback: the Main stops (an admin), the Standby takes
// over, then hands back. Both logs on one axis, the periods of each node
// and the two windows without an Active node.
func failoverFailback() (main, standby []api.AuditEntry) {
	main = []api.AuditEntry{
		tr(1, 0, "resman", "boot", "", "activating", "first start"),
		tr(2, 1, "resman", "activated", "activating", "active", "services started"),
		tr(3, 20, "resman", "replication", "active", "active", "schedule job db took 5ms"),
		tr(4, 40, "web:alice", "stop", "active", "deactivating", "admin command"),
		tr(5, 41, "resman", "deactivated", "deactivating", "inactive", "services stopped"),
		tr(6, 60, "api:bob@host", "start", "inactive", "activating", "admin command"),
		tr(7, 62, "resman", "activated", "activating", "active", "services started"),
	}
	main[3].Reason = "failover: <b>maintenance</b>"
	standby = []api.AuditEntry{
		tr(1, 5, "resman", "boot", "", "inactive", "first start"),
		tr(2, 43, "api:bob@host", "start", "inactive", "activating", "admin command"),
		tr(3, 44, "resman", "activated", "activating", "active", "services started"),
		tr(4, 59, "api:bob@host", "stop", "active", "deactivating", "failback"),
		tr(5, 60, "resman", "deactivated", "deactivating", "inactive", "services stopped"),
	}
	// The logs come newest first, as GET /api/v1/audit answers them.
	rev := func(es []api.AuditEntry) []api.AuditEntry {
		out := make([]api.AuditEntry, len(es))
		for i, e := range es {
			out[len(es)-1-i] = e
		}
		return out
	}
	return rev(main), rev(standby)
}

func TestFailoverAndFailback(t *testing.T) {
	m, s := failoverFailback()
	pa := Build("xivo-main", "xivo-standby", m, s, "", 200, at(100))
	if len(pa.Entries) != 12 {
		t.Fatalf("%d entries, want 12", len(pa.Entries))
	}
	// One axis, newest first; at +60s the Main's start and the Standby's
	// deactivated: by node name.
	var got []string
	for _, e := range pa.Entries {
		got = append(got, e.Node[5:]+":"+e.Action)
	}
	want := "main:activated main:start standby:deactivated standby:stop standby:activated standby:start main:deactivated main:stop main:replication standby:boot main:activated main:boot"
	if strings.Join(got, " ") != want {
		t.Errorf("order:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	// The periods of each node, oldest first.
	var periods []string
	for _, p := range pa.Periods {
		periods = append(periods, p.Node[5:]+":"+p.Status+"@"+p.Start.Sub(t0).String()+"-"+p.End.Sub(t0).String())
	}
	wantP := "main:activating@0s-1s main:active@1s-40s standby:inactive@5s-43s main:deactivating@40s-41s main:inactive@41s-1m0s " +
		"standby:activating@43s-44s standby:active@44s-59s standby:deactivating@59s-1m0s standby:inactive@1m0s-1m40s " +
		"main:activating@1m0s-1m2s main:active@1m2s-1m40s"
	if strings.Join(periods, " ") != wantP {
		t.Errorf("periods:\n got %s\nwant %s", strings.Join(periods, " "), wantP)
	}
	// No Active node from 40s to 44s and from 59s to 62s; never two.
	if len(pa.Windows) != 2 || pa.Windows[0].Kind != api.WindowNoActive || !pa.Windows[0].Start.Equal(at(40)) ||
		!pa.Windows[0].End.Equal(at(44)) || !pa.Windows[1].Start.Equal(at(59)) || !pa.Windows[1].End.Equal(at(62)) {
		t.Errorf("windows %+v, want no Active node 40-44s and 59-62s", pa.Windows)
	}
	sum := pa.Summary
	if !sum.From.Equal(at(5)) || sum.NoActiveSeconds != 7 || sum.TwoActiveSeconds != 0 || sum.LastTwoActive != nil ||
		sum.LastNoActive == nil || !sum.LastNoActive.Start.Equal(at(59)) || !sum.LastNoActive.End.Equal(at(62)) {
		t.Errorf("summary %+v", sum)
	}
	// The wire form: entries flat, with their node; the reason as it was.
	b, err := json.Marshal(pa)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"node":"xivo-main","id":4,`, `"reason":"failover: \u003cb\u003emaintenance\u003c/b\u003e"`,
		`"kind":"no_active","start":"2026-12-07T04:13:40Z","end":"2026-12-07T04:13:44Z"`, `"no_active_seconds":7`} {
		if !strings.Contains(string(b), w) {
			t.Errorf("JSON lacks %s:\n%s", w, b)
		}
	}
}

// A split brain: the Standby takes over while the Main is still Active,
// for two seconds, then the Main steps down.
func TestSplitBrainWindow(t *testing.T) {
	m := []api.AuditEntry{
		tr(2, 12, "resman", "step down", "active", "deactivating", "two Active nodes: the older claim steps down"),
		tr(1, 0, "resman", "boot", "activating", "active", "first start"),
	}
	s := []api.AuditEntry{
		tr(3, 10, "resman", "failover", "activating", "active", "xivo-main lost for 3s"),
		tr(2, 9, "resman", "failover", "inactive", "activating", "xivo-main lost for 3s"),
		tr(1, 1, "resman", "boot", "", "inactive", "first start"),
	}
	pa := Build("xivo-main", "xivo-standby", m, s, "", 200, at(20))
	// From 12s the Main is deactivating and the Standby alone Active.
	if len(pa.Windows) != 1 || pa.Windows[0].Kind != api.WindowTwoActive || !pa.Windows[0].Start.Equal(at(10)) ||
		!pa.Windows[0].End.Equal(at(12)) {
		t.Fatalf("windows %+v, want two Active nodes from 10s to 12s only", pa.Windows)
	}
	if pa.Summary.TwoActiveSeconds != 2 || pa.Summary.LastTwoActive == nil || !pa.Summary.LastTwoActive.Start.Equal(at(10)) {
		t.Errorf("summary %+v", pa.Summary)
	}
}

// The peer could not be read: this node's entries and periods, the
// reason, and no windows (one log cannot tell them).
func TestPeerUnreachable(t *testing.T) {
	m, _ := failoverFailback()
	pa := Build("xivo-main", "xivo-standby", m, nil, "xivo-standby unreachable: connection refused", 200, at(100))
	if len(pa.Entries) != 7 || pa.PeerError == "" || len(pa.Windows) != 0 || !pa.Summary.From.IsZero() {
		t.Fatalf("entries %d, peer error %q, windows %v, from %v", len(pa.Entries), pa.PeerError, pa.Windows, pa.Summary.From)
	}
	for _, e := range pa.Entries {
		if e.Node != "xivo-main" {
			t.Errorf("an entry of %s", e.Node)
		}
	}
	for _, p := range pa.Periods {
		if p.Node != "xivo-main" {
			t.Errorf("a period of %s", p.Node)
		}
	}
	b, _ := json.Marshal(pa)
	if !strings.Contains(string(b), `"windows":[]`) || !strings.Contains(string(b), `"summary":{"to":`) {
		t.Errorf("JSON: %s", b)
	}
	// Nothing at all: empty lists, not null.
	b, _ = json.Marshal(Build("xivo-main", "", nil, nil, "this node has no peer", 200, at(0)))
	if !strings.Contains(string(b), `"entries":[]`) || !strings.Contains(string(b), `"periods":[]`) {
		t.Errorf("empty: %s", b)
	}
}

func TestFilter(t *testing.T) {
	m, s := failoverFailback()
	rows := Merge(map[string][]api.AuditEntry{"xivo-main": m, "xivo-standby": s})
	count := func(f Filter) int {
		n := 0
		for _, r := range rows {
			if f.Keep(r.AuditEntry) {
				n++
			}
		}
		return n
	}
	refused := api.AuditEntry{Who: "api", Action: "start", Outcome: api.OutcomeRefused}
	for _, c := range []struct {
		f    Filter
		want int
	}{{Filter{}, 11}, {Filter{Routine: true}, 12}, {Filter{Only: OnlyAdmin}, 4}, {Filter{Only: OnlyAuto}, 7}, {Filter{Only: OnlyFailures}, 0}} {
		if got := count(c.f); got != c.want {
			t.Errorf("%+v keeps %d, want %d", c.f, got, c.want)
		}
	}
	if !(Filter{Only: OnlyAdmin}).Keep(refused) || !(Filter{Only: OnlyFailures}).Keep(refused) || (Filter{Only: OnlyAuto}).Keep(refused) {
		t.Error("a refused start by the token")
	}
	if !ValidOnly("") || !ValidOnly("failures") || ValidOnly("sometimes") {
		t.Error("ValidOnly")
	}
}

// An entry recorded in a status it did not change (a boot that found the
// Standby Inactive, a registration) tells that status: the windows count
// from it, not from the node's first transition.
func TestStatusWithoutTransition(t *testing.T) {
	m := []api.AuditEntry{
		tr(2, 40, "api", "stop", "active", "inactive", "admin command"),
		tr(1, 0, "resman", "boot", "inactive", "active", "first start"),
	}
	s := []api.AuditEntry{
		tr(3, 44, "api", "start", "inactive", "active", "admin command"),
		tr(2, 20, "resman", "sip register", "inactive", "inactive", "registered"),
		tr(1, 5, "resman", "boot", "inactive", "inactive", "first start"),
	}
	pa := Build("xivo-main", "xivo-standby", m, s, "", 200, at(50))
	if !pa.Summary.From.Equal(at(5)) || pa.Summary.NoActiveSeconds != 4 || len(pa.Windows) != 1 {
		t.Errorf("summary %+v windows %+v", pa.Summary, pa.Windows)
	}
	var sp []string
	for _, p := range pa.Periods {
		if p.Node == "xivo-standby" {
			sp = append(sp, p.Status+"@"+p.Start.Sub(t0).String())
		}
	}
	if strings.Join(sp, " ") != "inactive@5s active@44s" {
		t.Errorf("the standby's periods: %v", sp)
	}
}
