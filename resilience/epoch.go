package resilience

import "fmt"

// Epochs are ballots: every activation of the pair takes one, and no two
// activations ever take the same. An epoch is a counter and the identity of
// the node that took it, packed in one number as counter*2 + slot, where
// the Main's slot is 0 and the Standby's is 1 (a witness never activates).
// Comparing packed numbers compares (counter, slot) as a pair, as Paxos
// ballots are compared; each node only takes numbers of its own slot and
// always above every epoch it has seen, so the two nodes can never tie,
// whatever the interleaving. Epochs written before this scheme read as
// they are: only the next activation follows it.

// MaxEpoch is the largest epoch the pair accepts. Far beyond any real use
// (an activation a second for 140 million years), it keeps arithmetic from
// wrapping and keeps epochs exact in JSON readers that use float64. A
// larger epoch from gossip, the API or a state file is refused as corrupt
// or forged.
const MaxEpoch uint64 = 1<<53 - 1

// ValidEpoch reports whether e can be taken as an epoch; the error says why
// not, for the log line of whoever refuses it.
func ValidEpoch(e uint64) error {
	if e > MaxEpoch {
		return fmt.Errorf("epoch %d is above the maximum %d: refused as corrupt or forged", e, MaxEpoch)
	}
	return nil
}

// slot is the part of an epoch that names the node that took it.
func slot(r Role) uint64 {
	if r == RoleStandby {
		return 1
	}
	return 0
}

// EpochTakenBy names the role whose activation took epoch e (0: none yet).
func EpochTakenBy(e uint64) Role {
	switch {
	case e == 0:
		return ""
	case e%2 == 1:
		return RoleStandby
	}
	return RoleMain
}

// nextEpochFor is the smallest epoch above seen that role r may take, and
// false when there is none below MaxEpoch.
func nextEpochFor(r Role, seen uint64) (uint64, bool) {
	if seen >= MaxEpoch-2 {
		return 0, false
	}
	e := seen + 1
	if e%2 != slot(r) {
		e++
	}
	return e, true
}
