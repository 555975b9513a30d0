package hooks

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the resman_hook_* metrics.
type metrics struct {
	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resman_hook_runs_total",
			Help: "Hook runs, by phase, hook and outcome (ok, failed, timeout)."}, []string{"phase", "hook", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "resman_hook_duration_seconds",
			Help:    "Time a hook took, whatever its outcome, by phase and hook.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}}, []string{"phase", "hook"}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.duration)
	}
	return m
}

func (m *metrics) observe(p Phase, hook, outcome string, took time.Duration) {
	m.runs.WithLabelValues(string(p), hook, outcome).Inc()
	m.duration.WithLabelValues(string(p), hook).Observe(took.Seconds())
}
