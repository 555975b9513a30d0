package main

// Helpers shared by the chaos test and the keepalived benchmark to draw
// what happened (resilience/testkit/timeline) and to keep the results: both write
// into testout/proof/ at the repository's root (RESMAN_PROOF_DIR elsewhere).

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit/timeline"
)

// proofDir is where the pictures and results of the proof go; tests run
// in cmd/resman, two levels under the repository's root.
func proofDir() string {
	if d := os.Getenv("RESMAN_PROOF_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "testout", "proof")
}

// writeProof writes a chart (when name ends in .svg) or any value as JSON.
func writeProof(t testing.TB, name string, v any) {
	t.Helper()
	path := filepath.Join(proofDir(), name)
	if c, ok := v.(*timeline.Chart); ok {
		if err := c.WriteFile(path); err != nil {
			t.Errorf("write %s: %v", path, err)
			return
		}
	} else {
		raw, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Errorf("encode %s: %v", path, err)
			return
		}
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
			t.Errorf("write %s: %v", path, err)
			return
		}
	}
	abs, _ := filepath.Abs(path)
	t.Logf("wrote %s", abs)
}

// activeProbe samples a node's GET /active (no token needed): its status,
// or Unreachable when it does not answer within timeout.
func activeProbe(url string, timeout time.Duration) func() (timeline.State, string) {
	client := &http.Client{Timeout: timeout}
	return func() (timeline.State, string) {
		resp, err := client.Get(url + "/active")
		if err != nil {
			return timeline.Unreachable, "no answer"
		}
		defer resp.Body.Close()
		var a api.Active
		if json.NewDecoder(resp.Body).Decode(&a) != nil {
			return timeline.Unreachable, "unreadable answer"
		}
		return timeline.FromStatus(a.Status), a.Status + epochNote(a.Epoch)
	}
}

func epochNote(e uint64) string {
	if e == 0 {
		return ""
	}
	return " (epoch " + strconv.FormatUint(e, 10) + ")"
}

// laneProbe is one lane of a chart and how to sample it.
type laneProbe struct {
	lane  string
	probe func() (timeline.State, string)
}

// pollLanes samples each probe every period into its lane of chart, one
// goroutine per lane (a frozen component must not delay the others), until
// ctx ends; wait for the returned group before drawing.
func pollLanes(ctx context.Context, chart *timeline.Chart, period time.Duration, probes ...laneProbe) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, lp := range probes {
		lane, probe := lp.lane, lp.probe
		chart.Lane(lane)
		wg.Go(func() {
			tick := time.NewTicker(period)
			defer tick.Stop()
			for {
				s, note := probe()
				chart.Set(lane, time.Now(), s, note)
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	return &wg
}
