package cluster_test

// These tests use the real network on the loopback address, in real time,
// with tight timers; the rest of the suite runs on clustertest's in-memory
// network in synctest bubbles.

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/cluster/clustertest"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestNewRefusesBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts cluster.Options
		want string
	}{
		{"no name", cluster.Options{Bind: "127.0.0.1:0", Key: testKey}, "empty name"},
		{"short key", cluster.Options{Name: "a", Bind: "127.0.0.1:0", Key: []byte("short")}, "gossip key of 5 bytes"},
		{"no key", cluster.Options{Name: "a", Bind: "127.0.0.1:0"}, "gossip key missing"},
		{"bad bind", cluster.Options{Name: "a", Bind: "127.0.0.1", Key: testKey}, "bind"},
		{"advertise name", cluster.Options{Name: "a", Bind: "127.0.0.1:0", Key: testKey, Advertise: "host:7946"}, "advertise"},
		{"timeout >= interval", cluster.Options{Name: "a", Bind: "127.0.0.1:0", Key: testKey,
			ProbeInterval: time.Second, ProbeTimeout: time.Second}, "shorter than probe interval"},
	} {
		_, err := cluster.New(tc.opts, cluster.Meta{})
		if !errors.Is(err, cluster.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrInvalid with %q", tc.name, err, tc.want)
		}
	}
}

func TestNewReportsBindFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = cluster.New(cluster.Options{Name: "a", Bind: l.Addr().String(), Key: testKey}, cluster.Meta{})
	if err == nil || !strings.Contains(err.Error(), "start gossip on "+l.Addr().String()) {
		t.Fatalf("err = %v, want a bind failure naming the address", err)
	}
	t.Log(err)
}

func TestMetricsAreFreedAtShutdown(t *testing.T) {
	reg := prometheus.NewRegistry()
	n1, n2 := clustertest.NewNetwork(1), clustertest.NewNetwork(2)
	defer n1.Close()
	defer n2.Close()
	opts := cluster.Options{Name: "a", Key: testKey, Registerer: reg, Transport: n1.Transport("a")}
	c, err := cluster.New(opts, cluster.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	opts.Transport = n2.Transport("a")
	if _, err := cluster.New(opts, cluster.Meta{}); err == nil {
		t.Fatal("a second Cluster on the same registerer was accepted")
	}
	c.Shutdown()
	c2, err := cluster.New(opts, cluster.Meta{})
	if err != nil {
		t.Fatalf("after Shutdown: %v", err)
	}
	c2.Shutdown()
	if err := c2.Run(context.Background()); err != nil {
		t.Errorf("Run after Shutdown = %v", err)
	}
}

func TestRealNetworkPair(t *testing.T) {
	if testing.Short() {
		t.Skip("real network")
	}
	tight := func(name string, join ...string) cluster.Options {
		return cluster.Options{
			Name: name, Bind: "127.0.0.1:0", Key: testKey, Join: join,
			ProbeInterval: 50 * time.Millisecond, ProbeTimeout: 25 * time.Millisecond, SuspicionMult: 2,
			RejoinInterval: 100 * time.Millisecond,
		}
	}
	a, err := cluster.New(tight("a"), cluster.Meta{Role: "main", Status: "active", Epoch: 2})
	if err != nil {
		t.Fatal(err)
	}
	b, err := cluster.New(tight("b", a.Addr()), cluster.Meta{Role: "standby", Status: "inactive"})
	if err != nil {
		a.Shutdown()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aDone := make(chan error, 1)
	go func() { aDone <- a.Run(ctx) }()
	bCtx, bStop := context.WithCancel(ctx)
	bDone := make(chan error, 1)
	go func() { bDone <- b.Run(bCtx) }()
	defer a.Shutdown()
	defer b.Shutdown()

	ao, bo := clustertest.Observe(a), clustertest.Observe(b)
	ev := bo.Wait(t, clustertest.IsUp("a"), 5*time.Second)
	if ev.Member.Meta.Epoch != 2 || ev.Member.Addr != a.Addr() {
		t.Errorf("b sees a as %+v", ev.Member)
	}
	ao.Wait(t, clustertest.IsUp("b"), 5*time.Second)

	bStop()
	if err := <-bDone; err != nil {
		t.Errorf("b.Run = %v", err)
	}
	ev = ao.Wait(t, clustertest.IsDown("b"), 5*time.Second)
	if !ev.Member.Meta.Leaving {
		t.Errorf("graceful stop not seen as leaving: %+v", ev.Member)
	}
	cancel()
	if err := <-aDone; err != nil {
		t.Errorf("a.Run = %v", err)
	}
}
