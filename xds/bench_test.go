package xds

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resman-pbx/resman/config"
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
			cfg := config.XDS{Contact: testContact}
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
