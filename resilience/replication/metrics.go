package replication

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of resman_replication_runs_total.
const (
	resultOK     = "ok"
	resultFailed = "failed"
)

// metrics are the sender's resman_replication_* metrics.
type metrics struct {
	lastSuccess *prometheus.GaugeVec
	duration    *prometheus.HistogramVec
	runs        *prometheus.CounterVec
	bytesSent   *prometheus.CounterVec
	maxAge      *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resman_replication_last_success_timestamp_seconds",
			Help: "End of the last successful run of the job, in Unix seconds (absent before the first)."}, []string{"job"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "resman_replication_duration_seconds",
			Help:    "Duration of the job's runs, successful or not.",
			Buckets: []float64{0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600}}, []string{"job"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resman_replication_runs_total",
			Help: "Runs of the job, by result (ok, failed)."}, []string{"job", "result"}),
		bytesSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resman_replication_bytes_sent_total",
			Help: "Bytes a files job sent to the peer (request bodies: manifests and file chunks)."}, []string{"job"}),
		maxAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resman_replication_max_age_seconds",
			Help: "The job's max_age: a last success older than that makes it stale."}, []string{"job"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.lastSuccess, m.duration, m.runs, m.bytesSent, m.maxAge} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register replication metrics (one runner per registry): %w", err)
			}
		}
	}
	return m, nil
}

// receiverMetrics are the receiver's metrics.
type receiverMetrics struct {
	lastReceived  *prometheus.GaugeVec
	bytesReceived *prometheus.CounterVec
}

func newReceiverMetrics(reg prometheus.Registerer) (*receiverMetrics, error) {
	m := &receiverMetrics{
		lastReceived: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resman_replication_last_received_timestamp_seconds",
			Help: "When this node last received the job successfully, in Unix seconds (absent before the first)."}, []string{"job"}),
		bytesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resman_replication_bytes_received_total",
			Help: "File bytes this node received for the job."}, []string{"job"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.lastReceived, m.bytesReceived} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register replication receiver metrics (one receiver per registry): %w", err)
			}
		}
	}
	return m, nil
}
