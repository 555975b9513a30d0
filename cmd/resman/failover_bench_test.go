package main

// BenchmarkFailover measures, with real processes in network namespaces,
// the time from kill -9 of the Active Main to the Standby answering Active
// on /active (its services started), over fresh pairs:
//
//	go test -run '^$' -bench Failover -benchtime 10x ./cmd/resman/
//
// "default" runs the shipped gossip timers; "tuned" a faster set
// (probe_interval 100ms, probe_timeout 50ms, suspicion_mult 1). It reports
// the median and the spread (min, max) in milliseconds.

import (
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

func BenchmarkFailover(b *testing.B) {
	for _, tc := range []struct {
		name, gossip string
	}{
		{"default", ""},
		{"tuned", "probe_interval: 100ms, probe_timeout: 50ms, suspicion_mult: 1, "},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var d []time.Duration
			for range b.N {
				d = append(d, failoverOnce(b, tc.gossip))
			}
			slices.Sort(d)
			b.ReportMetric(float64(d[len(d)/2].Milliseconds()), "median-ms")
			b.ReportMetric(float64(d[0].Milliseconds()), "min-ms")
			b.ReportMetric(float64(d[len(d)-1].Milliseconds()), "max-ms")
		})
	}
}

// replaceInFile replaces the first old in the file at path with new,
// failing when it cannot: a variant whose setting was silently not applied
// would measure the default under the variant's name.
func replaceInFile(tb testing.TB, path, old, new string) {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if !strings.Contains(string(raw), old) {
		tb.Fatalf("%s has no %q to replace", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(raw), old, new, 1)), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// failoverOnce builds a fresh pair, kills the Main and times the takeover.
func failoverOnce(b *testing.B, gossipTuning string) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	l := newLab(b, "main", "standby")
	cfgs := map[string]string{}
	for _, n := range [][2]string{{"main", "standby"}, {"standby", "main"}} {
		path := autoNodeConfig(b, l, n[0], n[0], n[1], false)
		if gossipTuning != "" {
			replaceInFile(b, path, "gossip: {", "gossip: {"+gossipTuning)
		}
		cfgs[n[0]] = path
	}
	standby := startIn(b, l, "standby", cfgs["standby"])
	main := startIn(b, l, "main", cfgs["main"])
	testkit.Eventually(b, func() bool {
		m, s := status(b, main.url), status(b, standby.url)
		return m.Status == "active" && s.Peer != nil && s.Peer.Status == "active" && s.Peer.Epoch == m.Epoch
	}, "pair settled")
	t0 := time.Now()
	main.kill(syscall.SIGKILL)
	return untilActive(b, standby.url, t0)
}
