package resilience

import (
	"fmt"
	"strings"
)

// ReadinessInput is what HA readiness is judged on.
type ReadinessInput struct {
	PeerName       string // empty: no peer configured
	PeerReachable  bool
	PeerError      string
	PeerStatus     Status
	PeerEpoch      uint64
	PeerVersion    string
	Version        string
	Status         Status
	Epoch          uint64
	StaleJobs      []string // replication jobs older than their max_age
	PeerUnhealthy  bool     // the peer reports critical services unhealthy
	LocalUnhealthy []string // this node's unhealthy critical services
	// Auto mode: the peer has not been seen over gossip (its API may answer
	// while the heartbeat does not: a wrong gossip.key, a closed port).
	PeerNotInGossip bool
	// Auto mode with a witness: whether the witness is seen.
	WitnessConfigured, WitnessAlive bool
	// ManualFailoverUntil, when set, says a manual HA failover holds this
	// node Inactive until then: one node carries the load.
	ManualFailoverUntil string
}

// Readiness says whether the pair is ready to fail over, and if not, why:
// the peer is seen, runs the same major version, replication is fresh, and
// there is no split brain. A differing major makes HA not ready but does not
// block a failover.
func Readiness(in ReadinessInput) (ready bool, reasons []string) {
	if in.PeerName == "" {
		return false, []string{"no peer configured"}
	}
	if in.ManualFailoverUntil != "" {
		reasons = append(reasons, "not redundant: manual failover until "+in.ManualFailoverUntil+" (this node holds Inactive)")
	}
	switch {
	case !in.PeerReachable:
		r := fmt.Sprintf("peer %s is unreachable", in.PeerName)
		if in.PeerError != "" {
			r += ": " + in.PeerError
		}
		reasons = append(reasons, r)
	case in.PeerError != "":
		// It answered, but not with its status: nothing else about it can
		// be judged, and the likely cause is one the admin can fix.
		reasons = append(reasons, fmt.Sprintf("peer %s answers but its status cannot be read (%s): check that both nodes share api.token",
			in.PeerName, in.PeerError))
	default:
		if mine, theirs := Major(in.Version), Major(in.PeerVersion); mine != theirs {
			reasons = append(reasons, fmt.Sprintf("peer %s runs version %s, major %s differs from ours (%s)",
				in.PeerName, in.PeerVersion, theirs, in.Version))
		}
		if in.Status.claimsActive() && in.PeerStatus.claimsActive() {
			reasons = append(reasons, fmt.Sprintf("split brain: both nodes claim Active (here epoch %d, peer %s epoch %d)",
				in.Epoch, in.PeerName, in.PeerEpoch))
		}
		if in.PeerUnhealthy && !in.PeerStatus.claimsActive() {
			reasons = append(reasons, fmt.Sprintf("peer %s reports critical services unhealthy", in.PeerName))
		}
	}
	if in.PeerNotInGossip {
		reasons = append(reasons, fmt.Sprintf("peer %s is not seen over gossip: check gossip.key and the gossip ports on both nodes", in.PeerName))
	}
	if in.WitnessConfigured && !in.WitnessAlive {
		reasons = append(reasons, "the witness is not seen: a lost peer cannot be confirmed, so no automatic failover")
	}
	if len(in.LocalUnhealthy) > 0 && !in.Status.claimsActive() {
		reasons = append(reasons, "critical services unhealthy here: "+strings.Join(in.LocalUnhealthy, ", "))
	}
	for _, j := range in.StaleJobs {
		reasons = append(reasons, fmt.Sprintf("replication job %s has not succeeded within its max_age (or never ran)", j))
	}
	return len(reasons) == 0, reasons
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
