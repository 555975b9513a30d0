package xds

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit/sippeers"
	"github.com/resman-pbx/resman/xds/registrar"
)

// BenchmarkActivateToRegistered measures the time from Activate to every
// MDS registered, against in-process registrars (digest auth, UDP) on
// loopback, and reports the median.
//
//	go test -run '^$' -bench ActivateToRegistered -benchtime 20x ./xds/
func BenchmarkActivateToRegistered(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("mds=%d", n), func(b *testing.B) {
			cfg := Config{Contact: testContact}
			for i := range n {
				srv := startRegistrar(b, "udp", registrar.Options{User: "pbx", Password: "pw"})
				cfg.MDS = append(cfg.MDS, mds(fmt.Sprintf("mds%d", i+1), srv.Addr(), "udp", "pbx", "pw"))
			}
			var registered atomic.Int64
			all := make(chan struct{}, 1)
			opts := fastOptions(nil, nil)
			opts.RequestTimeout = 2 * time.Second
			opts.ProbeInterval = time.Hour
			opts.OnEvent = func(ev Event) {
				if ev.Kind == EventRegistered && registered.Add(1) == int64(n) {
					all <- struct{}{}
				}
			}
			r := startXDS(b, cfg, opts)

			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				registered.Store(0)
				start := time.Now()
				r.Activate(uint64(i + 1))
				select {
				case <-all:
				case <-time.After(30 * time.Second):
					b.Fatalf("not all registered: %+v", r.Status())
				}
				took = append(took, time.Since(start))

				b.StopTimer()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := r.Deactivate(ctx); err != nil {
					b.Fatalf("Deactivate: %v", err)
				}
				cancel()
				b.StartTimer()
			}
			b.StopTimer()
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-ms")
			b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
		})
	}
}

// runXDS builds a Registrar and runs it until the returned stop is called
// (or cleanup).
func runXDS(tb testing.TB, cfg Config, opts Options) (*Registrar, func()) {
	tb.Helper()
	r, err := New(cfg, opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				tb.Errorf("Run did not return")
			}
		})
	}
	tb.Cleanup(stop)
	return r, stop
}

// registeredAt reports, on ch, when each EventRegistered of mds came.
func registeredAt(mds string, ch chan<- time.Time) func(Event) {
	return func(ev Event) {
		if ev.MDS == mds && ev.Kind == EventRegistered {
			select {
			case ch <- time.Now():
			default:
			}
		}
	}
}

// pollLocations polls kamailio's location table every 5ms until cond
// holds, and returns when it first did; it fails after timeout.
func pollLocations(b *testing.B, k *sippeers.Kamailio, timeout time.Duration, what string, cond func(string) bool) time.Time {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond(k.Locations(b)) {
			return time.Now()
		}
		if time.Now().After(deadline) {
			b.Fatalf("no %s within %s: %s", what, timeout, k.Locations(b))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// reportMedian reports the median and the maximum of took, in ms.
func reportMedian(b *testing.B, took []time.Duration, unit string) {
	b.Helper()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-"+unit)
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-"+unit)
}

// BenchmarkKamailioRestartToBound measures, with the default timings
// (verification every 10s, probes every 5s), the time from a kamailio MDS
// restarted without its bindings answering again to its location table
// holding the Active node's contact again. kamailio is restarted by the
// benchmark once per iteration, at a random moment of the verification
// cycle; usrloc is in memory, so every restart loses the binding. Reports
// the median and the maximum.
//
//	go test -run '^$' -bench KamailioRestartToBound -benchtime 10x ./xds/
func BenchmarkKamailioRestartToBound(b *testing.B) {
	const user, password = "pbx", "kam-Bench-51"
	k := startKamailio(b, user, password)
	regs := make(chan time.Time, 1)
	opts := Options{Hostname: "pbx.test", OnEvent: registeredAt("kam", regs)}
	r, _ := runXDS(b, Config{Contact: testContact, MDS: []MDS{mds("kam", k.Addr, "udp", user, password)}}, opts)
	r.Activate(1)
	select {
	case <-regs:
	case <-time.After(30 * time.Second):
		b.Fatalf("not registered: %+v", r.Status())
	}
	held := func(l string) bool { return strings.Contains(l, testContact) }
	pollLocations(b, k, 5*time.Second, "contact in ul.dump", held)

	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		// The MDS restarts at any moment of the verification cycle,
		// which starts again at each registration: without this wait
		// every restart would come just after a verification.
		time.Sleep(rand.N(DefaultVerifyInterval))
		k.Restart(b) // returns once kamailio answers OPTIONS again
		back := time.Now()
		if held(k.Locations(b)) {
			b.Fatal("the restarted kamailio still holds the contact")
		}
		b.StartTimer()
		at := pollLocations(b, k, 60*time.Second, "contact back in ul.dump", held)
		took = append(took, at.Sub(back))
	}
	b.StopTimer()
	reportMedian(b, took, "ms")
}

// BenchmarkKamailioFailoverStaleRemoved measures a kill -9 failover at a
// kamailio MDS: a Registrar plays the Active node and is killed while
// registered (its loops end, nothing unregisters: its binding stays); a
// second one plays the new Active, with PeerContact set to the first's
// contact and told RemovePeer. The time is from the new Active's
// registration (its registered event) to kamailio's location table holding
// its contact only. Default timings. Reports the median and the maximum;
// activate-ms is the median from Activate to the registration.
//
//	go test -run '^$' -bench KamailioFailoverStaleRemoved -benchtime 10x ./xds/
func BenchmarkKamailioFailoverStaleRemoved(b *testing.B) {
	const user, password = "pbx", "kam-Bench-52"
	k := startKamailio(b, user, password)
	m := mds("kam", k.Addr, "udp", user, password)
	onlyOurs := func(l string) bool { return strings.Contains(l, testContact) && !strings.Contains(l, peerContact) }

	took := make([]time.Duration, 0, b.N)
	activate := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		oldRegs := make(chan time.Time, 1)
		old, stopOld := runXDS(b, Config{Contact: peerContact, MDS: []MDS{m}},
			Options{Hostname: "old.test", OnEvent: registeredAt("kam", oldRegs)})
		old.Activate(uint64(2*i + 1))
		select {
		case <-oldRegs:
		case <-time.After(30 * time.Second):
			b.Fatalf("the old Active not registered: %+v", old.Status())
		}
		pollLocations(b, k, 5*time.Second, "the old Active's contact", func(l string) bool { return strings.Contains(l, peerContact) })
		old.cancelBase() // kill -9: the loops end, nothing is sent
		stopOld()

		regs := make(chan time.Time, 1)
		r, stop := runXDS(b, Config{Contact: testContact, MDS: []MDS{m}},
			Options{Hostname: "new.test", PeerContact: peerContact, OnEvent: registeredAt("kam", regs)})
		b.StartTimer()
		start := time.Now()
		r.RemovePeer()
		r.Activate(uint64(2*i + 2))
		var registered time.Time
		select {
		case registered = <-regs:
		case <-time.After(30 * time.Second):
			b.Fatalf("the new Active not registered: %+v", r.Status())
		}
		at := pollLocations(b, k, 30*time.Second, "the new Active's contact only", onlyOurs)
		b.StopTimer()
		took = append(took, at.Sub(registered))
		activate = append(activate, registered.Sub(start))

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := r.Deactivate(ctx); err != nil {
			b.Fatalf("Deactivate: %v", err)
		}
		cancel()
		stop()
		pollLocations(b, k, 5*time.Second, "an empty location table", func(l string) bool {
			return !strings.Contains(l, testContact) && !strings.Contains(l, peerContact)
		})
	}
	slices.Sort(activate)
	b.ReportMetric(float64(activate[len(activate)/2].Microseconds())/1000, "activate-ms")
	reportMedian(b, took, "ms")
}
