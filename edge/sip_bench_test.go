package edge

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/client/clienttest"
	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/resilience/testkit/sippeers"
)

// BenchmarkSIPRehome measures the SIP front's re-homing: N sipp phones
// (SIPFRONT_BENCH_PHONES, default 100; half UDP, half TCP) register
// through the Edge on side a (kamailio), then side a loses Active to side
// b (kamailio). It reports the time from the switch to each phone's
// binding on side b (p50, p95, max), the REGISTER rate side b saw (mean
// and peak over 1 s, from kamailio's own counter), and the CPU time of
// the test process (the Edge; kamailio and sipp run apart) per SIP
// message the front read or wrote, over the registrations and over the
// re-homing. SIPFRONT_BENCH_RATE sets edge.sip.register_rate (default:
// the config's default, 200 per second).
//
//	go test -run '^$' -bench BenchmarkSIPRehome -benchtime 1x ./edge/
//	SIPFRONT_BENCH_PHONES=1000 go test -run '^$' -bench BenchmarkSIPRehome -benchtime 1x -timeout 20m ./edge/
func BenchmarkSIPRehome(b *testing.B) {
	phones := envInt(b, "SIPFRONT_BENCH_PHONES", 100)
	rate := envInt(b, "SIPFRONT_BENCH_RATE", 200)
	sippeers.NeedTool(b, "sipp", "sip-tester")
	tpl, err := filepath.Abs(filepath.Join("sipfront", "testdata", "kamailio.cfg"))
	if err != nil {
		b.Fatal(err)
	}
	sf, err := filepath.Abs(filepath.Join("sipfront", "testdata", "sipp", "register.xml"))
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		kamA := sippeers.StartKamailio(b, tpl, testkit.Port(b))
		kamB := sippeers.StartKamailio(b, tpl, testkit.Port(b))
		nodeA, nodeB := lowNode(b, active(2)), lowNode(b, inactive(1))
		sipAddr := "127.0.0.1:" + strconv.Itoa(testkit.Port(b))
		e := startLowEdge(b, Check{Interval: 100 * time.Millisecond, Rise: 2, Fall: 2},
			[]sideSpec{benchSide("a", nodeA), benchSide("b", nodeB)},
			func(o *Options) {
				o.Logger = nil
				o.Config.SIP = &SIP{Listen: sipAddr, Expires: 60, RegisterRate: rate}
				o.Config.Sides[0].SIP = "sip:" + kamA.Addr
				o.Config.Sides[1].SIP = "sip:" + kamB.Addr
			})
		waitRoutedB(b, e, "a")

		cpu0, msgs0 := cpuTime(b), sipMessages(b, e.reg)
		start := time.Now()
		udp := phones / 2
		var sipps []*sippeers.Sipp
		for _, run := range []struct {
			prefix, transport string
			n                 int
		}{{"u", "u1", udp}, {"t", "t1", phones - udp}} {
			if run.n == 0 {
				continue
			}
			sipps = append(sipps, sippeers.StartSipp(b, sf, "-s", run.prefix, "-m", strconv.Itoa(run.n), "-r", "200",
				"-l", "50", "-i", "127.0.0.1", "-p", strconv.Itoa(testkit.Port(b)), "-t", run.transport, sipAddr))
		}
		for _, s := range sipps {
			s.Wait(b, 10*time.Minute)
		}
		testkit.EventuallyWithin(b, 5*time.Minute, func() bool { return e.Status().SIP.Sides[0].Registered == phones }, "every phone on side a")
		regTime := time.Since(start)
		regCPU, regMsgs := cpuTime(b)-cpu0, sipMessages(b, e.reg)-msgs0

		// The idle cost of the same polling (status, kamcmd) and of the
		// Edge's checks, for a second: subtracted from the re-homing's.
		idle0, idleAt := cpuTime(b), time.Now()
		for time.Since(idleAt) < time.Second {
			_ = e.Status().SIP.LastRehome
			acceptedRegs(b, kamB)
			time.Sleep(100 * time.Millisecond)
		}
		idleRate := float64(cpuTime(b)-idle0) / float64(time.Since(idleAt))
		cpu1, msgs1 := cpuTime(b), sipMessages(b, e.reg)

		base := acceptedRegs(b, kamB)
		switchAt := time.Now()
		nodeB.SetAnswer(active(3))
		nodeA.SetAnswer(inactive(2))
		samples := []regSample{{time.Now(), base}}
		deadline := time.Now().Add(10 * time.Minute)
		for {
			r := e.Status().SIP.LastRehome
			samples = append(samples, regSample{time.Now(), acceptedRegs(b, kamB)})
			if r != nil && r.To == "b" && r.Done {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("re-homing not done: %+v", r)
			}
			time.Sleep(100 * time.Millisecond)
		}
		cpu2, msgs2 := cpuTime(b), sipMessages(b, e.reg)
		netCPU := cpu2 - cpu1 - time.Duration(idleRate*float64(time.Since(switchAt)))
		testkit.EventuallyWithin(b, time.Minute, func() bool { return kamStat(b, kamA, "location_contacts") == 0 }, "side a emptied")
		if n := kamStat(b, kamB, "location_contacts"); n != phones {
			b.Fatalf("side b holds %d contacts, want %d", n, phones)
		}
		r := e.Status().SIP.LastRehome
		mean, peak := regRates(samples)
		b.ReportMetric(float64(phones), "phones")
		b.ReportMetric(r.P50, "rehome-p50-s")
		b.ReportMetric(r.P95, "rehome-p95-s")
		b.ReportMetric(r.Max, "rehome-max-s")
		b.ReportMetric(mean, "newside-REGISTER/s-mean")
		b.ReportMetric(peak, "newside-REGISTER/s-peak1s")
		b.ReportMetric(perMsg(regCPU, regMsgs), "cpu-us/msg-register")
		b.ReportMetric(perMsg(cpu2-cpu1, msgs2-msgs1), "cpu-us/msg-rehome")
		b.ReportMetric(perMsg(netCPU, msgs2-msgs1), "cpu-us/msg-rehome-net")
		b.Logf("%d phones registered in %s (%.0f SIP messages, %.1f µs CPU each); re-homing at %d/s: p50 %.2fs p95 %.2fs max %.2fs, "+
			"side b saw %.0f REGISTER/s mean, %.0f/s peak over 1 s; %.0f messages, %.1f µs CPU each (%.1f µs above the idle polling); side a emptied",
			phones, regTime.Round(time.Millisecond), regMsgs, perMsg(regCPU, regMsgs), rate,
			r.P50, r.P95, r.Max, mean, peak, msgs2-msgs1, perMsg(cpu2-cpu1, msgs2-msgs1), perMsg(netCPU, msgs2-msgs1))
	}
}

func benchSide(name string, node *clienttest.FakeNode) sideSpec {
	return sideSpec{name: name, node: node, routes: []Route{{Path: "/", Upstream: "http://127.0.0.1:9"}}}
}

func waitRoutedB(b *testing.B, e *testEdge, side string) {
	b.Helper()
	testkit.EventuallyWithin(b, time.Minute, func() bool { return e.Status().Side == side }, "routing to %s", side)
}

func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a whole number above 0", name, v)
	}
	return n
}

// cpuTime is the process's CPU time (user and system).
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sipMessages is what the front read and wrote so far.
func sipMessages(b *testing.B, reg *prometheus.Registry) float64 {
	b.Helper()
	fams, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	n := 0.0
	for _, f := range fams {
		if f.GetName() == "resman_edge_sip_messages_total" || f.GetName() == "resman_edge_sip_sent_total" {
			for _, m := range f.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func perMsg(cpu time.Duration, msgs float64) float64 {
	if msgs == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / msgs
}

type regSample struct {
	at time.Time
	n  int
}

// acceptedRegs is kamailio's count of REGISTERs it accepted.
func acceptedRegs(b *testing.B, k *sippeers.Kamailio) int { return kamStat(b, k, "accepted_regs") }

// kamStat is one of kamailio's statistics (accepted_regs,
// location_contacts).
func kamStat(b *testing.B, k *sippeers.Kamailio, name string) int {
	b.Helper()
	n, err := k.Stat(name)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// regRates is the mean REGISTER rate from the first to the last new one,
// and the peak over any 1 s window of the samples.
func regRates(s []regSample) (mean, peak float64) {
	first, last := -1, -1
	for i := 1; i < len(s); i++ {
		if s[i].n > s[i-1].n {
			if first < 0 {
				first = i - 1
			}
			last = i
		}
	}
	if first < 0 {
		return 0, 0
	}
	if d := s[last].at.Sub(s[first].at).Seconds(); d > 0 {
		mean = float64(s[last].n-s[first].n) / d
	}
	var peaks []float64
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if d := s[j].at.Sub(s[i].at); d >= time.Second {
				peaks = append(peaks, float64(s[j].n-s[i].n)/d.Seconds())
				break
			}
		}
	}
	if len(peaks) == 0 {
		return mean, mean
	}
	return mean, slices.Max(peaks)
}
