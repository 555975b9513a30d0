package resilience

import (
	"errors"
	"fmt"
	"testing"
)

// pair is a model of two manual-mode nodes and an admin: each admin command
// gets a fresh view of the other node's real status, unless the link between
// them is cut. Work the machines ask for completes when the fuzzer says so.
type pair struct {
	m       [2]*Machine
	working [2]Action // the StartServices/StopServices under way, if any
	saved   [2]*Saved
	cut     bool
	forced  bool // a forced start happened: two Actives are then allowed
	cutUsed bool // a start while cut: two Actives are then possible
}

func (p *pair) view(of int) PeerView {
	o := p.m[of]
	if p.cut {
		return PeerView{Name: o.cfg.Name}
	}
	return PeerView{Name: o.cfg.Name, Reachable: true, Status: o.Status(), Epoch: o.Epoch()}
}

// FuzzManualPair drives two manual-mode nodes with random admin commands,
// completions, peer views, health reports, ticks, restarts and link cuts, and
// checks the rules of the core after every step.
func FuzzManualPair(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{2, 2, 4, 10, 3, 12, 2, 14, 0, 4, 6})
	f.Add([]byte{9, 9, 1, 5, 1, 7, 2, 3, 11, 11, 4, 4, 13})
	f.Fuzz(func(t *testing.T, ops []byte) {
		p := &pair{}
		boot := func(i int) {
			m, err := New(Config{Name: fmt.Sprintf("node%d", i), Role: []Role{RoleMain, RoleStandby}[i], Mode: ModeManual})
			if err != nil {
				t.Fatal(err)
			}
			p.m[i] = m
			p.working[i] = nil
		}
		boot(0)
		boot(1)
		var trace []string
		step := func(i int, ev Event) {
			m := p.m[i]
			before, beforeEpoch := m.Status(), m.Epoch()
			acts, err := m.Step(ev)
			trace = append(trace, fmt.Sprintf("node%d %s -> %s epoch=%d err=%v", i, FormatEvent(ev), m.Status(), m.Epoch(), err))
			fail := func(format string, args ...any) {
				t.Helper()
				for _, l := range trace {
					t.Log(l)
				}
				t.Fatalf(format, args...)
			}
			if err != nil && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrBusy) && !errors.Is(err, ErrPrecondition) {
				fail("unexpected error kind: %v", err)
			}
			changed := m.Status() != before
			// Manual mode never moves on its own.
			switch ev.(type) {
			case PeerSeen, Health, Tick:
				if changed || len(acts) > 0 {
					fail("manual mode moved on %s: %s -> %s, %d actions", FormatEvent(ev), before, m.Status(), len(acts))
				}
			}
			// Only allowed edges.
			if changed && !allowedEdge(before, m.Status()) {
				fail("edge %s -> %s is not allowed", before, m.Status())
			}
			// The epoch never goes back, and every activation raises it
			// (except restoring a persisted Active at boot).
			if m.Epoch() < beforeEpoch {
				fail("epoch went back %d -> %d", beforeEpoch, m.Epoch())
			}
			if _, isBoot := ev.(Boot); changed && m.Status() == Activating && !isBoot && m.Epoch() <= beforeEpoch {
				fail("activation without a new epoch")
			}
			if m.Status() == Activating && m.Epoch() <= p.m[1-i].Epoch() && p.m[1-i].Status().claimsActive() && !p.forced && !p.cutUsed {
				fail("activating with epoch %d not above the Active peer's %d", m.Epoch(), p.m[1-i].Epoch())
			}
			// Every status change is recorded with a cause, and decided
			// status changes are persisted first.
			var rec *Record
			for _, a := range acts {
				switch a := a.(type) {
				case Record:
					if a.Cause == "" {
						fail("record without a cause: %s", FormatAction(a))
					}
					rec = &a
				case Persist:
					s := a.Saved
					p.saved[i] = &s
					if rec != nil {
						fail("persist after the record: the decision must be durable first")
					}
				case StartServices, StopServices:
					if p.working[i] != nil {
						fail("new work while %T is under way", p.working[i])
					}
					p.working[i] = a
				}
			}
			if changed && rec == nil {
				fail("status change %s -> %s without a record", before, m.Status())
			}
			if err != nil && changed {
				fail("refused command changed the status")
			}
			// Never two Actives in one view unless forced or decided blind.
			if p.m[0].Status().claimsActive() && p.m[1].Status().claimsActive() && !p.forced && !p.cutUsed {
				fail("two nodes claim Active without force or partition")
			}
		}
		step(0, Boot{Peer: p.view(1)})
		step(1, Boot{Peer: p.view(0)})
		for _, op := range ops {
			i := int(op & 1)
			switch (op >> 1) % 8 {
			case 0:
				force := op&0x80 != 0
				if force {
					p.forced = true
				}
				if p.cut {
					p.cutUsed = true
				}
				step(i, AdminStart{Who: "fuzz", Reason: "r", Force: force, Peer: p.view(1 - i)})
			case 1:
				step(i, AdminStop{Who: "fuzz", Reason: "r"})
			case 2: // the work under way ends, well or badly
				errText := ""
				if op&0x80 != 0 {
					errText = "boom"
				}
				switch p.working[i].(type) {
				case StartServices:
					p.working[i] = nil
					step(i, ServicesStarted{Err: errText})
				case StopServices:
					p.working[i] = nil
					step(i, ServicesStopped{Err: errText})
				}
			case 3:
				step(i, PeerSeen{Peer: p.view(1 - i)})
			case 4:
				step(i, Health{Unhealthy: []string{"asterisk"}})
			case 5:
				step(i, Tick{})
			case 6: // crash and restart with the persisted decision
				boot(i)
				if p.cut {
					p.cutUsed = true
				}
				step(i, Boot{Saved: p.saved[i], Peer: p.view(1 - i)})
			case 7:
				p.cut = !p.cut
			}
		}
	})
}

func allowedEdge(from, to Status) bool {
	switch from {
	case Inactive:
		return to == Activating || to == Deactivating // deactivating only at boot
	case Activating:
		return to == Active || to == Deactivating
	case Active:
		return to == Deactivating
	case Deactivating:
		return to == Inactive
	}
	return false
}
