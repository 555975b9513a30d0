package cluster_test

// Every test here runs in a testing/synctest bubble: memberlist's timers,
// tickers and time.Now use the bubble's fake clock, and clustertest's
// network is channels and net.Pipe, so the production timers (200ms probe
// interval) run in a few milliseconds of real time and the durations the
// tests read are exact, not racy. Deadlines below are fake time.

import (
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/cluster/clustertest"
	"github.com/resman-pbx/resman/resilience/testkit"
)

func spec(name, role string) clustertest.Spec {
	return clustertest.Spec{Name: name, Meta: cluster.Meta{Role: role, Status: "inactive", Version: "2025.10.3", Healthy: true}}
}

// pair starts a Main (Active, epoch 3) and a Standby and waits until each
// sees the other.
func pair(t *testing.T, h *clustertest.Harness) (main, standby *clustertest.Node) {
	t.Helper()
	m := spec("main", "main")
	m.Meta.Status, m.Meta.Epoch = "active", 3
	ns := h.Start(m, spec("standby", "standby"))
	ns[0].Events.Wait(t, clustertest.IsUp("standby"), 5*time.Second)
	ns[1].Events.Wait(t, clustertest.IsUp("main"), 5*time.Second)
	return ns[0], ns[1]
}

// trio adds a witness to a pair and waits until every member sees both
// others and every Sees is complete.
func trio(t *testing.T, h *clustertest.Harness) (main, standby, witness *clustertest.Node) {
	t.Helper()
	m := spec("main", "main")
	m.Meta.Status, m.Meta.Epoch = "active", 3
	ns := h.Start(m, spec("standby", "standby"), spec("witness", "witness"))
	all := []string{"main", "standby", "witness"}
	testkit.EventuallyWithin(t, 10*time.Second, func() bool {
		for _, n := range ns {
			for _, other := range all {
				if other == n.Name {
					continue
				}
				m, ok := n.Cluster.Member(other)
				if !ok || !m.Alive || len(m.Meta.Sees) != 2 {
					return false
				}
			}
		}
		return true
	}, "everyone sees everyone")
	return ns[0], ns[1], ns[2]
}

func TestPairSeesEachOtherWithMeta(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 1)
		start := time.Now()
		main, standby := pair(t, h)
		if d := time.Since(start); d > time.Second {
			t.Errorf("pair took %s to meet", d)
		}
		up := standby.Events.All()[0]
		want := cluster.Meta{Name: "main", Role: "main", Status: "active", Version: "2025.10.3", Epoch: 3, Healthy: true}
		if up.Kind != cluster.Up || up.Member.Addr != main.Addr() || !up.Member.Alive {
			t.Fatalf("first event of the standby = %+v, want Up of main at %s", up, main.Addr())
		}
		if got := up.Member.Meta; got.Role != want.Role || got.Status != want.Status || got.Epoch != want.Epoch ||
			got.Version != want.Version || !got.Healthy || got.Name != "main" {
			t.Errorf("main's meta seen by the standby = %+v, want %+v", got, want)
		}

		// Each member keeps its own Sees, and the other learns it.
		clustertest.WaitMember(t, standby, "main", func(m cluster.Member) bool {
			return m.Alive && slices.Equal(m.Meta.Sees, []string{"standby"})
		}, 2*time.Second)
		if got := main.Cluster.LocalMeta().Sees; !slices.Equal(got, []string{"standby"}) {
			t.Errorf("main's own Sees = %v", got)
		}
		ms := standby.Cluster.Members()
		if len(ms) != 2 || ms[0].Name != "main" || !ms[0].Alive || ms[1].Name != "standby" || !ms[1].Alive {
			t.Errorf("standby's Members = %+v", ms)
		}
		if v := testkit.Metric(t, standby.Metrics, "resman_gossip_members", map[string]string{"state": "alive"}); v != 2 {
			t.Errorf("resman_gossip_members{state=alive} = %v, want 2", v)
		}
		if _, ok := standby.Cluster.WitnessSees("main"); ok {
			t.Error("a witness verdict without a witness")
		}
	})
}

func TestMetaUpdatePropagates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 2)
		main, standby := pair(t, h)
		standby.Events.Skip()
		start := time.Now()
		m := main.Cluster.LocalMeta()
		m.Status, m.Epoch, m.Healthy = "deactivating", 4, false
		m.Sees = []string{"ignored"}
		main.Cluster.SetMeta(m)
		if d := time.Since(start); d != 0 {
			t.Errorf("SetMeta blocked for %s", d)
		}
		ev := standby.Events.Wait(t, clustertest.HasMeta("main", func(m cluster.Meta) bool {
			return m.Status == "deactivating" && m.Epoch == 4 && !m.Healthy
		}), 2*time.Second)
		if ev.Kind != cluster.Update {
			t.Errorf("kind = %s, want update", ev.Kind)
		}
		if !slices.Equal(ev.Member.Meta.Sees, []string{"standby"}) {
			t.Errorf("Sees = %v: SetMeta must not replace the tracked Sees", ev.Member.Meta.Sees)
		}
		t.Logf("meta update seen by the peer after %s", time.Since(start))
		if d := time.Since(start); d > time.Second {
			t.Errorf("update took %s", d)
		}
	})
}

// A member gossiping an epoch above the maximum is not taken at its
// word: the others keep its previous view, and say so once in their log.
func TestAbsurdEpochMetaIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 3)
		main, standby := pair(t, h)
		clustertest.WaitMember(t, standby, "main", func(m cluster.Member) bool {
			return m.Alive && slices.Equal(m.Meta.Sees, []string{"standby"})
		}, 2*time.Second)
		ofMain := func(ev cluster.Event) bool { return ev.Member.Name == "main" }
		// The view changes before its event reaches the observer: let the
		// event of the view just waited for be counted before the baseline.
		synctest.Wait()
		before := standby.Events.Count(ofMain)
		for _, status := range []string{"inactive", "deactivating", "active"} {
			m := main.Cluster.LocalMeta()
			m.Status, m.Epoch = status, resilience.MaxEpoch+1
			main.Cluster.SetMeta(m)
			time.Sleep(2 * time.Second)
		}
		if c := standby.Events.Count(ofMain) - before; c != 0 {
			t.Errorf("the standby took %d events of the absurd meta: %v", c, standby.Events.All())
		}
		if m, ok := standby.Cluster.Member("main"); !ok || !m.Alive || m.Meta.Epoch != 3 || m.Meta.Status != "active" {
			t.Errorf("the standby's view of main = %+v, want the previous one (active, epoch 3)", m)
		}
		want := "member's meta refused: its epoch is above the maximum"
		if c := countLines(standby.Logs, want); c != 1 {
			t.Errorf("warned %d times, want once; logs:\n%s", c, strings.Join(standby.Logs.Lines(), "\n"))
		}
		for _, l := range standby.Logs.Lines() {
			if strings.Contains(l, want) && !strings.Contains(l, "member=main") {
				t.Errorf("the warning does not name the member: %s", l)
			}
		}

		// A sound meta is taken again.
		m := main.Cluster.LocalMeta()
		m.Status, m.Epoch = "inactive", 4
		main.Cluster.SetMeta(m)
		standby.Events.Wait(t, clustertest.HasMeta("main", func(m cluster.Meta) bool {
			return m.Status == "inactive" && m.Epoch == 4
		}), 2*time.Second)
	})
}

func TestKilledMemberGoesDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 3)
		main, standby := pair(t, h)
		time.Sleep(5 * time.Second) // steady state
		killed := time.Now()
		main.Kill()
		ev := standby.Events.Wait(t, clustertest.IsDown("main"), 10*time.Second)
		took := time.Since(killed)
		t.Logf("Down %s after the kill", took)
		// 200ms probe interval, 100ms timeout, suspicion 2 x 200ms.
		if took > 1500*time.Millisecond {
			t.Errorf("Down after %s, want within 1.5s", took)
		}
		if ev.Member.Alive || ev.Member.Meta.Leaving || ev.Member.Meta.Status != "active" {
			t.Errorf("Down event member = %+v: want not alive, not leaving, last meta kept", ev.Member)
		}
		if m, _ := standby.Cluster.Member("main"); m.Alive {
			t.Error("Members still has main alive")
		}
		if got := standby.Cluster.LocalMeta().Sees; len(got) != 0 {
			t.Errorf("standby's Sees = %v after the Main died", got)
		}
		if n := testkit.Metric(t, standby.Metrics, "resman_gossip_peer_down_seconds", nil); n != 1 {
			t.Errorf("peer_down_seconds count = %v, want 1", n)
		}
		if v := testkit.Metric(t, standby.Metrics, "resman_gossip_members", map[string]string{"state": "down"}); v != 1 {
			t.Errorf("members{state=down} = %v, want 1", v)
		}
	})
}

func TestGracefulStopSaysLeaving(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 4)
		main, standby := pair(t, h)
		stopped := time.Now()
		main.Stop()
		ev := standby.Events.Wait(t, clustertest.IsDown("main"), 5*time.Second)
		if !ev.Member.Meta.Leaving {
			t.Errorf("Down after a graceful stop without Leaving: %+v", ev.Member)
		}
		if d := time.Since(stopped); d > time.Second {
			t.Errorf("graceful Down took %s", d)
		}
		select {
		case _, ok := <-main.Cluster.Events():
			if ok {
				t.Error("Events still open after Run returned")
			}
		default:
		}
	})
}

func TestPartitionThenRejoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 5)
		main, standby := pair(t, h)
		rejoins := func(n *clustertest.Node, result string) float64 {
			return testkit.Metric(t, n.Metrics, "resman_gossip_rejoins_total", map[string]string{"result": result})
		}
		// One or two joins at start: a member does not join a peer that
		// has already joined it.
		okBefore := rejoins(main, "ok") + rejoins(standby, "ok")
		h.Net.Partition("main", "standby")
		cut := time.Now()
		standby.Events.Wait(t, clustertest.IsDown("main"), 5*time.Second)
		main.Events.Wait(t, clustertest.IsDown("standby"), 5*time.Second)
		t.Logf("both Down %s after the cut", time.Since(cut))

		time.Sleep(30 * time.Second)
		h.Net.Heal()
		healed := time.Now()
		standby.Events.Wait(t, clustertest.IsUp("main"), 5*time.Second)
		main.Events.Wait(t, clustertest.IsUp("standby"), 5*time.Second)
		t.Logf("both Up again %s after the heal", time.Since(healed))
		// At worst a join dialled just before the heal fails at the TCP
		// timeout (2 s here: 10 probe intervals), and the next comes a
		// RejoinInterval (1 s) later: 3 s and the join's own time. (The
		// retries' phase varies, and a bound of 3 s failed at 3.009 s.)
		if d := time.Since(healed); d > 4*time.Second {
			t.Errorf("re-merge took %s, want within the TCP timeout (2s) and a RejoinInterval (1s), and a second of slack", d)
		}
		// The Up events come from inside the rejoin's Join: wait for it to
		// return and count.
		testkit.EventuallyWithin(t, time.Second, func() bool {
			return rejoins(main, "ok")+rejoins(standby, "ok") > okBefore &&
				(main.Logs.Contains("rejoined gossip member") || standby.Logs.Contains("rejoined gossip member"))
		}, "a rejoin counted ok and logged")
		// About one failed attempt per RejoinInterval (1s, jittered) each,
		// each blocked up to the TCP timeout (2s) on the cut link.
		if failed := rejoins(main, "failed") + rejoins(standby, "failed"); failed < 10 {
			t.Errorf("rejoins failed = %v during a 30s partition, want about 20", failed)
		}
	})
}

// TestNoRemergeWithoutRejoin documents why Run rejoins: with the rejoin
// loop off, two members that declared each other dead stay apart after the
// network heals (memberlist issue 222), even after a short partition.
func TestNoRemergeWithoutRejoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 6)
		h.Options = func(o *cluster.Options) { o.RejoinInterval = 24 * time.Hour }
		main, standby := pair(t, h)
		h.Net.Partition("main", "standby")
		standby.Events.Wait(t, clustertest.IsDown("main"), 5*time.Second)
		main.Events.Wait(t, clustertest.IsDown("standby"), 5*time.Second)
		time.Sleep(3 * time.Second)
		h.Net.Heal()
		time.Sleep(5 * time.Minute)
		if main.Sees("standby") || standby.Sees("main") {
			t.Fatal("memberlist re-merged by itself: the rejoin loop may no longer be needed")
		}
	})
}

// TestWitnessCarriesTheDirectLinkCut: with the Main-Standby link cut and
// both reaching the witness, memberlist's indirect probes go through the
// witness, so neither node declares the other Down, and gossip (meta
// updates) also flows through the witness. Measured: zero Down events in
// five minutes; a meta update arrives within a second.
func TestWitnessCarriesTheDirectLinkCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 7)
		main, standby, witness := trio(t, h)
		h.Net.Partition("main", "standby")
		time.Sleep(5 * time.Minute)
		for _, n := range []*clustertest.Node{main, standby, witness} {
			if c := n.Events.Count(clustertest.IsKind(cluster.Down)); c != 0 {
				t.Errorf("%s saw %d Down events: %v", n.Name, c, n.Events.All())
			}
		}
		if !standby.Sees("main") || !main.Sees("standby") {
			t.Error("the nodes lost sight of each other")
		}
		if sees, ok := standby.Cluster.WitnessSees("main"); !ok || !sees {
			t.Errorf("witness verdict on main = sees %t, available %t; want sees", sees, ok)
		}

		standby.Events.Skip()
		sent := time.Now()
		m := main.Cluster.LocalMeta()
		m.Status, m.Epoch = "deactivating", 9
		main.Cluster.SetMeta(m)
		standby.Events.Wait(t, clustertest.HasMeta("main", func(m cluster.Meta) bool { return m.Epoch == 9 }), 2*time.Second)
		t.Logf("meta update through the witness in %s", time.Since(sent))
	})
}

// TestWitnessVerdictWhenMainDies: the positive case: the Main is gone for
// everyone, so the witness stops listing it and the Standby can read that.
func TestWitnessVerdictWhenMainDies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 8)
		main, standby, _ := trio(t, h)
		main.Kill()
		standby.Events.Wait(t, clustertest.IsDown("main"), 5*time.Second)
		testkit.EventuallyWithin(t, 5*time.Second, func() bool {
			sees, ok := standby.Cluster.WitnessSees("main")
			return ok && !sees
		}, "the witness's verdict: main not seen")
	})
}

// TestIsolatedStandbyHasNoVerdict: a Standby cut from everyone sees both
// others Down, and so has no witness verdict (it must not activate); the
// Main and the witness see only the Standby Down. After the heal the
// Standby rejoins both.
func TestIsolatedStandbyHasNoVerdict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 9)
		main, standby, witness := trio(t, h)
		h.Net.Isolate("standby")
		testkit.EventuallyWithin(t, 5*time.Second, func() bool {
			return standby.Events.Count(clustertest.IsDown("main")) == 1 && standby.Events.Count(clustertest.IsDown("witness")) == 1
		}, "the standby sees both others Down")
		main.Events.Wait(t, clustertest.IsDown("standby"), 5*time.Second)
		witness.Events.Wait(t, clustertest.IsDown("standby"), 5*time.Second)
		if _, ok := standby.Cluster.WitnessSees("main"); ok {
			t.Error("the isolated Standby still has a witness verdict")
		}
		clustertest.WaitMember(t, main, "witness", func(m cluster.Member) bool {
			return m.Alive && slices.Equal(m.Meta.Sees, []string{"main"})
		}, 5*time.Second)
		if sees, ok := main.Cluster.WitnessSees("standby"); !ok || sees {
			t.Errorf("Main's witness verdict on the standby = sees %t, available %t", sees, ok)
		}
		time.Sleep(20 * time.Second)
		if c := main.Events.Count(clustertest.IsDown("witness")); c != 0 {
			t.Errorf("main saw the witness Down %d times", c)
		}

		h.Net.Heal()
		standby.Events.Wait(t, clustertest.IsUp("main"), 5*time.Second)
		standby.Events.Wait(t, clustertest.IsUp("witness"), 5*time.Second)
		testkit.EventuallyWithin(t, 5*time.Second, func() bool {
			sees, ok := main.Cluster.WitnessSees("standby")
			return ok && sees
		}, "the witness sees the standby again")
	})
}

func TestWrongKeyIsRefusedAndCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 10)
		main, standby := pair(t, h)
		intruder := h.Start(clustertest.Spec{
			Name: "intruder", Meta: cluster.Meta{Role: "standby"},
			Key: []byte("another-key-0123456789abcdefghij"),
		})[0]
		time.Sleep(10 * time.Second)

		for _, n := range []*clustertest.Node{main, standby} {
			if c := n.Events.Count(func(ev cluster.Event) bool { return ev.Member.Name == "intruder" }); c != 0 {
				t.Errorf("%s has %d events of the intruder", n.Name, c)
			}
			if _, ok := n.Cluster.Member("intruder"); ok {
				t.Errorf("%s lists the intruder", n.Name)
			}
			if v := testkit.Metric(t, n.Metrics, "resman_gossip_rejected_total", nil); v < 5 {
				t.Errorf("%s: resman_gossip_rejected_total = %v, want one per join attempt (about 10)", n.Name, v)
			}
			want := "gossip from " + intruder.Addr() + " rejected: wrong gossip.key?"
			if !n.Logs.Contains(want) {
				t.Errorf("%s did not log %q; logs:\n%s", n.Name, want, strings.Join(n.Logs.Lines(), "\n"))
			}
			if c := countLines(n.Logs, "rejected: wrong gossip.key?"); c != 1 {
				t.Errorf("%s warned %d times, want once (rate-limited)", n.Name, c)
			}
		}
		if ms := intruder.Cluster.Members(); len(ms) != 1 {
			t.Errorf("the intruder sees %v", ms)
		}
		if !intruder.Logs.Contains("gossip to " + main.Addr() + " rejected: wrong gossip.key?") {
			t.Errorf("the intruder did not log its refusal; logs:\n%s", strings.Join(intruder.Logs.Lines(), "\n"))
		}
		if v := testkit.Metric(t, intruder.Metrics, "resman_gossip_rejected_total", nil); v < 5 {
			t.Errorf("intruder: resman_gossip_rejected_total = %v", v)
		}
		if c := main.Events.Count(clustertest.IsKind(cluster.Down)); c != 0 {
			t.Errorf("the pair was disturbed: %v", main.Events.All())
		}
	})
}

func countLines(l *clustertest.LogRecorder, s string) int {
	n := 0
	for _, line := range l.Lines() {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// TestLossOnTheDirectLinkWithWitness: 30% packet loss (and 30% of dials
// failing) between Main and Standby for five minutes, with a clean path
// through the witness: indirect probes through the witness always answer,
// so no member ever goes Down. The count is not a timing assertion: any
// Down at all would be a false failover trigger.
func TestLossOnTheDirectLinkWithWitness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 11)
		main, standby, witness := trio(t, h)
		dropped := h.Net.Dropped()
		h.Net.Loss("main", "standby", 0.3)
		time.Sleep(5 * time.Minute)
		if h.Net.Dropped()-dropped < 100 {
			t.Fatalf("only %d packets dropped: the loss did not bite", h.Net.Dropped()-dropped)
		}
		for _, n := range []*clustertest.Node{main, standby, witness} {
			if c := n.Events.Count(clustertest.IsKind(cluster.Down)); c != 0 {
				t.Errorf("%s saw %d Down events under loss: %v", n.Name, c, n.Events.All())
			}
		}
	})
}

// TestDetectionTime measures, in fake time, how long after a kill the
// survivor reports Down, with resman's defaults and with memberlist's LAN
// defaults. Run with -v to read the numbers.
func TestDetectionTime(t *testing.T) {
	cases := []struct {
		name     string
		tune     func(*cluster.Options)
		min, max time.Duration
	}{
		{"resman defaults 200ms/100ms/x2", func(*cluster.Options) {}, 300 * time.Millisecond, 1500 * time.Millisecond},
		{"memberlist LAN 1s/500ms/x4", func(o *cluster.Options) {
			o.ProbeInterval, o.ProbeTimeout, o.SuspicionMult = time.Second, 500*time.Millisecond, 4
		}, 2 * time.Second, 10 * time.Second},
	}
	for _, tc := range cases {
		var took []time.Duration
		for trial := range 5 {
			synctest.Test(t, func(t *testing.T) {
				h := clustertest.New(t, uint64(100+trial))
				h.Options = tc.tune
				main, standby := pair(t, h)
				// Kill at a different phase of the probe cycle each time.
				time.Sleep(3*time.Second + time.Duration(trial)*137*time.Millisecond)
				killed := time.Now()
				main.Kill()
				standby.Events.Wait(t, clustertest.IsDown("main"), 30*time.Second)
				took = append(took, time.Since(killed))
			})
		}
		t.Logf("%s: Down after %v", tc.name, took)
		for _, d := range took {
			if d < tc.min || d > tc.max {
				t.Errorf("%s: Down after %s, want between %s and %s", tc.name, d, tc.min, tc.max)
			}
		}
	}
}

// TestLossOnTheOnlyLink measures what a pair without a witness makes of a
// lossy link: loss on the only path can defeat a probe and its TCP fallback
// together, and there is no other member to probe through. The counts are
// logged, not asserted: they depend on scheduling (measured over 150 runs:
// 0 Down events at 10% loss in 99% of the runs, 1 in the others; 2 to 9 at
// 30%). TestLossOnTheDirectLinkWithWitness is the assertion on the count.
// What is asserted here does not depend on scheduling: the loss did bite,
// and whatever Down events it caused, the pair is back together once the
// link is clean again (the rejoin loop undoes a false Down).
func TestLossOnTheOnlyLink(t *testing.T) {
	for _, loss := range []float64{0.1, 0.3} {
		synctest.Test(t, func(t *testing.T) {
			h := clustertest.New(t, 12)
			main, standby := pair(t, h)
			dropped := h.Net.Dropped()
			h.Net.Loss("main", "standby", loss)
			time.Sleep(5 * time.Minute)
			if n := h.Net.Dropped() - dropped; n < 100 {
				t.Fatalf("%.0f%% loss: only %d packets dropped in 5 min: the loss did not bite", loss*100, n)
			}
			downs := main.Events.Count(clustertest.IsKind(cluster.Down)) + standby.Events.Count(clustertest.IsKind(cluster.Down))
			t.Logf("%.0f%% loss for 5 min, no witness: %d Down events", loss*100, downs)
			h.Net.Heal()
			testkit.EventuallyWithin(t, 10*time.Second, func() bool {
				return main.Sees("standby") && standby.Sees("main")
			}, "the pair together again after the loss")
		})
	}
}
