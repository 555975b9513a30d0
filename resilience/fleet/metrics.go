package fleet

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names the aggregator exports (per pair, label pair). The alert
// rules and the dashboard in deploy/prometheus use only these (a test
// checks it).
const (
	MetricPairs                 = "resman_fleet_pairs"
	MetricPairReady             = "resman_fleet_pair_ready"
	MetricPairSeverity          = "resman_fleet_pair_severity"
	MetricPairActiveNodes       = "resman_fleet_pair_active_nodes"
	MetricPairReachableNodes    = "resman_fleet_pair_reachable_nodes"
	MetricPairHANotReady        = "resman_fleet_pair_ha_not_ready"
	MetricPairManualFailover    = "resman_fleet_pair_manual_failover"
	MetricPairVersionMismatch   = "resman_fleet_pair_version_mismatch"
	MetricPairReplicationAge    = "resman_fleet_pair_replication_age_seconds"
	MetricPairReplicationStale  = "resman_fleet_pair_replication_stale"
	MetricPairLastFailover      = "resman_fleet_pair_last_failover_timestamp_seconds"
	MetricPairEpoch             = "resman_fleet_pair_epoch"
	MetricPollErrors            = "resman_fleet_poll_errors_total"
	MetricPollDuration          = "resman_fleet_poll_duration_seconds"
	MetricPollsSkipped          = "resman_fleet_polls_skipped_total"
	MetricPairLastPollTimestamp = "resman_fleet_pair_last_poll_timestamp_seconds"
)

// MetricNames lists every metric name the aggregator exports; a histogram
// also exports _bucket, _sum and _count.
func MetricNames() []string {
	return []string{MetricPairs, MetricPairReady, MetricPairSeverity, MetricPairActiveNodes,
		MetricPairReachableNodes, MetricPairHANotReady, MetricPairManualFailover, MetricPairVersionMismatch,
		MetricPairReplicationAge, MetricPairReplicationStale, MetricPairLastFailover, MetricPairEpoch,
		MetricPollErrors, MetricPollDuration, MetricPollsSkipped, MetricPairLastPollTimestamp}
}

type metrics struct {
	pollErrors   *prometheus.CounterVec
	pollDuration prometheus.Histogram
	skipped      prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		pollErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricPollErrors,
			Help: "Reads of a pair's node status that failed (unreachable, timeout, refused token, bad answer).",
		}, []string{"pair"}),
		pollDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricPollDuration,
			Help:    "Duration of one read of a node's status.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricPollsSkipped,
			Help: "Turns of a node skipped because its previous read was still queued or under way: the aggregator is behind (raise fleet.concurrency, or a node is slow).",
		}),
	}
	return m
}

// register adds the metrics and the per-pair collector to reg.
func (m *metrics) register(reg prometheus.Registerer, a *Aggregator) {
	if reg == nil {
		return
	}
	reg.MustRegister(m.pollErrors, m.pollDuration, m.skipped, &collector{a: a})
	// A pair without errors shows 0, not nothing.
	pairs, _ := a.current()
	for _, ps := range pairs {
		m.pollErrors.WithLabelValues(ps.name)
	}
}

// collector exports the per-pair gauges from the pairs' state at scrape
// time (ages are as of the scrape).
type collector struct{ a *Aggregator }

var (
	descPairs           = prometheus.NewDesc(MetricPairs, "Pairs the aggregator watches.", nil, nil)
	descReady           = pairDesc(MetricPairReady, "1 when the pair is ready: both nodes answer, exactly one is Active, HA is ready, replication is fresh.")
	descSeverity        = pairDesc(MetricPairSeverity, "The pair's severity: 3 critical, 2 warning, 1 info, 0 ok.")
	descActive          = pairDesc(MetricPairActiveNodes, "Nodes of the pair that say they are Active (2 is a split brain).")
	descReachable       = pairDesc(MetricPairReachableNodes, "Nodes of the pair whose status the aggregator could read at its last try.")
	descHANotReady      = pairDesc(MetricPairHANotReady, "1 when a node of the pair says HA is not ready.")
	descManual          = pairDesc(MetricPairManualFailover, "1 while a manual HA failover is under way on the pair.")
	descVersionMismatch = pairDesc(MetricPairVersionMismatch, "1 when the pair's nodes run different versions.")
	descReplAge         = pairDesc(MetricPairReplicationAge, "Age of the oldest replication job's newest success (either node); +Inf when a job never succeeded; absent without jobs.")
	descReplStale       = pairDesc(MetricPairReplicationStale, "1 when a node says a replication job is stale (older than its max_age).")
	descLastFailover    = pairDesc(MetricPairLastFailover, "When a node of the pair last became Active (Unix time); absent when unknown.")
	descEpoch           = pairDesc(MetricPairEpoch, "Highest epoch of the pair's nodes (it grows with each transition).")
	descLastPoll        = pairDesc(MetricPairLastPollTimestamp, "When the oldest of the pair's last node reads was made (Unix time); absent before both were read.")
)

func pairDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, []string{"pair"}, nil)
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPairs, descReady, descSeverity, descActive, descReachable,
		descHANotReady, descManual, descVersionMismatch, descReplAge, descReplStale, descLastFailover,
		descEpoch, descLastPoll} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	pairs := c.a.Snapshot()
	ch <- prometheus.MustNewConstMetric(descPairs, prometheus.GaugeValue, float64(len(pairs)))
	g := func(d *prometheus.Desc, v float64, pair string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, pair)
	}
	for _, p := range pairs {
		n := p.Name
		g(descReady, b2f(p.Ready), n)
		g(descSeverity, float64(SeverityRank(p.Severity)), n)
		g(descActive, float64(len(p.Active)), n)
		reachable := 0
		var oldest float64
		polled := true
		for _, nd := range p.Nodes {
			if nd.Reachable {
				reachable++
			}
			if nd.CheckedAt.IsZero() {
				polled = false
			} else if t := float64(nd.CheckedAt.UnixNano()) / 1e9; oldest == 0 || t < oldest {
				oldest = t
			}
		}
		g(descReachable, float64(reachable), n)
		g(descHANotReady, b2f(has(p.Classes, ClassHANotReady)), n)
		g(descManual, b2f(p.ManualFailoverUntil != nil || has(p.Classes, ClassManualFailover)), n)
		g(descVersionMismatch, b2f(p.VersionMismatch), n)
		switch {
		case len(p.ReplicationNever) > 0:
			g(descReplAge, math.Inf(1), n)
		case p.ReplicationAgeSeconds != nil:
			g(descReplAge, *p.ReplicationAgeSeconds, n)
		}
		g(descReplStale, b2f(p.ReplicationStale), n)
		if p.LastFailover != nil {
			g(descLastFailover, float64(p.LastFailover.UnixNano())/1e9, n)
		}
		g(descEpoch, float64(p.Epoch), n)
		if polled && oldest > 0 {
			g(descLastPoll, oldest, n)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func has(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
