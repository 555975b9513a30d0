package resilience

import (
	"fmt"
	"strings"
)

// NodeFacts is what the pair knows of one of its nodes. Both nodes hold the
// same facts of the pair (each its own, and its peer's as the peer
// announces them), so both compute the same readiness from them.
type NodeFacts struct {
	Name    string
	Role    Role
	Status  Status
	Epoch   uint64
	Version string
	// Unhealthy: the node reports critical services unhealthy.
	Unhealthy bool
	// FailoverUntil, when set, says a manual HA failover holds the node
	// Inactive until then (as the admin reads it).
	FailoverUntil string
	// HeldByAdmin: an admin's Stop holds the node Inactive (auto mode).
	HeldByAdmin bool
	// Calls in progress on its PBX, when CallsKnown.
	Calls      int
	CallsKnown bool
}

// ReadinessInput is what HA readiness is judged on: the facts of both
// nodes, then what only this node can see.
type ReadinessInput struct {
	Self NodeFacts
	// Peer: its facts as last seen. Peer.Name empty: no peer configured.
	Peer          NodeFacts
	PeerReachable bool
	// PeerError: why the peer is unreachable, or why its answer could not
	// be read.
	PeerError string
	// Auto mode: the peer has not been seen over gossip (its API may answer
	// while the heartbeat does not: a wrong gossip.key, a closed port).
	PeerNotInGossip bool
	// Auto mode with a witness: whether the witness is seen.
	WitnessConfigured, WitnessAlive bool
	// SecondPathSilent, in auto mode with failover.confirm: the peer's
	// second-path address when gossip sees the peer but that path gets no
	// answer (or is refused): a lossy link would then make a false
	// takeover, and a claim waits for the peer's API. Empty otherwise.
	SecondPathSilent string
	StaleJobs        []string // replication jobs older than their max_age
	// PersistError: this node cannot persist its decisions.
	PersistError string
	// AuditError: this node cannot write its audit log (the last write
	// failed), so admin actions and transitions go unrecorded.
	AuditError string
}

// Readiness says whether the pair is ready to fail over, and if not, why.
// The facts of the pair come first, worded the same whichever node judges
// them (nodes by name, the Main first): the peer is seen, one node is
// Active and only one, the majors match, the node that would take over is
// healthy, no manual failover holds one of them. Then what only this node
// sees: gossip, the witness, replication, its disk. A differing major makes
// HA not ready but does not block a failover.
func Readiness(in ReadinessInput) (ready bool, reasons []string) {
	self, peer := in.Self, in.Peer
	if peer.Name == "" {
		return false, []string{"no peer configured"}
	}
	switch {
	case !in.PeerReachable:
		r := fmt.Sprintf("%s is unreachable from %s", peer.Name, self.Name)
		if in.PeerError != "" {
			r += ": " + in.PeerError
		}
		reasons = append(reasons, r)
	case in.PeerError != "":
		// It answered, but not with its status: nothing else about it can
		// be judged, and the likely cause is one the admin can fix.
		reasons = append(reasons, fmt.Sprintf("%s answers %s but its status cannot be read (%s): check that both nodes share api.token",
			peer.Name, self.Name, in.PeerError))
	default:
		reasons = append(reasons, pairReasons(self, peer)...)
	}
	if in.PeerNotInGossip {
		reasons = append(reasons, fmt.Sprintf("%s does not see %s over gossip: check gossip.key and the gossip ports on both nodes",
			self.Name, peer.Name))
	}
	if in.SecondPathSilent != "" {
		reasons = append(reasons, fmt.Sprintf("%s gets no answer from %s over the second path (%s) while gossip sees it: "+
			"a lossy link could make a false takeover; open UDP to it and set failover.confirm alike on both nodes",
			self.Name, peer.Name, in.SecondPathSilent))
	}
	if in.WitnessConfigured && !in.WitnessAlive {
		reasons = append(reasons, fmt.Sprintf("%s does not see the witness: a lost peer cannot be confirmed, so no automatic failover", self.Name))
	}
	for _, j := range in.StaleJobs {
		reasons = append(reasons, fmt.Sprintf("replication job %s has not succeeded within its max_age (or never ran), seen from %s", j, self.Name))
	}
	if in.PersistError != "" {
		reasons = append(reasons, fmt.Sprintf("%s cannot persist its decisions (%s): free space in node.data_dir, or make it writable",
			self.Name, in.PersistError))
	}
	if in.AuditError != "" {
		reasons = append(reasons, fmt.Sprintf("%s cannot write its audit log (%s): admin actions and transitions go unrecorded; "+
			"a restart of resman on it says how to recover the file", self.Name, in.AuditError))
	}
	return len(reasons) == 0, reasons
}

// pairReasons judges the facts of both nodes, in the same words whichever
// node judges them.
func pairReasons(self, peer NodeFacts) []string {
	a, b := self, peer
	if b.Role == RoleMain || (a.Role != RoleMain && b.Name < a.Name) {
		a, b = b, a
	}
	var reasons []string
	for _, n := range []NodeFacts{a, b} {
		if n.FailoverUntil != "" {
			reasons = append(reasons, fmt.Sprintf("not redundant: a manual failover holds %s Inactive until %s", n.Name, n.FailoverUntil))
		}
	}
	if ma, mb := Major(a.Version), Major(b.Version); ma != mb {
		reasons = append(reasons, fmt.Sprintf("%s runs version %s and %s runs %s: the majors differ (%s, %s)",
			a.Name, a.Version, b.Name, b.Version, ma, mb))
	}
	switch {
	case a.Status.claimsActive() && b.Status.claimsActive():
		stale := a
		if a.Epoch > b.Epoch || (a.Epoch == b.Epoch && a.Role == RoleMain) {
			stale = b
		}
		why := "has the older claim"
		if aKeeps, ok := callsDecide(a.Calls, a.CallsKnown, b.Calls, b.CallsKnown); ok && a.Status == Active && b.Status == Active {
			stale, why = a, "has no calls in progress, the other has"
			if aKeeps {
				stale = b
			}
		}
		reasons = append(reasons, fmt.Sprintf("split brain: %s (epoch %d) and %s (epoch %d) both claim Active; %s %s: stop services there",
			a.Name, a.Epoch, b.Name, b.Epoch, stale.Name, why))
	case a.Status == Inactive && b.Status == Inactive:
		reasons = append(reasons, fmt.Sprintf("no node is Active: the telephony runs on neither %s nor %s", a.Name, b.Name))
	}
	for _, n := range []NodeFacts{a, b} {
		if n.Unhealthy && !n.Status.claimsActive() {
			reasons = append(reasons, fmt.Sprintf("%s reports critical services unhealthy: it cannot take over", n.Name))
		}
		if n.HeldByAdmin && !n.Status.claimsActive() {
			reasons = append(reasons, fmt.Sprintf("%s is held Inactive by an admin's stop: it will not take over until services are started there", n.Name))
		}
	}
	return reasons
}

// Major is the major part of a version: what comes before the first dot.
func Major(version string) string {
	major, _, _ := strings.Cut(strings.TrimSpace(version), ".")
	return major
}

// WitnessReadiness says whether a witness can do its job: confirm to each
// node of the pair that the other is lost, or not. It must see both, the
// Main and the Standby, over gossip. seen maps the pair's nodes it sees to
// their roles.
func WitnessReadiness(seen map[string]Role) (ready bool, reasons []string) {
	for _, r := range []Role{RoleMain, RoleStandby} {
		found := false
		for _, role := range seen {
			found = found || role == r
		}
		if !found {
			reasons = append(reasons, fmt.Sprintf("the witness does not see a %s node over gossip: check gossip.join, gossip.key and the gossip ports", r))
		}
	}
	return len(reasons) == 0, reasons
}

// callsDecide is the calls rule of two Active nodes a and b: when both
// count their calls and exactly one has any, that one keeps the Active
// role (aKeeps says whether it is a). ok is false when calls do not
// decide: the epochs do.
func callsDecide(aCalls int, aKnown bool, bCalls int, bKnown bool) (aKeeps, ok bool) {
	if !aKnown || !bKnown || (aCalls > 0) == (bCalls > 0) {
		return false, false
	}
	return aCalls > 0, true
}
