package xds

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	failures *prometheus.CounterVec
	seconds  prometheus.Histogram
}

// stateCollector exposes the registered and reachable gauges from the
// bindings' state at scrape time.
type stateCollector struct {
	r          *Registrar
	registered *prometheus.Desc
	reachable  *prometheus.Desc
}

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.registered
	ch <- c.reachable
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, b := range c.r.bindings {
		st := b.status(now)
		ch <- prometheus.MustNewConstMetric(c.registered, prometheus.GaugeValue, boolFloat(st.Registered), b.name)
		ch <- prometheus.MustNewConstMetric(c.reachable, prometheus.GaugeValue, boolFloat(st.Reachable), b.name)
	}
}

func newMetrics(r *Registrar, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resman_xds_register_failures_total",
			Help: "Failed REGISTER exchanges per MDS, by SIP status code (or timeout, error).",
		}, []string{"mds", "code"}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "resman_xds_register_seconds",
			Help:    "Duration of successful REGISTER exchanges, challenges included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 13),
		}),
	}
	if reg == nil {
		return m, nil
	}
	state := stateCollector{
		r:          r,
		registered: prometheus.NewDesc("resman_xds_registered", "1 while this node's binding at the MDS is in force.", []string{"mds"}, nil),
		reachable:  prometheus.NewDesc("resman_xds_reachable", "1 while the MDS answers OPTIONS probes.", []string{"mds"}, nil),
	}
	var done []prometheus.Collector
	for _, c := range []prometheus.Collector{state, m.failures, m.seconds} {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return nil, err
		}
		done = append(done, c)
	}
	return m, nil
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
