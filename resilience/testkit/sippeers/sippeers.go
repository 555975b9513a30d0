// Package sippeers starts the real SIP peers of the SIP tests and
// benchmarks (the Edge's SIP front, XDS, the phones through the Edge), on
// loopback: the in-tree registrar stand-in, kamailio and
// sipp. Every process is started by the test and stopped by its PID, on
// ports the test gives: take them from testkit.Port (below the kernel's
// ephemeral range, which outgoing connections race for, and locked against
// the other test processes).
package sippeers

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/xds/registrar"
)

// UDPBound reports whether a UDP socket is bound to 127.0.0.1:port, from
// /proc/net/udp: a check that binds the port itself could make the bind
// of the process it waits for fail.
func UDPBound(port int) bool {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return false
	}
	want := fmt.Sprintf(" 0100007F:%04X ", port)
	return strings.Contains(string(b), want)
}

// PortHolders says which sockets hold port p (ss's lines, with their
// processes when ss may see them), for a failure to bind it.
func PortHolders(p int) string {
	out, err := exec.Command("ss", "-Haunpt", "( sport = :"+strconv.Itoa(p)+" )").CombinedOutput()
	if err != nil {
		return "ss: " + err.Error()
	}
	if len(out) == 0 {
		return "no socket on it now"
	}
	return string(out)
}

// NeedTool finds an external tool; missing, it skips the test (fails it
// when CI is set), naming the Debian package. Under -short it skips: tests
// of real SIP peers are tier 3, and make test runs them.
func NeedTool(t testing.TB, name, pkg string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("tier 3 (" + name + "): skipped by -short; make test runs it")
	}
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not installed: apt-get install %s", name, pkg)
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set: tier-3 tests are required)")
	}
	t.Skip(msg)
	return ""
}

// Registrar serves the registrar stand-in on 127.0.0.1:port, UDP and TCP,
// until the test ends.
func Registrar(t testing.TB, port int) *registrar.Server {
	t.Helper()
	return RegistrarWith(t, port, registrar.Options{})
}

// RegistrarWith is Registrar with options (digest authentication, knobs).
func RegistrarWith(t testing.TB, port int, opts registrar.Options) *registrar.Server {
	t.Helper()
	s := registrar.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, n := range []string{"udp", "tcp"} {
		wg.Go(func() {
			if err := s.ListenAndServe(ctx, n, addr); err != nil {
				errs <- err
			}
		})
	}
	select {
	case <-s.Ready():
	case err := <-errs:
		t.Fatalf("registrar: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("registrar not listening")
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return s
}

// Contacts lists the contacts s holds.
func Contacts(s *registrar.Server) []string {
	var out []string
	for _, b := range s.Bindings() {
		out = append(out, b.Contact)
	}
	return out
}

// Sipp is a sipp process.
type Sipp struct {
	Dir  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartSipp runs sipp with scenario file sf (absolute) and args in a
// temporary directory, its output in files there (messages.log holds
// every message); sipp gives up after 60 s. The test's cleanup stops it by
// PID (SIGTERM, then SIGKILL) and, if the test failed, logs the files.
func StartSipp(t testing.TB, sf string, args ...string) *Sipp {
	t.Helper()
	return StartSippWith(t, SippOptions{Timeout: time.Minute, TraceMessages: true}, sf, args...)
}

// SippOptions shape a sipp run.
type SippOptions struct {
	// Timeout is how long sipp runs its scenario before it gives up.
	Timeout time.Duration
	// TraceMessages keeps every message in messages.log (off for
	// thousands of phones: the log would be the run's cost).
	TraceMessages bool
}

// StartSippWith is StartSipp with o.
func StartSippWith(t testing.TB, o SippOptions, sf string, args ...string) *Sipp {
	t.Helper()
	path := NeedTool(t, "sipp", "sip-tester")
	s := &Sipp{Dir: t.TempDir(), done: make(chan struct{})}
	opts := []string{"-sf", sf, "-nostdin", "-timeout", strconv.Itoa(int(o.Timeout.Seconds())) + "s", "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(s.Dir, "errors.log")}
	if o.TraceMessages {
		opts = append(opts, "-trace_msg", "-message_file", filepath.Join(s.Dir, "messages.log"))
	}
	args = append(opts, args...)
	s.cmd = exec.Command(path, args...)
	s.cmd.Dir = s.Dir
	out, err := os.Create(filepath.Join(s.Dir, "screen.log"))
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start sipp: %v", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		out.Close()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			s.Dump(t)
		}
	})
	return s
}

// Stop ends sipp by its PID and waits for it.
func (s *Sipp) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Wait waits for sipp to end and fails the test unless it exited 0.
func (s *Sipp) Wait(t testing.TB, limit time.Duration) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(limit):
		t.Fatalf("sipp did not finish its scenario in %s", limit)
	}
	if s.err != nil {
		t.Errorf("sipp scenario failed: %v", s.err)
	}
}

// Done is closed when sipp exits.
func (s *Sipp) Done() <-chan struct{} { return s.done }

// Err is sipp's exit error once Done is closed.
func (s *Sipp) Err() error { return s.err }

// Dump logs sipp's output files.
func (s *Sipp) Dump(t testing.TB) {
	t.Helper()
	for _, f := range []string{"errors.log", "messages.log", "screen.log"} {
		if b, err := os.ReadFile(filepath.Join(s.Dir, f)); err == nil && len(b) > 0 {
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("sipp %s:\n%s", f, b)
		}
	}
}

// Kamailio is a kamailio process run from a config template.
type Kamailio struct {
	// Addr is where it listens (host:port).
	Addr   string
	o      KamailioOptions
	bin    string
	cfg    string // the config file, in dir
	dir    string
	kamcmd string
	ctl    string
	pid    int // also its process group: kamailio forks workers
	done   chan struct{}
}

// KamailioOptions shape a kamailio run.
type KamailioOptions struct {
	// Vars fill the template's {{NAME}} placeholders besides {{PORT}} and
	// {{DIR}} (e.g. USER and PASSWORD of a registrar asking for digest).
	Vars map[string]string
	// NetNS, when set, runs kamailio in that network namespace (ip netns
	// exec, which execs it: the PID is kamailio's own). It is then ready
	// when it answers kamcmd, not OPTIONS: its address may be a virtual IP
	// its namespace does not hold yet (the namespace then needs
	// net.ipv4.ip_nonlocal_bind=1) and the test reaches only on the side
	// holding it.
	NetNS string
	// Host replaces the template's 127.0.0.1 in "127.0.0.1:{{PORT}}".
	Host string
}

// StartKamailio runs kamailio from the template tpl ({{PORT}}, {{DIR}}
// filled in) on 127.0.0.1:port, waits until it answers OPTIONS and stops
// it by PID (its process group: kamailio forks workers) at cleanup.
func StartKamailio(t testing.TB, tpl string, port int) *Kamailio {
	t.Helper()
	return StartKamailioWith(t, tpl, port, KamailioOptions{})
}

// StartKamailioWith is StartKamailio with o.
func StartKamailioWith(t testing.TB, tpl string, port int, o KamailioOptions) *Kamailio {
	t.Helper()
	bin := NeedTool(t, "kamailio", "kamailio")
	kamcmd := NeedTool(t, "kamcmd", "kamailio")
	dir, err := os.MkdirTemp("", "kam") // short: the ctl socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	raw, err := os.ReadFile(tpl)
	if err != nil {
		t.Fatal(err)
	}
	host := o.Host
	if host == "" {
		host = "127.0.0.1"
	}
	pairs := []string{"127.0.0.1:{{PORT}}", host + ":" + strconv.Itoa(port), "{{PORT}}", strconv.Itoa(port), "{{DIR}}", dir}
	for k, v := range o.Vars {
		pairs = append(pairs, "{{"+k+"}}", v)
	}
	cfg := strings.NewReplacer(pairs...).Replace(string(raw))
	k := &Kamailio{Addr: host + ":" + strconv.Itoa(port), o: o, bin: bin, cfg: filepath.Join(dir, "kamailio.cfg"),
		dir: dir, kamcmd: kamcmd, ctl: "unix:" + filepath.Join(dir, "kamailio.ctl")}
	if err := os.WriteFile(k.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		k.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "kamailio.log")); err == nil {
				t.Logf("kamailio %s log:\n%s", k.Addr, b[max(0, len(b)-6000):])
			}
		}
	})
	k.launch(t)
	return k
}

// launch starts the process and waits until it is ready.
func (k *Kamailio) launch(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(k.dir, "kamailio.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{k.bin, "-DD", "-E", "-Y", k.dir, "-w", k.dir, "-f", k.cfg, "-m", "64", "-M", "8"}
	if k.o.NetNS != "" {
		args = append([]string{"ip", "netns", "exec", k.o.NetNS}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start kamailio: %v", err)
	}
	done := make(chan struct{})
	k.pid, k.done = cmd.Process.Pid, done
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	ready := func() bool { return Ping(k.Addr) }
	if k.o.NetNS != "" {
		ready = func() bool { _, err := k.Stat("location_contacts"); return err == nil }
	}
	deadline := time.Now().Add(15 * time.Second)
	for !ready() {
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(k.dir, "kamailio.log"))
			t.Fatalf("kamailio exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("kamailio is not ready (no answer to OPTIONS, or to kamcmd in a namespace)")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends kamailio by its PID (SIGCONT to its group first, in case the
// test froze it; SIGTERM; SIGKILL to the group after 5 s) and waits for it.
func (k *Kamailio) Stop() {
	if k.done == nil {
		return
	}
	_ = syscall.Kill(-k.pid, syscall.SIGCONT)
	_ = syscall.Kill(k.pid, syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-k.pid, syscall.SIGKILL)
		<-k.done
	}
	k.done = nil
}

// Restart stops kamailio and starts it again on the same address: with
// usrloc in memory, it has lost every binding.
func (k *Kamailio) Restart(t testing.TB) {
	t.Helper()
	k.Stop()
	k.launch(t)
}

// Signal sends sig to kamailio's process group: its workers with it
// (SIGSTOP freezes the registrar, SIGKILL kills it as a crash would).
func (k *Kamailio) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(-k.pid, sig); err != nil {
		t.Fatalf("kill -%d -%d: %v", sig, k.pid, err)
	}
}

// Ctl is the address of kamailio's control socket, for kamcmd -s.
func (k *Kamailio) Ctl() string { return k.ctl }

// Kamcmd runs kamcmd against this kamailio and returns its output.
func (k *Kamailio) Kamcmd(args ...string) (string, error) {
	out, err := exec.Command(k.kamcmd, append([]string{"-s", k.ctl}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("kamcmd %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Locations is kamailio's location table, as kamcmd ul.dump prints it.
func (k *Kamailio) Locations(t testing.TB) string {
	t.Helper()
	out, err := k.Kamcmd("ul.dump")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Stat is one of kamailio's statistics (accepted_regs, location_contacts).
func (k *Kamailio) Stat(name string) (int, error) {
	out, err := k.Kamcmd("stats.get_statistics", name)
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(regexp.QuoteMeta(name) + ` = (\d+)`).FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("kamcmd stats %s: %s", name, out)
	}
	return strconv.Atoi(m[1])
}

// Ping sends one OPTIONS over UDP and reports whether an answer came.
func Ping(addr string) bool {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	msg := "OPTIONS sip:" + addr + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + c.LocalAddr().String() + ";branch=z9hG4bK-ping" + id + "\r\n" +
		"From: <sip:ping@127.0.0.1>;tag=ping\r\nTo: <sip:" + addr + ">\r\n" +
		"Call-ID: ping-" + id + "\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(msg)); err != nil {
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	return err == nil && strings.HasPrefix(string(buf[:n]), "SIP/2.0 ")
}

// Quiet silences the process-wide default logger below errors: sipgo logs
// there.
func Quiet() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
}
