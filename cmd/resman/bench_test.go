package main

// Benchmarks of a real node process (run with `make bench`):
//   BenchmarkStatus      GET /api/v1/status latency, p50 and p99
//   BenchmarkStartStop   a Stop services + Start services round trip with
//                        a trivial service (the stand-in SIP endpoint)
//   BenchmarkIdleRSS     resident memory of an idle node, in MiB

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

func reportPercentiles(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkStatus(b *testing.B) {
	mainP, _, _, _ := pair(b)
	testkit.Eventually(b, func() bool { return status(b, mainP.url).Status == "active" }, "main active")
	req, _ := http.NewRequest("GET", mainP.url+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("status: %v", err)
		}
		resp.Body.Close()
		d = append(d, time.Since(t0))
	}
	reportPercentiles(b, d)
}

func BenchmarkStartStop(b *testing.B) {
	mainP, _, _, _ := pair(b)
	testkit.Eventually(b, func() bool { return status(b, mainP.url).Status == "active" }, "main active")
	post := func(path string) {
		req, _ := http.NewRequest("POST", mainP.url+path, strings.NewReader(`{"reason":"bench"}`))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		post("/api/v1/services/stop")
		post("/api/v1/services/start")
		d = append(d, time.Since(t0))
	}
	reportPercentiles(b, d)
}

func BenchmarkIdleRSS(b *testing.B) {
	mainP, _, _, _ := pair(b)
	testkit.Eventually(b, func() bool { return status(b, mainP.url).Status == "active" }, "main active")
	time.Sleep(2 * time.Second) // let the node settle into its idle loop: this measures, it asserts nothing
	b.ResetTimer()
	var kib int
	for range b.N {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", mainP.cmd.Process.Pid))
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				fmt.Sscanf(strings.TrimPrefix(line, "VmRSS:"), "%d", &kib)
			}
		}
	}
	if kib == 0 {
		b.Fatalf("no VmRSS read from /proc/%d/status", mainP.cmd.Process.Pid)
	}
	b.ReportMetric(float64(kib)/1024, "rss-MiB")
}
