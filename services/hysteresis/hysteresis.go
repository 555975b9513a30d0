// Package hysteresis is the rise/fall counter of a health check: a verdict
// (Unknown, Up, Down) that flips to Up only after rise passes in a row and
// to Down only after fall failures in a row, as HAProxy does. It is the one
// copy of that logic; three users hold one each:
//
//   - services: the health of a service's check (services/health.go);
//   - xds: whether an MDS answers OPTIONS probes (xds/binding.go);
//   - edge: whether a side's node answers "active" (edge/check.go).
//
// It is pure: no time, no I/O, no locking. The caller probes, serializes
// the results under its own lock and counts each one here.
//
// # Behaviour common to all users
//
// Counters: a pass adds one to Passes and zeroes Fails; a failure adds one
// to Fails and zeroes Passes. Passes reaching rise makes the state Up,
// Fails reaching fall makes it Down, whatever the state was; the counters
// keep counting beyond (the Edge shows them in its status). Rise and fall
// below 1 count as 1. Observe reports whether the state changed.
//
// # How the users differ, and the knobs that keep them as they were
//
//   - Leaving Unknown (the start state). services and edge (Counted): from
//     Unknown, as from any state, rise passes make it Up and fall failures
//     make it Down; until then it stays Unknown. xds (FirstDecides): the
//     very first result decides at once, Up on a pass, Down on a failure,
//     whatever rise and fall; they count from then on. So one lost probe
//     at start makes an MDS unreachable, and the xds README documents it.
//   - A service still starting (services only, ObserveStarting): a pass
//     counts as in Observe; a failure only zeroes Passes. It neither counts
//     towards fall nor changes the state, since a service coming up has not
//     fallen (its start waits for rise passes, see services/README.md).
//   - Down at once (edge only, ForceDown): a node that answers it is not
//     Active makes its side Down without waiting for fall failures; both
//     counters go to zero, so going back Up takes rise passes and the next
//     failures count from zero.
//   - Reset (services only): every new life of a service (start, stop, a
//     process that exited) forgets everything: Unknown, counters at zero.
//     xds and edge never reset: their verdict lives as long as the process.
//
// # Why services/hysteresis
//
// The check logic belongs with the services' health checks, and this
// package imports nothing: xds and edge import it without pulling in
// the supervisor or any of its dependencies, and none of the three users
// depends on another's internals.
package hysteresis

// DefaultRise and DefaultFall are the defaults of every rise and fall in
// resman (services' checks, the Edge's side checks, XDS's MDS probes): two
// in a row. One place, so that the config's defaults and the components'
// fallbacks cannot drift apart.
const (
	DefaultRise = 2
	DefaultFall = 2
)

// State is the verdict of the checks.
type State int

const (
	Unknown State = iota // not yet decided (see Resolve)
	Up
	Down
)

func (s State) String() string {
	switch s {
	case Up:
		return "up"
	case Down:
		return "down"
	default:
		return "unknown"
	}
}

// Resolve says how the state leaves Unknown.
type Resolve int

const (
	// Counted: rise passes in a row make Unknown Up, fall failures in a
	// row make it Down, as from any other state (HAProxy; services, edge).
	Counted Resolve = iota
	// FirstDecides: the first result makes Unknown Up or Down at once;
	// rise and fall apply from then on (xds).
	FirstDecides
)

// Hysteresis counts check results. The zero value is Unknown with rise and
// fall of 1, Counted; New sets them.
type Hysteresis struct {
	rise, fall int
	resolve    Resolve
	state      State
	passes     int // consecutive passes
	fails      int // consecutive failures
}

// New returns an Unknown Hysteresis that needs rise passes or fall failures
// in a row to flip (below 1 counts as 1), and leaves Unknown as resolve says.
func New(rise, fall int, resolve Resolve) Hysteresis {
	return Hysteresis{rise: max(rise, 1), fall: max(fall, 1), resolve: resolve}
}

// Observe counts one result and reports whether the state changed.
func (h *Hysteresis) Observe(pass bool) bool {
	before := h.state
	if pass {
		h.passes++
		h.fails = 0
		if h.passes >= h.rise || before == Unknown && h.resolve == FirstDecides {
			h.state = Up
		}
	} else {
		h.fails++
		h.passes = 0
		if h.fails >= h.fall || before == Unknown && h.resolve == FirstDecides {
			h.state = Down
		}
	}
	return h.state != before
}

// ObserveStarting counts one result of something still starting: a pass
// counts as in Observe, a failure only breaks the run of passes (it does
// not count towards fall and changes no state). It reports whether the
// state changed.
func (h *Hysteresis) ObserveStarting(pass bool) bool {
	if pass {
		return h.Observe(true)
	}
	h.passes = 0
	return false
}

// ForceDown makes the state Down at once and zeroes both counters. It
// reports whether the state changed.
func (h *Hysteresis) ForceDown() bool {
	before := h.state
	h.state, h.passes, h.fails = Down, 0, 0
	return before != Down
}

// Reset forgets all results: Unknown, counters at zero.
func (h *Hysteresis) Reset() {
	h.state, h.passes, h.fails = Unknown, 0, 0
}

// State is the current verdict.
func (h *Hysteresis) State() State { return h.state }

// Passes is the number of passes in a row, 0 after a failure.
func (h *Hysteresis) Passes() int { return h.passes }

// Fails is the number of failures in a row, 0 after a pass.
func (h *Hysteresis) Fails() int { return h.fails }
