package web

import (
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics are the server's own metrics.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// streams counts the open event streams, streamsRefused the refused
	// ones by the limit that refused them (client, node).
	streams        prometheus.Gauge
	streamsRefused *prometheus.CounterVec
}

func newHTTPMetrics(reg prometheus.Registerer, log *slog.Logger) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resman_http_requests_total",
			Help: "HTTP requests served by the API, by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "resman_http_request_duration_seconds",
			Help:    "Time to handle an HTTP request of the API, by route (for the event stream: until it starts).",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "resman_http_event_streams",
			Help: "Event streams (GET /api/v1/events) open now.",
		}),
		streamsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resman_http_event_streams_refused_total",
			Help: "Event streams refused with 429, by the limit reached: client (one session, or the token from one address) or node (all streams).",
		}, []string{"limit"}),
	}
	if reg != nil {
		m.requests = register(reg, m.requests, log)
		m.duration = register(reg, m.duration, log)
		m.streams = register(reg, m.streams, log)
		m.streamsRefused = register(reg, m.streamsRefused, log)
	}
	return m
}

// register registers c, or reuses the collector already registered under
// its name (two servers on one registry share their metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, log *slog.Logger) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	log.Warn("cannot register HTTP metrics", "err", err)
	return c
}

func (m *httpMetrics) observe(route, method string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}
