package hysteresis

import (
	"strings"
	"testing"
)

// TestHysteresis runs each user's sequences of results. In results, P is a
// pass and F a failure (Observe), s and S a pass and a failure of something
// starting (ObserveStarting), X is ForceDown and R Reset. want is the state
// after each step: ? Unknown, U Up, D Down; passes and fails are the
// counters at the end.
func TestHysteresis(t *testing.T) {
	tests := []struct {
		name          string
		rise, fall    int
		resolve       Resolve
		results       string
		want          string
		passes, fails int
	}{
		// Counted: services and edge.
		{"rise from unknown", 2, 2, Counted, "PP", "?U", 2, 0},
		{"fall from unknown", 2, 3, Counted, "FFF", "??D", 0, 3},
		{"alternating never decides", 2, 2, Counted, "PFPFPF", "??????", 0, 1},
		{"one failure does not fall", 2, 2, Counted, "PPFP", "?UUU", 1, 0},
		{"fall after fall failures", 2, 2, Counted, "PPFF", "?UUD", 0, 2},
		{"pass breaks a run of failures", 2, 3, Counted, "PPFFPFFF", "?UUUUUUD", 0, 3},
		{"rise again after rise passes", 3, 2, Counted, "FFPPFPPP", "?DDDDDDU", 3, 0},
		{"counters go on past rise", 2, 2, Counted, "PPPP", "?UUU", 4, 0},
		{"rise and fall of one", 1, 1, Counted, "PFPF", "UDUD", 0, 1},
		{"zero counts act as one", 0, 0, Counted, "FP", "DU", 1, 0},
		{"negative counts act as one", -3, -1, Counted, "PF", "UD", 0, 1},

		// ObserveStarting: services, while a service starts.
		{"starting failures never fall", 2, 2, Counted, "SSSS", "????", 0, 0},
		{"starting passes rise", 2, 2, Counted, "ss", "?U", 2, 0},
		{"starting failure breaks the passes", 2, 2, Counted, "sSss", "???U", 2, 0},
		{"starting failure does not fall from up", 2, 1, Counted, "ssSS", "?UUU", 0, 0},
		{"starting failures do not count towards fall", 2, 2, Counted, "SSFF", "???D", 0, 2},
		// Not reached by services (a start resets first), but it is what
		// ObserveStarting does: a failure leaves Fails as it was.
		{"starting failure keeps the failures", 2, 2, Counted, "FSF", "??D", 0, 2},

		// ForceDown: edge, a node that says it is not Active.
		{"force down from up", 2, 2, Counted, "PPX", "?UD", 0, 0},
		{"force down from unknown", 2, 2, Counted, "X", "D", 0, 0},
		{"force down when down", 2, 2, Counted, "PPXX", "?UDD", 0, 0},
		{"force down zeroes the passes", 2, 2, Counted, "PXP", "?DD", 1, 0},
		{"rise after force down", 2, 2, Counted, "PPXPP", "?UDDU", 2, 0},
		{"force down zeroes the failures", 2, 2, Counted, "FXF", "?DD", 0, 1},

		// Reset: services, a new life.
		{"reset from up", 2, 2, Counted, "PPR", "?U?", 0, 0},
		{"reset zeroes the failures", 2, 2, Counted, "FFRF", "?D??", 0, 1},

		// FirstDecides: xds.
		{"first pass decides up", 2, 2, FirstDecides, "P", "U", 1, 0},
		{"first failure decides down", 2, 2, FirstDecides, "F", "D", 0, 1},
		{"rise applies after the first", 2, 2, FirstDecides, "FPP", "DDU", 2, 0},
		{"fall applies after the first", 2, 2, FirstDecides, "PFF", "UUD", 0, 2},
		{"alternating stays as first decided", 2, 2, FirstDecides, "PFPF", "UUUU", 0, 1},
		{"rise of three after the first", 3, 3, FirstDecides, "FPPP", "DDDU", 3, 0},
		{"reset decides again at once", 2, 2, FirstDecides, "PRF", "U?D", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New(tt.rise, tt.fall, tt.resolve)
			if h.State() != Unknown {
				t.Fatalf("new state = %v, want unknown", h.State())
			}
			var got strings.Builder
			for i, r := range tt.results {
				prev := h.State()
				var changed bool
				switch r {
				case 'P', 'F':
					changed = h.Observe(r == 'P')
				case 's', 'S':
					changed = h.ObserveStarting(r == 's')
				case 'X':
					changed = h.ForceDown()
				case 'R':
					h.Reset()
					changed = h.State() != prev
				default:
					t.Fatalf("bad result %q", r)
				}
				if changed != (h.State() != prev) {
					t.Errorf("result %d (%c): changed = %v, but the state went %v -> %v", i, r, changed, prev, h.State())
				}
				got.WriteByte("?UD"[h.State()])
			}
			if got.String() != tt.want {
				t.Errorf("states = %s, want %s", got.String(), tt.want)
			}
			if h.Passes() != tt.passes || h.Fails() != tt.fails {
				t.Errorf("passes, fails = %d, %d, want %d, %d", h.Passes(), h.Fails(), tt.passes, tt.fails)
			}
		})
	}
}

// The zero value counts as rise 1, fall 1, Counted.
func TestZeroValue(t *testing.T) {
	var h Hysteresis
	if !h.Observe(false) || h.State() != Down {
		t.Errorf("zero value after a failure: %v, want down", h.State())
	}
	if !h.Observe(true) || h.State() != Up {
		t.Errorf("zero value after a pass: %v, want up", h.State())
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Unknown: "unknown", Up: "up", Down: "down"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", s, s.String(), want)
		}
	}
}
