package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// cutPort drops every packet between hosts a and b to or from port (TCP
// and UDP, both directions, at a): one protocol's path cut, the rest of
// the link working.
func (l *lab) cutPort(a, b string, port int) {
	ha, hb := l.host(a), l.host(b)
	p := fmt.Sprint(port)
	for _, dir := range [][2]string{{"in", "saddr"}, {"out", "daddr"}} {
		for _, th := range []string{"sport", "dport"} {
			l.inNS(ha, "nft", "add", "rule", "inet", "rmlab", dir[0], "ip", dir[1], hb.ip, "th", th, p, "drop")
		}
	}
}

// Gossip alone lost (its port cut between the nodes) while the Main runs
// and its host answers: the Standby does not take over; it shows the Main
// as seen over the second path. Once the whole link is cut, it takes over
// and its audit entry says what the second path said. Real processes in
// network namespaces.
func TestGossipCutSecondPathHolds(t *testing.T) {
	skipShort(t)
	a := newAutoPair(t, false)
	a.lab.cutPort("standby", "main", 7946)
	testkit.Eventually(t, func() bool {
		s := status(t, a.standbyURL)
		return s.Peer != nil && s.Peer.Via == api.ViaSecondPath && s.Peer.Reachable && s.Peer.Status == "active"
	}, "the standby shows the main over the second path (gossip lost it)")
	// The proof that nothing moved is the audit log, which records every
	// transition with its cause: sampled status could miss a short one.
	for _, e := range auditEntries(t, a.standbyURL) {
		if e.Action == "failover" {
			t.Fatalf("the standby took over while the main answered over the second path: %+v", e)
		}
	}
	if m := status(t, a.mainURL); m.Status != "active" {
		t.Fatalf("the main is %s", m.Status)
	}

	a.lab.cut("standby", "main")
	testkit.Eventually(t, func() bool { return status(t, a.standbyURL).Status == "active" }, "the standby active once the whole link is cut")
	for _, e := range auditEntries(t, a.standbyURL) {
		if e.Action == "failover" {
			if !strings.Contains(e.Cause, "second path") {
				t.Fatalf("the takeover's cause does not say what the second path said: %q", e.Cause)
			}
			return
		}
	}
	t.Fatal("no failover entry in the standby's audit log")
}
