package testkit

import "testing"

// A port reserved by a test is refused to any other holder (another test
// process would open the same file) until that test ends or releases it.
func TestReserveHoldsAPortUntilTheTestEnds(t *testing.T) {
	const p = 19999 // below PortOn's range (20000 and up with the usual ephemeral range)
	t.Run("holder", func(t *testing.T) {
		if _, ok := ReservePort(t, p); !ok {
			t.Fatal("a free port's lock was refused")
		}
		if _, ok := ReservePort(t, p); ok {
			t.Fatal("a port held by a test was reserved again")
		}
	})
	release, ok := ReservePort(t, p)
	if !ok {
		t.Fatal("the port stayed locked after its test ended")
	}
	release()
	if _, ok := ReservePort(t, p); !ok {
		t.Fatal("the port stayed locked after its release")
	}
}

// Port gives free ports, never the same twice.
func TestPortGivesEachPortOnce(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		p := Port(t)
		if seen[p] || p < 10000 || p >= 32768 {
			t.Fatalf("port %d (given before: %v)", p, seen[p])
		}
		seen[p] = true
	}
}
