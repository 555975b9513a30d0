package main

// Benchmarks of the Edge proxy as real processes on loopback; run with
// edge/bench.sh (see edge/README.md), which installs nginx and wrk when
// missing:
//
//   BenchmarkEdgeThroughput  edge/edgebench on 1.1 KiB answers: throughput,
//                            p99 and CPU per request, direct, through the
//                            Edge and through nginx in alternating rounds
//                            (edgebench measures; this reports its figures)
//   BenchmarkEdgeFailover    time from the Main's failure to the first
//                            answer of the Standby's app through the Edge
//
// They measure; they assert nothing about the figures. Each runs its
// measurement once per process and reports it for every b.N.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
)

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// benchNode is a fake node API for the Edge's checks: GET /active answers
// what the benchmark sets; it can be killed (its port closed) and revived.
type benchNode struct {
	addr string
	mu   sync.Mutex
	a    api.Active
	srv  *http.Server
}

func newBenchNode(tb testing.TB, a api.Active) *benchNode {
	tb.Helper()
	n := &benchNode{a: a}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	n.addr = ln.Addr().String()
	n.serve(ln)
	tb.Cleanup(n.kill)
	return n
}

func (n *benchNode) url() string { return "http://" + n.addr }

func (n *benchNode) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		a := n.a
		n.mu.Unlock()
		code := http.StatusServiceUnavailable
		if a.Status == api.StatusActive {
			code = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(a)
	})}
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
	go srv.Serve(ln)
}

func (n *benchNode) set(a api.Active) {
	n.mu.Lock()
	n.a = a
	n.mu.Unlock()
}

// kill closes the port and every connection: the Edge's checks fail.
func (n *benchNode) kill() {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (n *benchNode) revive(tb testing.TB) {
	tb.Helper()
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp", n.addr); err == nil {
			n.serve(ln)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("revive %s: %v", n.addr, err)
}

// benchProc starts a long-running helper process for the benchmark.
func benchProc(tb testing.TB, name string, cmd *exec.Cmd) *exec.Cmd {
	tb.Helper()
	logs := &bytes.Buffer{}
	var mu sync.Mutex
	cmd.Stdout = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) })
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
		if tb.Failed() {
			mu.Lock()
			tb.Logf("%s logs:\n%s", name, logs.String())
			mu.Unlock()
		}
	})
	return cmd
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// waitHTTP waits until url answers code.
func waitHTTP(tb testing.TB, url string, code int) {
	tb.Helper()
	testkit.Eventually(tb, func() bool {
		res, err := http.Get(url)
		if err != nil {
			return false
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode == code
	}, "%s", url)
}

// startStandinApp runs `resman standin http` and returns its address.
func startStandinApp(tb testing.TB, name string) string {
	tb.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(tb, "127.0.0.1"))
	benchProc(tb, "standin "+name, exec.Command(binary, "standin", "http", "--listen", addr, "--name", name))
	waitHTTP(tb, "http://"+addr+"/healthz", 200)
	return addr
}

// startEdgeProc runs an Edge process in front of two sides and returns its
// proxy address. check is the edge.check section ("" for the defaults).
func startEdgeProc(tb testing.TB, mainNode, standbyNode *benchNode, mainApp, standbyApp, check string) string {
	tb.Helper()
	proxy := fmt.Sprintf("127.0.0.1:%d", freePort(tb, "127.0.0.1"))
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(tb, "127.0.0.1"))
	cfg := fmt.Sprintf(`api:
  listen: %s
  token: %s
edge:
  listen: %s
  token: %s
%s  sides:
    - name: main
      node: %s
      routes: [{path: /, upstream: "http://%s"}]
    - name: standby
      node: %s
      routes: [{path: /, upstream: "http://%s"}]
log: {level: warn}
`, apiAddr, testToken, proxy, testToken, check, mainNode.url(), mainApp, standbyNode.url(), standbyApp)
	path := filepath.Join(tb.TempDir(), "edge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(binary, "run", "-c", path)
	// EDGE_BENCH_ENV adds variables to the Edge's environment (GOGC=...).
	cmd.Env = append(os.Environ(), strings.Fields(os.Getenv("EDGE_BENCH_ENV"))...)
	benchProc(tb, "edge", cmd)
	return proxy
}

// edgebenchReport is what BenchmarkEdgeThroughput reads of edgebench's
// -json file.
type edgebenchReport struct {
	Lines []struct {
		Targets map[string]struct {
			RPS        float64 `json:"rps"`
			P99Micros  float64 `json:"p99_us"`
			CPUPerReq  float64 `json:"cpu_us_per_req"`
			OfDirect   float64 `json:"of_direct"`
			CPUOfNginx float64 `json:"cpu_of_nginx"`
			RPSOfNginx float64 `json:"rps_of_nginx"`
			Errors     int     `json:"errors"`
		} `json:"targets"`
	} `json:"lines"`
}

// BenchmarkEdgeThroughput runs edge/edgebench on 1.1 KiB answers at
// EDGE_BENCH_CONNS connections (32), EDGE_BENCH_ROUNDS rounds (5) of
// EDGE_BENCH_ROUND (3s), and reports its medians: each target's req/s,
// p99, share of direct, and the proxies' CPU per request. EDGE_BENCH_ENV
// adds variables to the Edge's environment, EDGE_BENCH_NO_NGINX=1 leaves
// nginx out.
func BenchmarkEdgeThroughput(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Skip("wrk is not installed (apt-get install wrk; edge/bench.sh installs it)")
	}
	rep := measureThroughput(b)
	for range b.N {
	}
	for name, t := range rep.Lines[0].Targets {
		b.ReportMetric(t.RPS, name+"-req/s")
		b.ReportMetric(t.P99Micros, name+"-p99-µs")
		if name == "direct" {
			continue
		}
		b.ReportMetric(t.OfDirect, name+"/direct")
		b.ReportMetric(t.CPUPerReq, name+"-cpu-µs/req")
		if t.CPUOfNginx > 0 {
			b.ReportMetric(t.CPUOfNginx, name+"-cpu/nginx")
			b.ReportMetric(t.RPSOfNginx, name+"-req/s/nginx")
		}
	}
}

// benchOnce keeps the measurements of this process: each benchmark runs
// once however many times testing calls it.
var benchOnce = struct {
	throughputOnce sync.Once
	throughput     edgebenchReport
	failover       failoverResult
}{}

func measureThroughput(b *testing.B) *edgebenchReport {
	rep := &benchOnce.throughput
	benchOnce.throughputOnce.Do(func() {
		dir := b.TempDir()
		bench := filepath.Join(dir, "edgebench")
		if out, err := exec.Command("go", "build", "-o", bench, "github.com/resman-pbx/resman/edge/edgebench").CombinedOutput(); err != nil {
			b.Fatalf("go build edge/edgebench: %v\n%s", err, out)
		}
		out := filepath.Join(dir, "edgebench.json")
		args := []string{"-resman", binary, "-sizes", "1.1 KiB", "-settle", "0s", "-json", out,
			"-conns", strconv.Itoa(envInt(b, "EDGE_BENCH_CONNS", 32)),
			"-rounds", strconv.Itoa(envInt(b, "EDGE_BENCH_ROUNDS", 5)),
			"-round", envDuration(b, "EDGE_BENCH_ROUND", 3*time.Second).String(),
			"-edge-env", os.Getenv("EDGE_BENCH_ENV")}
		if os.Getenv("EDGE_BENCH_NO_NGINX") != "" {
			args = append(args, "-no-nginx")
		}
		cmd := exec.Command(bench, args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("edgebench: %v", err)
		}
		raw, err := os.ReadFile(out)
		if err == nil {
			err = json.Unmarshal(raw, rep)
		}
		if err != nil || len(rep.Lines) != 1 {
			b.Fatalf("edgebench's results: %v (%d lines)", err, len(rep.Lines))
		}
	})
	if len(rep.Lines) != 1 {
		b.Fatal("edgebench failed in an earlier run of this benchmark")
	}
	return rep
}

// failoverResult is the outcome of BenchmarkEdgeFailover, measured once.
type failoverResult struct {
	once      sync.Once
	scenarios []string
	times     map[string][]time.Duration
}

func BenchmarkEdgeFailover(b *testing.B) {
	fr := measureFailover(b)
	for range b.N {
	}
	for _, s := range fr.scenarios {
		d := slices.Sorted(slices.Values(fr.times[s]))
		b.ReportMetric(float64(percentile(d, 0.5).Milliseconds()), s+"-median-ms")
		b.ReportMetric(float64(d[len(d)-1].Milliseconds()), s+"-max-ms")
	}
}

func measureFailover(b *testing.B) *failoverResult {
	fr := &benchOnce.failover
	fr.once.Do(func() {
		const runs = 10
		fr.times = map[string][]time.Duration{}
		apps := []string{startStandinApp(b, "main"), startStandinApp(b, "standby")}
		nodes := []*benchNode{
			newBenchNode(b, api.Active{Status: api.StatusActive, Epoch: 1}),
			newBenchNode(b, api.Active{Status: api.StatusInactive}),
		}
		// The default checks: every 500ms, rise 2, fall 2.
		edgeAddr := startEdgeProc(b, nodes[0], nodes[1], apps[0], apps[1], "")
		names := []string{"main", "standby"}
		epoch := uint64(1)
		for _, scenario := range []string{"stop", "kill"} {
			fr.scenarios = append(fr.scenarios, scenario)
			for i := range runs {
				from, to := i%2, 1-i%2
				waitServedBy(b, edgeAddr, names[from])
				// Fail at a random moment of the check period: a failure
				// is not in step with the Edge's checks.
				time.Sleep(rand.N(500 * time.Millisecond))
				// The side losing Active fails: its /active answers 503
				// (stop) or its API is gone (kill); at the same moment
				// the other side turns Active with a higher epoch.
				epoch++
				t0 := time.Now()
				if scenario == "kill" {
					nodes[from].kill()
				} else {
					nodes[from].set(api.Active{Status: api.StatusInactive, Epoch: epoch - 1})
				}
				nodes[to].set(api.Active{Status: api.StatusActive, Epoch: epoch})
				waitServedBy(b, edgeAddr, names[to])
				d := time.Since(t0)
				fr.times[scenario] = append(fr.times[scenario], d)
				fmt.Printf("%s: %s -> %s, first answer of %s after %v\n", scenario, names[from], names[to], names[to], d.Round(time.Millisecond))
				if scenario == "kill" {
					nodes[from].set(api.Active{Status: api.StatusInactive, Epoch: epoch - 1})
					nodes[from].revive(b)
				}
			}
		}
	})
	return fr
}

// waitServedBy sends GET / through the Edge, one request after the other
// on a keep-alive connection, until the app named name answers.
func waitServedBy(tb testing.TB, edgeAddr, name string) {
	tb.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var served atomic.Value
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+edgeAddr+"/", nil)
		res, err := c.Do(req)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		served.Store(res.Header.Get("X-Served-By"))
		if res.StatusCode == 200 && res.Header.Get("X-Served-By") == name {
			return
		}
	}
	tb.Fatalf("no answer from %s through the Edge (last from %v)", name, served.Load())
}
