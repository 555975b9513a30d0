// Command testsummary runs the tiers of `make test` and sums them up.
//
// It is plumbing for the Makefile, not part of resman:
//
//	testsummary run -dir DIR -tier NAME -- go test -json ARGS...
//	testsummary run -dir DIR -tier NAME -check NAME -- COMMAND ARGS...
//	testsummary report -dir DIR [-tiers a,b,c]
//
// run starts the command and, for a `go test -json` command, prints the
// usual human-readable output as it comes: one line per package, and the
// whole output of every failing test (with its failing subtests) and of
// every failing package. With -check, the command is not a test run: its
// output goes through as it is and it counts as one test named by -check,
// passed when it exits 0. Either way run appends what happened to a record
// file in DIR and exits 0 whatever the tests did, so that the next tier
// still runs; it exits non-zero only when it could not do its own job.
//
// report reads the records of DIR and prints, for each tier, the counts of
// passed, failed and skipped tests (subtests count as tests), the skipped
// tests each with its reason (the text given to t.Skip), the failed tests,
// and last a line "N passed, N failed, N skipped" with the totals. A tier
// named in -tiers that recorded nothing counts as failed. report exits 1
// when anything failed.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "report":
		var failed bool
		failed, err = reportCmd(os.Args[2:], os.Stdout)
		if err == nil && failed {
			os.Exit(1)
		}
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: testsummary run -dir DIR -tier NAME [-check NAME] -- COMMAND ARGS...
       testsummary report -dir DIR [-tiers a,b,c]`)
	os.Exit(2)
}

// Result values of a record.
const (
	pass = "pass"
	fail = "fail"
	skip = "skip"
)

// record is one line of a tier's record file: a test's outcome, or, with
// Command set, the outcome of one command of the tier.
type record struct {
	Tier    string  `json:"tier"`
	Package string  `json:"package,omitempty"`
	Test    string  `json:"test,omitempty"`
	Result  string  `json:"result,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	Command string  `json:"command,omitempty"`
	Exit    int     `json:"exit,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
}

func recordFile(dir, tier string) string {
	return filepath.Join(dir, "tier-"+tier+".jsonl")
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	dir := fs.String("dir", "", "directory of the record files")
	tier := fs.String("tier", "", "name of the tier")
	check := fs.String("check", "", "the command is a check of this name, not a go test -json run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	argv := fs.Args()
	if *dir == "" || *tier == "" || len(argv) == 0 {
		usage()
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(recordFile(*dir, *tier), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()

	cmdline := shellQuote(argv)
	fmt.Printf("=== tier %s: %s\n", *tier, cmdline)
	start := time.Now()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = nil
	cmd.Stderr = os.Stderr
	var recs []record
	if *check != "" {
		cmd.Stdout = os.Stdout
		err = cmd.Run()
	} else {
		out, perr := cmd.StdoutPipe()
		if perr != nil {
			return perr
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("%s: %w", cmdline, err)
		}
		c := newConverter(os.Stdout)
		rerr := c.read(out)
		err = cmd.Wait()
		if rerr != nil {
			fmt.Fprintf(os.Stderr, "testsummary: reading the output of %s: %v\n", cmdline, rerr)
		}
		recs = c.finish()
	}
	exit := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			// The command did not run at all: a failure of the tier.
			fmt.Fprintf(os.Stderr, "testsummary: %s: %v\n", cmdline, err)
			exit = -1
		} else {
			exit = ee.ExitCode()
		}
	}
	if *check != "" {
		r := record{Tier: *tier, Test: *check, Result: pass}
		if exit != 0 {
			r.Result = fail
			r.Reason = fmt.Sprintf("exited %d: %s (its output is above)", exit, cmdline)
		}
		recs = append(recs, r)
	} else if exit != 0 && !anyFailed(recs) {
		// A build failure outside of any package, a crash of the go
		// command, ...: the tier failed even though no test did.
		recs = append(recs, record{Result: fail, Test: "(command)",
			Reason: fmt.Sprintf("%s exited %d without a failing test", cmdline, exit)})
	}
	recs = append(recs, record{Command: cmdline, Exit: exit, Seconds: time.Since(start).Seconds()})
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range recs {
		r.Tier = *tier
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		return err
	}
	return f.Close()
}

func anyFailed(recs []record) bool {
	for _, r := range recs {
		if r.Result == fail {
			return true
		}
	}
	return false
}

// event is one line of `go test -json` (cmd/test2json), with the build
// events that the go command adds.
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	FailedBuild string
	ImportPath  string
}

// testState is what the converter knows of one test.
type testState struct {
	result string // "" while it runs
	output []string
}

// tree is the output of a top-level test and its subtests, in order.
type tree struct {
	lines []treeLine
}

type treeLine struct {
	test string
	text string
}

// pkgState is what the converter knows of one package.
type pkgState struct {
	tests  map[string]*testState
	trees  map[string]*tree
	order  []string // tests in the order they started
	output []string // package-level output
	done   bool
}

// converter turns `go test -json` events into human-readable output and
// records.
type converter struct {
	w    io.Writer
	pkgs map[string]*pkgState
	recs []record
}

func newConverter(w io.Writer) *converter {
	return &converter{w: w, pkgs: map[string]*pkgState{}}
}

func (c *converter) pkg(name string) *pkgState {
	p := c.pkgs[name]
	if p == nil {
		p = &pkgState{tests: map[string]*testState{}, trees: map[string]*tree{}}
		c.pkgs[name] = p
	}
	return p
}

func (c *converter) read(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			c.line(line)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// measuredMark starts a test's log line that reports a figure (states
// explored, a longest window): the line is shown even when the test
// passes, which go test's output leaves out.
const measuredMark = "measured: "

func (c *converter) line(line []byte) {
	var e event
	if len(bytes.TrimSpace(line)) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil || e.Action == "" {
		// Not an event: pass it on as it is.
		c.w.Write(line)
		if line[len(line)-1] != '\n' {
			fmt.Fprintln(c.w)
		}
		return
	}
	switch e.Action {
	case "build-output":
		fmt.Fprint(c.w, e.Output)
		return
	case "build-fail":
		return
	}
	p := c.pkg(e.Package)
	if e.Test == "" {
		c.pkgEvent(e, p)
		return
	}
	t := p.tests[e.Test]
	if t == nil {
		t = &testState{}
		p.tests[e.Test] = t
		p.order = append(p.order, e.Test)
	}
	top := topLevel(e.Test)
	tr := p.trees[top]
	if tr == nil {
		tr = &tree{}
		p.trees[top] = tr
	}
	switch e.Action {
	case "output":
		if strings.Contains(e.Output, measuredMark) {
			// A figure a test measured: shown even when it passes.
			fmt.Fprintf(c.w, "%s %s: %s", e.Package, e.Test, strings.TrimLeft(e.Output, " "))
		}
		t.output = append(t.output, e.Output)
		tr.lines = append(tr.lines, treeLine{e.Test, e.Output})
	case pass, fail, skip:
		t.result = e.Action
		r := record{Package: e.Package, Test: e.Test, Result: e.Action}
		if e.Action == skip {
			r.Reason = skipReason(t.output)
		}
		c.recs = append(c.recs, r)
		if e.Test == top {
			if e.Action == fail {
				c.printTree(p, tr)
			}
			delete(p.trees, top)
		}
		t.output = nil
	}
}

// printTree prints the output of a failed top-level test: its own lines
// and those of its subtests that did not pass or skip.
func (c *converter) printTree(p *pkgState, tr *tree) {
	for _, l := range tr.lines {
		if st := p.tests[l.test]; st != nil && (st.result == pass || st.result == skip) && strings.Contains(l.test, "/") {
			continue
		}
		fmt.Fprint(c.w, l.text)
	}
}

func (c *converter) pkgEvent(e event, p *pkgState) {
	switch e.Action {
	case "output":
		p.output = append(p.output, e.Output)
	case pass, skip:
		p.done = true
		// As go test without -v: the package's last line only.
		for i := len(p.output) - 1; i >= 0; i-- {
			if s := p.output[i]; strings.HasPrefix(s, "ok") || strings.HasPrefix(s, "?") {
				fmt.Fprint(c.w, s)
				break
			}
		}
	case fail:
		p.done = true
		c.failPkg(e, p)
	}
}

// failPkg prints what a failed package left unsaid: the output of the
// tests that never ended (the test binary panicked, timed out or exited)
// and the package's own output; such tests count as failed, and so does
// the package itself when no test of it failed.
func (c *converter) failPkg(e event, p *pkgState) {
	failed := false
	for _, name := range p.order {
		t := p.tests[name]
		if t.result == fail {
			failed = true
		}
		if t.result != "" {
			continue
		}
		t.result = fail
		failed = true
		c.recs = append(c.recs, record{Package: e.Package, Test: name, Result: fail, Reason: "did not end: the test binary stopped while it ran"})
	}
	for _, name := range sortedKeys(p.trees) {
		c.printTree(p, p.trees[name])
	}
	p.trees = map[string]*tree{}
	for _, s := range p.output {
		fmt.Fprint(c.w, s)
	}
	if !failed {
		reason := "the package failed without a failing test"
		if e.FailedBuild != "" {
			reason = "build failed: " + e.FailedBuild
		}
		c.recs = append(c.recs, record{Package: e.Package, Test: "(package)", Result: fail, Reason: reason})
	}
}

// finish ends the stream: a package without an end event (the go command
// was killed) fails like a package whose binary stopped.
func (c *converter) finish() []record {
	for _, name := range sortedKeys(c.pkgs) {
		p := c.pkgs[name]
		if !p.done && (len(p.order) > 0 || len(p.output) > 0) {
			c.failPkg(event{Package: name}, p)
		}
	}
	return c.recs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func topLevel(test string) string {
	if i := strings.IndexByte(test, '/'); i >= 0 {
		return test[:i]
	}
	return test
}

// logLine is the start of a t.Log, t.Skip, ... line in test output:
// indentation, file:line, then the text.
var logLine = regexp.MustCompile(`^(\s+)[^\s:]+\.go:\d+: ?`)

// skipReason finds, in the output of a skipped test, the text given to
// t.Skip: the last logged message before the "--- SKIP" line, with the
// lines that continue it.
func skipReason(output []string) string {
	var lines []string
	for _, o := range output {
		lines = append(lines, strings.Split(strings.TrimRight(o, "\n"), "\n")...)
	}
	end := len(lines)
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "--- SKIP: ") {
			end = i
			break
		}
	}
	for i := end - 1; i >= 0; i-- {
		m := logLine.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		text := []string{lines[i][len(m[0]):]}
		cont := m[1] + "    "
		for _, l := range lines[i+1 : end] {
			if !strings.HasPrefix(l, cont) {
				break
			}
			text = append(text, strings.TrimPrefix(l, cont))
		}
		return strings.Join(text, "\n")
	}
	return "(no reason given)"
}

type tierSum struct {
	name                  string
	passed, failed, skips int
	seconds               float64
	skipped, failures     []record
}

func reportCmd(args []string, w io.Writer) (bool, error) {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	dir := fs.String("dir", "", "directory of the record files")
	tiers := fs.String("tiers", "", "comma-separated tiers that must have run, in the order to show")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	if *dir == "" {
		usage()
	}
	files, err := filepath.Glob(recordFile(*dir, "*"))
	if err != nil {
		return false, err
	}
	sums := map[string]*tierSum{}
	var order []string
	get := func(name string) *tierSum {
		s := sums[name]
		if s == nil {
			s = &tierSum{name: name}
			sums[name] = s
			order = append(order, name)
		}
		return s
	}
	if *tiers != "" {
		for _, t := range strings.Split(*tiers, ",") {
			get(strings.TrimSpace(t))
		}
	}
	sort.Strings(files)
	seen := map[string]bool{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return false, err
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		for {
			var r record
			if err := dec.Decode(&r); err == io.EOF {
				break
			} else if err != nil {
				return false, fmt.Errorf("%s: %w", file, err)
			}
			s := get(r.Tier)
			seen[r.Tier] = true
			switch {
			case r.Command != "":
				s.seconds += r.Seconds
			case r.Result == pass:
				s.passed++
			case r.Result == fail:
				s.failed++
				s.failures = append(s.failures, r)
			case r.Result == skip:
				s.skips++
				s.skipped = append(s.skipped, r)
			}
		}
	}
	for _, name := range order {
		if !seen[name] {
			s := sums[name]
			s.failed++
			s.failures = append(s.failures, record{Tier: name, Test: "(tier)", Result: fail, Reason: "the tier recorded nothing: it did not run"})
		}
	}

	module := modulePath()
	short := func(pkg string) string {
		if module != "" && (pkg == module || strings.HasPrefix(pkg, module+"/")) {
			if rest := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/"); rest != "" {
				return rest
			}
			return "."
		}
		return pkg
	}
	name := func(r record) string {
		if r.Package == "" {
			return r.Test
		}
		return short(r.Package) + " " + r.Test
	}
	indent := func(s string) string {
		return strings.ReplaceAll(s, "\n", "\n        ")
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "=== Summary of the test tiers")
	width := len("tier")
	for _, n := range order {
		width = max(width, len(n))
	}
	fmt.Fprintf(w, "%-*s  %7s  %7s  %7s  %8s\n", width, "tier", "passed", "failed", "skipped", "time")
	var tp, tf, ts int
	for _, n := range order {
		s := sums[n]
		d := time.Duration(s.seconds * float64(time.Second)).Round(time.Second)
		fmt.Fprintf(w, "%-*s  %7d  %7d  %7d  %8s\n", width, s.name, s.passed, s.failed, s.skips, d)
		tp, tf, ts = tp+s.passed, tf+s.failed, ts+s.skips
	}
	if ts > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Skipped (%d):\n", ts)
		for _, n := range order {
			for _, r := range sums[n].skipped {
				fmt.Fprintf(w, "  [%s] %s\n        %s\n", n, name(r), indent(r.Reason))
			}
		}
	}
	if tf > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Failed (%d):\n", tf)
		for _, n := range order {
			for _, r := range sums[n].failures {
				fmt.Fprintf(w, "  [%s] %s", n, name(r))
				if r.Reason != "" {
					fmt.Fprintf(w, "\n        %s", indent(r.Reason))
				}
				fmt.Fprintln(w)
			}
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", tp, tf, ts)
	return tf > 0, nil
}

// modulePath is the module of go.mod in the current directory, to shorten
// package names; "" when there is none.
func modulePath() string {
	data, err := os.ReadFile("go.mod")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "module" {
			return f[1]
		}
	}
	return ""
}

// shellQuote joins argv into a line a shell would split back the same.
func shellQuote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@+%", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
