// Command edgebench measures the Edge beside nginx, as processes on
// loopback, with wrk as the load generator; edge/bench.sh runs it (see
// edge/README.md). It measures and asserts nothing.
//
// One upstream (this program again, as a separate process: a fasthttp
// server answering /small with a 1.1 KiB page, /4k with 4 KiB and /1m with
// 1 MiB), reached three ways: direct, through an Edge (`resman run` with
// one side whose fake node, served here, says Active) and through nginx (2
// workers, upstream keepalive 64, access log off, the Edge's forwarded
// headers). For each answer size and connection count, rounds of wrk
// alternate the three targets, in turns of order, and it reports per
// target the median over rounds of: the throughput over direct's in the
// same round, the p99 latency (wrk's), and the CPU time the proxy process
// (nginx: with its workers) spent per request; and the Edge's CPU per
// request and throughput over nginx's, medians of the rounds' ratios. Then
// the Edge's resident memory: idle, after the loads (the 1 MiB ones last),
// and 30 s after. With -json, the same figures go to a file as well
// (BenchmarkEdgeThroughput of cmd/resman reads them). With -baselines, two
// more proxies run in the same rounds, to tell where the Edge's CPU goes: a
// byte relay in Go and a bare fasthttp proxy (see baseline.go).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/resman-pbx/resman/resilience/api"
)

type size struct {
	name, path string
	bytes      int
}

var sizes = []size{
	{"1.1 KiB", "/small", 1100},
	{"4 KiB", "/4k", 4096},
	{"1 MiB", "/1m", 1 << 20},
}

func main() {
	upstream := flag.String("upstream", "", "serve as the upstream on this address (internal)")
	serveAs := flag.String("serve", "", "serve as a baseline proxy, relay or fasthttp, from -listen to -upstream (internal)")
	listen := flag.String("listen", "", "the baseline proxy's address (internal)")
	baselines := flag.Bool("baselines", false, "also measure two baseline proxies: a byte relay in Go and a bare fasthttp proxy")
	resman := flag.String("resman", "", "the resman binary (required)")
	conns := flag.String("conns", "32,1000", "connection counts, comma-separated")
	only := flag.String("sizes", "1.1 KiB,4 KiB,1 MiB", "answer sizes, comma-separated, among "+names())
	rounds := flag.Int("rounds", 3, "rounds per size and connection count")
	round := flag.Duration("round", 5*time.Second, "duration of one wrk run")
	threads := flag.Int("threads", 2, "wrk threads")
	settle := flag.Duration("settle", 30*time.Second, "wait before the last memory reading")
	noNginx := flag.Bool("no-nginx", false, "direct and Edge only")
	edgeEnv := flag.String("edge-env", "", "variables added to the Edge's environment (GOGC=200 ...)")
	edge2 := flag.String("edge2", "", "also measure a second Edge, \"edge2\": RESMAN-BINARY[,VAR=VALUE...] (A/B in the same rounds)")
	jsonOut := flag.String("json", "", "also write the results to this file, as JSON")
	flag.Parse()
	switch {
	case *serveAs != "":
		serveBaseline(*serveAs, *listen, *upstream)
		return
	case *upstream != "":
		serveUpstream(*upstream)
		return
	}
	if *resman == "" {
		fatalf("-resman is required")
	}
	b := &bench{dir: must(os.MkdirTemp("", "edgebench"))}
	current = b
	defer b.stop()

	upAddr := freeAddr()
	b.start("upstream", exec.Command(must(os.Executable()), "-upstream", upAddr))
	waitOK("http://" + upAddr + "/small")
	nodeURL := fakeNode()
	targets := []*target{{name: "direct", addr: upAddr}}
	edge := b.startEdge("edge", *resman, nodeURL, upAddr, strings.Fields(*edgeEnv))
	targets = append(targets, edge)
	if *baselines {
		for _, kind := range []string{"relay", "fasthttp"} {
			addr := freeAddr()
			cmd := exec.Command(must(os.Executable()), "-serve", kind, "-listen", addr, "-upstream", upAddr)
			b.start(kind, cmd)
			waitOK("http://" + addr + "/small")
			targets = append(targets, &target{name: kind, addr: addr, pid: cmd.Process.Pid})
		}
	}
	if *edge2 != "" {
		f := strings.Split(*edge2, ",")
		targets = append(targets, b.startEdge("edge2", f[0], nodeURL, upAddr, f[1:]))
	}
	if !*noNginx {
		if ng := b.startNginx(upAddr); ng != nil {
			targets = append(targets, ng)
		} else {
			fmt.Println("nginx is not installed (apt-get install nginx-light; edge/bench.sh does): direct and Edge only")
		}
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		fatalf("wrk is not installed (apt-get install wrk; edge/bench.sh does)")
	}
	var conList []int
	for _, c := range strings.Split(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			fatalf("-conns: %q", c)
		}
		conList = append(conList, n)
	}
	var sizeList []size
	for _, s := range sizes {
		if slices.Contains(strings.Split(*only, ","), s.name) {
			sizeList = append(sizeList, s)
		}
	}
	// The resident memory of each Edge: idle, then right after each of its
	// runs (the highest, and the last: after a 1 MiB load at the most
	// connections when those are measured), and settle after the end.
	var edges []*target
	rssIdle := map[string]float64{}
	for _, t := range targets {
		if strings.HasPrefix(t.name, "edge") {
			edges = append(edges, t)
			rssIdle[t.name] = rss(t.pid)
		}
	}
	type key struct {
		size  string
		conns int
	}
	results := map[key]map[string][]run{}
	rssPeak, rssLast := map[string]float64{}, map[string]float64{}
	for _, s := range sizeList {
		for _, c := range conList {
			k := key{s.name, c}
			results[k] = map[string][]run{}
			// Warm up every path (connections, pools).
			for _, t := range targets {
				wrkRun(wrk, t, s.path, c, *threads, time.Second)
			}
			for r := range *rounds {
				order := slices.Clone(targets)
				if r%2 == 1 {
					slices.Reverse(order)
				}
				if r%3 == 2 {
					// Rotate too, so that no target is always in the middle.
					order = append(order[1:], order[0])
				}
				for _, t := range order {
					res := wrkRun(wrk, t, s.path, c, *threads, *round)
					results[k][t.name] = append(results[k][t.name], res)
					if t.pid != 0 {
						rssPeak[t.name] = max(rssPeak[t.name], res.rss)
						rssLast[t.name] = res.rss
					}
					fmt.Printf("%-7s %4d conns  round %d  %-6s %9.0f req/s  p99 %8v  cpu %6.1f µs/req (user %5.1f)  RSS %5.1f MiB  errors %d %s\n",
						s.name, c, r+1, t.name, res.rps, res.p99.Round(10*time.Microsecond), res.cpuPerReq, res.userPerReq, res.rss, res.errors, res.errorKind)
				}
			}
		}
	}
	time.Sleep(*settle)
	rssLater := map[string]float64{}
	for _, t := range edges {
		rssLater[t.name] = rss(t.pid)
	}

	var report Report
	report.Rounds, report.Round, report.Threads = *rounds, round.String(), *threads
	for _, s := range sizeList {
		for _, c := range conList {
			report.Lines = append(report.Lines, summarize(s.name, c, targets, results[key{s.name, c}]))
		}
	}
	fmt.Printf("\n%d rounds of %v per line, wrk -t%d, medians of rounds (ratio: of direct, or of nginx, in the same round)\n\n", *rounds, *round, *threads)
	fmt.Println("| answer | conns | direct req/s | Edge / direct | nginx / direct | p99 direct | p99 Edge | p99 nginx | CPU µs/req Edge | CPU µs/req nginx | CPU/req Edge / nginx | req/s Edge / nginx |")
	fmt.Println("|--------|------:|-------------:|--------------:|---------------:|-----------:|---------:|----------:|----------------:|-----------------:|---------------------:|-------------------:|")
	for _, l := range report.Lines {
		d, e, n := l.Targets["direct"], l.Targets["edge"], l.Targets["nginx"]
		fmt.Printf("| %s | %d | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", l.Size, l.Conns, d.RPS,
			ratioText(e.OfDirect), ratioText(n.OfDirect), p99Text(d), p99Text(e), p99Text(n), cpuText(e), cpuText(n),
			ratioText(e.CPUOfNginx), ratioText(e.RPSOfNginx))
		for _, name := range []string{"edge2", "relay", "fasthttp"} {
			if x, ok := l.Targets[name]; ok {
				fmt.Printf("|   %s | %d | | %s | | | %s | | %s | | %s | %s |\n", name, l.Conns, ratioText(x.OfDirect), p99Text(x), cpuText(x),
					ratioText(x.CPUOfNginx), ratioText(x.RPSOfNginx))
			}
		}
	}
	fmt.Println()
	for _, t := range edges {
		fmt.Printf("%s RSS: %.1f MiB idle, %.1f MiB right after its last run, at most %.1f MiB right after a run, %.1f MiB %v after the end\n",
			t.name, rssIdle[t.name], rssLast[t.name], rssPeak[t.name], rssLater[t.name], *settle)
		report.RSS = append(report.RSS, RSS{Target: t.name, Idle: rssIdle[t.name], Last: rssLast[t.name],
			Peak: rssPeak[t.name], Later: rssLater[t.name], Settle: settle.String()})
	}
	errs := 0
	for _, rs := range results {
		for _, runs := range rs {
			for _, r := range runs {
				errs += r.errors
			}
		}
	}
	if errs > 0 {
		fmt.Printf("errors (socket errors and answers other than 2xx/3xx): %d\n", errs)
	}
	report.Errors = errs
	if *jsonOut != "" {
		raw, _ := json.MarshalIndent(report, "", "  ")
		if err := os.WriteFile(*jsonOut, raw, 0o644); err != nil {
			fatalf("%v", err)
		}
	}
}

// Report is what edgebench measured, as -json writes it.
type Report struct {
	Rounds  int    `json:"rounds"`
	Round   string `json:"round"`
	Threads int    `json:"threads"`
	Lines   []Line `json:"lines"`
	RSS     []RSS  `json:"rss"`
	Errors  int    `json:"errors"`
}

// Line is one answer size at one connection count.
type Line struct {
	Size    string            `json:"size"`
	Conns   int               `json:"conns"`
	Targets map[string]Result `json:"targets"`
}

// Result is one target's medians over the rounds of a line; a ratio is
// the median of the rounds' ratios, 0 when there is nothing to compare
// (direct has no CPU, nginx may be missing).
type Result struct {
	RPS          float64 `json:"rps"`
	P99Micros    float64 `json:"p99_us"`
	CPUPerReq    float64 `json:"cpu_us_per_req"` // 0 for direct
	UserPerReq   float64 `json:"user_us_per_req"`
	OfDirect     float64 `json:"of_direct"`
	CPUOfNginx   float64 `json:"cpu_of_nginx"`
	RPSOfNginx   float64 `json:"rps_of_nginx"`
	ErrorsInRuns int     `json:"errors"`
}

// RSS is an Edge's resident memory, MiB.
type RSS struct {
	Target string  `json:"target"`
	Idle   float64 `json:"idle"`
	Last   float64 `json:"last"`
	Peak   float64 `json:"peak"`
	Later  float64 `json:"later"`
	Settle string  `json:"settle"`
}

// summarize takes the medians of the rounds of one line.
func summarize(size string, conns int, targets []*target, rs map[string][]run) Line {
	l := Line{Size: size, Conns: conns, Targets: map[string]Result{}}
	direct, nginx := rs["direct"], rs["nginx"]
	for _, t := range targets {
		runs := rs[t.name]
		if len(runs) == 0 {
			continue
		}
		var res Result
		of := func(f func(r run) float64) float64 {
			var v []float64
			for _, r := range runs {
				v = append(v, f(r))
			}
			return median(v)
		}
		// over is the median of the rounds' ratios of f to the other's.
		over := func(other []run, f func(r run) float64) float64 {
			var v []float64
			for i, r := range runs {
				if i < len(other) && f(other[i]) > 0 {
					v = append(v, f(r)/f(other[i]))
				}
			}
			return median(v)
		}
		rps := func(r run) float64 { return r.rps }
		cpu := func(r run) float64 { return r.cpuPerReq }
		res.RPS = of(rps)
		res.P99Micros = of(func(r run) float64 { return float64(r.p99.Microseconds()) })
		res.CPUPerReq = of(cpu)
		res.UserPerReq = of(func(r run) float64 { return r.userPerReq })
		res.OfDirect = over(direct, rps)
		if t.name != "nginx" && t.pid != 0 {
			res.CPUOfNginx = over(nginx, cpu)
			res.RPSOfNginx = over(nginx, rps)
		}
		for _, r := range runs {
			res.ErrorsInRuns += r.errors
		}
		l.Targets[t.name] = res
	}
	return l
}

func ratioText(r float64) string {
	if r == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", r)
}

func p99Text(r Result) string {
	if r.RPS == 0 {
		return "-"
	}
	return (time.Duration(r.P99Micros) * time.Microsecond).Round(10 * time.Microsecond).String()
}

func cpuText(r Result) string {
	if r.CPUPerReq == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", r.CPUPerReq)
}

func names() string {
	var n []string
	for _, s := range sizes {
		n = append(n, s.name)
	}
	return strings.Join(n, ",")
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// serveUpstream is the upstream: fixed pages, as a web server sends them.
func serveUpstream(addr string) {
	pages := map[string][]byte{}
	for _, s := range sizes {
		pages[s.path] = bytes.Repeat([]byte("x"), s.bytes)
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			p, ok := pages[string(ctx.Path())]
			if !ok {
				ctx.SetStatusCode(404)
				return
			}
			ctx.Response.Header.Set("Content-Type", "text/html")
			ctx.Response.Header.Set("Cache-Control", "no-cache")
			ctx.SetBody(p)
		},
		NoDefaultDate: true,
	}
	if err := srv.ListenAndServe(addr); err != nil {
		fatalf("upstream: %v", err)
	}
}

// fakeNode serves a node's GET /active, always Active, and returns its URL.
func fakeNode() string {
	ln := must(net.Listen("tcp", "127.0.0.1:0"))
	mux := http.NewServeMux()
	mux.HandleFunc("/active", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(api.Active{Status: api.StatusActive, Epoch: 1})
	})
	go http.Serve(ln, mux)
	return "http://" + ln.Addr().String()
}

type target struct {
	name, addr string
	pid        int // the proxy's process, 0 for direct
}

type bench struct {
	dir   string
	procs []*exec.Cmd
}

func (b *bench) start(name string, cmd *exec.Cmd) {
	f := must(os.Create(filepath.Join(b.dir, name+".log")))
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		fatalf("start %s: %v", name, err)
	}
	b.procs = append(b.procs, cmd)
}

// current is stopped on a fatal error.
var current *bench

func (b *bench) stop() {
	defer os.RemoveAll(b.dir)
	for _, p := range slices.Backward(b.procs) {
		p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.Process.Kill()
		}
	}
}

const token = "edgebench-token-0123456789"

func (b *bench) startEdge(name, resman, node, upstream string, env []string) *target {
	addr, apiAddr := freeAddr(), freeAddr()
	cfg := fmt.Sprintf(`api: {listen: %s, token: %s}
edge:
  listen: %s
  token: %s
  sides:
    - name: main
      node: %s
      routes: [{path: /, upstream: "http://%s"}]
log: {level: warn}
`, apiAddr, token, addr, token, node, upstream)
	path := filepath.Join(b.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		fatalf("%v", err)
	}
	cmd := exec.Command(resman, "run", "-c", path)
	cmd.Env = append(os.Environ(), env...)
	b.start(name, cmd)
	waitOK("http://" + addr + "/small")
	return &target{name: name, addr: addr, pid: cmd.Process.Pid}
}

func (b *bench) startNginx(upstream string) *target {
	bin, _ := exec.LookPath("nginx")
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
		if _, err := os.Stat(p); bin == "" && err == nil {
			bin = p
		}
	}
	if bin == "" {
		return nil
	}
	addr := freeAddr()
	conf := fmt.Sprintf(`worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 8192; }
worker_rlimit_nofile 20000;
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
`, b.dir, upstream, addr)
	path := filepath.Join(b.dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		fatalf("%v", err)
	}
	cmd := exec.Command(bin, "-p", b.dir, "-e", filepath.Join(b.dir, "error.log"), "-c", path, "-g", "daemon off;")
	b.start("nginx", cmd)
	waitOK("http://" + addr + "/small")
	return &target{name: "nginx", addr: addr, pid: cmd.Process.Pid}
}

// run is one wrk run against one target.
type run struct {
	rps       float64
	p99       time.Duration
	cpuPerReq float64 // µs of the proxy's CPU per request
	// userPerReq is the part of it in user space (the rest in the kernel).
	userPerReq float64
	errors     int
	errorKind  string  // wrk's lines on them
	rss        float64 // the proxy's resident memory right after, MiB
}

var (
	reRequests = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m)`)
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reP99      = regexp.MustCompile(`\s99%\s+([0-9.]+)(us|ms|s)`)
	reSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func wrkRun(wrk string, t *target, path string, conns, threads int, d time.Duration) run {
	threads = min(threads, conns)
	cmd := exec.Command(wrk, "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(int(d.Seconds()))+"s",
		"--timeout", "10s", "--latency", "http://"+t.addr+path)
	var cpu0, user0 time.Duration
	if t.pid != 0 {
		cpu0, user0 = cpuTime(t.pid)
	}
	out, err := cmd.CombinedOutput()
	var cpu, user time.Duration
	if t.pid != 0 {
		c, u := cpuTime(t.pid)
		cpu, user = c-cpu0, u-user0
	}
	if err != nil {
		fatalf("wrk: %v\n%s", err, out)
	}
	s := string(out)
	var r run
	m := reRequests.FindStringSubmatch(s)
	if m == nil {
		fatalf("wrk output without a request count:\n%s", s)
	}
	n, _ := strconv.Atoi(m[1])
	if m = reRPS.FindStringSubmatch(s); m != nil {
		r.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m = reP99.FindStringSubmatch(s); m != nil {
		r.p99 = parseDur(m[1], m[2])
	}
	if m = reSocket.FindStringSubmatch(s); m != nil {
		r.errorKind = m[0]
		for _, x := range m[1:] {
			v, _ := strconv.Atoi(x)
			r.errors += v
		}
	}
	if m = reNon2xx.FindStringSubmatch(s); m != nil {
		r.errorKind += " " + m[0]
		v, _ := strconv.Atoi(m[1])
		r.errors += v
	}
	if n > 0 && t.pid != 0 {
		r.cpuPerReq = float64(cpu.Microseconds()) / float64(n)
		r.userPerReq = float64(user.Microseconds()) / float64(n)
	}
	if t.pid != 0 {
		r.rss = rss(t.pid)
	}
	return r
}

func parseDur(v, unit string) time.Duration {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "us":
		return time.Duration(f * float64(time.Microsecond))
	case "ms":
		return time.Duration(f * float64(time.Millisecond))
	}
	return time.Duration(f * float64(time.Second))
}

// cpuTime is the CPU time (user and system) used so far by the process pid
// and its children (nginx's workers), and the part of it in user space.
func cpuTime(pid int) (total, user time.Duration) {
	ticks, userTicks := 0, 0
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
		userTicks += u
	}
	// USER_HZ is 100 on Linux.
	return time.Duration(ticks) * 10 * time.Millisecond, time.Duration(userTicks) * 10 * time.Millisecond
}

// rss is the resident memory of pid, in MiB.
func rss(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// freeAddr is a free loopback address below the ephemeral range: a port
// the kernel picked and freed could be taken by any outgoing connection
// (wrk's 1,000 among them) before the server meant for it binds it.
func freeAddr() string {
	for range 50 {
		port := 20000 + int(time.Now().UnixNano()%10000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			ln.Close()
			return ln.Addr().String()
		}
	}
	fatalf("no free loopback port from 20000 to 29999 in 50 tries")
	return ""
}

func waitOK(url string) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	fatalf("%s never answered 200", url)
}

func must[T any](v T, err error) T {
	if err != nil {
		fatalf("%v", err)
	}
	return v
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "edgebench: "+format+"\n", args...)
	if b := current; b != nil {
		current = nil
		b.stop()
	}
	os.Exit(1)
}
