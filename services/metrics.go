package services

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/api"
)

// metrics are the resman_service_* metrics. A nil *metrics records nothing.
type metrics struct {
	up       *prometheus.GaugeVec
	healthy  *prometheus.GaugeVec
	failures *prometheus.CounterVec
	start    *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	var m metrics
	var err error
	if m.up, err = register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "resman_service_up",
		Help: "1 while the service is running, else 0.",
	}, []string{"service"})); err != nil {
		return nil, err
	}
	if m.healthy, err = register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "resman_service_healthy",
		Help: "1 while the service is running and healthy, else 0.",
	}, []string{"service"})); err != nil {
		return nil, err
	}
	if m.failures, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "resman_service_check_failures_total",
		Help: "Health probes of the service that failed.",
	}, []string{"service"})); err != nil {
		return nil, err
	}
	if m.start, err = register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "resman_service_start_seconds",
		Help:    "Time taken by successful starts of the service.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 12), // 50 ms to 102 s
	}, []string{"service"})); err != nil {
		return nil, err
	}
	return &m, nil
}

// register registers c, or returns the collector already registered under
// the same name: a process may run two supervisors (node and CC) on one
// registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register service metrics: %w", err)
}

func (m *metrics) set(s api.Service) {
	if m == nil {
		return
	}
	m.up.WithLabelValues(s.Name).Set(b2f(s.State == StateRunning))
	m.healthy.WithLabelValues(s.Name).Set(b2f(s.Healthy))
	// Make the counter exist at 0 before the first failure.
	m.failures.WithLabelValues(s.Name)
}

func (m *metrics) checkFailed(name string) {
	if m != nil {
		m.failures.WithLabelValues(name).Inc()
	}
}

func (m *metrics) observeStart(name string, d time.Duration) {
	if m != nil {
		m.start.WithLabelValues(name).Observe(d.Seconds())
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
