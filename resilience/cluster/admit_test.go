package cluster_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/cluster/clustertest"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// configuredTrio starts a Main, a Standby and a witness that each admit
// only the others, as resman's config makes them: the nodes know the
// peer's name and address and the witness's address, the witness knows
// the nodes' addresses.
func configuredTrio(t *testing.T, h *clustertest.Harness) (main, standby, witness *clustertest.Node) {
	t.Helper()
	node := func(name, role, peer, peerRole string) clustertest.Spec {
		s := spec(name, role)
		s.Expected = func(addr func(string) string) []cluster.Expected {
			return []cluster.Expected{
				{Name: peer, Addr: addr(peer), Roles: []string{peerRole}, Key: "peer.gossip"},
				{Addr: addr("witness"), Roles: []string{"witness"}, Key: "failover.witness"},
			}
		}
		return s
	}
	m := node("main", "main", "standby", "standby")
	m.Meta.Status, m.Meta.Epoch = "active", 4
	w := spec("witness", "witness")
	w.Expected = func(addr func(string) string) []cluster.Expected {
		return []cluster.Expected{
			{Addr: addr("main"), Roles: []string{"main", "standby"}, Key: "gossip.join"},
			{Addr: addr("standby"), Roles: []string{"main", "standby"}, Key: "gossip.join"},
		}
	}
	ns := h.Start(m, node("standby", "standby", "main", "main"), w)
	testkit.EventuallyWithin(t, 10*time.Second, func() bool {
		for _, n := range ns {
			for _, other := range []string{"main", "standby", "witness"} {
				if mem, ok := n.Cluster.Member(other); other != n.Name && (!ok || !mem.Alive) {
					return false
				}
			}
		}
		return true
	}, "everyone sees everyone")
	return ns[0], ns[1], ns[2]
}

func isRefused(name, why string) func(cluster.Event) bool {
	return func(ev cluster.Event) bool {
		return ev.Kind == cluster.Refused && ev.Member.Name == name && strings.Contains(ev.Reason, why)
	}
}

// TestForgedMembersAreRefused: a member that holds the gossip key but is
// not configured cannot stand in for the dead peer, act as the witness, or
// join at all; the configured members still work.
func TestForgedMembersAreRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 21)
		main, standby, witness := configuredTrio(t, h)
		standby.Kill()
		main.Events.Wait(t, clustertest.IsDown("standby"), 5*time.Second)

		// The peer's name while the real peer is down, claiming Active at
		// a far higher epoch: what made the Main step down.
		forged := spec("standby", "standby")
		forged.Meta.Status, forged.Meta.Epoch, forged.Join = "active", 1001, []string{"main", "witness"}
		h.Start(forged)
		ev := main.Events.Wait(t, isRefused("standby", "announces address"), 5*time.Second)
		if !strings.Contains(ev.Reason, "peer.gossip") {
			t.Errorf("the refusal does not name the key to check: %q", ev.Reason)
		}
		// Any member announcing role witness counted as the witness.
		fake := spec("witness-2", "witness")
		fake.Join = []string{"main"}
		h.Start(fake)
		main.Events.Wait(t, isRefused("witness-2", "neither its name nor its address"), 5*time.Second)
		// The peer's address cannot carry another name or role either.
		intruder := spec("intruder", "main")
		intruder.Join = []string{"main", "witness"}
		h.Start(intruder)
		main.Events.Wait(t, isRefused("intruder", "not a configured member"), 5*time.Second)
		witness.Events.Wait(t, isRefused("intruder", "not a configured member"), 5*time.Second)
		time.Sleep(10 * time.Second) // the forgers keep announcing and rejoining

		if m, ok := main.Cluster.Member("standby"); !ok || m.Alive || m.Meta.Epoch == 1001 {
			t.Errorf("main's view of standby = %+v, want the real one, down", m)
		}
		for _, name := range []string{"witness-2", "intruder"} {
			if _, ok := main.Cluster.Member(name); ok {
				t.Errorf("main lists %s", name)
			}
		}
		if c := main.Events.Count(func(ev cluster.Event) bool {
			return ev.Kind != cluster.Refused && (ev.Member.Name == "intruder" || ev.Member.Name == "witness-2" ||
				ev.Member.Name == "standby" && ev.Member.Meta.Epoch == 1001)
		}); c != 0 {
			t.Errorf("main took %d events of forged members: %v", c, main.Events.All())
		}
		if sees, ok := main.Cluster.WitnessSees("standby"); !ok || sees {
			t.Errorf("witness verdict on standby = (%t, %t), want the real witness's: not seen", sees, ok)
		}
		if v := testkit.Metric(t, main.Metrics, "resman_gossip_members_refused_total", nil); v < 3 {
			t.Errorf("resman_gossip_members_refused_total = %v, want a count per refused announcement", v)
		}
		// One warning per member, address and reason, however often it
		// announces itself.
		if c := countLines(main.Logs, "gossip member refused"); c != 3 {
			t.Errorf("main warned %d times, want 3 (one per forger); logs:\n%s", c, strings.Join(main.Logs.Lines(), "\n"))
		}
		if c := main.Events.Count(clustertest.IsKind(cluster.Refused)); c != 3 {
			t.Errorf("main has %d Refused events, want 3", c)
		}
	})
}
