package fleet

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/resman-pbx/resman/resilience/api"
)

// The alert rules, their unit tests and the dashboard, shipped for
// Prometheus and Grafana.
const (
	rulesFile     = "../../deploy/prometheus/resman-fleet.rules.yml"
	rulesTestFile = "../../deploy/prometheus/resman-fleet.rules_test.yml"
	dashboardFile = "../../deploy/prometheus/resman-fleet.dashboard.json"
)

var metricRef = regexp.MustCompile(`\bresman_[a-z0-9_]+`)

// checkRefs fails for each resman_* metric in expr the aggregator does not
// export (a histogram's _bucket, _sum and _count are its own).
func checkRefs(t *testing.T, where, expr string) int {
	t.Helper()
	refs := metricRef.FindAllString(expr, -1)
	for _, m := range refs {
		base := m
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(m, suf); ok && b == MetricPollDuration {
				base = b
			}
		}
		if !slices.Contains(MetricNames(), base) {
			t.Errorf("%s: %s is not a metric the aggregator exports", where, m)
		}
	}
	return len(refs)
}

func TestDashboardParsesAndUsesExportedMetrics(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("uid %q title %q, %d panels", d.UID, d.Title, len(d.Panels))
	}
	ids := map[int]bool{}
	refs := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, "resman_fleet_") {
				t.Errorf("panel %q: query %q reads no fleet metric", p.Title, tg.Expr)
			}
			refs += checkRefs(t, "panel "+p.Title, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		refs += checkRefs(t, "variable "+v.Name, v.Definition)
	}
	t.Logf("%d panels, %d metric references, all exported", len(d.Panels), refs)
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestRulesUseExportedMetrics(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			checkRefs(t, r.Alert, r.Expr)
			for k, v := range r.Annotations {
				checkRefs(t, r.Alert+" "+k, v)
			}
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) || r.Annotations["summary"] == "" {
				t.Errorf("%s: severity %q, summary %q", r.Alert, r.Labels["severity"], r.Annotations["summary"])
			}
		}
	}
	// The alerts the issue asks for.
	for _, want := range []string{"ResmanPairNoActiveNode", "ResmanPairSplitBrain", "ResmanPairHANotReady",
		"ResmanPairFailover", "ResmanPairReplicationStale", "ResmanPairVersionMismatch"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}
	// Every alert has a unit test.
	tb, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if !strings.Contains(string(tb), "alertname: "+a+"\n") {
			t.Errorf("%s has no test in %s", a, rulesTestFile)
		}
	}
}

// A running aggregator exports every metric of MetricNames: what the rules
// and the dashboard read exists.
func TestAggregatorExportsEveryMetric(t *testing.T) {
	t.Parallel()
	s := newSim(t, 2)
	until := time.Now().Add(time.Hour)
	s.set("p00001", "a", func(st *api.Status) {
		st.Failover = api.Failover{Manual: true, Until: &until}
		st.Version = "2025.11.0"
	})
	reg := prometheus.NewRegistry()
	_, url, _ := startAggregator(t, s, Config{Interval: 100 * time.Millisecond}, Options{Registerer: reg})
	waitAllPolled(t, &http.Client{}, url, 5*time.Second)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, mf := range mfs {
		got[mf.GetName()] = len(mf.GetMetric())
	}
	for _, m := range MetricNames() {
		if got[m] == 0 {
			t.Errorf("%s not exported", m)
		}
	}
	for m := range got {
		if strings.HasPrefix(m, "resman_fleet_") && !slices.Contains(MetricNames(), m) {
			t.Errorf("%s exported but not in MetricNames", m)
		}
	}
	if got[MetricPairReady] != 2 {
		t.Errorf("%s: %d series, want one per pair", MetricPairReady, got[MetricPairReady])
	}
}

// promtool checks the rules and runs their unit tests. Without promtool
// the test skips, except under CI (CI set), where it fails:
// scripts/install-test-tools.sh installs it (Debian package prometheus).
func TestPromtool(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found and CI is set: run scripts/install-test-tools.sh (Debian package prometheus)")
		}
		t.Skip("promtool not found: install it (Debian package prometheus, or scripts/install-test-tools.sh) to check the alert rules")
	}
	for _, args := range [][]string{
		{"check", "rules", "resman-fleet.rules.yml"},
		{"test", "rules", "resman-fleet.rules_test.yml"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = "../../deploy/prometheus"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
