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
	// A Standby that starts Inactive without seeing its Main waits out
	// its boot grace before taking over.
	fresh, err := New(Config{Name: "xivo-standby", Role: RoleStandby, Mode: ModeAuto, LostTicks: 2, BootGraceTicks: 4})
	if err != nil {
		t.Fatal(err)
	}
	fresh.Step(Boot{Peer: lost})
	fresh.Step(ServicesStopped{})
	if fresh.Status() != Inactive || fresh.BootGraceTicks() != 4 {
		t.Fatalf("at boot: %s, boot grace left %d; want inactive and 4", fresh.Status(), fresh.BootGraceTicks())
	}
	fresh.Step(Tick{})
	if got := fresh.BootGraceTicks(); got != 3 {
		t.Errorf("boot grace left after a tick: %d, want 3", got)
	}
	fresh.Step(PeerSeen{Peer: PeerView{Name: "xivo-main", Reachable: true, Status: Active, Epoch: 2}})
	if got := fresh.BootGraceTicks(); got != 0 {
		t.Errorf("boot grace left once the peer is seen: %d, want 0", got)
	}

	// A Standby that comes back Active (its saved decision): no boot
	// grace to show, it takes over for nobody.
	step(Boot{Saved: &Saved{Status: Active, Epoch: 3}, Peer: lost})
	step(ServicesStarted{})
	if m.Status() != Active || m.BootGraceTicks() != 0 {
		t.Fatalf("status %s, boot grace %d; want the saved Active and none", m.Status(), m.BootGraceTicks())
	}
	if got := m.FailbackTicks(); got != 0 {
		t.Errorf("failback counting with the Main lost: %d", got)
	}
	up := PeerView{Name: "xivo-main", Reachable: true, Status: Inactive, Epoch: 2}
	step(PeerSeen{Peer: up})
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
