package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience"
)

type metrics struct {
	status      *prometheus.GaugeVec
	epoch       prometheus.Gauge
	transitions *prometheus.CounterVec
	commands    *prometheus.CounterVec
	peerUp      prometheus.Gauge
	haReady     prometheus.Gauge
	healthy     prometheus.Gauge
	activation  *prometheus.HistogramVec
	failover    prometheus.Histogram
	claims      *prometheus.CounterVec
	gossipLoss  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		status: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resman_node_status",
			Help: "1 for the node's current runtime status, 0 for the others."}, []string{"status"}),
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{Name: "resman_node_epoch",
			Help: "Epoch of the node's last activation."}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resman_node_transitions_total",
			Help: "Status changes, by from, to and outcome."}, []string{"from", "to", "outcome"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resman_admin_commands_total",
			Help: "Admin commands, by command and outcome (ok, refused, failed)."}, []string{"command", "outcome"}),
		peerUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "resman_peer_reachable",
			Help: "1 when the peer's API answered the last check."}),
		haReady: prometheus.NewGauge(prometheus.GaugeOpts{Name: "resman_ha_ready",
			Help: "1 when the pair is ready to fail over."}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{Name: "resman_node_healthy",
			Help: "1 when no critical local service is unhealthy."}),
		activation: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "resman_activation_seconds",
			Help:    "Time from the decision to activate to Active (services started), by what decided it.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"action"}),
		failover: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "resman_failover_seconds",
			Help:    "Auto mode: time from the peer seen lost (gossip Down) to this node Active with its services started.",
			Buckets: []float64{.05, .1, .25, .5, .75, 1, 1.5, 2, 5, 10}}),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resman_gossip_trust_total",
			Help: "Auto mode: gossip the node did not take on trust, by result: member_refused (a member with the key but not configured), and a peer's claim that would make this Active node give way, confirmed, refuted or unconfirmed by the peer's API."},
			[]string{"result"}),
	}
	m.gossipLoss = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resman_peer_gossip_losses_total",
		Help: "Auto mode: the peer lost over gossip, by what the second path said then: alive (not taken as lost: a lossy link), silent or refused (taken as lost)."},
		[]string{"second_path"})
	for _, r := range []string{"member_refused", "confirmed", "refuted", "unconfirmed"} {
		m.claims.WithLabelValues(r)
	}
	for _, r := range []string{"alive", "silent", "refused"} {
		m.gossipLoss.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.status, m.epoch, m.transitions, m.commands, m.peerUp, m.haReady, m.healthy,
			m.activation, m.failover, m.claims, m.gossipLoss)
	}
	return m
}

func (m *metrics) setStatus(s resilience.Status, epoch uint64) {
	for _, st := range []resilience.Status{resilience.Inactive, resilience.Activating, resilience.Active, resilience.Deactivating} {
		v := 0.0
		if st == s {
			v = 1
		}
		m.status.WithLabelValues(string(st)).Set(v)
	}
	m.epoch.Set(float64(epoch))
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
