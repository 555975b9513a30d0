package main

// The operations guide, replayed (tier 3): the shell examples of
// docs/manual-mode.md run, in order, against a real manual pair started by
// the test, and what each command prints must be what the guide shows; the
// config check and hash-password examples of docs/install.md run the same
// way without a pair. The guide cannot drift from the product.
//
// A fenced block whose first line starts with a prompt ("$ ", or "# " for
// root) is a shell session: each prompt line is a command, the lines up to
// the next prompt line or the end of the block are its expected output
// (stdout and stderr together). Each command runs with bash -c in a fresh
// shell that inherits the previous command's exported environment, working
// directory and exit status, so `export`, `cd` and `echo $?` behave as in
// one terminal. PATH starts with the built resman; RESMAN_TOKEN holds the
// pair's token; USER is root (the guide's actor).
//
// The guide's pair listens on 127.0.0.1:9440 and 127.0.0.2:9440. The test's
// pair listens on the same loopback hosts but on free ports, and the
// commands are rewritten to them: a fixed port could be held by another
// package's test running alongside (go test -p 2), by a resman on the
// developer's machine, or by a previous -count run still closing; free
// ports cannot. The guide's exported token is rewritten to the pair's token
// the same way.
//
// Outputs are compared after this normalisation, applied to both sides
// unless said otherwise, and nothing else:
//   - the pair's real host:port (and temporary paths of `file` directives)
//     read as the guide's (actual output only);
//   - the CLI's actor api:USER@HOST reads api:USER@vm, the guide's host
//     (actual output only; USER is set to root);
//   - date-times (2026-11-22 04:01:39) and times (04:01:39) become <time>;
//   - ages like "(4s ago)" or "(1m2s ago)" become "(<age> ago)";
//   - bcrypt hashes become <bcrypt hash>;
//   - trailing blanks go, and each run of two or more blanks becomes two
//     (table columns are as wide as their widest cell, which varies with
//     the host name).
//
// Statuses, epochs, audit IDs, node names, reasons, causes, error messages
// and exit statuses (shown in the guide with `echo $?`) must match exactly.
//
// Before each command the test waits until the pair is at rest, as an admin
// reading the page would be: no node activating or deactivating, no service
// starting or stopping, every running service's check passed, and each node
// seeing the other as it is (its status and epoch, or unreachable when the
// test killed it).
//
// Directives, one-line HTML comments outside the fenced blocks (invisible in
// the rendered guide), do what the prose says happens in between:
//
//	<!-- guide: kill main -->            kill -9 the node's resman (its run:
//	                                     services die with it); or standby
//	<!-- guide: restart main -->         start the killed node's resman again,
//	                                     same config and data directory
//	<!-- guide: new pair -->             stop both and start a pair that has
//	                                     never run (first start)
//	<!-- guide: kill asterisk on main --> kill -9 the node's asterisk process
//	                                     and wait until the node reports it
//	                                     failed
//	<!-- guide: skip: REASON -->         the next block is not replayed;
//	                                     the reason is required
//	<!-- guide: run -->                  replay the next block (install.md,
//	                                     where only marked blocks run)
//	<!-- guide: file PATH -->            the next block is the content of
//	                                     PATH (install.md's config)
//
// An unknown directive fails the test.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// The guide's pair.
const (
	guideMainAddr    = "127.0.0.1:9440"
	guideStandbyAddr = "127.0.0.2:9440"
	guideActorHost   = "vm"
)

// guideCmd is one prompt line of a block and the output shown under it.
type guideCmd struct {
	line int // 1-based line of the command in the page
	cmd  string
	want []string
}

// guideItem is, in page order, a directive or a shell block.
type guideItem struct {
	line      int
	directive string     // a directive's text after "guide:", trimmed
	block     []guideCmd // a shell block's commands
	content   string     // any block's raw content (for file directives)
	shell     bool       // the block is a shell session
}

var (
	guideDirectiveRe = regexp.MustCompile(`^\s*<!--\s*guide:\s*(.*?)\s*-->\s*$`)
	guideFenceRe     = regexp.MustCompile("^\\s*```")
)

// parseGuide reads a page into its directives and fenced blocks.
func parseGuide(t *testing.T, path string) []guideItem {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var items []guideItem
	lines := strings.Split(string(raw), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if m := guideDirectiveRe.FindStringSubmatch(l); m != nil {
			items = append(items, guideItem{line: i + 1, directive: m[1]})
			continue
		}
		if strings.Contains(l, "<!--") && strings.Contains(l, "guide:") {
			t.Fatalf("%s:%d: a guide directive must be one line: <!-- guide: ... -->", path, i+1)
		}
		if !guideFenceRe.MatchString(l) {
			continue
		}
		info := strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(l), "`"))
		start := i + 1
		var body []string
		for i++; i < len(lines) && !guideFenceRe.MatchString(lines[i]); i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			t.Fatalf("%s:%d: unterminated code block", path, start)
		}
		it := guideItem{line: start, content: strings.Join(body, "\n") + "\n"}
		prompt := ""
		if len(body) > 0 && (info == "" || info == "console" || info == "shell") {
			for _, p := range []string{"$ ", "# "} {
				if strings.HasPrefix(body[0], p) {
					prompt = p
				}
			}
		}
		if prompt != "" {
			it.shell = true
			for j, b := range body {
				if strings.HasPrefix(b, prompt) {
					it.block = append(it.block, guideCmd{line: start + 1 + j, cmd: strings.TrimPrefix(b, prompt)})
				} else {
					c := &it.block[len(it.block)-1]
					c.want = append(c.want, b)
				}
			}
		}
		items = append(items, it)
	}
	return items
}

// guideRule is one normalisation: a pattern and its placeholder.
type guideRule struct {
	re   *regexp.Regexp
	repl string
}

var guideRules = []guideRule{
	{regexp.MustCompile(`\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\b`), "<time>"},
	{regexp.MustCompile(`\b\d\d:\d\d:\d\d\b`), "<time>"},
	{regexp.MustCompile(`\(-?(?:\d+h)?(?:\d+m)?\d+(?:\.\d+)?(?:s|ms|µs|ns) ago\)`), "(<age> ago)"},
	{regexp.MustCompile(`\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}`), "<bcrypt hash>"},
	{regexp.MustCompile(`[ \t]+$`), ""},
	{regexp.MustCompile(`  +`), "  "},
}

func guideNormalise(lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		for _, r := range guideRules {
			l = r.re.ReplaceAllString(l, r.repl)
		}
		out = append(out, l)
	}
	// A block's last output line may be followed by blank lines in the
	// page, and a command's output ends with a newline: neither counts.
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// guideShell runs commands the way one terminal would, carrying the
// exported environment, the working directory and $? from one command to
// the next.
type guideShell struct {
	t       *testing.T
	env     []string
	dir     string
	status  int
	envFile string
	rewrite []string // guide text -> test text, in commands
	reverse []string // test text -> guide text, in outputs
}

func newGuideShell(t *testing.T, token string) *guideShell {
	t.Helper()
	dir := t.TempDir()
	home := t.TempDir()
	env := []string{}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "RESMAN_"), k == "PATH", k == "HOME", k == "USER", k == "PWD", k == "OLDPWD", k == "CDPATH", k == "BASH_ENV", k == "ENV":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+home, "USER=root", "RESMAN_TOKEN="+token, "PWD="+dir)
	return &guideShell{t: t, env: env, dir: dir, envFile: filepath.Join(t.TempDir(), "env")}
}

// run runs one command and returns its output (stdout and stderr in the
// order written) and exit status.
func (s *guideShell) run(command string) (string, int) {
	s.t.Helper()
	for i := 0; i+1 < len(s.rewrite); i += 2 {
		command = strings.ReplaceAll(command, s.rewrite[i], s.rewrite[i+1])
	}
	script := fmt.Sprintf("(exit %d)\n%s\n__guide_rc=$?\nenv -0 >\"$__GUIDE_ENV\"\nexit $__guide_rc\n", s.status, command)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--norc", "--noprofile", "-c", script)
	cmd.Env = append(append([]string{}, s.env...), "__GUIDE_ENV="+s.envFile)
	cmd.Dir = s.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	os.Remove(s.envFile)
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		s.status = ee.ExitCode()
	case err != nil:
		s.t.Fatalf("bash -c %q: %v", command, err)
	default:
		s.status = 0
	}
	if ctx.Err() != nil {
		s.t.Fatalf("%q did not end within 2 minutes:\n%s", command, out.String())
	}
	if raw, err := os.ReadFile(s.envFile); err == nil {
		s.env = s.env[:0]
		for _, kv := range strings.Split(string(raw), "\x00") {
			k, v, ok := strings.Cut(kv, "=")
			switch {
			case !ok, k == "_", k == "__GUIDE_ENV", k == "SHLVL":
				continue
			case k == "PWD":
				s.dir = v
			}
			s.env = append(s.env, kv)
		}
	}
	got := out.String()
	for i := 0; i+1 < len(s.reverse); i += 2 {
		got = strings.ReplaceAll(got, s.reverse[i], s.reverse[i+1])
	}
	if host, err := os.Hostname(); err == nil && host != "" && host != guideActorHost {
		got = regexp.MustCompile(`(api:[^@\s]+)@`+regexp.QuoteMeta(host)+`\b`).ReplaceAllString(got, "${1}@"+guideActorHost)
	}
	return got, s.status
}

// check compares a command's output with the guide's.
func (s *guideShell) check(page string, c guideCmd) {
	s.t.Helper()
	got, code := s.run(c.cmd)
	gotLines := guideNormalise(strings.Split(got, "\n"))
	wantLines := guideNormalise(c.want)
	if strings.Join(gotLines, "\n") != strings.Join(wantLines, "\n") {
		s.t.Errorf("%s:%d: $ %s\n(exit %d) printed, normalised:\n%s\nthe guide shows, normalised:\n%s\nraw output:\n%s",
			page, c.line, c.cmd, code, indent(gotLines), indent(wantLines), got)
	}
}

func indent(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("    | " + l + "\n")
	}
	return b.String()
}

// guideNode is one node of the test's pair.
type guideNode struct {
	role      string // main or standby
	guideAddr string
	spec      nodeSpec
	p         *proc // nil while killed
	cfg, url  string
	downSince time.Time // when the test killed it
}

func (n *guideNode) addr() string { return fmt.Sprintf("%s:%d", n.spec.host, n.spec.apiPort) }

type guidePair struct {
	t     *testing.T
	nodes []*guideNode // main, standby
	sh    *guideShell
	keep  []string // rewrites of commands that outlive a new pair (the token)
}

func (g *guidePair) start() {
	g.t.Helper()
	for _, n := range g.nodes {
		if n.p != nil {
			n.p.kill(syscall.SIGKILL)
		}
	}
	mainP, standbyP, mainSpec, standbySpec := pairWith(g.t, "", "")
	g.nodes = []*guideNode{
		{role: "main", guideAddr: guideMainAddr, spec: mainSpec, p: mainP, cfg: mainP.cfg, url: mainP.url},
		{role: "standby", guideAddr: guideStandbyAddr, spec: standbySpec, p: standbyP, cfg: standbyP.cfg, url: standbyP.url},
	}
	g.sh.rewrite = append([]string{}, g.keep...)
	g.sh.reverse = nil
	for _, n := range g.nodes {
		g.sh.rewrite = append(g.sh.rewrite, n.guideAddr, n.addr())
		g.sh.reverse = append(g.sh.reverse, n.addr(), n.guideAddr)
	}
}

func (g *guidePair) node(role string) *guideNode {
	g.t.Helper()
	for _, n := range g.nodes {
		if n.role == role {
			return n
		}
	}
	g.t.Fatalf("no node %q in the pair (main or standby)", role)
	return nil
}

// fetch reads a node's status over the API.
func (g *guidePair) fetch(n *guideNode) (api.Status, error) {
	var st api.Status
	req, err := http.NewRequest("GET", n.url+"/api/v1/status", nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("status %d", resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// atRest says whether the pair is at rest, or what it is still doing.
func (g *guidePair) atRest() (bool, string) {
	sts := map[*guideNode]api.Status{}
	for _, n := range g.nodes {
		if n.p == nil {
			continue
		}
		st, err := g.fetch(n)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", n.role, err)
		}
		sts[n] = st
		if st.Status == "activating" || st.Status == "deactivating" {
			return false, fmt.Sprintf("%s is %s", n.role, st.Status)
		}
		for _, s := range st.Services {
			if s.State == "starting" || s.State == "stopping" || (s.State == "running" && !s.Healthy) {
				return false, fmt.Sprintf("%s: service %s %s, healthy %v", n.role, s.Name, s.State, s.Healthy)
			}
		}
	}
	for n, st := range sts {
		for _, o := range g.nodes {
			if o == n {
				continue
			}
			p := st.Peer
			if p == nil {
				return false, fmt.Sprintf("%s shows no peer", n.role)
			}
			ost, up := sts[o]
			switch {
			case !up && (p.Reachable || !p.CheckedAt.After(o.downSince)):
				// A check begun after the kill, so its error is the one of
				// a node that is down, not of a connection cut mid-way.
				return false, fmt.Sprintf("%s has not checked %s since it was killed", n.role, o.role)
			case up && (!p.Reachable || p.Error != "" || p.Status != ost.Status || p.Epoch != ost.Epoch):
				return false, fmt.Sprintf("%s sees %s %s epoch %d (reachable %v %s), it is %s epoch %d",
					n.role, o.role, p.Status, p.Epoch, p.Reachable, p.Error, ost.Status, ost.Epoch)
			}
		}
	}
	return true, ""
}

func (g *guidePair) waitAtRest() {
	g.t.Helper()
	// "" once at rest, else what is not.
	notAtRest := func() string {
		if ok, why := g.atRest(); !ok {
			return cmp.Or(why, "not at rest")
		}
		return ""
	}
	testkit.Until(g.t, notAtRest, func(why string) bool { return why == "" }, "the pair to come to rest")
}

// waitFree waits until a killed node's ports are free again (its run:
// services die with it).
func (g *guidePair) waitFree(n *guideNode) {
	g.t.Helper()
	testkit.Eventually(g.t, func() bool {
		u, err := net.ListenPacket("udp", fmt.Sprintf("%s:%d", n.spec.host, n.spec.sipPort))
		if err != nil {
			return false
		}
		u.Close()
		l, err := net.Listen("tcp", n.addr())
		if err != nil {
			return false
		}
		l.Close()
		return true
	}, "%s's ports free", n.role)
}

// killService kills -9 a node's run: process for a service of the test
// config (only asterisk: the SIP stand-in on the node's SIP port).
func (g *guidePair) killService(n *guideNode, service string) {
	g.t.Helper()
	if service != "asterisk" {
		g.t.Fatalf("the test pair runs only asterisk, not %q", service)
	}
	if n.p == nil {
		g.t.Fatalf("%s is not running", n.role)
	}
	listen := fmt.Sprintf("%s:%d", n.spec.host, n.spec.sipPort)
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	killed := 0
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		if guidePPid(d) != n.p.cmd.Process.Pid {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(raw), "\x00")
		if len(args) > 2 && args[1] == "standin" && strings.Contains(string(raw), listen) {
			if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
				killed++
			}
		}
	}
	if killed != 1 {
		g.t.Fatalf("found %d %s processes of %s to kill, want 1", killed, service, n.role)
	}
	testkit.Eventually(g.t, func() bool {
		st, err := g.fetch(n)
		if err != nil {
			return false
		}
		for _, s := range st.Services {
			if s.Name == service && s.State == "failed" {
				return true
			}
		}
		return false
	}, "%s reports %s failed", n.role, service)
}

// guidePPid is the parent pid of the process in /proc/PID dir, or -1.
func guidePPid(dir string) int {
	f, err := os.Open(filepath.Join(dir, "status"))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return -1
}

var guideKillServiceRe = regexp.MustCompile(`^kill (\S+) on (main|standby)$`)

// directive applies a directive of manual-mode.md to the pair.
func (g *guidePair) directive(page string, it guideItem) {
	g.t.Helper()
	d := it.directive
	switch {
	case d == "kill main" || d == "kill standby":
		n := g.node(strings.TrimPrefix(d, "kill "))
		if n.p == nil {
			g.t.Fatalf("%s:%d: %s is not running", page, it.line, n.role)
		}
		n.p.kill(syscall.SIGKILL)
		n.p, n.downSince = nil, time.Now()
		g.waitFree(n)
	case d == "restart main" || d == "restart standby":
		n := g.node(strings.TrimPrefix(d, "restart "))
		if n.p != nil {
			g.t.Fatalf("%s:%d: %s is already running", page, it.line, n.role)
		}
		n.p = startProc(g.t, n.role+"-again", n.cfg, n.url)
	case d == "new pair":
		g.start()
	case guideKillServiceRe.MatchString(d):
		m := guideKillServiceRe.FindStringSubmatch(d)
		g.killService(g.node(m[2]), m[1])
	default:
		g.t.Fatalf("%s:%d: unknown directive %q", page, it.line, d)
	}
}

// guideToken is the token the page exports, if any.
func guideToken(items []guideItem) string {
	re := regexp.MustCompile(`^export RESMAN_TOKEN=(\S+)$`)
	for _, it := range items {
		for _, c := range it.block {
			if m := re.FindStringSubmatch(c.cmd); m != nil {
				return strings.Trim(m[1], `"'`)
			}
		}
	}
	return ""
}

// skipReason returns the reason of a skip directive; ok is false for any
// other directive.
func skipReason(t *testing.T, page string, it guideItem) (reason string, ok bool) {
	t.Helper()
	rest, ok := strings.CutPrefix(it.directive, "skip")
	if !ok {
		return "", false
	}
	reason = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
	if reason == "" {
		t.Fatalf("%s:%d: a skipped block must say why: <!-- guide: skip: REASON -->", page, it.line)
	}
	return reason, true
}

func TestGuideManualMode(t *testing.T) {
	const page = "docs/manual-mode.md"
	items := parseGuide(t, "../../"+page)
	g := &guidePair{t: t, sh: newGuideShell(t, testToken)}
	if tok := guideToken(items); tok != "" {
		g.keep = []string{tok, testToken}
	}
	g.start()

	commands, skipped := 0, 0
	skipNext := false
	for _, it := range items {
		if it.directive != "" {
			if reason, ok := skipReason(t, page, it); ok {
				t.Logf("%s:%d: next block skipped: %s", page, it.line, reason)
				skipNext = true
				continue
			}
			if skipNext {
				t.Fatalf("%s:%d: a directive between a skip and its block", page, it.line)
			}
			g.directive(page, it)
			continue
		}
		if !it.shell {
			if skipNext {
				t.Fatalf("%s:%d: skip before a block that is not a shell session", page, it.line)
			}
			continue
		}
		if skipNext {
			skipNext = false
			skipped++
			continue
		}
		for _, c := range it.block {
			g.waitAtRest()
			g.sh.check(page, c)
			commands++
		}
	}
	if commands < 30 {
		t.Errorf("replayed only %d commands of %s: is the page parsed right?", commands, page)
	}
	t.Logf("%s: replayed %d commands, skipped %d blocks", page, commands, skipped)
}

// TestGuideInstall replays the blocks of docs/install.md marked
// <!-- guide: run -->: config check on the config the page shows, on the
// same config with the mistakes the page lists, and hash-password. The page
// is mostly about a real host (apt, systemd, /etc), so only marked blocks
// run.
func TestGuideInstall(t *testing.T) {
	const page = "docs/install.md"
	items := parseGuide(t, "../../"+page)
	sh := newGuideShell(t, testToken)
	files := map[string]string{} // the page's path -> its content
	commands := 0
	runNext, fileNext := false, ""
	for _, it := range items {
		if it.directive != "" {
			if _, ok := skipReason(t, page, it); ok {
				t.Fatalf("%s:%d: only marked blocks run here: no skip needed", page, it.line)
			}
			switch {
			case it.directive == "run":
				runNext = true
			case strings.HasPrefix(it.directive, "file "):
				fileNext = strings.TrimSpace(strings.TrimPrefix(it.directive, "file "))
			default:
				t.Fatalf("%s:%d: unknown directive %q", page, it.line, it.directive)
			}
			continue
		}
		if fileNext != "" {
			files[fileNext] = it.content
			local := filepath.Join(t.TempDir(), filepath.Base(fileNext))
			if err := os.WriteFile(local, []byte(it.content), 0o600); err != nil {
				t.Fatal(err)
			}
			sh.rewrite = append(sh.rewrite, fileNext, local)
			sh.reverse = append(sh.reverse, local, fileNext)
			fileNext = ""
			// The mistakes config check lists for resman.yaml.bad, made
			// in the page's own config.
			if err := writeBadConfig(filepath.Join(sh.dir, "resman.yaml.bad"), it.content); err != nil {
				t.Fatalf("%s:%d: %v", page, it.line, err)
			}
			continue
		}
		if !runNext {
			continue
		}
		runNext = false
		if !it.shell {
			t.Fatalf("%s:%d: run before a block that is not a shell session", page, it.line)
		}
		for _, c := range it.block {
			sh.check(page, c)
			commands++
		}
	}
	if len(files) == 0 || commands < 4 {
		t.Errorf("%s: %d files and %d commands replayed: are the directives in place?", page, len(files), commands)
	}
	t.Logf("%s: replayed %d commands", page, commands)
}

// writeBadConfig writes the page's config with four mistakes: a role that
// does not exist, a token of 9 characters, a SIP check that is no URI, and
// an interval without a unit.
func writeBadConfig(path, good string) error {
	bad := good
	for _, r := range [][2]string{
		{`(?m)^(\s*role:) main\b`, `$1 primary`},
		{`(?m)^(\s*token:) .*$`, `$1 "123456789"`},
		{`check: \{sip: "sip:127\.0\.0\.1:5060"\}`, `check: {sip: "127.0.0.1:5060", interval: 500}`},
	} {
		re := regexp.MustCompile(r[0])
		if !re.MatchString(bad) {
			return fmt.Errorf("the config has no %s to break", r[0])
		}
		done := false
		bad = re.ReplaceAllStringFunc(bad, func(m string) string {
			if done {
				return m
			}
			done = true
			return re.ReplaceAllString(m, r[1])
		})
	}
	return os.WriteFile(path, []byte(bad), 0o600)
}
