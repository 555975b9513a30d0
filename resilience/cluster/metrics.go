package cluster

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reg      prometheus.Registerer
	members  *prometheus.GaugeVec
	rejoins  *prometheus.CounterVec
	rejected prometheus.Counter
	refused  prometheus.Counter
	peerDown prometheus.Histogram
	keys     prometheus.Gauge
	keyInfo  *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reg: reg,
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resman_gossip_members",
			Help: "Gossip members by state as this node sees them: alive (this node included) or down."},
			[]string{"state"}),
		rejoins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resman_gossip_rejoins_total",
			Help: "Attempts to join a configured gossip member that was missing, by result (ok, failed)."},
			[]string{"result"}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "resman_gossip_rejected_total",
			Help: "Gossip packets, streams and joins refused because they could not be decrypted (a wrong or missing gossip.key)."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "resman_gossip_members_refused_total",
			Help: "Alive announcements refused because the member, although it holds the gossip key, is not a configured member (unknown name or address, or a role it may not have)."}),
		peerDown: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "resman_gossip_peer_down_seconds",
			Help:    "Time from the last sign of life of a member (an acked probe or a gossip update) to its Down event.",
			Buckets: []float64{0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60}}),
		keys: prometheus.NewGauge(prometheus.GaugeOpts{Name: "resman_gossip_keys",
			Help: "Gossip keys installed in this node's keyring: gossip.key and gossip.extra_keys."}),
		keyInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resman_gossip_key_info",
			Help: "1 for each gossip key installed, by fingerprint (the first 8 hex digits of the SHA-256 of the key, never the key); primary=true for the key gossip is encrypted with."},
			[]string{"fingerprint", "primary"}),
	}
	m.members.WithLabelValues("alive").Set(0)
	m.members.WithLabelValues("down").Set(0)
	m.rejoins.WithLabelValues("ok")
	m.rejoins.WithLabelValues("failed")
	if reg == nil {
		return m, nil
	}
	var done []prometheus.Collector
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("cluster: metrics already registered (one Cluster per registerer at a time): %w", err)
			}
			return nil, fmt.Errorf("cluster: register metrics: %w", err)
		}
		done = append(done, c)
	}
	return m, nil
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.members, m.rejoins, m.rejected, m.refused, m.peerDown, m.keys, m.keyInfo}
}

// setKeys shows the keyring: how many keys, and which by fingerprint.
func (m *metrics) setKeys(k KeyInfo) {
	m.keys.Set(float64(k.Count()))
	m.keyInfo.Reset()
	m.keyInfo.WithLabelValues(k.Primary, "true").Set(1)
	for _, fp := range k.Extra {
		m.keyInfo.WithLabelValues(fp, "false").Set(1)
	}
}

// unregister frees the names for a later Cluster on the same registerer.
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors() {
		m.reg.Unregister(c)
	}
}
