package resilience

import (
	"slices"
	"strings"
	"testing"
)

func TestReadiness(t *testing.T) {
	base := ReadinessInput{
		Self:          NodeFacts{Name: "xivo-main", Role: RoleMain, Version: "2025.10.1", Status: Active, Epoch: 4},
		Peer:          NodeFacts{Name: "xivo-standby", Role: RoleStandby, Version: "2025.10.3", Status: Inactive, Epoch: 3},
		PeerReachable: true,
	}
	tests := []struct {
		name  string
		edit  func(*ReadinessInput)
		ready bool
		want  []string
	}{
		{"ready: same major, one Active", func(*ReadinessInput) {}, true, nil},
		{"no peer", func(in *ReadinessInput) { in.Peer.Name = "" }, false, []string{"no peer configured"}},
		{"unreachable", func(in *ReadinessInput) { in.PeerReachable, in.PeerError = false, "dial tcp: refused" },
			false, []string{"xivo-standby is unreachable from xivo-main: dial tcp: refused"}},
		{"major differs", func(in *ReadinessInput) { in.Peer.Version = "2024.05.0" },
			false, []string{"xivo-main runs version 2025.10.1 and xivo-standby runs 2024.05.0: the majors differ (2025, 2024)"}},
		{"split brain names the stale side", func(in *ReadinessInput) { in.Peer.Status, in.Peer.Epoch = Active, 5 },
			false, []string{"split brain: xivo-main (epoch 4) and xivo-standby (epoch 5) both claim Active; xivo-main has the older claim"}},
		{"no node Active", func(in *ReadinessInput) { in.Self.Status = Inactive },
			false, []string{"no node is Active: the telephony runs on neither xivo-main nor xivo-standby"}},
		{"peer unhealthy", func(in *ReadinessInput) { in.Peer.Unhealthy = true },
			false, []string{"xivo-standby reports critical services unhealthy: it cannot take over"}},
		{"the Active side unhealthy is a failover, not a readiness matter", func(in *ReadinessInput) { in.Self.Unhealthy = true }, true, nil},
		{"manual failover seen from either node", func(in *ReadinessInput) {
			in.Self.Status, in.Self.FailoverUntil, in.Peer.Status = Inactive, "2026-12-06 22:00:00", Active
		}, false, []string{"not redundant: a manual failover holds xivo-main Inactive until 2026-12-06 22:00:00"}},
		{"the node that would take over is held by an admin", func(in *ReadinessInput) { in.Peer.HeldByAdmin = true },
			false, []string{"xivo-standby is held Inactive by an admin's stop: it will not take over until services are started there"}},
		{"the second path silent while gossip sees the peer", func(in *ReadinessInput) { in.SecondPathSilent = "10.0.0.2:9440" },
			false, []string{"xivo-main gets no answer from xivo-standby over the second path (10.0.0.2:9440) while gossip sees it"}},
		{"stale replication", func(in *ReadinessInput) { in.StaleJobs = []string{"db"} },
			false, []string{"replication job db has not succeeded within its max_age"}},
		{"unreadable peer: one clear reason", func(in *ReadinessInput) {
			in.PeerError, in.Peer.Version, in.Peer.Unhealthy = "401: unauthorized", "", true
		}, false, []string{"answers xivo-main but its status cannot be read (401: unauthorized): check that both nodes share api.token"}},
		{"not in gossip", func(in *ReadinessInput) { in.PeerNotInGossip = true },
			false, []string{"xivo-main does not see xivo-standby over gossip: check gossip.key"}},
		{"witness lost", func(in *ReadinessInput) { in.WitnessConfigured = true },
			false, []string{"does not see the witness"}},
		{"witness seen", func(in *ReadinessInput) { in.WitnessConfigured, in.WitnessAlive = true, true }, true, nil},
		{"cannot persist", func(in *ReadinessInput) { in.PersistError = "no space left on device" },
			false, []string{"xivo-main cannot persist its decisions (no space left on device)"}},
		{"cannot write the audit log", func(in *ReadinessInput) { in.AuditError = "audit.db: the file was cut" },
			false, []string{"xivo-main cannot write its audit log (audit.db: the file was cut): admin actions and transitions go unrecorded"}},
		{"several reasons at once", func(in *ReadinessInput) {
			in.Peer.Version, in.Peer.Status, in.StaleJobs = "3000.1", Activating, []string{"files"}
		}, false, []string{"majors differ", "split brain", "replication job files"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := base
			tc.edit(&in)
			ready, reasons := Readiness(in)
			if ready != tc.ready {
				t.Fatalf("ready = %v, want %v (reasons %q)", ready, tc.ready, reasons)
			}
			if len(reasons) != len(tc.want) {
				t.Fatalf("reasons %q, want %d matching %q", reasons, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(reasons[i], w) {
					t.Errorf("reason %d = %q, want it to contain %q", i, reasons[i], w)
				}
			}
		})
	}
}

// TestReadinessIsAPairFact: both nodes, each judging with its own facts as
// Self and the other's as Peer, reach the same answer in the same words,
// for every combination of statuses, epochs, versions, health and manual
// failover.
func TestReadinessIsAPairFact(t *testing.T) {
	statuses := []Status{Inactive, Activating, Active, Deactivating}
	n := 0
	for _, ms := range statuses {
		for _, ss := range statuses {
			for _, me := range []uint64{2, 4} {
				for bits := range 16 {
					m := NodeFacts{Name: "xivo-main", Role: RoleMain, Status: ms, Epoch: me, Version: "2025.1"}
					s := NodeFacts{Name: "xivo-standby", Role: RoleStandby, Status: ss, Epoch: 3, Version: "2025.2"}
					m.Unhealthy, s.Unhealthy, s.HeldByAdmin = bits&1 != 0, bits&2 != 0, bits&8 != 0
					if bits&4 != 0 {
						s.Version = "2024.9"
						m.FailoverUntil = "12:00"
					}
					r1, why1 := Readiness(ReadinessInput{Self: m, Peer: s, PeerReachable: true})
					r2, why2 := Readiness(ReadinessInput{Self: s, Peer: m, PeerReachable: true})
					if r1 != r2 || !slices.Equal(why1, why2) {
						t.Fatalf("main: %v %q\nstandby: %v %q", r1, why1, r2, why2)
					}
					n++
				}
			}
		}
	}
	t.Logf("measured: %d combinations judged alike by both nodes", n)
}

func TestWitnessReadiness(t *testing.T) {
	tests := []struct {
		name  string
		seen  map[string]Role
		ready bool
		want  []string
	}{
		{"sees both", map[string]Role{"xivo-main": RoleMain, "xivo-standby": RoleStandby}, true, nil},
		{"sees none", nil, false, []string{"does not see a main node", "does not see a standby node"}},
		{"sees the main only", map[string]Role{"xivo-main": RoleMain}, false, []string{"does not see a standby node"}},
		{"another witness is not a node of the pair", map[string]Role{"xivo-main": RoleMain, "w2": RoleWitness}, false,
			[]string{"does not see a standby node"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready, reasons := WitnessReadiness(tt.seen)
			if ready != tt.ready || len(reasons) != len(tt.want) {
				t.Fatalf("ready %v, reasons %q; want ready %v and %d reasons", ready, reasons, tt.ready, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(reasons[i], w) {
					t.Errorf("reason %d = %q, want it to contain %q", i, reasons[i], w)
				}
			}
		})
	}
}
