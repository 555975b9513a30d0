package resilience

import (
	"fmt"
	"strings"
	"time"
)

// Role is the configured role of a node. It never changes at run time.
type Role string

// Roles.
const (
	RoleMain    Role = "main"
	RoleStandby Role = "standby"
	RoleWitness Role = "witness"
)

// Mode says who may change the status: auto (the core, on heartbeat and
// health) or manual (only an admin).
type Mode string

// Modes.
const (
	ModeAuto   Mode = "auto"
	ModeManual Mode = "manual"
)

// Status is the runtime status of a node.
type Status string

// Statuses. Activating and Deactivating are the visible in-between states of
// a transition.
const (
	Inactive     Status = "inactive"
	Activating   Status = "activating"
	Active       Status = "active"
	Deactivating Status = "deactivating"
)

// claimsActive reports whether a node in status s runs, or is about to run,
// the telephony services.
func (s Status) claimsActive() bool { return s == Active || s == Activating }

// Config is what the core needs to know of the node's configuration.
// Durations are counted in ticks; the runtime converts.
type Config struct {
	Name string
	Role Role
	Mode Mode
	// LostTicks: how long the peer must stay lost, or this node unhealthy,
	// before the auto rules act on it. Memberlist's own suspicion already
	// confirms a loss, so this can be short. At least 1.
	LostTicks int
	// FailbackAuto: the Main takes its place back by itself after
	// FailbackHoldTicks of being seen up and eligible; otherwise an admin
	// decides.
	FailbackAuto      bool
	FailbackHoldTicks int
	// BootGraceTicks: a node that has not seen its peer since it started
	// waits this long before taking over for a lost peer, so two nodes
	// powered on together, in any order, end with the Main Active and no
	// move on the Standby.
	BootGraceTicks int
	// Witness: a witness is configured; a lost peer then counts only when
	// the witness is alive and does not see it either, and an Active node
	// that sees neither peer nor witness steps down.
	Witness bool
	// Tick is the length of one tick, only to say durations in the audit
	// causes in seconds; the core never reads a clock. Zero says ticks.
	Tick time.Duration
}

// Validate checks the fields the core relies on.
func (c Config) Validate() error {
	var bad []string
	switch c.Role {
	case RoleMain, RoleStandby, RoleWitness:
	default:
		bad = append(bad, fmt.Sprintf("role %q", c.Role))
	}
	switch c.Mode {
	case ModeAuto, ModeManual:
	default:
		bad = append(bad, fmt.Sprintf("mode %q", c.Mode))
	}
	if c.Name == "" {
		bad = append(bad, "empty name")
	}
	if c.BootGraceTicks < 0 {
		bad = append(bad, "boot grace ticks < 0")
	}
	if c.Mode == ModeAuto && c.LostTicks < 1 {
		bad = append(bad, "lost ticks < 1 in auto mode")
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: core config: %s", ErrInvalid, strings.Join(bad, ", "))
	}
	return nil
}

// Saved is the decision that must survive a restart: the status the node was
// last told to be in (Active or Inactive, never an in-between state) and its
// epoch.
type Saved struct {
	Status Status
	Epoch  uint64
}

// PeerView is what this node knows of the other node at one moment.
type PeerView struct {
	Name      string
	Reachable bool
	Status    Status
	Epoch     uint64
	// Unreadable: the peer answered but its status could not be read
	// (wrong token, a broken answer). It may be Active.
	Unreadable bool
	// Unhealthy: the peer reports a critical service unhealthy.
	Unhealthy bool
	// Holding: the peer will not go Active by itself (an admin stopped it
	// in auto mode, or it stepped down and waits out its hold).
	Holding bool
	// Calls in progress on the peer's PBX, when CallsKnown (it counts
	// them, and said so in its last view).
	Calls      int
	CallsKnown bool
	// Why, for an unreachable peer, is how the runtime knows (e.g. what
	// the second path said): it goes into the cause of a takeover.
	Why string
}

func (p PeerView) String() string {
	if !p.Reachable {
		return "unreachable"
	}
	if p.Unreadable {
		return "unreadable"
	}
	return fmt.Sprintf("%s:%d", p.Status, p.Epoch)
}

// claimsActive reports whether the peer is seen running the services.
func (p PeerView) claimsActive() bool { return p.Reachable && p.Status.claimsActive() }

// settledInactive: the peer is seen Inactive and not in a transition.
func (p PeerView) settledInactive() bool {
	return p.Reachable && !p.Unreadable && p.Status == Inactive
}

// WitnessView is what the witness reports: whether it is alive (seen by
// this node) and whether it sees the peer.
type WitnessView struct {
	Alive    bool
	SeesPeer bool
}
