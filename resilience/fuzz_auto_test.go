package resilience

import (
	"fmt"
	"testing"
)

// FuzzAutoPair drives a Main and a Standby in auto mode with views of each
// other that may be stale (each gets a fresh view only when the fuzzer says
// so, as gossip would deliver it), health changes, ticks, admin Start/Stop
// without force, completions and crashes. Rules checked after every step:
//   - once both nodes hold fresh views of each other, no two stable Actives
//     remain (split brain is resolved at once, by epoch);
//   - a node held by an admin never activates on its own;
//   - epochs never go back and every activation raises them;
//   - only the allowed status edges.
func FuzzAutoPair(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{12, 2, 3, 14, 14, 14, 6, 7, 12, 13, 2, 3, 8, 9, 14, 14})
	f.Add([]byte{4, 5, 14, 14, 14, 2, 3, 0, 1, 14, 12, 14, 14, 6, 2})
	f.Fuzz(func(t *testing.T, ops []byte) {
		var m [2]*Machine
		var saved [2]*Saved
		var working [2]Action
		var trace []string
		fail := func(format string, args ...any) {
			t.Helper()
			for _, l := range trace {
				t.Log(l)
			}
			t.Fatalf(format, args...)
		}
		view := func(of int, alive [2]bool) PeerView {
			if !alive[of] {
				return PeerView{Name: m[of].cfg.Name}
			}
			o := m[of]
			return PeerView{Name: o.cfg.Name, Reachable: true, Status: o.Status(), Epoch: o.Epoch(),
				Holding: o.Holding(), Unhealthy: len(o.Unhealthy()) > 0 && o.Status() == Active}
		}
		alive := [2]bool{true, true}
		newMachine := func(i int) {
			var err error
			m[i], err = New(Config{Name: []string{"main", "standby"}[i], Role: []Role{RoleMain, RoleStandby}[i],
				Mode: ModeAuto, LostTicks: 2, FailbackAuto: true, FailbackHoldTicks: 3})
			if err != nil {
				t.Fatal(err)
			}
			working[i] = nil
		}
		step := func(i int, ev Event) {
			if !alive[i] {
				return
			}
			mm := m[i]
			before, beforeEpoch, held := mm.Status(), mm.Epoch(), mm.AdminHold()
			acts, err := mm.Step(ev)
			trace = append(trace, fmt.Sprintf("%s %s -> %s epoch=%d hold=%t err=%v", mm.cfg.Name, FormatEvent(ev), mm.Status(), mm.Epoch(), mm.Holding(), err))
			if mm.Epoch() < beforeEpoch {
				fail("epoch went back")
			}
			if mm.Status() != before && !allowedEdge(before, mm.Status()) {
				fail("edge %s -> %s", before, mm.Status())
			}
			_, admin := ev.(AdminStart)
			_, boot := ev.(Boot)
			if mm.Status() == Activating && before != Activating {
				if held && !admin {
					fail("a node held by an admin activated on its own")
				}
				if !boot && mm.Epoch() <= beforeEpoch {
					fail("activation without a new epoch")
				}
			}
			for _, a := range acts {
				switch a := a.(type) {
				case StartServices, StopServices:
					if working[i] != nil {
						fail("new work while work is under way")
					}
					working[i] = a
				case Persist:
					s := a.Saved
					saved[i] = &s
				}
			}
		}
		newMachine(0)
		newMachine(1)
		step(1, Boot{Peer: view(0, alive)})
		step(0, Boot{Peer: view(1, alive)})
		for _, op := range ops {
			i := int(op & 1)
			switch (op >> 1) % 8 {
			case 0:
				step(i, AdminStart{Who: "fuzz", Reason: "r", Peer: view(1-i, alive)})
			case 1:
				step(i, AdminStop{Who: "fuzz", Reason: "r"})
			case 2:
				errText := ""
				if op&0x80 != 0 {
					errText = "boom"
				}
				switch working[i].(type) {
				case StartServices:
					working[i] = nil
					step(i, ServicesStarted{Err: errText})
				case StopServices:
					working[i] = nil
					step(i, ServicesStopped{Err: errText})
				}
			case 3:
				step(i, PeerSeen{Peer: view(1-i, alive)})
			case 4:
				var sick []string
				if op&0x80 != 0 {
					sick = []string{"asterisk"}
				}
				step(i, Health{Unhealthy: sick})
			case 5:
				step(i, Tick{})
			case 6: // crash, or restart a crashed node with its persisted decision
				if alive[i] {
					alive[i] = false
					step(1-i, PeerSeen{Peer: view(i, alive)})
				} else {
					alive[i] = true
					newMachine(i)
					step(i, Boot{Saved: saved[i], Peer: view(1-i, alive)})
				}
			case 7: // gossip converges: both get fresh views, then the check
				step(0, PeerSeen{Peer: view(1, alive)})
				step(1, PeerSeen{Peer: view(0, alive)})
				if alive[0] && alive[1] && m[0].Status() == Active && m[1].Status() == Active {
					fail("two stable Actives with fresh views of each other")
				}
			}
		}
	})
}
