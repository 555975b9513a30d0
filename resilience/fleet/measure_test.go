package fleet

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/testkit"
)

func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heapInUse is the heap and goroutine stacks in use after a GC.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// simEnv makes the test binary a simulator process (TestSimulatorProcess).
const simEnv = "RESMAN_FLEET_SIM_PAIRS"

// TestSimulatorProcess is the simulator of TestMeasureLoad in its own
// process, so that the aggregator's CPU and memory are measured alone. It
// serves n pairs on every loopback address (node k of TestMeasureLoad is
// host 127.0.k/250.k%250+1: one connection per node, as with real
// hosts), refuses other clients, and stops when its stdin closes.
func TestSimulatorProcess(t *testing.T) {
	v := os.Getenv(simEnv)
	if v == "" {
		t.Skip("the simulator process of TestMeasureLoad: runs only when that test starts it")
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatal(err)
	}
	s := buildSim(n)
	// Every 127/8 address reaches a socket bound to 0.0.0.0; clients
	// from elsewhere are dropped.
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.serve), ConnState: func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			if a, ok := c.RemoteAddr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
				c.Close()
			}
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("SIM %d\n", ln.Addr().(*net.TCPAddr).Port)
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
	fmt.Printf("SIMSTATS %d %d %d %d\n", s.requests.Load(), s.notGET.Load(), s.otherPath.Load(), s.badToken.Load())
}

// startSimProcess runs TestSimulatorProcess for n pairs; stop ends it and
// returns its request counts and CPU time.
func startSimProcess(t *testing.T, n int) (port int, stop func() (stats string, cpu time.Duration)) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestSimulatorProcess$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", simEnv, n))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "SIM %d", &port); err == nil {
			break
		}
	}
	if port == 0 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("the simulator process did not start")
	}
	var once sync.Once
	var stats string
	var cpu time.Duration
	stop = func() (string, time.Duration) {
		once.Do(func() {
			in.Close()
			for sc.Scan() {
				if s, ok := strings.CutPrefix(sc.Text(), "SIMSTATS "); ok {
					stats = s
				}
			}
			_ = cmd.Wait()
			if ps := cmd.ProcessState; ps != nil {
				cpu = ps.UserTime() + ps.SystemTime()
			}
		})
		return stats, cpu
	}
	t.Cleanup(func() { stop() })
	return port, stop
}

// The aggregator's cost for 500 and 5,000 pairs at the default interval
// (2s) and concurrency (32). The simulator runs in another process, and
// each node has its own loopback address, so that the aggregator keeps
// one connection per node as it would with real hosts: the CPU and the
// heap measured are the aggregator's own (the test process: the
// aggregator, its HTTP API and this test's reader).
func TestMeasureLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 30 s: 500 and 5,000 pairs polled for 8 s each")
	}
	if raceEnabled {
		t.Skip("a measurement: under -race it measures the race detector (the plain run measures it)")
	}
	if runtime.GOOS != "linux" {
		t.Skip("needs every 127/8 address to be the loopback interface (Linux)")
	}
	var stats string
	var simCPU time.Duration
	for _, n := range []int{500, 5000} {
		port, stopSim := startSimProcess(t, n)
		pairs := simPairs(n, func(k int) string {
			return fmt.Sprintf("http://127.0.%d.%d:%d", k/250, k%250+1, port)
		})
		heap0 := heapInUse()
		reg := prometheus.NewRegistry()
		_, url, stop := startAggregatorOf(t, Config{Pairs: pairs}, Options{Registerer: reg})
		hc := &http.Client{}
		start := time.Now()
		waitAllPolled(t, hc, url, 30*time.Second)
		first := time.Since(start)

		const window = 8 * time.Second
		reads0 := testkit.MetricSum(t, reg, MetricPollDuration, nil)
		skipped0 := testkit.MetricSum(t, reg, MetricPollsSkipped, nil)
		errs0 := testkit.MetricSum(t, reg, MetricPollErrors, nil)
		cpu0, wall0 := cpuTime(t), time.Now()
		time.Sleep(window)
		cpu, wall := cpuTime(t)-cpu0, time.Since(wall0)
		reads := testkit.MetricSum(t, reg, MetricPollDuration, nil) - reads0
		skipped := testkit.MetricSum(t, reg, MetricPollsSkipped, nil) - skipped0
		errs := testkit.MetricSum(t, reg, MetricPollErrors, nil) - errs0
		heap1 := heapInUse()

		// One read of the whole view, as the page or a script does, and
		// one scrape.
		t0 := time.Now()
		view := getFleet(t, hc, url)
		apiTime := time.Since(t0)
		t0 = time.Now()
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
		gatherTime := time.Since(t0)
		stop()
		stats, simCPU = stopSim()
		if len(view) != n {
			t.Fatalf("%d pairs in the view, want %d", len(view), n)
		}
		kept := float64(int64(heap1) - int64(heap0))
		t.Logf("measured: %d pairs (%d nodes, one address each), interval 2s, concurrency 32, GOMAXPROCS %d: "+
			"first full view after %s; %.0f reads/s, %.0f errors; aggregator CPU %.3f cores; %.0f turns skipped; "+
			"memory kept by the aggregator (heap and stacks) %.1f MiB (%.1f KiB per pair, its connections included); GET %s %s; metrics gather %s; "+
			"simulator process CPU %s in all",
			n, 2*n, runtime.GOMAXPROCS(0), first.Round(time.Millisecond), reads/wall.Seconds(), errs,
			cpu.Seconds()/wall.Seconds(), skipped, kept/(1<<20), kept/1024/float64(n),
			PathAPI, apiTime.Round(time.Millisecond), gatherTime.Round(time.Millisecond), simCPU.Round(time.Millisecond))
		var reqs, notGET, other, bad int64
		if _, err := fmt.Sscanf(stats, "%d %d %d %d", &reqs, &notGET, &other, &bad); err != nil {
			t.Fatalf("simulator stats %q: %v", stats, err)
		}
		if notGET != 0 || other != 0 || bad != 0 {
			t.Errorf("the simulator saw %d requests other than GET, %d other paths, %d bad tokens; want none", notGET, other, bad)
		}
		if errs != 0 {
			t.Errorf("%.0f failed reads", errs)
		}
		// A rate is a measurement, not a rule: on a loaded machine (or
		// under -race) it falls short and says so, without failing.
		if want := float64(2*n) / 2 * 0.8; reads/wall.Seconds() < want {
			t.Logf("measured: %.0f reads/s, below %.0f (80%% of every node every 2s): a loaded machine", reads/wall.Seconds(), want)
		}
	}
}
