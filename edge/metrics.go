package edge

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the resman_edge_* metrics.
type metrics struct {
	activeSide     *prometheus.GaugeVec
	healthy        *prometheus.GaugeVec
	switches       prometheus.Counter
	requests       *prometheus.CounterVec
	upstreamErrors *prometheus.CounterVec
	closed         prometheus.Counter
	// handedOver counts the client connections the fast path gave to the
	// general path (fast.go).
	handedOver prometheus.Counter
	// notCounted counts the failed checks made while the Edge stalled
	// (lag.go).
	notCounted *prometheus.CounterVec
	// unavailable and notFound count the Edge's own 503 and 404 answers
	// (the frequent ones) without a label lookup.
	unavailable, notFound prometheus.Counter
}

// noSide labels what no side answered (503 with no side Active, 404).
const noSide = "none"

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		activeSide: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resman_edge_active_side",
			Help: "1 for the side receiving the traffic (side=\"none\" when no side is Active), 0 for the others."}, []string{"side"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resman_edge_side_up",
			Help: "1 while the side's node passes the checks (Active, rise/fall applied)."}, []string{"side"}),
		switches: prometheus.NewCounter(prometheus.CounterOpts{Name: "resman_edge_switches_total",
			Help: "Changes of the side receiving the traffic (to none included)."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resman_edge_requests_total",
			Help: "Requests answered, by side, route (path prefix) and status code."}, []string{"side", "route", "code"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resman_edge_upstream_errors_total",
			Help: "Requests an upstream did not answer (the client got a 502)."}, []string{"side"}),
		closed: prometheus.NewCounter(prometheus.CounterOpts{Name: "resman_edge_closed_connections_total",
			Help: "WebSocket and streaming connections closed because their side lost Active."}),
		handedOver: prometheus.NewCounter(prometheus.CounterOpts{Name: "resman_edge_general_path_connections_total",
			Help: "Client connections served on the general path from a request on: not plain HTTP/1.1, an upgrade, an event stream, a chunked upload, or refused."}),
		notCounted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resman_edge_checks_not_counted_total",
			Help: "Failed checks of a side's node not counted against it: the Edge itself stalled for half the check timeout or more meanwhile (a saturated Edge)."}, []string{"side"}),
	}
	m.unavailable = m.requests.WithLabelValues(noSide, noSide, "503")
	m.notFound = m.requests.WithLabelValues(noSide, noSide, "404")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.activeSide, m.healthy, m.switches, m.requests, m.upstreamErrors, m.closed, m.handedOver, m.notCounted} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register edge metrics (one Edge per registry): %w", err)
			}
		}
	}
	return m, nil
}

// setRouted sets resman_edge_active_side for routed (nil: none).
func (m *metrics) setRouted(sides []*side, routed *side) {
	m.activeSide.WithLabelValues(noSide).Set(b2f(routed == nil))
	for _, s := range sides {
		m.activeSide.WithLabelValues(s.name).Set(b2f(s == routed))
		m.upstreamErrors.WithLabelValues(s.name)
		m.notCounted.WithLabelValues(s.name)
		m.healthy.WithLabelValues(s.name)
	}
}

func (m *metrics) switched(sides []*side, routed *side) {
	m.switches.Inc()
	m.setRouted(sides, routed)
}

func (m *metrics) setHealth(side string, up bool) {
	m.healthy.WithLabelValues(side).Set(b2f(up))
}

// own counts an answer of the Edge itself (side and route "none"): 503
// with no side Active, 404 with no route, and the requests it refuses.
func (m *metrics) own(code int) {
	switch code {
	case 503:
		m.unavailable.Inc()
	case 404:
		m.notFound.Inc()
	default:
		m.requests.WithLabelValues(noSide, noSide, codeLabel(code)).Inc()
	}
}

func codeLabel(code int) string {
	if code == 0 {
		return "other"
	}
	return strconv.Itoa(code)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
