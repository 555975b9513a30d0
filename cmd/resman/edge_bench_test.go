package main

// Benchmarks of the Edge proxy as real processes on loopback; run with
// edge/bench.sh (see edge/README.md), which installs nginx when missing:
//
//   BenchmarkEdgeThroughput  throughput and p50/p99 latency of GET / of a
//                            stand-in web app, side by side in alternating
//                            rounds: direct, through the Edge, through
//                            nginx (2 workers, upstream keepalive)
//   BenchmarkEdgeFailover    time from the Main's failure to the first
//                            answer of the Standby's app through the Edge
//
// They measure; they assert nothing about the figures. Each runs its
// measurement once per process and reports it for every b.N.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

// Load of the throughput benchmark, overridable for a quick look; a bad
// value fails the benchmark and names the variable.
func benchSettings(b testing.TB) (conns, rounds int, round time.Duration) {
	return envInt(b, "EDGE_BENCH_CONNS", 32), envInt(b, "EDGE_BENCH_ROUNDS", 5), envDuration(b, "EDGE_BENCH_ROUND", 3*time.Second)
}

// loadResult is one run of the load generator against one target.
type loadResult struct {
	requests int
	errors   int
	elapsed  time.Duration
	lat      []time.Duration
}

func (r loadResult) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// generateLoad sends GET path on conns keep-alive connections to addr for
// d, each connection one request at a time, and records every latency. It
// parses answers by hand (status line, Content-Length) to spend as little
// CPU as possible beside the proxy and the upstream.
func generateLoad(addr, path string, conns int, d time.Duration) loadResult {
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: resman-bench\r\n\r\n")
	var wg sync.WaitGroup
	results := make([]loadResult, conns)
	deadline := time.Now().Add(d)
	start := time.Now()
	for i := range conns {
		wg.Go(func() {
			r := &results[i]
			r.lat = make([]time.Duration, 0, 1<<15)
			var c net.Conn
			var br *bufio.Reader
			for time.Now().Before(deadline) {
				if c == nil {
					var err error
					if c, err = net.Dial("tcp", addr); err != nil {
						r.errors++
						time.Sleep(10 * time.Millisecond)
						continue
					}
					br = bufio.NewReaderSize(c, 16<<10)
				}
				t0 := time.Now()
				c.SetDeadline(t0.Add(5 * time.Second))
				if _, err := c.Write(req); err != nil {
					r.errors++
					c.Close()
					c = nil
					continue
				}
				keep, err := readAnswer(br)
				if err != nil {
					r.errors++
					c.Close()
					c = nil
					continue
				}
				r.lat = append(r.lat, time.Since(t0))
				r.requests++
				if !keep {
					c.Close()
					c = nil
				}
			}
			if c != nil {
				c.Close()
			}
		})
	}
	wg.Wait()
	out := loadResult{elapsed: time.Since(start)}
	for _, r := range results {
		out.requests += r.requests
		out.errors += r.errors
		out.lat = append(out.lat, r.lat...)
	}
	slices.Sort(out.lat)
	return out
}

// readAnswer reads one HTTP/1.1 answer with a Content-Length and says
// whether the connection stays open. Any status but 200 is an error.
func readAnswer(br *bufio.Reader) (keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return false, err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return false, fmt.Errorf("answer %q", bytes.TrimSpace(line))
	}
	length, keep := -1, true
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return false, err
		}
		if len(line) <= 2 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length, err = strconv.Atoi(string(value))
			if err != nil {
				return false, err
			}
		case bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(value, []byte("close")):
			keep = false
		}
	}
	if length < 0 {
		return false, errors.New("answer without Content-Length")
	}
	_, err = br.Discard(length)
	return keep, err
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

// cpuTime is the CPU time (user and system) used so far by the process
// pid and its children that still run (nginx's workers).
func cpuTime(pid int) time.Duration {
	ticks := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// Fields after the command name, which may hold spaces.
		rest := raw[bytes.LastIndexByte(raw, ')')+2:]
		f := strings.Fields(string(rest))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if p != pid && ppid != pid {
			continue
		}
		u, _ := strconv.Atoi(f[11])
		s, _ := strconv.Atoi(f[12])
		ticks += u + s
	}
	// USER_HZ is 100 on Linux.
	return time.Duration(ticks) * 10 * time.Millisecond
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

// target is one way to reach the stand-in app: its address and the
// process doing the proxying (none for direct).
type target struct {
	addr string
	pid  int
}

// startEdgeProc runs an Edge process in front of two sides and returns its
// proxy address. check is the edge.check section ("" for the defaults).
func startEdgeProc(tb testing.TB, mainNode, standbyNode *benchNode, mainApp, standbyApp, check string) target {
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
	return target{addr: proxy, pid: cmd.Process.Pid}
}

// startNginx runs nginx (2 workers, upstream keepalive) as a reverse proxy
// to upstream, doing the Edge's job, and returns its address; false when
// nginx is not installed.
func startNginx(tb testing.TB, upstream string) (target, bool) {
	tb.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, err := os.Stat(p); err == nil {
				bin = p
			}
		}
	}
	if bin == "" {
		return target{}, false
	}
	dir := tb.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(tb, "127.0.0.1"))
	conf := fmt.Sprintf(`worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  upstream app {
    server %[2]s;
    keepalive 64;
  }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`, dir, upstream, addr)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := benchProc(tb, "nginx", exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path, "-g", "daemon off;"))
	waitHTTP(tb, "http://"+addr+"/healthz", 200)
	return target{addr: addr, pid: cmd.Process.Pid}, true
}

// throughput is the outcome of BenchmarkEdgeThroughput, measured once.
type throughput struct {
	once    sync.Once
	targets []string
	rps     map[string]float64
	p50     map[string]time.Duration
	p99     map[string]time.Duration
	errors  map[string]int
	// cpu is the proxy's CPU time per request (none for direct).
	cpu map[string]time.Duration
	// ratio is the median over rounds of the target's throughput over the
	// direct one's in the same round (robust to load that drifts).
	ratio map[string]float64
}

func BenchmarkEdgeThroughput(b *testing.B) {
	th := measureThroughput(b)
	for range b.N {
	}
	for _, t := range th.targets {
		b.ReportMetric(th.rps[t], t+"-req/s")
		b.ReportMetric(float64(th.p50[t].Microseconds()), t+"-p50-µs")
		b.ReportMetric(float64(th.p99[t].Microseconds()), t+"-p99-µs")
		if c, ok := th.cpu[t]; ok {
			b.ReportMetric(float64(c.Nanoseconds())/1000, t+"-cpu-µs/req")
		}
	}
	b.ReportMetric(th.ratio["edge"], "edge/direct")
	if r, ok := th.ratio["nginx"]; ok {
		b.ReportMetric(r, "nginx/direct")
	}
}

// benchOnce keeps the measurements of this process: each benchmark runs
// once however many times testing calls it.
var benchOnce = struct {
	throughput throughput
	failover   failoverResult
}{}

func measureThroughput(b *testing.B) *throughput {
	th := &benchOnce.throughput
	th.once.Do(func() {
		conns, rounds, round := benchSettings(b)
		app := startStandinApp(b, "main")
		other := startStandinApp(b, "standby")
		mainNode := newBenchNode(b, api.Active{Status: api.StatusActive, Epoch: 1})
		standbyNode := newBenchNode(b, api.Active{Status: api.StatusInactive})
		edgeT := startEdgeProc(b, mainNode, standbyNode, app, other, "")
		waitHTTP(b, "http://"+edgeT.addr+"/healthz", 200)
		targets := map[string]target{"direct": {addr: app}, "edge": edgeT}
		th.targets = []string{"direct", "edge"}
		if os.Getenv("EDGE_BENCH_NO_NGINX") == "" {
			if ng, ok := startNginx(b, app); ok {
				targets["nginx"] = ng
				th.targets = append(th.targets, "nginx")
			} else {
				fmt.Println("nginx is not installed (apt-get install nginx-light; edge/bench.sh does): direct and Edge only")
			}
		}
		// Warm up every path (connections, pools).
		for _, t := range th.targets {
			generateLoad(targets[t].addr, "/", conns, 500*time.Millisecond)
		}
		all := map[string][]loadResult{}
		cpu := map[string]time.Duration{}
		for r := range rounds {
			// Alternate the order so that no target always runs first.
			order := slices.Clone(th.targets)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, t := range order {
				var before time.Duration
				if pid := targets[t].pid; pid != 0 {
					before = cpuTime(pid)
				}
				res := generateLoad(targets[t].addr, "/", conns, round)
				if pid := targets[t].pid; pid != 0 {
					cpu[t] += cpuTime(pid) - before
				}
				// No answer at all (every request refused or not 200):
				// the figures and the ratios would be meaningless.
				if res.requests == 0 {
					b.Fatalf("round %d: %s answered no request with 200 (%d errors)", r+1, t, res.errors)
				}
				all[t] = append(all[t], res)
				fmt.Printf("round %d  %-6s %8.0f req/s  p50 %8v  p99 %8v  errors %d\n", r+1, t, res.rps(),
					percentile(res.lat, 0.50).Round(time.Microsecond), percentile(res.lat, 0.99).Round(time.Microsecond), res.errors)
			}
		}
		th.ratio = map[string]float64{}
		for _, t := range th.targets {
			var rs []float64
			for i, res := range all[t] {
				rs = append(rs, res.rps()/all["direct"][i].rps())
			}
			slices.Sort(rs)
			th.ratio[t] = rs[len(rs)/2]
		}
		th.rps, th.p50, th.p99, th.errors, th.cpu = map[string]float64{}, map[string]time.Duration{}, map[string]time.Duration{}, map[string]int{}, map[string]time.Duration{}
		for _, t := range th.targets {
			var reqs int
			var elapsed time.Duration
			var lat []time.Duration
			for _, res := range all[t] {
				reqs += res.requests
				elapsed += res.elapsed
				lat = append(lat, res.lat...)
				th.errors[t] += res.errors
			}
			slices.Sort(lat)
			if c, ok := cpu[t]; ok && reqs > 0 {
				th.cpu[t] = c / time.Duration(reqs)
			}
			th.rps[t] = float64(reqs) / elapsed.Seconds()
			th.p50[t], th.p99[t] = percentile(lat, 0.50), percentile(lat, 0.99)
		}
		fmt.Printf("%d rounds of %v, %d connections:\n", rounds, round, conns)
		for _, t := range th.targets {
			fmt.Printf("  %-6s %8.0f req/s  %.2f of direct (median of rounds)  p50 %8v  p99 %8v  errors %d  proxy CPU %v/req\n",
				t, th.rps[t], th.ratio[t], th.p50[t].Round(time.Microsecond), th.p99[t].Round(time.Microsecond), th.errors[t], th.cpu[t].Round(100*time.Nanosecond))
		}
	})
	return th
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
		edgeAddr := startEdgeProc(b, nodes[0], nodes[1], apps[0], apps[1], "").addr
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
