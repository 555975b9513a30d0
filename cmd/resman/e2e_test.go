package main

// Real-process tests (tier 3): the built binary, two nodes on 127.0.0.1 and
// 127.0.0.2 from two config files, driven through the CLI and the HTTP API,
// killed with -9 and restarted.

import (
	"bufio"
	"bytes"
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
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "resman-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "resman")
	build := exec.Command("go", "build", "-o", binary, ".")
	// Static, as the package ships it (the package test runs it in a
	// chroot of the unpacked package).
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build resman:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testToken = "e2e-token-0123456789abcdef"

// freePort returns a port free for TCP and UDP on host, below the
// ephemeral range (see testkit.PortOn).
func freePort(t testing.TB, host string) int {
	t.Helper()
	return testkit.PortOn(t, host)
}

// proc is one resman process under test.
type proc struct {
	t      testing.TB
	name   string
	cfg    string
	url    string
	cmd    *exec.Cmd
	logs   *testkit.Buffer
	exited chan struct{}
}

type nodeSpec struct {
	name, role, peer, host, peerURL, dataDir string
	apiPort, sipPort                         int
}

func writeNodeConfig(t testing.TB, s nodeSpec) string {
	t.Helper()
	cfg := fmt.Sprintf(`node:
  name: %s
  role: %s
  mode: manual
  version: "2025.10.3"
  data_dir: %s
api:
  listen: %s:%d
  token: %s
peer:
  name: %s
  api: %s
  check_interval: 1s
  timeout: 1s
services:
  - name: asterisk
    run: [%s, standin, sip, --listen, "%s:%d"]
    check: {sip: "sip:%s:%d", interval: 500ms, timeout: 400ms, rise: 1, fall: 2}
    critical: true
    timeout: 5s
log: {level: debug}
`, s.name, s.role, s.dataDir, s.host, s.apiPort, testToken, s.peer, s.peerURL, binary, s.host, s.sipPort, s.host, s.sipPort)
	path := filepath.Join(t.TempDir(), s.name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startProc(t testing.TB, name, cfg, url string) *proc {
	t.Helper()
	return startCmd(t, name, exec.Command(binary, "run", "-c", cfg), cfg, url)
}

// startCmd starts cmd (a resman run) and waits until url serves /healthz.
func startCmd(t testing.TB, name string, cmd *exec.Cmd, cfg, url string) *proc {
	t.Helper()
	skipShort(t)
	p := &proc{t: t, name: name, cfg: cfg, url: url, logs: &testkit.Buffer{}, exited: make(chan struct{}), cmd: cmd}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.kill(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("%s logs:\n%s", p.name, p.logs.String())
		}
	})
	testkit.Eventually(t, func() bool {
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "%s serving", name)
	return p
}

func (p *proc) kill(sig syscall.Signal) {
	if p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.t.Errorf("%s did not exit after %v", p.name, sig)
	}
}

// cli runs the resman CLI and returns stdout, stderr and the exit code.
func cli(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "RESMAN_TOKEN="+testToken, "USER=e2e")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// auditEntries reads a node's audit log (newest first) with the CLI,
// failing the test when it cannot: a check of what the log holds, or does
// not hold, must not pass on a read that failed.
func auditEntries(t testing.TB, url string) []api.AuditEntry {
	t.Helper()
	out, stderr, code := cli(t, "audit", "--node", url, "--json", "--limit", "1000")
	if code != 0 {
		t.Fatalf("audit %s: exit %d: %s", url, code, stderr)
	}
	var es []api.AuditEntry
	if err := json.Unmarshal([]byte(out), &es); err != nil {
		t.Fatalf("audit --json is not JSON: %v\n%s", err, out)
	}
	return es
}

func status(t testing.TB, url string) api.Status {
	t.Helper()
	out, stderr, code := cli(t, "status", "--node", url, "--json")
	if code != 0 {
		t.Fatalf("status %s: exit %d: %s", url, code, stderr)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	return st
}

// call does an HTTP request with the token and returns code and body.
func call(t testing.TB, method, url, contentType, body string, auth bool) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+testToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// pair starts a Main on 127.0.0.1 and a Standby on 127.0.0.2.
func pair(t testing.TB) (mainP, standbyP *proc, mainSpec, standbySpec nodeSpec) {
	t.Helper()
	return pairWith(t, "", "")
}

func TestManualFailoverAndFailback(t *testing.T) {
	mainP, standbyP, _, _ := pair(t)
	testkit.Eventually(t, func() bool { return status(t, mainP.url).Status == "active" }, "main active")
	st := status(t, standbyP.url)
	if st.Status != "inactive" || st.Role != "standby" {
		t.Fatalf("standby at boot: %s %s", st.Role, st.Status)
	}
	mainEpoch := status(t, mainP.url).Epoch

	// The guard: the Standby refuses a second Active, naming the Main.
	_, stderr, code := cli(t, "services", "start", "--node", standbyP.url, "--reason", "try")
	if code != exitRefused || !strings.Contains(stderr, "xivo-main is active") {
		t.Fatalf("start on standby while main active: exit %d, %q", code, stderr)
	}
	// --reason is required.
	if _, stderr, code = cli(t, "services", "stop", "--node", mainP.url); code != exitUsage || !strings.Contains(stderr, "--reason") {
		t.Fatalf("stop without reason: exit %d, %q", code, stderr)
	}

	// Failover: Stop services on the Main (CLI), Start services on the Standby (API).
	out, stderr, code := cli(t, "services", "stop", "--node", mainP.url, "--reason", "failover test")
	if code != 0 || !strings.Contains(out, "xivo-main: inactive") {
		t.Fatalf("stop main: exit %d, %q %q", code, out, stderr)
	}
	c, body := call(t, "POST", standbyP.url+"/api/v1/services/start", "application/json", `{"reason":"failover test"}`, true)
	if c != 200 {
		t.Fatalf("start standby over the API: %d %s", c, body)
	}
	var started api.Status
	// Each activation takes an epoch above every epoch seen, of its node's
	// parity (the Main even, the Standby odd).
	if err := json.Unmarshal([]byte(body), &started); err != nil || started.Status != "active" || started.Epoch <= mainEpoch ||
		resilience.EpochTakenBy(started.Epoch) != resilience.RoleStandby {
		t.Fatalf("standby after start: %s (err %v); want active above the Main's epoch %d, of the Standby", body, err, mainEpoch)
	}
	testkit.Eventually(t, func() bool {
		s := status(t, standbyP.url)
		return len(s.Services) == 1 && s.Services[0].Healthy
	}, "standby's stand-in asterisk healthy")

	// Failback: the Main refuses while the Standby is Active; then the reverse order works.
	if _, stderr, code = cli(t, "services", "start", "--node", mainP.url, "--reason", "failback"); code != exitRefused ||
		!strings.Contains(stderr, fmt.Sprintf("xivo-standby is active (epoch %d)", started.Epoch)) {
		t.Fatalf("start main while standby active: exit %d %q", code, stderr)
	}
	if _, stderr, code = cli(t, "services", "stop", "--node", standbyP.url, "--reason", "failback"); code != 0 {
		t.Fatalf("stop standby: %d %s", code, stderr)
	}
	if _, stderr, code = cli(t, "services", "start", "--node", mainP.url, "--reason", "failback"); code != 0 {
		t.Fatalf("start main: %d %s", code, stderr)
	}
	st = status(t, mainP.url)
	if st.Status != "active" || st.Epoch <= started.Epoch || resilience.EpochTakenBy(st.Epoch) != resilience.RoleMain {
		t.Fatalf("main after failback: %s epoch %d, want active above the Standby's %d, of the Main", st.Status, st.Epoch, started.Epoch)
	}
	out, _, code = cli(t, "audit", "--node", mainP.url)
	if code != 0 || !strings.Contains(out, `"failback"`) || !strings.Contains(out, "api:e2e@") {
		t.Fatalf("audit must show who and why:\n%s", out)
	}
}

func TestForceAndKill9Restart(t *testing.T) {
	mainP, standbyP, mainSpec, _ := pair(t)
	testkit.Eventually(t, func() bool { return status(t, mainP.url).Status == "active" }, "main active")
	mainEpoch := status(t, mainP.url).Epoch

	out, stderr, code := cli(t, "services", "start", "--node", standbyP.url, "--force", "--reason", "phones cannot reach the main")
	forcedEpoch := status(t, standbyP.url).Epoch
	if code != 0 || forcedEpoch <= mainEpoch || resilience.EpochTakenBy(forcedEpoch) != resilience.RoleStandby ||
		!strings.Contains(out, fmt.Sprintf("active (epoch %d)", forcedEpoch)) {
		t.Fatalf("forced start: exit %d %q %q; want active above the Main's epoch %d, of the Standby", code, out, stderr, mainEpoch)
	}
	testkit.Eventually(t, func() bool {
		return strings.Contains(strings.Join(status(t, mainP.url).HA.Reasons, ";"), "split brain")
	}, "split brain shown on the main")
	if _, _, code = cli(t, "services", "stop", "--node", mainP.url, "--reason", "resolve split brain"); code != 0 {
		t.Fatal("stop main failed")
	}

	// kill -9 the Standby: its decision (Active, its epoch) and audit survive.
	standbyP.kill(syscall.SIGKILL)
	standbyP = startProc(t, "standby-again", standbyP.cfg, standbyP.url)
	testkit.Eventually(t, func() bool { return status(t, standbyP.url).Status == "active" }, "standby restored active")
	if st := status(t, standbyP.url); st.Epoch != forcedEpoch {
		t.Fatalf("epoch after kill -9: %d, want %d", st.Epoch, forcedEpoch)
	}
	out, _, _ = cli(t, "audit", "--node", standbyP.url, "--json")
	var entries []api.AuditEntry
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatal(err)
	}
	forced := false
	for _, e := range entries {
		if strings.Contains(e.Cause, "forced") && e.Reason == "phones cannot reach the main" {
			forced = true
		}
	}
	if !forced {
		t.Fatalf("the forced start is missing from the audit log after kill -9:\n%s", out)
	}

	// kill -9 the Main: its stand-in Asterisk dies with it (the port is
	// free again) and it comes back Inactive as decided.
	mainP.kill(syscall.SIGKILL)
	testkit.Eventually(t, func() bool {
		l, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", mainSpec.sipPort))
		if err != nil {
			return false
		}
		l.Close()
		return true
	}, "main's stand-in gone")
	mainP = startProc(t, "main-again", mainP.cfg, mainP.url)
	testkit.Eventually(t, func() bool { return status(t, mainP.url).Status == "inactive" }, "main restored inactive")
}

func TestBadInputChangesNothing(t *testing.T) {
	mainP, _, _, _ := pair(t)
	testkit.Eventually(t, func() bool { return status(t, mainP.url).Status == "active" }, "main active")
	before := status(t, mainP.url)
	// A failed read fails the test: two failed reads would both count 0
	// and hide entries written by bad input.
	auditCount := func() int { return len(auditEntries(t, mainP.url)) }
	entriesBefore := auditCount()
	if entriesBefore == 0 {
		t.Fatal("the audit log is empty before the bad input: the boot entry is missing")
	}
	stop := mainP.url + "/api/v1/services/stop"
	cases := []struct {
		name, method, url, ctype, body string
		auth                           bool
		want                           int
	}{
		{"invalid json", "POST", stop, "application/json", `{"reason":`, true, 400},
		{"unknown field", "POST", stop, "application/json", `{"reason":"x","now":true}`, true, 400},
		{"missing reason", "POST", stop, "application/json", `{}`, true, 400},
		{"missing token", "POST", stop, "application/json", `{"reason":"x"}`, false, 401},
		{"wrong method", "GET", stop, "", "", true, 405},
		{"wrong content type", "POST", stop, "text/plain", `{"reason":"x"}`, true, 415},
		{"unknown path", "GET", mainP.url + "/api/v1/nope", "", "", true, 404},
	}
	for _, tc := range cases {
		code, body := call(t, tc.method, tc.url, tc.ctype, tc.body, tc.auth)
		var e api.Error
		if code != tc.want || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
			t.Errorf("%s: got %d %q, want %d with a JSON error", tc.name, code, body, tc.want)
		}
	}
	// A huge body is refused from its headers, before it is sent: checked
	// at the wire, since a client still uploading when the server answers
	// and closes may see a reset instead of the answer.
	conn, err := net.Dial("tcp", strings.TrimPrefix(mainP.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /api/v1/services/stop HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", testToken, 200<<10)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("huge body: no answer before the body was sent: %v", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	conn.Close()
	var e api.Error
	if resp.StatusCode != 413 || json.Unmarshal(raw, &e) != nil || e.Error == "" {
		t.Errorf("huge body: got %d %q, want 413 with a JSON error", resp.StatusCode, raw)
	}

	after := status(t, mainP.url)
	if after.Status != before.Status || after.Epoch != before.Epoch {
		t.Fatalf("bad input changed the node: %s/%d -> %s/%d", before.Status, before.Epoch, after.Status, after.Epoch)
	}
	if n := auditCount(); n != entriesBefore {
		t.Fatalf("bad input wrote %d audit entries", n-entriesBefore)
	}
	// /active needs no token and says nothing more than status and epoch.
	code, body := call(t, "GET", mainP.url+"/active", "", "", false)
	if code != 200 || body != fmt.Sprintf(`{"status":"active","epoch":%d}`, after.Epoch) {
		t.Fatalf("/active: %d %s", code, body)
	}
}

func TestCLIErrors(t *testing.T) {
	port := freePort(t, "127.0.0.1")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"status", "--node", fmt.Sprintf("http://127.0.0.1:%d", port)}, exitUnreachable, "127.0.0.1"},
		{[]string{"status", "--node", "127.0.0.1:9440"}, exitUsage, "want a URL"},
		{[]string{"services", "start", "--reason", "x", "--bogus"}, exitUsage, "unknown flag"},
		{[]string{"audit", "--limit", "0"}, exitUsage, "--limit"},
		{[]string{"failover", "start", "--reason", "x"}, exitUsage, "--for is required"},
		{[]string{"switchover"}, exitUsage, "--reason is required"},
		{[]string{"config", "check", "/nonexistent/resman.yaml"}, exitFailed, "/nonexistent/resman.yaml"},
	}
	for _, tc := range cases {
		_, stderr, code := cli(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("resman %s: exit %d %q, want exit %d and one line with %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
	}
}

func TestConfigCheckListsEveryMistake(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	bad := `node:
  name: xivo-main
  role: primary
  mode: sometimes
  version: "2025.10.3"
api:
  listen: 127.0.0.1:9440
  token: short
peer:
  name: xivo-main
  api: http://127.0.0.2:9440
services:
  - name: asterisk
    start: [systemctl, start, asterisk]
    stop: [systemctl, stop, asterisk]
    check: {sip: "http://127.0.0.1:5060"}
`
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := cli(t, "config", "check", path)
	if code == 0 {
		t.Fatal("config check accepted a bad file")
	}
	for _, want := range []string{"node.role", "node.mode", "api.token", "peer.name", "services[0].check.sip"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("config check output does not name %s:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stderr, "5 problem(s)") {
		t.Errorf("want exactly 5 problems:\n%s", stderr)
	}
}

// demoBasePort picks a base for the demo's block of ports (B to B+50, see
// newDemoPorts) outside the kernel's ephemeral range, with every port of
// the block free for TCP and UDP on 127.0.0.1. A block inside the
// ephemeral range (where freePort's ports come from) is raced by outgoing
// connections, the demo's own among them, which take ports of the block
// before the demo binds them.
func demoBasePort(t *testing.T) int {
	t.Helper()
	lo, hi := 32768, 60999
	if raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(raw), &lo, &hi)
	}
	var spans [][2]int // first and last base of each span outside the range
	if last := min(lo-51, 65000); last >= 1024 {
		first := 10000 // clear of the well-known and most registered ports
		if last < first {
			first = 1024
		}
		spans = append(spans, [2]int{first, last})
	}
	if first := max(hi+1, 1024); first <= 65000 {
		spans = append(spans, [2]int{first, 65000})
	}
	if len(spans) == 0 {
		t.Fatalf("the ephemeral port range %d-%d leaves no room for the demo's ports", lo, hi)
	}
	for range 200 {
		sp := spans[rand.IntN(len(spans))]
		base := sp[0] + rand.IntN(sp[1]-sp[0]+1)
		release, ok := reserveDemoPorts(t, base)
		if !ok {
			continue
		}
		if demoPortsFree(base) {
			return base
		}
		release()
	}
	t.Fatal("no free block of demo ports outside the ephemeral range")
	return 0
}

// reserveDemoPorts reserves, for the rest of t, every port newDemoPorts
// lays out from base (testkit.ReservePort): none when another test
// process holds one of them. Reserved before they are tried, or the try
// could make another process's bind fail.
func reserveDemoPorts(t testing.TB, base int) (release func(), ok bool) {
	var releases []func()
	release = func() {
		for _, r := range releases {
			r()
		}
	}
	v := reflect.ValueOf(newDemoPorts(base))
	for i := range v.NumField() {
		r, ok := testkit.ReservePort(t, int(v.Field(i).Int()))
		if !ok {
			release()
			return func() {}, false
		}
		releases = append(releases, r)
	}
	return release, true
}

// demoPortsFree reports whether every port newDemoPorts lays out from base
// is free for TCP and UDP on 127.0.0.1.
func demoPortsFree(base int) bool {
	v := reflect.ValueOf(newDemoPorts(base))
	for i := range v.NumField() {
		addr := fmt.Sprintf("127.0.0.1:%d", v.Field(i).Int())
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		l.Close()
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		u.Close()
	}
	return true
}

func TestDemo(t *testing.T) {
	base := demoBasePort(t)
	cmd := exec.Command(binary, "demo", "--base-port", fmt.Sprint(base))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Written by the process's copying goroutine while the cleanup may
	// read it.
	logs := &testkit.Buffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("demo logs:\n%s", logs.String())
		}
	})
	token := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`^\s+Token\s+(\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				token <- m[1]
			}
		}
	}()
	var tok string
	select {
	case tok = <-token:
	case err := <-exited:
		t.Fatalf("demo exited early: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("demo printed no token")
	}
	mainURL, standbyURL := fmt.Sprintf("http://127.0.0.1:%d", base), fmt.Sprintf("http://127.0.0.1:%d", base+1)
	run := func(args ...string) (string, int) {
		c := exec.Command(binary, args...)
		c.Env = append(os.Environ(), "RESMAN_TOKEN="+tok)
		out, _ := c.CombinedOutput()
		return string(out), c.ProcessState.ExitCode()
	}
	testkit.Eventually(t, func() bool {
		out, code := run("status", "--node", mainURL)
		return code == 0 && strings.Contains(out, "ACTIVE")
	}, "demo main active")
	if out, code := run("services", "stop", "--node", mainURL, "--reason", "demo failover"); code != 0 {
		t.Fatalf("demo stop main: %s", out)
	}
	if out, code := run("services", "start", "--node", standbyURL, "--reason", "demo failover"); code != 0 || !strings.Contains(out, "active") {
		t.Fatalf("demo start standby: %s", out)
	}
	// The users' address (the Edge) follows the Active side.
	testkit.Eventually(t, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", base+2))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(body), "served by xivo-standby")
	}, "the Edge serves the standby's app")
	// A switchover back with a sync: the Main's configuration tree reaches
	// the Standby first, then the Main is Active again.
	if out, code := run("switchover", "--node", standbyURL, "--sync", "--reason", "demo switchover"); code != 0 {
		t.Fatalf("demo switchover: %s", out)
	}
	if out, code := run("status", "--node", mainURL); code != 0 || !strings.Contains(out, "ACTIVE") {
		t.Fatalf("main after the switchover: %s", out)
	}
	// The MDS registration moved with the Active role.
	testkit.Eventually(t, func() bool {
		out, _ := run("status", "--node", mainURL)
		outStandby, _ := run("status", "--node", standbyURL)
		return strings.Contains(out, "mds mds1: registered") && strings.Contains(outStandby, "mds mds1: not registered")
	}, "main registered to the MDS again, standby not")
	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("demo exit after Ctrl-C: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop on Ctrl-C")
	}
}

// TestNotifiesSystemd: under a Type=notify unit, resman says READY=1 once
// its API serves.
func TestNotifiesSystemd(t *testing.T) {
	dir, err := os.MkdirTemp("", "rmsd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	spec := nodeSpec{name: "xivo-main", role: "main", peer: "xivo-standby", host: "127.0.0.1", dataDir: t.TempDir(),
		apiPort: freePort(t, "127.0.0.1"), sipPort: freePort(t, "127.0.0.1"), peerURL: fmt.Sprintf("http://127.0.0.2:%d", freePort(t, "127.0.0.2"))}
	cfg := writeNodeConfig(t, spec)
	cmd := exec.Command(binary, "run", "-c", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	startCmd(t, "main", cmd, cfg, fmt.Sprintf("http://127.0.0.1:%d", spec.apiPort))
	ln.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 64)
	n, err := ln.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("notify socket got %q, %v; want READY=1", buf[:n], err)
	}
}
