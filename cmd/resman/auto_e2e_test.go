package main

// Real-process tests of auto mode (tier 3): Main, Standby and a witness in
// network namespaces made by the test, gossip encrypted, the Main killed
// with -9, frozen with SIGSTOP, cut apart with nft rules, its link made to
// lose packets. An invariant checker samples every node's /active and
// fails on two Active nodes beyond the documented bound.

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// twoActiveBound is the documented bound on two nodes answering Active at
// once while they can see each other: a split brain is settled as soon as
// the higher epoch is gossiped; 3 s covers gossip propagation and a stop.
const twoActiveBound = 3 * time.Second

var gossipKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))

type autoPair struct {
	lab                 *lab
	main, standby, wit  *proc
	mainCfg, standbyCfg string
	witnessCfg          string
	mainURL, standbyURL string
}

func autoNodeConfig(t testing.TB, l *lab, name, role, peer string, withWitness bool) string {
	h, p := l.host(name), l.host(peer)
	witness := ""
	if withWitness {
		witness = fmt.Sprintf("  witness: %s:7946\n", l.host("witness").ip)
	}
	cfg := fmt.Sprintf(`node: {name: %s, role: %s, mode: auto, version: "2025.10.3", data_dir: %s}
api: {listen: "%s:9440", token: %s}
peer: {name: %s, api: "http://%s:9440", gossip: "%s:7946", check_interval: 1s, timeout: 1s}
gossip: {bind: "%s:7946", key: "%s"}
failover:
  failback: auto
  failback_hold: 3s
%sservices:
  - name: asterisk
    run: [%s, standin, sip, --listen, "%s:5060"]
    check: {sip: "sip:%s:5060", interval: 500ms, timeout: 400ms}
    critical: true
    timeout: 5s
log: {level: debug}
`, name, role, t.TempDir(), h.ip, testToken, peer, p.ip, p.ip, h.ip, gossipKey, witness, binary, h.ip, h.ip)
	path := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func witnessConfig(t testing.TB, l *lab) string {
	h := l.host("witness")
	cfg := fmt.Sprintf(`node: {name: witness, role: witness, mode: auto, version: "2025.10.3", data_dir: %s}
api: {listen: "%s:9440", token: %s}
gossip: {bind: "%s:7946", key: "%s", join: ["%s:7946", "%s:7946"]}
log: {level: debug}
`, t.TempDir(), h.ip, testToken, h.ip, gossipKey, l.host("main").ip, l.host("standby").ip)
	path := filepath.Join(t.TempDir(), "witness.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startIn starts resman run -c cfg inside a lab host.
func startIn(t testing.TB, l *lab, host, cfg string) *proc {
	t.Helper()
	url := fmt.Sprintf("http://%s:9440", l.host(host).ip)
	return startCmd(t, host, l.command(host, binary, "run", "-c", cfg), cfg, url)
}

// newAutoPair starts a Main and a Standby in auto mode, and a witness, in
// a lab of their own; extra hosts are added to the lab, running nothing.
func newAutoPair(t *testing.T, withWitness bool, extra ...string) *autoPair {
	t.Helper()
	names := []string{"main", "standby"}
	if withWitness {
		names = append(names, "witness")
	}
	l := newLab(t, append(names, extra...)...)
	a := &autoPair{lab: l,
		mainCfg:    autoNodeConfig(t, l, "main", "main", "standby", withWitness),
		standbyCfg: autoNodeConfig(t, l, "standby", "standby", "main", withWitness),
		mainURL:    fmt.Sprintf("http://%s:9440", l.host("main").ip),
		standbyURL: fmt.Sprintf("http://%s:9440", l.host("standby").ip),
	}
	if withWitness {
		a.witnessCfg = witnessConfig(t, l)
		a.wit = startIn(t, l, "witness", a.witnessCfg)
	}
	a.standby = startIn(t, l, "standby", a.standbyCfg)
	a.main = startIn(t, l, "main", a.mainCfg)
	testkit.Eventually(t, func() bool {
		m, s := status(t, a.mainURL), status(t, a.standbyURL)
		return m.Status == "active" && s.Status == "inactive" && m.HA.Ready && s.HA.Ready &&
			s.Peer != nil && s.Peer.Status == "active" && s.Peer.Epoch == m.Epoch &&
			m.Peer != nil && m.Peer.Status == "inactive"
	}, "main active, standby inactive, HA ready, each seeing the other")
	return a
}

// checker samples /active of every node and records how long two of them
// answered Active at once.
type checker struct {
	urls    []string
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	longest time.Duration
	started time.Time // start of the current two-Active window
	paused  bool
}

func startChecker(t *testing.T, urls ...string) *checker {
	c := &checker{urls: urls, stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 200 * time.Millisecond}
	go func() {
		defer close(c.done)
		for {
			select {
			case <-c.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			actives := 0
			for _, u := range c.urls {
				resp, err := client.Get(u + "/active")
				if err != nil {
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					actives++
				}
			}
			c.mu.Lock()
			switch {
			case actives > 1 && c.started.IsZero() && !c.paused:
				c.started = time.Now()
			case actives > 1 && !c.started.IsZero():
				c.longest = max(c.longest, time.Since(c.started))
			case actives <= 1:
				c.started = time.Time{}
			}
			c.mu.Unlock()
		}
	}()
	t.Cleanup(c.close)
	return c
}

// pause stops counting (a partition with no witness makes two Actives by
// design until it heals); resume counts again from now.
func (c *checker) pause(p bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paused, c.started = p, time.Time{}
}

func (c *checker) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
		<-c.done
	}
}

func (c *checker) verify(t *testing.T) {
	t.Helper()
	c.close()
	if c.longest > twoActiveBound {
		t.Fatalf("two Active nodes for %v, beyond the documented bound of %v", c.longest, twoActiveBound)
	}
	t.Logf("measured: longest two-Active window: %v", c.longest)
}

// auditHas reports whether an entry of the node's audit log has cause in
// its cause; an audit log that cannot be read fails the test (a check that
// an entry is absent must not pass on a failed read).
func auditHas(t testing.TB, url, cause string) bool {
	t.Helper()
	for _, e := range auditEntries(t, url) {
		if strings.Contains(e.Cause, cause) {
			return true
		}
	}
	return false
}

func TestAutoKill9MainThenFailback(t *testing.T) {
	a := newAutoPair(t, false)
	chk := startChecker(t, a.mainURL, a.standbyURL)
	t0 := time.Now()
	a.main.kill(syscall.SIGKILL)
	testkit.Eventually(t, func() bool { return status(t, a.standbyURL).Status == "active" }, "standby active")
	t.Logf("kill -9 to standby active: %v (informational; measured by the benchmark)", time.Since(t0))
	if !auditHas(t, a.standbyURL, "lost") {
		t.Fatal("the standby's audit log does not say the main was lost")
	}
	_, metrics := call(t, "GET", a.standbyURL+"/metrics", "", "", false)
	if !strings.Contains(metrics, "resman_failover_seconds_count 1") ||
		!strings.Contains(metrics, `resman_activation_seconds_count{action="failover"} 1`) {
		t.Fatal("the standby's metrics do not count the failover and its activation")
	}
	// The Main comes back: Inactive first (the Standby's epoch is higher),
	// then failback after failback_hold, Standby first.
	a.main = startIn(t, a.lab, "main", a.mainCfg)
	testkit.Eventually(t, func() bool {
		return status(t, a.mainURL).Status == "active" && status(t, a.standbyURL).Status == "inactive"
	}, "failback: main active, standby inactive")
	if !auditHas(t, a.standbyURL, "failback") {
		t.Fatal("the standby's audit log does not record the failback")
	}
	chk.verify(t)
}

func TestAutoSIGSTOPMain(t *testing.T) {
	a := newAutoPair(t, false)
	chk := startChecker(t, a.mainURL, a.standbyURL)
	a.main.cmd.Process.Signal(syscall.SIGSTOP)
	testkit.Eventually(t, func() bool { return status(t, a.standbyURL).Status == "active" }, "standby active while main frozen")
	a.main.cmd.Process.Signal(syscall.SIGCONT)
	// The thawed Main sees a higher epoch Active: it steps down, then takes
	// back by failback once it has been ready for failback_hold.
	testkit.Eventually(t, func() bool {
		return status(t, a.mainURL).Status == "active" && status(t, a.standbyURL).Status == "inactive"
	}, "exactly one active after thaw and failback")
	chk.verify(t)
}

func TestAutoPartitionHealsIntoOneActive(t *testing.T) {
	a := newAutoPair(t, false)
	chk := startChecker(t, a.mainURL, a.standbyURL)
	chk.pause(true) // no witness: a partition makes two Actives until it heals
	a.lab.cut("main", "standby")
	testkit.Eventually(t, func() bool { return status(t, a.standbyURL).Status == "active" }, "standby takes over across the partition")
	a.lab.heal()
	chk.pause(false)
	// The re-join loop merges them again; the higher epoch wins, then the
	// Main takes back by failback.
	testkit.Eventually(t, func() bool {
		return status(t, a.mainURL).Status == "active" && status(t, a.standbyURL).Status == "inactive"
	}, "one active after heal")
	chk.verify(t)
}

func TestAutoWitness(t *testing.T) {
	a := newAutoPair(t, true)
	chk := startChecker(t, a.mainURL, a.standbyURL)

	// A Standby cut off from everyone must not go Active.
	witnessURL := fmt.Sprintf("http://%s:9440", a.lab.host("witness").ip)
	testkit.Eventually(t, func() bool { return status(t, witnessURL).HA.Ready }, "the witness ready, seeing both nodes")
	// Its status says what it sees, and shows no peer: it has none.
	out, stderr, code := cli(t, "status", "--node", witnessURL)
	if code != 0 || !strings.Contains(out, "HA: ready\nsees over gossip: main (main), standby (standby)\n") || strings.Contains(out, "peer ") {
		t.Fatalf("the witness's status: exit %d\n%s%s", code, out, stderr)
	}
	a.lab.isolate("standby")
	testkit.Eventually(t, func() bool {
		p := status(t, a.standbyURL).Peer
		return p != nil && !p.Reachable
	}, "standby sees the main lost")
	testkit.Eventually(t, func() bool {
		st := status(t, witnessURL)
		return !st.HA.Ready && len(st.HA.Reasons) == 1 && strings.Contains(st.HA.Reasons[0], "does not see a standby node")
	}, "the witness says it lost the standby")
	// Give the rules many ticks to act wrongly; they must not.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if st := status(t, a.standbyURL); st.Status != "inactive" {
			t.Fatalf("isolated standby went %s", st.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.lab.heal()
	testkit.Eventually(t, func() bool {
		st := status(t, a.standbyURL)
		return st.Peer != nil && st.Peer.Reachable && st.HA.Ready
	}, "standby sees the main again")

	// A flapping link between Main and Standby (30% loss both ways): the
	// witness relays probes, so no takeover happens.
	a.lab.lose("main", "standby", 30)
	a.lab.lose("standby", "main", 30)
	deadline = time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if st := status(t, a.standbyURL); st.Status != "inactive" {
			t.Fatalf("standby went %s on a lossy link", st.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.lab.heal()

	// The Main cut off from both: it fences itself, the Standby takes over
	// on the witness's word.
	a.lab.isolate("main")
	testkit.Eventually(t, func() bool {
		return status(t, a.standbyURL).Status == "active" && status(t, a.mainURL).Status == "inactive"
	}, "standby active, main stepped down")
	if !auditHas(t, a.mainURL, "isolated") {
		t.Fatal("the main's audit log does not say it stepped down as isolated")
	}
	a.lab.heal()
	testkit.Eventually(t, func() bool {
		return status(t, a.mainURL).Status == "active" && status(t, a.standbyURL).Status == "inactive"
	}, "failback after heal")
	chk.verify(t)
}

// TestAutoManualFailover: a manual HA failover hands the load to the
// Standby and ends by itself, by a restart of the Main, and by stop; each
// time the Main takes back by failback.
func TestAutoManualFailover(t *testing.T) {
	a := newAutoPair(t, false)
	chk := startChecker(t, a.mainURL, a.standbyURL)
	mainBack := func(what string) {
		testkit.Eventually(t, func() bool {
			return status(t, a.mainURL).Status == "active" && status(t, a.standbyURL).Status == "inactive"
		}, "%s", what)
	}

	// Refused where it makes no sense: on the Standby.
	if _, stderr, code := cli(t, "failover", "start", "--node", a.standbyURL, "--for", "1m", "--reason", "x"); code != exitRefused ||
		!strings.Contains(stderr, "runs on the Main") {
		t.Fatalf("failover on the standby: exit %d %s", code, stderr)
	}

	// Ends by itself.
	out, stderr, code := cli(t, "failover", "start", "--node", a.mainURL, "--for", "10s", "--reason", "test the standby")
	if code != 0 || !strings.Contains(out, "MANUAL FAILOVER until") {
		t.Fatalf("failover start: exit %d %s %s", code, out, stderr)
	}
	testkit.Eventually(t, func() bool { return status(t, a.standbyURL).Status == "active" }, "standby active")
	if st := status(t, a.mainURL); !strings.Contains(strings.Join(st.HA.Reasons, ";"), "not redundant: a manual failover holds") {
		t.Fatalf("the main must say it is not redundant: %q", st.HA.Reasons)
	}
	// Readiness is a fact of the pair: the Standby says so too, once
	// gossip has told it.
	testkit.Eventually(t, func() bool {
		return strings.Contains(strings.Join(status(t, a.standbyURL).HA.Reasons, ";"), "not redundant: a manual failover holds")
	}, "the standby says the pair is not redundant")
	mainBack("the failover expires and the main takes back")
	if !auditHas(t, a.mainURL, "its time is over") {
		t.Fatal("the expiry is not in the audit log")
	}

	// Ends by a restart of the Main.
	if _, stderr, code := cli(t, "failover", "start", "--node", a.mainURL, "--for", "1h", "--reason", "long test"); code != 0 {
		t.Fatalf("failover start: %s", stderr)
	}
	testkit.Eventually(t, func() bool { return status(t, a.standbyURL).Status == "active" }, "standby active")
	a.main.kill(syscall.SIGTERM)
	a.main = startIn(t, a.lab, "main", a.mainCfg)
	mainBack("the restarted main takes back")
	if !auditHas(t, a.mainURL, "resman restarted during the manual failover") {
		t.Fatal("the restart ended the manual failover without saying so in the audit log")
	}

	// Ends by stop.
	if _, stderr, code := cli(t, "failover", "start", "--node", a.mainURL, "--for", "1h", "--reason", "long test"); code != 0 {
		t.Fatalf("failover start: %s", stderr)
	}
	testkit.Eventually(t, func() bool { return status(t, a.standbyURL).Status == "active" }, "standby active")
	if _, stderr, code := cli(t, "failover", "stop", "--node", a.mainURL, "--reason", "enough"); code != 0 {
		t.Fatalf("failover stop: %s", stderr)
	}
	mainBack("stopped: the main takes back")
	chk.verify(t)
}

// TestAutoSwitchover: in auto mode a switchover to the Standby is not
// undone by failback, and a switchover back restores the Main.
func TestAutoSwitchover(t *testing.T) {
	a := newAutoPair(t, false)
	chk := startChecker(t, a.mainURL, a.standbyURL)
	if _, stderr, code := cli(t, "switchover", "--node", a.mainURL, "--reason", "maintenance of the main"); code != 0 {
		t.Fatalf("switchover: %s", stderr)
	}
	// Longer than failback_hold (3 s): the Standby stays Active.
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		if m, s := status(t, a.mainURL), status(t, a.standbyURL); m.Status != "inactive" || s.Status != "active" {
			t.Fatalf("the switchover was undone: main %s, standby %s", m.Status, s.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, stderr, code := cli(t, "switchover", "--node", a.standbyURL, "--reason", "maintenance done"); code != 0 {
		t.Fatalf("switchover back: %s", stderr)
	}
	testkit.Eventually(t, func() bool {
		return status(t, a.mainURL).Status == "active" && status(t, a.standbyURL).Status == "inactive"
	}, "main active again")
	chk.verify(t)
}
