package main

// BenchmarkTimerSets measures each documented timer set (docs/timers.md)
// in network namespaces, a Main and a Standby in auto mode without a
// witness, with real processes:
//
//   - kill9: kill -9 of the Main's resman to the Standby answering Active;
//   - linkdown: the Main's whole host cut off (its link set down) to the
//     Standby answering Active;
//   - loss50-main-to-standby, loss50-standby-to-main, loss30-both: false
//     takeovers of the Standby while that share of the packets between the
//     two is lost at random, the Main alive and Active throughout.
//
//	go test -run '^$' -bench 'TimerSets' -benchtime 1x -timeout 180m ./cmd/resman/
//
// RESMAN_PROOF_RUNS (default 10) sets the runs of kill9 and linkdown;
// RESMAN_PROOF_LOSS (default 2m) the loss window. Select one set or one
// measure with -bench, e.g. 'TimerSets/default/loss50' (loss windows of
// different sets may run side by side in separate processes: each has a
// lab of its own).

import (
	"fmt"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// timerSet is one documented set of timers.
type timerSet struct {
	name string
	// gossip is inserted in the gossip section, failover in the failover
	// section of both nodes' configs.
	gossip, failover string
	// rise1: the stand-in Asterisk's check passes once instead of twice
	// before the services count as started (the activation's own timer).
	rise1 bool
}

var timerSets = []timerSet{
	{name: "default"},
	{name: "fast", gossip: "probe_interval: 100ms, probe_timeout: 50ms, suspicion_mult: 1, ",
		failover: "  lost_after: 50ms\n  confirm: {every: 10ms, window: 150ms}\n"},
	// fastest: what keepalived's 0.1 s and 0.05 s adverts are set
	// against; for one quiet LAN.
	{name: "fastest", gossip: "probe_interval: 50ms, probe_timeout: 25ms, suspicion_mult: 1, ",
		failover: "  lost_after: 50ms\n  confirm: {every: 5ms, window: 100ms}\n"},
	// fastest-rise1: the same with the service check's rise at 1, for
	// the failovers only (a rise does not change what a lossy link does).
	{name: "fastest-rise1", gossip: "probe_interval: 50ms, probe_timeout: 25ms, suspicion_mult: 1, ",
		failover: "  lost_after: 50ms\n  confirm: {every: 5ms, window: 100ms}\n", rise1: true},
	{name: "wan", gossip: "probe_interval: 1s, probe_timeout: 500ms, suspicion_mult: 3, ",
		failover: "  lost_after: 500ms\n  confirm: {every: 50ms, window: 2s}\n"},
}

// timedPair starts a settled auto pair with the timer set ts.
func timedPair(b *testing.B, ts timerSet) (*lab, *proc, *proc) {
	l := newLab(b, "main", "standby")
	cfgs := map[string]string{}
	for _, n := range [][2]string{{"main", "standby"}, {"standby", "main"}} {
		path := autoNodeConfig(b, l, n[0], n[0], n[1], false)
		if ts.gossip != "" {
			replaceInFile(b, path, "gossip: {", "gossip: {"+ts.gossip)
		}
		if ts.failover != "" {
			replaceInFile(b, path, "failover:\n", "failover:\n"+ts.failover)
		}
		if ts.rise1 {
			replaceInFile(b, path, "timeout: 400ms}", "timeout: 400ms, rise: 1}")
		}
		cfgs[n[0]] = path
	}
	standby := startIn(b, l, "standby", cfgs["standby"])
	main := startIn(b, l, "main", cfgs["main"])
	testkit.Eventually(b, func() bool {
		m, s := status(b, main.url), status(b, standby.url)
		return m.Status == "active" && s.HA.Ready && s.Peer != nil && s.Peer.Status == "active" && s.Peer.Epoch == m.Epoch
	}, "pair settled")
	return l, main, standby
}

// killOnce is one kill -9 of the Main's resman with the timer set ts, to
// the Standby answering Active.
func killOnce(b *testing.B, ts timerSet) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	_, main, standby := timedPair(b, ts)
	t0 := time.Now()
	main.kill(syscall.SIGKILL)
	return untilActive(b, standby.url, t0)
}

// untilActive polls url's /active every 5 ms from t0 until it answers 200.
func untilActive(b *testing.B, url string, t0 time.Time) time.Duration {
	client := &http.Client{Timeout: 100 * time.Millisecond}
	for {
		resp, err := client.Get(url + "/active")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(t0)
			}
		}
		if time.Since(t0) > 60*time.Second {
			b.Fatal("standby did not take over")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func BenchmarkTimerSets(b *testing.B) {
	requireNetAdmin(b)
	runs := envInt(b, "RESMAN_PROOF_RUNS", 10)
	loss := envDuration(b, "RESMAN_PROOF_LOSS", 2*time.Minute)
	for _, ts := range timerSets {
		b.Run(ts.name, func(b *testing.B) {
			failover := func(name string, fault func(l *lab, main *proc)) {
				b.Run(name, func(b *testing.B) {
					var ds, down, start []time.Duration
					for i := range runs {
						b.Run(fmt.Sprint("run", i+1), func(b *testing.B) {
							b.StopTimer()
							l, main, standby := timedPair(b, ts)
							t0 := time.Now()
							fault(l, main)
							ds = append(ds, untilActive(b, standby.url, t0))
							// Where the time went, as the Standby's own
							// metrics say: the gossip detection (last sign
							// of life to Down) and the activation.
							_, m := call(b, "GET", standby.url+"/metrics", "", "", false)
							down = append(down, metricSeconds(m, "resman_gossip_peer_down_seconds_sum"))
							start = append(start, metricSeconds(m, `resman_activation_seconds_sum{action="failover"}`))
						})
					}
					if len(ds) == runs {
						s, d, a := summarise(ds), summarise(down), summarise(start)
						b.ReportMetric(s.Median, "median-ms")
						b.ReportMetric(s.Min, "min-ms")
						b.ReportMetric(s.Max, "max-ms")
						fmt.Printf("timers %s %s: %d runs: median %.0f ms, min %.0f, p25 %.0f, p75 %.0f, max %.0f; "+
							"median gossip detection %.0f ms, activation %.0f ms\n",
							ts.name, name, runs, s.Median, s.Min, s.P25, s.P75, s.Max, d.Median, a.Median)
					}
				})
			}
			failover("kill9", func(_ *lab, main *proc) { main.kill(syscall.SIGKILL) })
			failover("linkdown", func(l *lab, _ *proc) {
				l.inNS(l.host("main"), "ip", "link", "set", "eth0", "down")
			})

			lossy := func(name string, apply func(l *lab)) {
				b.Run(name, func(b *testing.B) {
					b.StopTimer()
					l, _, standby := timedPair(b, ts)
					apply(l)
					time.Sleep(loss) // the measurement window itself
					l.heal()
					n := 0
					for _, e := range auditEntries(b, standby.url) {
						if e.Action == "failover" {
							n++
							fmt.Printf("timers %s %s: takeover at %s: %s\n", ts.name, name, e.Time.Format(time.TimeOnly), e.Cause)
						}
					}
					b.ReportMetric(float64(n), "takeovers")
					b.ReportMetric(float64(n)/loss.Minutes(), "takeovers/min")
					fmt.Printf("timers %s %s: %d false takeovers in %v\n", ts.name, name, n, loss)
				})
			}
			lossy("loss50-main-to-standby", func(l *lab) { l.lose("standby", "main", 50) })
			lossy("loss50-standby-to-main", func(l *lab) { l.lose("main", "standby", 50) })
			lossy("loss30-both", func(l *lab) { l.lose("standby", "main", 30); l.lose("main", "standby", 30) })
		})
	}
}

// metricSeconds reads one sample of a Prometheus text exposition (0 when
// absent).
func metricSeconds(exposition, name string) time.Duration {
	v, _ := testkit.MetricText(exposition, name)
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}
