package main

// BenchmarkVersusKeepalived runs resman and keepalived (the Debian
// package, installed with apt-get when missing) side by side in the same
// kind of network namespaces, a Main and a Standby each, and measures:
//
//  1. kill -9 of the Main's keepalived (all of its processes) to the
//     Standby owning the virtual IP, polled with `ip addr` in the
//     Standby's namespace every 5 ms, with 1 s VRRPv2 adverts and with
//     0.1 s VRRPv3 adverts; against resman's failoverOnce (kill -9 of the
//     Main to the Standby answering Active), the default and fast timer sets (docs/timers.md);
//  2. false takeovers of the Standby while 50% of the Main's packets to it
//     are lost at random: keepalived's transitions to MASTER (its notify
//     script), against resman's falseTakeovers, without and with witness;
//  3. a dead Asterisk: the Main's SIP endpoint (resman standin sip) hung
//     with SIGSTOP or killed with -9, to the Standby owning the virtual IP
//     (keepalived: a track_script doing SIP OPTIONS every second, its
//     shortest period, 400 ms timeout, fall 2) or answering Active
//     (resman: its sip check of the asterisk service, every 500 ms as
//     shipped in the tests and every second as keepalived, and the exit
//     of its process);
//
// then a 60 s picture of the three pairs under the same faults at the same
// time. It prints medians, spreads and the ratios resman / keepalived, and
// writes testout/proof/keepalived.json and testout/proof/keepalived.svg:
//
//	go test -run '^$' -bench VersusKeepalived -benchtime 1x -timeout 60m ./cmd/resman/
//
// RESMAN_PROOF_RUNS (default 10) sets the runs of 1 and 3 per variant;
// RESMAN_PROOF_LOSS (default 2m) the loss window of 2 per variant.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/resilience/testkit/timeline"
)

// requireKeepalived installs keepalived from the Debian archive when it is
// missing (apt-get update first), and skips when it cannot.
func requireKeepalived(b testing.TB) {
	b.Helper()
	if _, err := exec.LookPath("keepalived"); err == nil {
		return
	}
	skip := func(msg string) {
		if os.Getenv("CI") != "" {
			b.Fatal(msg)
		}
		b.Skip(msg)
	}
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		skip("keepalived not installed, and no apt-get as root to install it")
	}
	// Said on stderr too: a benchmark's own log is not always printed.
	b.Log("keepalived not installed: apt-get update && apt-get install -y keepalived")
	fmt.Fprintln(os.Stderr, "keepalived not installed: apt-get update && apt-get install -y keepalived")
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", "keepalived"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			skip(fmt.Sprintf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out))
		}
	}
	if _, err := exec.LookPath("keepalived"); err != nil {
		skip("keepalived still not found after apt-get install")
	}
}

// kaOpts is one keepalived setting under test.
type kaOpts struct {
	name    string
	version int    // VRRP version
	advert  string // advert_int, seconds
	sip     bool   // track the local SIP endpoint
}

var (
	ka1s   = kaOpts{name: "keepalived 1s", version: 2, advert: "1"}
	kaFast = kaOpts{name: "keepalived 0.1s v3", version: 3, advert: "0.1"}
	// kaFaster: 0.05 s adverts, about the least keepalived runs stably
	// with on a loaded host.
	kaFaster = kaOpts{name: "keepalived 0.05s v3", version: 3, advert: "0.05"}
)

// kaPair is a keepalived pair in a lab: the Main with priority 150, the
// Standby 100, unicast VRRP, one virtual IP.
type kaPair struct {
	lab    *lab
	vip    string
	states map[string]string // host -> file the notify script appends "UNIXTIME STATE" to
	procs  map[string]*exec.Cmd
	conf   map[string]string
	killed map[string]time.Time
}

const kaNotify = `#!/bin/sh
# keepalived calls: notify TYPE NAME STATE PRIORITY
echo "$(date +%s.%N) $3" >> "$(dirname "$0")/states"
`

// startKeepalived starts keepalived on main and standby of l.
func startKeepalived(b testing.TB, l *lab, o kaOpts, probe string) *kaPair {
	b.Helper()
	requireKeepalived(b)
	p := &kaPair{lab: l, vip: l.subnet + ".100", states: map[string]string{}, procs: map[string]*exec.Cmd{},
		conf: map[string]string{}, killed: map[string]time.Time{}}
	for _, n := range []struct {
		host, peer, state string
		prio              int
	}{{"main", "standby", "MASTER", 150}, {"standby", "main", "BACKUP", 100}} {
		dir := b.TempDir()
		notify := filepath.Join(dir, "notify.sh")
		if err := os.WriteFile(notify, []byte(kaNotify), 0o700); err != nil {
			b.Fatal(err)
		}
		p.states[n.host] = filepath.Join(dir, "states")
		track, script := "", ""
		if o.sip {
			// As close as keepalived goes to resman's check of the
			// asterisk service (OPTIONS every 500 ms, 400 ms timeout, 2
			// failures or passes in a row): its script interval is whole
			// seconds, 1 at least ("0.5" is refused, and 1 s used).
			script = fmt.Sprintf(`vrrp_script chk_sip {
    script "%s %s:5060"
    interval 1
    timeout 1
    fall 2
    rise 2
}
`, probe, l.host(n.host).ip)
			track = "    track_script {\n        chk_sip\n    }\n"
		}
		conf := fmt.Sprintf(`global_defs {
    router_id rm-%s
    script_user root
    vrrp_version %d
}
%svrrp_instance VI_RM {
    state %s
    interface eth0
    virtual_router_id 51
    priority %d
    advert_int %s
    unicast_src_ip %s
    unicast_peer {
        %s
    }
    virtual_ipaddress {
        %s/24 dev eth0
    }
    notify %s
%s}
`, n.host, o.version, script, n.state, n.prio, o.advert, l.host(n.host).ip, l.host(n.peer).ip, p.vip, notify, track)
		p.conf[n.host] = filepath.Join(dir, "keepalived.conf")
		if err := os.WriteFile(p.conf[n.host], []byte(conf), 0o600); err != nil {
			b.Fatal(err)
		}
		p.start(b, n.host)
	}
	return p
}

func (p *kaPair) start(b testing.TB, host string) {
	dir := filepath.Dir(p.conf[host])
	cmd := p.lab.command(host, "keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp",
		"--use-file", p.conf[host], "--pid", filepath.Join(dir, "k.pid"), "--vrrp_pid", filepath.Join(dir, "v.pid"))
	var out testkit.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p.procs[host] = cmd
	b.Cleanup(func() {
		p.kill(host)
		<-exited
		if b.Failed() {
			b.Logf("keepalived on %s:\n%s", host, out.String())
		}
	})
}

// kill kills -9 every keepalived process of host's namespace, the parent
// and its VRRP child, as a dead host. They are all stopped first: the
// child gets SIGTERM when its parent dies, and killed one after the other
// it sometimes lived long enough to send a last advert with priority 0,
// which hands over at once (a takeover in 0.08 s instead of 0.36 s).
func (p *kaPair) kill(host string) {
	out, _ := exec.Command("ip", "netns", "pids", p.lab.host(host).ns).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, _ := strconv.Atoi(f)
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(comm)) == "keepalived" {
			pids = append(pids, pid)
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGSTOP, syscall.SIGKILL} {
		for _, pid := range pids {
			syscall.Kill(pid, sig)
		}
	}
	if _, ok := p.killed[host]; !ok {
		p.killed[host] = time.Now()
	}
}

// hasVIP reports whether host's interface holds the virtual IP.
func (p *kaPair) hasVIP(host string) bool {
	out, _ := exec.Command("ip", "-n", p.lab.host(host).ns, "-4", "-o", "addr", "show", "dev", "eth0").Output()
	return bytes.Contains(out, []byte(" "+p.vip+"/"))
}

type kaEvent struct {
	at    time.Time
	state string
}

// events reads the states host's keepalived went through.
func (p *kaPair) events(host string) []kaEvent {
	f, err := os.Open(p.states[host])
	if err != nil {
		return nil
	}
	defer f.Close()
	var es []kaEvent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ts, state, ok := strings.Cut(sc.Text(), " ")
		sec, err := strconv.ParseFloat(ts, 64)
		if !ok || err != nil {
			continue
		}
		es = append(es, kaEvent{at: time.Unix(0, int64(sec*1e9)), state: state})
	}
	return es
}

func (p *kaPair) state(host string) string {
	es := p.events(host)
	if len(es) == 0 {
		return ""
	}
	return es[len(es)-1].state
}

// settled waits for the Main to own the virtual IP and the Standby to be
// BACKUP without it.
func (p *kaPair) settled(b testing.TB) {
	b.Helper()
	testkit.Eventually(b, func() bool {
		return p.state("main") == "MASTER" && p.hasVIP("main") && p.state("standby") == "BACKUP" && !p.hasVIP("standby")
	}, "keepalived main MASTER with the VIP, standby BACKUP")
}

// waitVIP polls the Standby's interface until it holds the virtual IP.
func (p *kaPair) waitVIP(b testing.TB, t0 time.Time) time.Duration {
	for !p.hasVIP("standby") {
		if time.Since(t0) > 30*time.Second {
			b.Fatal("the keepalived standby did not take the VIP")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(t0)
}

// kaFailoverOnce: kill -9 of the Main's keepalived to the Standby owning
// the virtual IP, on a fresh pair.
func kaFailoverOnce(b *testing.B, o kaOpts) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	l := newLab(b, "main", "standby")
	p := startKeepalived(b, l, o, "")
	p.settled(b)
	// A random phase of the advert cycle, as a crash has.
	adv, _ := strconv.ParseFloat(o.advert, 64)
	time.Sleep(time.Duration(rand.Float64() * adv * float64(time.Second)))
	t0 := time.Now()
	p.kill("main")
	return p.waitVIP(b, t0)
}

// kaFalseTakeovers counts the Standby's transitions to MASTER during dur
// of 50% loss of the Main's packets to it.
func kaFalseTakeovers(b *testing.B, o kaOpts, dur time.Duration) int {
	b.StopTimer()
	defer b.StartTimer()
	l := newLab(b, "main", "standby")
	p := startKeepalived(b, l, o, "")
	p.settled(b)
	from := time.Now()
	l.lose("standby", "main", 50)
	time.Sleep(dur) // the measurement window itself
	l.heal()
	end := time.Now()
	n := 0
	var master time.Duration // the Standby's MASTER periods begun in the window
	var since time.Time
	for _, e := range p.events("standby") {
		switch {
		case e.state == "MASTER" && e.at.After(from) && since.IsZero():
			n++
			since = e.at
		case e.state != "MASTER" && !since.IsZero():
			master += e.at.Sub(since)
			since = time.Time{}
		}
	}
	if !since.IsZero() {
		master += end.Sub(since)
	}
	if n > 0 {
		// The virtual IP on the Standby while the Main serves the calls:
		// the least outage a false takeover costs its clients (their ARP
		// caches may point at the Standby longer).
		kaFalseMaster[o.name] = master / time.Duration(n)
	}
	return n
}

// kaFalseMaster is the mean length of a false takeover of each keepalived
// setting: how long its Standby held the virtual IP.
var kaFalseMaster = map[string]time.Duration{}

// sipProbe builds a tiny SIP OPTIONS client for keepalived's track_script:
// exit 0 on a final answer below 500 within 400 ms, as resman's sip check.
func sipProbe(b testing.TB) string {
	b.Helper()
	dir := b.TempDir()
	src := `package main

import (
	"fmt"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	c, err := net.Dial("udp", os.Args[1])
	if err != nil {
		os.Exit(2)
	}
	defer c.Close()
	id := strconv.Itoa(rand.Int())
	fmt.Fprintf(c, "OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\r\nMax-Forwards: 70\r\n"+
		"From: <sip:probe@%s>;tag=%s\r\nTo: <sip:%s>\r\nCall-ID: %s@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		os.Args[1], c.LocalAddr(), id, c.LocalAddr(), id, os.Args[1], id)
	c.SetDeadline(time.Now().Add(400 * time.Millisecond))
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			os.Exit(1)
		}
		f := strings.Fields(string(buf[:n]))
		if len(f) > 1 && f[0] == "SIP/2.0" {
			if code, _ := strconv.Atoi(f[1]); code >= 200 && code < 500 {
				os.Exit(0)
			} else if code >= 200 {
				os.Exit(1)
			}
		}
	}
}
`
	for name, text := range map[string]string{"go.mod": "module sipprobe\n\ngo 1.26\n", "main.go": src} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "sipprobe")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build the SIP probe: %v\n%s", err, out)
	}
	return bin
}

// startSIP runs a SIP stand-in (plays Asterisk) on host:5060.
func startSIP(b testing.TB, l *lab, host string) *exec.Cmd {
	cmd := l.command(host, binary, "standin", "sip", "--listen", l.host(host).ip+":5060")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	b.Cleanup(func() { cmd.Process.Kill(); <-exited })
	return cmd
}

// sipResult is what followed a dead SIP endpoint on the Main: when the
// Main gave up Active (detect), when a node was Active again with a
// working endpoint (back), and which one.
type sipResult struct {
	detect, back time.Duration
	by           string
}

// kaSIPOnce: the Main's SIP endpoint hung (SIGSTOP) or killed; detect is
// the Main's virtual IP gone (its check failed: FAULT), back the Standby
// owning it. Each node tracks its own endpoint, both running, as
// keepalived setups do (keepalived moves an address; it does not start
// services).
func kaSIPOnce(b *testing.B, probe string, sig syscall.Signal) sipResult {
	b.StopTimer()
	defer b.StartTimer()
	l := newLab(b, "main", "standby")
	sip := startSIP(b, l, "main")
	startSIP(b, l, "standby")
	o := ka1s
	o.sip = true
	p := startKeepalived(b, l, o, probe)
	p.settled(b)
	// The checks have passed rise times on both sides by now; then a
	// random phase of the check period.
	time.Sleep(time.Second + time.Duration(rand.Float64()*float64(time.Second)))
	if p.state("main") != "MASTER" || p.state("standby") != "BACKUP" {
		b.Fatalf("keepalived not settled with its SIP checks: main %s, standby %s", p.state("main"), p.state("standby"))
	}
	t0 := time.Now()
	sip.Process.Signal(sig)
	var r sipResult
	for r.back == 0 {
		if r.detect == 0 && !p.hasVIP("main") {
			r.detect = time.Since(t0)
		}
		if p.hasVIP("standby") {
			r.back, r.by = time.Since(t0), "standby"
			if r.detect == 0 {
				r.detect = r.back
			}
		}
		if time.Since(t0) > 30*time.Second {
			b.Fatal("the keepalived standby did not take the VIP")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r
}

// childPID finds a child of pid whose command line contains match.
func childPID(pid int, match string) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		raw, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(raw)) {
			child, _ := strconv.Atoi(field)
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child))
			if bytes.Contains(cmdline, []byte(match)) {
				return child
			}
		}
	}
	return 0
}

// resmanSIPOnce: the Main's asterisk service (its run: SIP stand-in) hung
// or killed, default timers, no witness; checkInterval replaces the
// check's 500 ms when not empty. detect is the Main leaving Active (it
// steps down), back a node answering Active again: the Standby, or the
// Main itself with a fresh asterisk when its hold ran out before the
// Standby took over.
func resmanSIPOnce(b *testing.B, sig syscall.Signal, checkInterval string) sipResult {
	b.StopTimer()
	defer b.StartTimer()
	l := newLab(b, "main", "standby")
	cfg := func(host, peer string) string {
		path := autoNodeConfig(b, l, host, host, peer, false)
		if checkInterval != "" {
			replaceInFile(b, path, "interval: 500ms", "interval: "+checkInterval)
		}
		return path
	}
	standby := startIn(b, l, "standby", cfg("standby", "main"))
	main := startIn(b, l, "main", cfg("main", "standby"))
	testkit.Eventually(b, func() bool {
		m, s := status(b, main.url), status(b, standby.url)
		return m.Status == "active" && m.Healthy && len(m.Services) == 1 && m.Services[0].Healthy &&
			s.HA.Ready && s.Peer != nil && s.Peer.Epoch == m.Epoch
	}, "pair settled, asterisk healthy on the main")
	time.Sleep(time.Duration(rand.Float64() * float64(time.Second)))
	pid := childPID(main.cmd.Process.Pid, "standin\x00sip")
	if pid == 0 {
		b.Fatal("no asterisk stand-in under the main")
	}
	client := &http.Client{Timeout: 100 * time.Millisecond}
	active := func(url string) bool {
		resp, err := client.Get(url + "/active")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	t0 := time.Now()
	syscall.Kill(pid, sig)
	var r sipResult
	for r.back == 0 {
		if r.detect == 0 && !active(main.url) {
			r.detect = time.Since(t0)
		}
		switch {
		case active(standby.url):
			r.back, r.by = time.Since(t0), "standby"
		case r.detect != 0 && active(main.url):
			r.back, r.by = time.Since(t0), "main"
		}
		if r.back != 0 && r.detect == 0 {
			r.detect = r.back
		}
		if time.Since(t0) > 60*time.Second {
			b.Fatal("no node Active again within 60 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r
}

// stats is a set of durations, summarised.
type stats struct {
	Samples []float64 `json:"samples_ms"`
	Median  float64   `json:"median_ms"`
	Min     float64   `json:"min_ms"`
	P25     float64   `json:"p25_ms"`
	P75     float64   `json:"p75_ms"`
	Max     float64   `json:"max_ms"`
}

func summarise(ds []time.Duration) stats {
	var s stats
	for _, d := range ds {
		s.Samples = append(s.Samples, float64(d.Microseconds())/1000)
	}
	v := slices.Sorted(slices.Values(s.Samples))
	q := func(p float64) float64 { // nearest rank
		return v[min(len(v)-1, int(p*float64(len(v))))]
	}
	s.Min, s.P25, s.Median, s.P75, s.Max = v[0], q(0.25), median(v), q(0.75), v[len(v)-1]
	return s
}

func median(v []float64) float64 {
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// comparison is resman against keepalived on one measure.
type comparison struct {
	Measure   string  `json:"measure"`
	Resman    string  `json:"resman"`
	Keepalive string  `json:"keepalived"`
	ResmanV   float64 `json:"resman_value"`
	KeepV     float64 `json:"keepalived_value"`
	Unit      string  `json:"unit"`
	Ratio     float64 `json:"ratio_resman_over_keepalived"`
}

func envInt(b testing.TB, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("%s: want a whole number above 0, got %q", name, v)
		}
		return n
	}
	return def
}

func envDuration(b testing.TB, name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		if d <= 0 {
			b.Fatalf("%s: want a duration above 0, like %v, got %q", name, def, v)
		}
		return d
	}
	return def
}

func BenchmarkVersusKeepalived(b *testing.B) {
	requireNetAdmin(b)
	requireKeepalived(b)
	runs := envInt(b, "RESMAN_PROOF_RUNS", 10)
	loss := envDuration(b, "RESMAN_PROOF_LOSS", 2*time.Minute)
	kaVersion, _ := exec.Command("keepalived", "--version").CombinedOutput()
	kernel, _ := exec.Command("uname", "-r").Output()
	results := map[string]any{
		"date": time.Now().UTC().Format(time.RFC3339), "cores": runtime.NumCPU(), "go": runtime.Version(),
		"kernel": strings.TrimSpace(string(kernel)), "keepalived": strings.SplitN(strings.TrimSpace(string(kaVersion)), "\n", 2)[0],
		"runs": runs, "loss_window": loss.String(),
	}
	// Every run in a sub-benchmark of its own, so that its lab and
	// processes are gone before the next run starts.
	times := map[string]stats{}
	measure := func(name string, once func(*testing.B) time.Duration) {
		b.Run(name, func(b *testing.B) {
			var ds []time.Duration
			for i := range runs {
				b.Run(fmt.Sprint("run", i+1), func(b *testing.B) { ds = append(ds, once(b)) })
			}
			if len(ds) == runs {
				times[name] = summarise(ds)
			}
		})
	}
	restoredBy := map[string]map[string]int{}
	sipMeasure := func(name string, once func(*testing.B) sipResult) {
		b.Run(name, func(b *testing.B) {
			var detect, back []time.Duration
			by := map[string]int{}
			for i := range runs {
				b.Run(fmt.Sprint("run", i+1), func(b *testing.B) {
					r := once(b)
					detect, back = append(detect, r.detect), append(back, r.back)
					by[r.by]++
				})
			}
			if len(detect) == runs {
				times[name+"/detect"], times[name+"/back"], restoredBy[name] = summarise(detect), summarise(back), by
			}
		})
	}
	perMin := map[string]float64{}
	count := func(name string, once func(*testing.B) int) {
		b.Run(name, func(b *testing.B) {
			n := once(b)
			perMin[name] = float64(n) / loss.Minutes()
			b.ReportMetric(float64(n), "takeovers")
			b.ReportMetric(perMin[name], "takeovers/min")
		})
	}

	// 1. kill -9 of the Main.
	measure("kill9/resman-default", func(b *testing.B) time.Duration { return failoverOnce(b, "") })
	measure("kill9/keepalived-1s", func(b *testing.B) time.Duration { return kaFailoverOnce(b, ka1s) })
	measure("kill9/resman-tuned", func(b *testing.B) time.Duration { return killOnce(b, timerSets[1]) }) // the fast set
	measure("kill9/keepalived-0.1s-v3", func(b *testing.B) time.Duration { return kaFailoverOnce(b, kaFast) })
	measure("kill9/keepalived-0.05s-v3", func(b *testing.B) time.Duration { return kaFailoverOnce(b, kaFaster) })

	// 2. 50% loss from the Main to the Standby.
	count("loss50/resman-no-witness", func(b *testing.B) int { return falseTakeovers(b, false, loss) })
	count("loss50/resman-witness", func(b *testing.B) int { return falseTakeovers(b, true, loss) })
	count("loss50/keepalived-1s", func(b *testing.B) int { return kaFalseTakeovers(b, ka1s, loss) })
	count("loss50/keepalived-0.1s-v3", func(b *testing.B) int { return kaFalseTakeovers(b, kaFast, loss) })
	count("loss50/keepalived-0.05s-v3", func(b *testing.B) int { return kaFalseTakeovers(b, kaFaster, loss) })

	// 3. A dead Asterisk.
	probe := sipProbe(b)
	sipMeasure("sip-hung/resman", func(b *testing.B) sipResult { return resmanSIPOnce(b, syscall.SIGSTOP, "") })
	sipMeasure("sip-hung/resman-1s-check", func(b *testing.B) sipResult { return resmanSIPOnce(b, syscall.SIGSTOP, "1s") })
	sipMeasure("sip-hung/keepalived-1s", func(b *testing.B) sipResult { return kaSIPOnce(b, probe, syscall.SIGSTOP) })
	sipMeasure("sip-killed/resman", func(b *testing.B) sipResult { return resmanSIPOnce(b, syscall.SIGKILL, "") })
	sipMeasure("sip-killed/keepalived-1s", func(b *testing.B) sipResult { return kaSIPOnce(b, probe, syscall.SIGKILL) })

	var cmp []comparison
	ratio := func(measureName, r, k, unit string, rv, kv float64) {
		c := comparison{Measure: measureName, Resman: r, Keepalive: k, ResmanV: rv, KeepV: kv, Unit: unit}
		if kv != 0 {
			c.Ratio = rv / kv
		}
		cmp = append(cmp, c)
	}
	for _, p := range [][4]string{
		{"kill -9 of the Main to the Standby Active, median", "kill9/resman-default", "kill9/keepalived-1s"},
		{"kill -9 of the Main to the Standby Active, median", "kill9/resman-tuned", "kill9/keepalived-0.1s-v3"},
		{"kill -9 of the Main to the Standby Active, median", "kill9/resman-tuned", "kill9/keepalived-0.05s-v3"},
		{"SIP endpoint hung to the Main giving up Active, median", "sip-hung/resman/detect", "sip-hung/keepalived-1s/detect"},
		{"SIP endpoint hung to the Main giving up Active, median", "sip-hung/resman-1s-check/detect", "sip-hung/keepalived-1s/detect"},
		{"SIP endpoint hung to a node Active again, median", "sip-hung/resman/back", "sip-hung/keepalived-1s/back"},
		{"SIP endpoint killed to the Main giving up Active, median", "sip-killed/resman/detect", "sip-killed/keepalived-1s/detect"},
		{"SIP endpoint killed to a node Active again, median", "sip-killed/resman/back", "sip-killed/keepalived-1s/back"},
	} {
		r, rok := times[p[1]]
		k, kok := times[p[2]]
		if rok && kok {
			ratio(p[0], p[1], p[2], "ms", r.Median, k.Median)
		}
	}
	for _, p := range [][3]string{
		{"false takeovers per minute at 50% loss", "loss50/resman-no-witness", "loss50/keepalived-1s"},
		{"false takeovers per minute at 50% loss", "loss50/resman-witness", "loss50/keepalived-1s"},
		{"false takeovers per minute at 50% loss", "loss50/resman-no-witness", "loss50/keepalived-0.1s-v3"},
		{"false takeovers per minute at 50% loss", "loss50/resman-no-witness", "loss50/keepalived-0.05s-v3"},
	} {
		r, rok := perMin[p[1]]
		k, kok := perMin[p[2]]
		if rok && kok {
			ratio(p[0], p[1], p[2], "per minute", r, k)
		}
	}
	results["times"], results["false_takeovers_per_min"], results["comparisons"] = times, perMin, cmp
	results["sip_restored_by"] = restoredBy

	// 4. The picture: the three pairs side by side.
	b.Run("timeline", func(b *testing.B) { sideBySide(b) })

	var buf strings.Builder
	fmt.Fprintf(&buf, "\n%-34s %9s %9s %9s %9s %9s\n", "time from the fault", "median", "min", "p25", "p75", "max")
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range times {
			if !yield(k) {
				return
			}
		}
	}) {
		s := times[name]
		fmt.Fprintf(&buf, "%-34s %7.0fms %7.0fms %7.0fms %7.0fms %7.0fms\n", name, s.Median, s.Min, s.P25, s.P75, s.Max)
	}
	fmt.Fprintf(&buf, "\nafter a dead SIP endpoint, Active again: %v\n", restoredBy)
	fmt.Fprintf(&buf, "\nfalse takeovers at 50%% loss, %v each:\n", loss)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range perMin {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(&buf, "  %-28s %6.1f per minute\n", name, perMin[name])
	}
	for _, name := range slices.Sorted(maps.Keys(kaFalseMaster)) {
		fmt.Fprintf(&buf, "  %-28s a false takeover held the virtual IP on the Standby %v on average\n", name, kaFalseMaster[name].Round(time.Millisecond))
	}
	fmt.Fprintf(&buf, "\nratios resman / keepalived (below 1: resman lower):\n")
	for _, c := range cmp {
		fmt.Fprintf(&buf, "  %-56s %-31s / %-31s = %.2f (%.1f / %.1f %s)\n", c.Measure, c.Resman, c.Keepalive, c.Ratio, c.ResmanV, c.KeepV, c.Unit)
	}
	// On stdout: a benchmark with sub-benchmarks prints no log of its own.
	fmt.Print(buf.String())
	writeProof(b, "keepalived.json", results)
}

// sideBySide runs a resman pair (default timers, no witness) and the two
// keepalived pairs at the same time through the same faults: 40 s of 50%
// loss from each Main to its Standby, 5 s healed, then kill -9 of each
// Main; it draws their lanes in testout/proof/keepalived.svg.
func sideBySide(b *testing.B) {
	b.StopTimer()
	defer b.StartTimer()
	rl := newLab(b, "main", "standby")
	standby := startIn(b, rl, "standby", autoNodeConfig(b, rl, "standby", "standby", "main", false))
	main := startIn(b, rl, "main", autoNodeConfig(b, rl, "main", "main", "standby", false))
	l1, l2 := newLab(b, "main", "standby"), newLab(b, "main", "standby")
	k1, k2 := startKeepalived(b, l1, ka1s, ""), startKeepalived(b, l2, kaFast, "")
	testkit.Eventually(b, func() bool {
		m, s := status(b, main.url), status(b, standby.url)
		return m.Status == "active" && s.HA.Ready && s.Peer != nil && s.Peer.Epoch == m.Epoch
	}, "resman pair settled")
	k1.settled(b)
	k2.settled(b)

	start := time.Now()
	chart := timeline.New("resman and keepalived side by side: 50% loss Main → Standby, then kill -9 of the Main", start)
	ctx, cancel := context.WithCancel(context.Background())
	wg := pollLanes(ctx, chart, 50*time.Millisecond,
		laneProbe{"resman main", activeProbe(main.url, 200*time.Millisecond)},
		laneProbe{"resman standby", activeProbe(standby.url, 200*time.Millisecond)})
	kas := []struct {
		p    *kaPair
		name string
	}{{k1, ka1s.name}, {k2, kaFast.name}}
	for _, k := range kas {
		chart.Lane(k.name + " main")
		chart.Lane(k.name + " standby")
	}
	pace := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) } // the schedule's own pacing

	pace(5 * time.Second)
	for _, l := range []*lab{rl, l1, l2} {
		l.lose("standby", "main", 50)
	}
	lossAt := time.Now()
	pace(45 * time.Second)
	for _, l := range []*lab{rl, l1, l2} {
		l.heal()
	}
	chart.Fault(lossAt, time.Now(), "50% loss main → standby")
	pace(50 * time.Second)
	killAt := time.Now()
	main.kill(syscall.SIGKILL)
	k1.kill("main")
	k2.kill("main")
	chart.Fault(killAt, killAt, "kill -9 main")
	pace(60 * time.Second)
	cancel()
	wg.Wait()
	// The keepalived lanes come from their notify scripts.
	for _, k := range kas {
		for _, host := range []string{"main", "standby"} {
			kaLane(chart, k.name+" "+host, k.p, host, start)
		}
	}
	writeProof(b, "keepalived.svg", chart)
}

// kaLane draws a keepalived's states into a lane: MASTER Active, BACKUP
// and FAULT Inactive, and Unreachable from its kill on.
func kaLane(chart *timeline.Chart, lane string, p *kaPair, host string, start time.Time) {
	state := func(s string) timeline.State {
		if s == "MASTER" {
			return timeline.Active
		}
		return timeline.Inactive
	}
	killed, dead := p.killed[host]
	for _, e := range p.events(host) {
		if e.at.Before(start) {
			chart.Set(lane, start, state(e.state), e.state)
			continue
		}
		if dead && e.at.After(killed) {
			break
		}
		chart.Set(lane, e.at, state(e.state), e.state)
	}
	end := time.Now()
	if dead {
		chart.Set(lane, killed, timeline.Unreachable, "killed")
	}
	// Extend the last state to the end of the picture.
	spans := chart.Spans(lane)
	if len(spans) > 0 {
		chart.Set(lane, end, spans[len(spans)-1].State, spans[len(spans)-1].Note)
	}
}
