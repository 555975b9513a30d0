package cc

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/api"
)

// metrics are the resman_cc_* metrics.
type metrics struct {
	status      *prometheus.GaugeVec
	reachable   prometheus.Gauge
	stream      prometheus.Gauge
	epoch       prometheus.Gauge
	transitions *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		status: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resman_cc_status",
			Help: "1 for the follower's current status, 0 for the others."}, []string{"status"}),
		reachable: prometheus.NewGauge(prometheus.GaugeOpts{Name: "resman_cc_follow_reachable",
			Help: "1 when the paired node answered the last look."}),
		stream: prometheus.NewGauge(prometheus.GaugeOpts{Name: "resman_cc_follow_stream",
			Help: "1 while the paired node's event stream is connected."}),
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{Name: "resman_cc_follow_epoch",
			Help: "The paired node's epoch, as last seen."}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resman_cc_transitions_total",
			Help: "Status changes of the follower, by from, to and outcome."}, []string{"from", "to", "outcome"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.status, m.reachable, m.stream, m.epoch, m.transitions} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register cc metrics (one follower per registry): %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) setStatus(s string) {
	for _, st := range []string{api.StatusInactive, api.StatusActivating, api.StatusActive, api.StatusDeactivating} {
		m.status.WithLabelValues(st).Set(b2f(st == s))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
