package cluster_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/cluster/clustertest"
	"github.com/resman-pbx/resman/resilience/testkit"
)

var newKey = []byte("the-new-gossip-key-0123456789abc")

// seeAll asserts that every member of ns sees every other one alive.
func seeAll(t *testing.T, when string, ns ...*clustertest.Node) {
	t.Helper()
	for _, n := range ns {
		for _, o := range ns {
			if o != n && !n.Sees(o.Name) {
				t.Errorf("%s: %s does not see %s", when, n.Name, o.Name)
			}
		}
	}
}

// checkKeys asserts n's keyring, by Keys and by its metrics.
func checkKeys(t *testing.T, n *clustertest.Node, primary []byte, extra ...[]byte) {
	t.Helper()
	want := cluster.KeyInfo{Primary: cluster.Fingerprint(primary)}
	for _, k := range extra {
		want.Extra = append(want.Extra, cluster.Fingerprint(k))
	}
	got := n.Cluster.Keys()
	if got.Primary != want.Primary || !slices.Equal(got.Extra, want.Extra) {
		t.Errorf("%s: keys %s, want %s", n.Name, got, want)
	}
	if v := testkit.Metric(t, n.Metrics, "resman_gossip_keys", nil); v != float64(want.Count()) {
		t.Errorf("%s: resman_gossip_keys = %v, want %d", n.Name, v, want.Count())
	}
	if v := testkit.Metric(t, n.Metrics, "resman_gossip_key_info", map[string]string{"fingerprint": want.Primary, "primary": "true"}); v != 1 {
		t.Errorf("%s: resman_gossip_key_info{fingerprint=%s,primary=true} = %v", n.Name, want.Primary, v)
	}
	for _, fp := range want.Extra {
		if v := testkit.Metric(t, n.Metrics, "resman_gossip_key_info", map[string]string{"fingerprint": fp, "primary": "false"}); v != 1 {
			t.Errorf("%s: resman_gossip_key_info{fingerprint=%s,primary=false} = %v", n.Name, fp, v)
		}
	}
}

// TestKeyRotationWithoutAGap takes Main, Standby and witness through the
// three steps of a key rotation, one member at a time, and checks after
// each member's change (a few probe rounds and a full state exchange
// later) that everyone still sees everyone: no Down event and not one
// packet refused, from start to end. A member with only the new key is
// refused before the rotation, one with only the old key after it.
func TestKeyRotationWithoutAGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 21)
		oldKey := h.Key
		main, standby, witness := trio(t, h)
		all := []*clustertest.Node{main, standby, witness}

		// Before step 1 the new key is a wrong key, as today.
		early := h.Start(clustertest.Spec{Name: "early", Meta: cluster.Meta{Role: "standby"}, Key: newKey})[0]
		time.Sleep(5 * time.Second)
		for _, n := range all {
			if _, ok := n.Cluster.Member("early"); ok {
				t.Errorf("%s lists a member that has only the new key, before step 1", n.Name)
			}
		}
		if ms := early.Cluster.Members(); len(ms) != 1 {
			t.Errorf("the member with only the new key sees %v", ms)
		}
		early.Kill()

		rejected := map[string]float64{}
		for _, n := range all {
			rejected[n.Name] = testkit.Metric(t, n.Metrics, "resman_gossip_rejected_total", nil)
			n.Events.Skip()
			checkKeys(t, n, oldKey)
		}
		steps := []struct {
			name    string
			primary []byte
			extra   [][]byte
		}{
			{"step 1 (accept the new key)", oldKey, [][]byte{newKey}},
			{"step 2 (encrypt with the new key)", newKey, [][]byte{oldKey}},
			{"step 3 (forget the old key)", newKey, nil},
		}
		for _, st := range steps {
			for _, n := range all {
				changed, err := n.Cluster.SetKeys(st.primary, st.extra)
				if err != nil || !changed {
					t.Fatalf("%s on %s: changed %v, %v", st.name, n.Name, changed, err)
				}
				checkKeys(t, n, st.primary, st.extra...)
				// Probes every 200ms, gossip, and a push/pull (every 6s)
				// with the rings as they are now.
				time.Sleep(7 * time.Second)
				seeAll(t, st.name+" done on "+n.Name, all...)
			}
		}
		for _, n := range all {
			if c := n.Events.Count(clustertest.IsKind(cluster.Down)); c != 0 {
				t.Errorf("%s saw %d Down events during the rotation: %v", n.Name, c, n.Events.All())
			}
			if v := testkit.Metric(t, n.Metrics, "resman_gossip_rejected_total", nil); v != rejected[n.Name] {
				t.Errorf("%s refused %v packets during the rotation", n.Name, v-rejected[n.Name])
			}
		}
		if changed, err := main.Cluster.SetKeys(newKey, nil); changed || err != nil {
			t.Errorf("the same keys again: changed %v, %v", changed, err)
		}

		// The old key is gone: a member with only the old key is refused,
		// one with only the new key joins.
		late := h.Start(clustertest.Spec{Name: "late", Meta: cluster.Meta{Role: "standby"}, Key: oldKey})[0]
		fresh := h.Start(clustertest.Spec{Name: "fresh", Meta: cluster.Meta{Role: "standby"}, Key: newKey})[0]
		testkit.EventuallyWithin(t, 10*time.Second, func() bool {
			return main.Sees("fresh") && standby.Sees("fresh") && witness.Sees("fresh")
		}, "the member with the new key is seen")
		time.Sleep(5 * time.Second)
		for _, n := range append(all, fresh) {
			if _, ok := n.Cluster.Member("late"); ok {
				t.Errorf("%s lists a member that has only the old key, after step 3", n.Name)
			}
		}
		if ms := late.Cluster.Members(); len(ms) != 1 {
			t.Errorf("the member with only the old key sees %v", ms)
		}
	})
}

// TestKeyRotationOutOfOrderCutsOff: a member that encrypts with the new key
// before the other accepts it (step 2 before step 1 is done everywhere)
// is cut off, as with a wrong key; when the other catches up, the rejoin
// loop brings them back together. The rotation test's checks do catch a
// gap.
func TestKeyRotationOutOfOrderCutsOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 22)
		oldKey := h.Key
		main, standby := pair(t, h)
		if _, err := main.Cluster.SetKeys(newKey, [][]byte{oldKey}); err != nil {
			t.Fatal(err)
		}
		standby.Events.Wait(t, clustertest.IsDown("main"), 5*time.Second)
		main.Events.Wait(t, clustertest.IsDown("standby"), 5*time.Second)
		if v := testkit.Metric(t, standby.Metrics, "resman_gossip_rejected_total", nil); v == 0 {
			t.Error("the standby refused nothing")
		}
		if !standby.Logs.Contains("gossip from " + main.Addr() + " rejected: wrong gossip.key?") {
			t.Errorf("the standby does not warn; logs:\n%s", strings.Join(standby.Logs.Lines(), "\n"))
		}

		// The standby catches up with step 1: they meet again.
		if _, err := standby.Cluster.SetKeys(oldKey, [][]byte{newKey}); err != nil {
			t.Fatal(err)
		}
		standby.Events.Wait(t, clustertest.IsUp("main"), 5*time.Second)
		main.Events.Wait(t, clustertest.IsUp("standby"), 5*time.Second)
	})
}

// TestSetKeysKeepsOtherExtraKeys: with another extra key kept through a
// rotation, the old key is not the last of the ring when it is removed;
// the kept key stays accepted and nobody loses sight of anyone (under
// -race: the ring is never changed in place).
func TestSetKeysKeepsOtherExtraKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 23)
		oldKey, kept := h.Key, []byte("kept-key-0123456")
		h.Options = func(o *cluster.Options) { o.ExtraKeys = [][]byte{kept} }
		main, standby := pair(t, h)
		checkKeys(t, main, oldKey, kept)
		for _, step := range []struct {
			primary []byte
			extra   [][]byte
		}{{oldKey, [][]byte{kept, newKey}}, {newKey, [][]byte{oldKey, kept}}, {newKey, [][]byte{kept}}} {
			for _, n := range []*clustertest.Node{main, standby} {
				if _, err := n.Cluster.SetKeys(step.primary, step.extra); err != nil {
					t.Fatal(err)
				}
				time.Sleep(7 * time.Second)
				seeAll(t, "after a step", main, standby)
			}
		}
		checkKeys(t, main, newKey, kept)
		checkKeys(t, standby, newKey, kept)
		if c := main.Events.Count(clustertest.IsKind(cluster.Down)) + standby.Events.Count(clustertest.IsKind(cluster.Down)); c != 0 {
			t.Errorf("%d Down events", c)
		}
		if v := testkit.Metric(t, main.Metrics, "resman_gossip_rejected_total", nil) +
			testkit.Metric(t, standby.Metrics, "resman_gossip_rejected_total", nil); v != 0 {
			t.Errorf("%v packets refused", v)
		}
		// A member whose primary is the kept key is accepted by both.
		other := h.Start(clustertest.Spec{Name: "other", Meta: cluster.Meta{Role: "witness"}, Key: kept,
			Tune: func(o *cluster.Options) { o.ExtraKeys = [][]byte{newKey} }})[0]
		testkit.EventuallyWithin(t, 10*time.Second, func() bool {
			return main.Sees("other") && standby.Sees("other") && other.Sees("main")
		}, "the member with the kept key is seen")
	})
}

func TestSetKeysRefusesBadKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := clustertest.New(t, 24)
		n := h.Start(spec("main", "main"))[0]
		for _, tt := range []struct {
			primary []byte
			extra   [][]byte
		}{{nil, nil}, {[]byte("short"), nil}, {newKey, [][]byte{[]byte("short")}}} {
			if _, err := n.Cluster.SetKeys(tt.primary, tt.extra); !errors.Is(err, cluster.ErrInvalid) {
				t.Errorf("SetKeys(%d bytes, %d extra): %v, want ErrInvalid", len(tt.primary), len(tt.extra), err)
			}
		}
		checkKeys(t, n, h.Key)
		// A repeat of the primary, or of another extra key, is one key.
		if _, err := n.Cluster.SetKeys(h.Key, [][]byte{newKey, h.Key, newKey}); err != nil {
			t.Fatal(err)
		}
		checkKeys(t, n, h.Key, newKey)
		// The logs name keys by fingerprint only.
		for _, l := range n.Logs.Lines() {
			if strings.Contains(l, string(h.Key)) || strings.Contains(l, string(newKey)) {
				t.Errorf("a log line shows a key: %s", l)
			}
		}
		if !n.Logs.Contains("gossip keys changed") || !n.Logs.Contains(cluster.Fingerprint(newKey)) {
			t.Errorf("the change is not logged by fingerprint:\n%s", strings.Join(n.Logs.Lines(), "\n"))
		}
	})
}

func TestFingerprint(t *testing.T) {
	// printf %s MDEyMzQ1Njc4OWFiY2RlZg== | base64 -d | sha256sum | cut -c1-8
	if got := cluster.Fingerprint([]byte("0123456789abcdef")); got != "9f9f5111" {
		t.Errorf("Fingerprint = %s, want 9f9f5111", got)
	}
}
