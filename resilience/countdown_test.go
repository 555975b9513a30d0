package resilience

import "testing"

// The countdowns the status shows: an Active Standby's failback while
// its Main is up and ready, and the boot grace of a node that has not seen
// its peer.
func TestCountdowns(t *testing.T) {
	m, err := New(Config{Name: "xivo-standby", Role: RoleStandby, Mode: ModeAuto, LostTicks: 2,
		FailbackAuto: true, FailbackHoldTicks: 5, BootGraceTicks: 4})
	if err != nil {
		t.Fatal(err)
	}
	step := func(ev Event) {
		t.Helper()
		if _, err := m.Step(ev); err != nil {
			t.Fatalf("%s: %v", FormatEvent(ev), err)
		}
	}
	lost := PeerView{Name: "xivo-main"}
	step(Boot{Saved: &Saved{Status: Active, Epoch: 3}, Peer: lost})
	step(ServicesStarted{})
	if m.Status() != Active {
		t.Fatalf("status %s, want the saved Active", m.Status())
	}
	if got := m.BootGraceTicks(); got != 4 {
		t.Errorf("boot grace left at boot: %d, want 4", got)
	}
	step(Tick{})
	if got := m.BootGraceTicks(); got != 3 {
		t.Errorf("boot grace left after a tick: %d, want 3", got)
	}
	if got := m.FailbackTicks(); got != 0 {
		t.Errorf("failback counting with the Main lost: %d", got)
	}
	up := PeerView{Name: "xivo-main", Reachable: true, Status: Inactive, Epoch: 2}
	step(PeerSeen{Peer: up})
	if got := m.BootGraceTicks(); got != 0 {
		t.Errorf("boot grace left once the peer is seen: %d, want 0", got)
	}
	step(Tick{})
	if got := m.FailbackTicks(); got != 4 {
		t.Errorf("failback left after one tick of a ready Main: %d, want 4 of 5", got)
	}
	step(Tick{})
	if got := m.FailbackTicks(); got != 3 {
		t.Errorf("failback left after two ticks: %d, want 3", got)
	}
	step(PeerSeen{Peer: PeerView{Name: "xivo-main", Reachable: true, Status: Inactive, Epoch: 2, Unhealthy: true}})
	step(Tick{})
	if got := m.FailbackTicks(); got != 0 {
		t.Errorf("failback counting while the Main is unhealthy: %d", got)
	}
}
