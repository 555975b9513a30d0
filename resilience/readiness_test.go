package resilience

import (
	"strings"
	"testing"
)

func TestReadiness(t *testing.T) {
	base := ReadinessInput{PeerName: "xivo-standby", PeerReachable: true, PeerStatus: Inactive,
		PeerVersion: "2025.10.3", Version: "2025.10.1", Status: Active, Epoch: 3}
	tests := []struct {
		name  string
		edit  func(*ReadinessInput)
		ready bool
		want  []string
	}{
		{"ready: same major, peer inactive", func(*ReadinessInput) {}, true, nil},
		{"no peer", func(in *ReadinessInput) { in.PeerName = "" }, false, []string{"no peer configured"}},
		{"unreachable", func(in *ReadinessInput) { in.PeerReachable, in.PeerError = false, "dial tcp: refused" },
			false, []string{"peer xivo-standby is unreachable: dial tcp: refused"}},
		{"major differs", func(in *ReadinessInput) { in.PeerVersion = "2024.05.0" },
			false, []string{"major 2024 differs from ours (2025.10.1)"}},
		{"split brain", func(in *ReadinessInput) { in.PeerStatus, in.PeerEpoch = Active, 2 },
			false, []string{"split brain: both nodes claim Active (here epoch 3, peer xivo-standby epoch 2)"}},
		{"peer unhealthy", func(in *ReadinessInput) { in.PeerUnhealthy = true },
			false, []string{"peer xivo-standby reports critical services unhealthy"}},
		{"local unhealthy on the inactive side", func(in *ReadinessInput) { in.Status, in.LocalUnhealthy = Inactive, []string{"asterisk"} },
			false, []string{"critical services unhealthy here: asterisk"}},
		{"stale replication", func(in *ReadinessInput) { in.StaleJobs = []string{"db"} },
			false, []string{"replication job db has not succeeded within its max_age"}},
		{"unreadable peer: one clear reason", func(in *ReadinessInput) {
			in.PeerError, in.PeerVersion, in.PeerUnhealthy = "401: unauthorized", "", true
		}, false, []string{"answers but its status cannot be read (401: unauthorized): check that both nodes share api.token"}},
		{"not in gossip", func(in *ReadinessInput) { in.PeerNotInGossip = true },
			false, []string{"not seen over gossip: check gossip.key"}},
		{"witness lost", func(in *ReadinessInput) { in.WitnessConfigured = true },
			false, []string{"the witness is not seen"}},
		{"witness seen", func(in *ReadinessInput) { in.WitnessConfigured, in.WitnessAlive = true, true }, true, nil},
		{"several reasons at once", func(in *ReadinessInput) {
			in.PeerVersion, in.PeerStatus, in.StaleJobs = "3000.1", Activating, []string{"files"}
		}, false, []string{"major 3000", "split brain", "replication job files"}},
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
