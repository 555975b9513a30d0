package testkit

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metric is the value of the series of name whose labels include labels
// (nil: the first series of name): a counter's or gauge's value, a
// histogram's or summary's sample count. It is 0 when there is no such
// series, as for a counter never incremented; Gathered tells the two
// apart. A failing Gather fails the test.
func Metric(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	v, _ := Gathered(t, g, name, labels)
	return v
}

// Gathered is Metric, with ok false when g has no such series.
func Gathered(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	for _, m := range series(t, g, name, labels) {
		return value(m), true
	}
	return 0, false
}

// MetricSum is the sum of the values (as Metric reads them) of every
// series of name whose labels include labels.
func MetricSum(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	var sum float64
	for _, m := range series(t, g, name, labels) {
		sum += value(m)
	}
	return sum
}

// Value is the value of one metric the test holds (a counter, a gauge, a
// vector's child), read as Metric reads a series.
func Value(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatalf("read %v: %v", m.Desc(), err)
	}
	return value(&d)
}

func series(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) []*dto.Metric {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var out []*dto.Metric
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				out = append(out, m)
			}
		}
	}
	return out
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, lp := range m.GetLabel() {
		v, ok := want[lp.GetName()]
		if !ok {
			continue
		}
		if v != lp.GetValue() {
			return false
		}
		found++
	}
	return found == len(want)
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	case m.Summary != nil:
		return float64(m.Summary.GetSampleCount())
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// MetricText finds series in a Prometheus text exposition (what /metrics
// serves): series is the metric's name with its labels exactly as shown
// (`resman_gossip_members{state="alive"}`), and the value is the text
// that follows it on its line. ok is false when no line shows series.
func MetricText(exposition, series string) (value string, ok bool) {
	for line := range strings.SplitSeq(exposition, "\n") {
		if rest, found := strings.CutPrefix(line, series+" "); found {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0], true
			}
		}
	}
	return "", false
}
