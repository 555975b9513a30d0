package main

// BenchmarkFalseTakeovers counts the Standby's automatic takeovers while
// 50% of the packets from the Main to the Standby are lost at random (nft
// numgen), the Main being alive and Active throughout:
//
//	RESMAN_LOSS_DURATION=10m go test -run '^$' -bench FalseTakeovers -benchtime 1x -timeout 40m ./cmd/resman/
//
// It runs once with the default timers and no witness, and once with a
// witness (memberlist then probes indirectly through it). The duration
// defaults to 30 s so that `make bench` stays short.

import (
	"os"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

func BenchmarkFalseTakeovers(b *testing.B) {
	dur := 30 * time.Second
	if v := os.Getenv("RESMAN_LOSS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("RESMAN_LOSS_DURATION: %v", err)
		}
		if d <= 0 {
			b.Fatalf("RESMAN_LOSS_DURATION: want a duration above 0, like 30s, got %q", v)
		}
		dur = d
	}
	for _, withWitness := range []bool{false, true} {
		name := "no-witness"
		if withWitness {
			name = "witness"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				n := falseTakeovers(b, withWitness, dur)
				b.ReportMetric(float64(n), "takeovers")
				b.ReportMetric(float64(n)/dur.Minutes(), "takeovers/min")
			}
		})
	}
}

func falseTakeovers(b *testing.B, withWitness bool, dur time.Duration) int {
	b.StopTimer()
	defer b.StartTimer()
	names := []string{"main", "standby"}
	if withWitness {
		names = append(names, "witness")
	}
	l := newLab(b, names...)
	if withWitness {
		startIn(b, l, "witness", witnessConfig(b, l))
	}
	standby := startIn(b, l, "standby", autoNodeConfig(b, l, "standby", "standby", "main", withWitness))
	main := startIn(b, l, "main", autoNodeConfig(b, l, "main", "main", "standby", withWitness))
	testkit.Eventually(b, func() bool {
		m, s := status(b, main.url), status(b, standby.url)
		return m.Status == "active" && s.HA.Ready && s.Peer != nil && s.Peer.Epoch == m.Epoch
	}, "pair settled")
	l.lose("standby", "main", 50)
	time.Sleep(dur) // the measurement window itself
	l.heal()
	// A log that cannot be read fails the run: it must not count as no
	// takeover.
	n := 0
	for _, e := range auditEntries(b, standby.url) {
		if e.Action == "failover" {
			n++
		}
	}
	return n
}
