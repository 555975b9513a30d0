package main

// A network lab for the real-process tests of auto mode: one network
// namespace per host, all on one bridge in the test's own namespace (which
// keeps an address on it to reach every host's API), and nft rules inside
// the namespaces to cut links apart or lose packets. Everything is created
// by the test and removed in its cleanup.

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

type lab struct {
	t      testing.TB
	id     string // short random id in every name the lab creates
	bridge string
	subnet string // first three octets, e.g. "10.123.45"
	hosts  map[string]*labHost
}

type labHost struct {
	name, ns, ip string
}

// skipShort skips a tier-3 test (real processes, tools, namespaces)
// under -short: `go test -short ./...` is the quick feedback loop, and
// make test runs everything.
func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("tier 3 (real processes): skipped by -short; make test runs it")
	}
}

// requireTools skips the test when a tool is missing, except under CI
// where a missing tool is a failure.
func requireTools(t testing.TB, tools ...string) {
	t.Helper()
	skipShort(t)
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("%s not installed (run scripts/install-test-tools.sh)", tool)
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// requireNetAdmin skips (or fails under CI) when namespaces cannot be made.
func requireNetAdmin(t testing.TB) {
	t.Helper()
	requireTools(t, "ip", "nft")
	probe := "rmprobe" + randomID()
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("cannot create network namespaces (needs root): %s", strings.TrimSpace(string(out)))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	exec.Command("ip", "netns", "del", probe).Run()
}

func randomID() string {
	b := make([]byte, 2)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newLab creates one namespace per name, on a fresh bridge.
func newLab(t testing.TB, names ...string) *lab {
	t.Helper()
	requireNetAdmin(t)
	b := make([]byte, 2)
	rand.Read(b)
	l := &lab{
		t:      t,
		id:     randomID(),
		subnet: fmt.Sprintf("10.%d.%d", 100+int(b[0])%150, b[1]),
		hosts:  map[string]*labHost{},
	}
	l.bridge = "rmb" + l.id
	t.Cleanup(l.destroy)
	l.run("ip", "link", "add", l.bridge, "type", "bridge")
	l.run("ip", "addr", "add", l.subnet+".254/24", "dev", l.bridge)
	l.run("ip", "link", "set", l.bridge, "up")
	for i, name := range names {
		h := &labHost{name: name, ns: fmt.Sprintf("rm%s%d", l.id, i), ip: fmt.Sprintf("%s.%d", l.subnet, i+1)}
		l.hosts[name] = h
		outer, inner := fmt.Sprintf("rmv%s%d", l.id, i), "eth0"
		l.run("ip", "netns", "add", h.ns)
		l.run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", h.ns)
		l.run("ip", "link", "set", outer, "master", l.bridge, "up")
		l.inNS(h, "ip", "addr", "add", h.ip+"/24", "dev", inner)
		l.inNS(h, "ip", "link", "set", inner, "up")
		l.inNS(h, "ip", "link", "set", "lo", "up")
		// One table per host for the fault rules; chains hook input and
		// output so a cut drops both directions at this host.
		l.inNS(h, "nft", "add", "table", "inet", "rmlab")
		l.inNS(h, "nft", "add", "chain", "inet", "rmlab", "in", "{ type filter hook input priority 0; }")
		l.inNS(h, "nft", "add", "chain", "inet", "rmlab", "out", "{ type filter hook output priority 0; }")
	}
	return l
}

func (l *lab) host(name string) *labHost {
	h, ok := l.hosts[name]
	if !ok {
		l.t.Fatalf("lab has no host %q", name)
	}
	return h
}

func (l *lab) run(args ...string) {
	l.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func (l *lab) inNS(h *labHost, args ...string) {
	l.t.Helper()
	l.run(append([]string{"ip", "netns", "exec", h.ns}, args...)...)
}

// cut drops every packet between hosts a and b (both directions, at a).
func (l *lab) cut(a, b string) {
	ha, hb := l.host(a), l.host(b)
	l.inNS(ha, "nft", "add", "rule", "inet", "rmlab", "in", "ip", "saddr", hb.ip, "drop")
	l.inNS(ha, "nft", "add", "rule", "inet", "rmlab", "out", "ip", "daddr", hb.ip, "drop")
}

// isolate cuts host a from every other host (the test's own address stays
// reachable so its API can still be read).
func (l *lab) isolate(a string) {
	for name := range l.hosts {
		if name != a {
			l.cut(a, name)
		}
	}
}

// lose drops pct percent of the packets from b arriving at a, at random.
func (l *lab) lose(a, b string, pct int) {
	ha, hb := l.host(a), l.host(b)
	l.inNS(ha, "nft", "add", "rule", "inet", "rmlab", "in", "ip", "saddr", hb.ip,
		"numgen", "random", "mod", "100", "<", fmt.Sprint(pct), "drop")
}

// heal removes every fault rule of every host.
func (l *lab) heal() {
	for _, h := range l.hosts {
		l.inNS(h, "nft", "flush", "chain", "inet", "rmlab", "in")
		l.inNS(h, "nft", "flush", "chain", "inet", "rmlab", "out")
	}
}

// command returns a command that runs inside host's namespace; ip netns
// exec execs it, so the PID is the program's own.
func (l *lab) command(host string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.host(host).ns}, args...)...)
}

func (l *lab) destroy() {
	for _, h := range l.hosts {
		exec.Command("ip", "netns", "del", h.ns).Run()
	}
	exec.Command("ip", "link", "del", l.bridge).Run()
}
