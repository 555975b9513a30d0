package main

// The example deployments (examples/): each directory holds a README.md and
// every config file the deployment needs; each file passes `resman config
// check` run as the real CLI (warning of its placeholder secrets), and the
// files of one directory agree with each other where a running deployment
// needs them to (config.CheckDeployment: the same token and gossip key, a
// pair whose peers point at each other, followers and an Edge that point at
// the nodes), which `resman config check` given them all says too.
//
// Then `resman config check FILE...` itself: several files checked
// together, on copies of the examples with one mistake each.

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/resman-pbx/resman/config"
)

const examplesDir = "../../examples"

func TestExamples(t *testing.T) {
	yamls := map[string][]string{} // every directory under examples/ -> its config files
	err := filepath.WalkDir(examplesDir, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			if _, ok := yamls[path]; !ok {
				yamls[path] = nil // a directory without config files is reported below
			}
		case strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml"):
			yamls[filepath.Dir(path)] = append(yamls[filepath.Dir(path)], path)
		}
		return nil
	})
	if err != nil || len(yamls) < 2 {
		t.Fatalf("no example directories under %s: %v", examplesDir, err)
	}
	dirs := make([]string, 0, len(yamls))
	for d := range yamls {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		rel, _ := filepath.Rel(examplesDir, dir)
		t.Run(rel, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
				t.Errorf("%s has no README.md (topology, files, how to check and start, failover and failback)", dir)
			}
			if dir != examplesDir && len(yamls[dir]) == 0 {
				t.Errorf("%s holds no config file", dir)
			}
			var files []config.File
			for _, f := range yamls[dir] {
				out, stderr, code := cli(t, "config", "check", f)
				if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), ": ok") {
					t.Errorf("resman config check %s: exit %d\n%s%s", f, code, out, stderr)
					continue
				}
				// As shipped, every file carries the placeholder token:
				// a warning, not a failure.
				if !strings.Contains(stderr, "warning: "+f+": api.token: is a placeholder") {
					t.Errorf("resman config check %s does not warn of the placeholder api.token:\n%s", f, stderr)
				}
				cfg, err := config.Load(f)
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				files = append(files, config.File{Name: filepath.Base(f), Config: cfg})
			}
			if len(files) == 0 || t.Failed() {
				return
			}
			// The files of the directory agree, with no warning either.
			errs, warnings := config.CheckDeployment(files)
			for _, p := range append(errs, warnings...) {
				t.Errorf("%s", p)
			}
			// And so says config check, given them all, as the README
			// shows it.
			checkREADMECommand(t, dir, yamls[dir])
		})
	}
}

// readmeCheckRE finds the README's command that checks the files together
// ("$ resman config check a.yaml b.yaml") and the output shown after it,
// up to the end of its block.
var readmeCheckRE = regexp.MustCompile("(?m)^\\$ resman config check ((?:[a-z-]+\\.yaml ?){2,})\n((?:[^`].*\n)*)```")

// checkREADMECommand runs the README's command that checks every config
// file of dir together, and compares its output with the README's.
func checkREADMECommand(t *testing.T, dir string, yamls []string) {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := readmeCheckRE.FindStringSubmatch(string(readme))
	if m == nil {
		t.Errorf("%s/README.md does not show how to check its files together: \"$ resman config check A.yaml B.yaml...\" and its output", dir)
		return
	}
	names := strings.Fields(m[1])
	var want []string
	for _, f := range yamls {
		want = append(want, filepath.Base(f))
	}
	if a, b := slices.Sorted(slices.Values(names)), slices.Sorted(slices.Values(want)); !slices.Equal(a, b) {
		t.Errorf("%s/README.md checks %v together, want every file of the directory %v", dir, a, b)
	}
	args := []string{"config", "check"}
	for _, n := range names {
		args = append(args, filepath.Join(dir, n))
	}
	out, stderr, code := cli(t, args...)
	if got := strings.ReplaceAll(out, dir+string(filepath.Separator), ""); code != 0 || got != m[2] {
		t.Errorf("resman config check %s: exit %d, printed\n%s%s\nwant exit 0 and, as %s/README.md shows,\n%s", m[1], code, got, stderr, dir, m[2])
	}
}

// copyExample copies the config files of examples/DIR into a new
// directory and returns their paths there, by base name.
func copyExample(t *testing.T, dir string) (string, map[string]string) {
	t.Helper()
	src, _ := filepath.Glob(filepath.Join(examplesDir, dir, "*.yaml"))
	if len(src) < 2 {
		t.Fatalf("examples/%s: %d config files", dir, len(src))
	}
	tmp := t.TempDir()
	paths := map[string]string{}
	for _, f := range src {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(tmp, filepath.Base(f))
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
		paths[filepath.Base(f)] = dst
	}
	return tmp, paths
}

// editFile replaces the first match of re in path by repl; the test fails
// if there is none.
func editFile(t *testing.T, path, re, repl string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rx := regexp.MustCompile(re)
	loc := rx.FindIndex(data)
	if loc == nil {
		t.Fatalf("%s has no %s to edit", path, re)
	}
	out := append(append(append([]byte{}, data[:loc[0]]...), rx.ReplaceAll(data[loc[0]:loc[1]], []byte(repl))...), data[loc[1]:]...)
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkAll runs resman config check on every config file of dir.
func checkAll(t *testing.T, dir string) (string, string, int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	sort.Strings(files)
	return cli(t, append([]string{"config", "check"}, files...)...)
}

func TestConfigCheckDeployment(t *testing.T) {
	dir, p := copyExample(t, "pair")
	main, standby := p["xivo-main.yaml"], p["xivo-standby.yaml"]

	// As shipped: each file ok, then the three together; the placeholders
	// are warnings.
	out, stderr, code := checkAll(t, dir)
	if code != 0 {
		t.Fatalf("config check of examples/pair: exit %d\n%s%s", code, out, stderr)
	}
	for _, f := range p {
		if !strings.Contains(out, f+": ok\n") || !strings.Contains(stderr, "warning: "+f+": api.token: is a placeholder") {
			t.Errorf("%s: not ok, or no warning of its placeholder token:\n%s%s", f, out, stderr)
		}
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); lines[len(lines)-1] != "3 files, checked together: ok" {
		t.Errorf("the last line is not the deployment's verdict:\n%s", out)
	}

	// One file's token changed: each file is still valid, together they
	// are not; the message names both files and the key, not the values.
	editFile(t, standby, `(?m)^(  token:) .*$`, `$1 "standby-token-0123456789abcdef"`)
	out, stderr, code = checkAll(t, dir)
	want := standby + ": api.token: differs from " + main + ": api.token"
	if code != exitFailed || !strings.Contains(stderr, want) || !strings.Contains(stderr, "1 problem(s)") {
		t.Errorf("want exit %d and %q, got exit %d\n%s%s", exitFailed, want, code, out, stderr)
	}
	if strings.Contains(stderr, "standby-token") || strings.Contains(stderr, "change-me-to") {
		t.Errorf("a token is shown:\n%s", stderr)
	}
	// Only the other token is a placeholder now.
	if strings.Contains(stderr, "warning: "+standby+": api.token") {
		t.Errorf("the new token is warned of:\n%s", stderr)
	}

	// A rule of its own: the witness joins one node only.
	editFile(t, standby, `(?m)^(  token:) .*$`, `$1 "change-me-to-a-long-random-token"`)
	editFile(t, p["witness.yaml"], `join: \[10\.0\.0\.1:7946, 10\.0\.0\.2:7946\]`, `join: [10.0.0.1:7946]`)
	_, stderr, code = checkAll(t, dir)
	want = p["witness.yaml"] + `: gossip.join: ["10.0.0.1:7946"] does not reach ` + standby + `: gossip.bind "10.0.0.2:7946"`
	if code != exitFailed || !strings.Contains(stderr, want) {
		t.Errorf("want exit %d and %q, got exit %d\n%s", exitFailed, want, code, stderr)
	}
}

func TestConfigCheckDeploymentRules(t *testing.T) {
	for _, tt := range []struct {
		name, dir, file, re, repl string
		code                      int
		want                      string // FILE is the edited file's path, OTHER the main's, STANDBY the standby's
	}{
		{"peer names", "manual-pair", "xivo-standby.yaml", `(?m)^(  name:) xivo-main`, `$1 xivo-1`, exitFailed,
			`FILE: peer.name: "xivo-1" is not OTHER: node.name "xivo-main"`},
		{"peer.api", "manual-pair", "xivo-standby.yaml", `http://10\.0\.0\.1:9440`, `http://10.0.0.1:9441`, exitFailed,
			`FILE: peer.api: "http://10.0.0.1:9441" does not reach OTHER: api.listen "10.0.0.1:9440"`},
		{"gossip key", "pair-mds", "xivo-standby.yaml", `(?m)^(  key:) .*$`, `$1 "ixRkyckRn2MAzPkiERpX1Q=="`, exitFailed,
			`FILE: gossip.key: differs from OTHER: gossip.key`},
		{"version", "manual-pair-cc", "xivo-standby.yaml", `(?m)^(  version:) .*$`, `$1 "2026.1.0"`, exitFailed,
			`FILE: node.version: differs from OTHER: node.version ("2026.1.0" here, "2025.10.3" there)`},
		{"xds.mds", "pair-mds", "xivo-standby.yaml", `10\.0\.0\.12:5060`, `10.0.0.13:5060`, exitFailed,
			`FILE: xds.mds[1].registrar: differs from OTHER: xds.mds[1].registrar`},
		{"a shared xds.contact: a warning", "manual-pair-mds-edge", "xivo-standby.yaml", `sip:xivo@10\.0\.0\.2:5060`, `sip:xivo@10.0.0.1:5060`, 0,
			`warning: FILE: xds.contact: "sip:xivo@10.0.0.1:5060" is also OTHER: xds.contact`},
		{"a CC follower", "pair-cc", "cc-main.yaml", `(?m)^(  follow:) .*$`, `$1 http://10.0.0.2:9440`, exitFailed,
			`cc-standby.yaml: cc.follow: follows STANDBY, as FILE does`},
		{"the Edge's sides", "pair-cc-edge", "edge.yaml", `http://10\.0\.0\.2:9440`, `http://10.0.0.1:9440`, exitFailed,
			`FILE: edge.sides: reach 1 of the 2 nodes`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, p := copyExample(t, tt.dir)
			editFile(t, p[tt.file], tt.re, tt.repl)
			out, stderr, code := checkAll(t, dir)
			want := strings.NewReplacer("FILE", p[tt.file], "OTHER", p["xivo-main.yaml"], "STANDBY", p["xivo-standby.yaml"]).Replace(tt.want)
			if code != tt.code || !strings.Contains(stderr, want) {
				t.Errorf("want exit %d and %q, got exit %d\n%s%s", tt.code, want, code, out, stderr)
			}
		})
	}
}

// A file that fails alone is reported as when checked alone; the files
// are then not checked together.
func TestConfigCheckDeploymentWithABadFile(t *testing.T) {
	dir, p := copyExample(t, "manual-pair")
	editFile(t, p["xivo-standby.yaml"], `(?m)^(  role:) standby`, `$1 primary`)
	out, stderr, code := checkAll(t, dir)
	for _, want := range []string{p["xivo-standby.yaml"] + ": 1 problem(s):\nnode.role: must be main, standby or witness", "1 of 2 files", "not checked together"} {
		if code != exitFailed || !strings.Contains(stderr, want) {
			t.Errorf("want exit %d and %q, got exit %d\n%s%s", exitFailed, want, code, out, stderr)
		}
	}
	if !strings.Contains(out, p["xivo-main.yaml"]+": ok") {
		t.Errorf("the good file is not reported ok:\n%s", out)
	}
}

// One file: as before, plus a warning for each placeholder or weak
// secret; exit 0 all the same. A file without any prints only "ok".
func TestConfigCheckWarnsOfWeakSecrets(t *testing.T) {
	_, p := copyExample(t, "manual-pair-mds-edge")
	f := p["xivo-main.yaml"]
	out, stderr, code := cli(t, "config", "check", f)
	if code != 0 || out != f+": ok\n" {
		t.Fatalf("exit %d, stdout %q; want 0 and %q", code, out, f+": ok\n")
	}
	for _, key := range []string{"api.token", "api.users[0].password_hash", "xds.mds[0].password", "xds.mds[1].password"} {
		if !strings.Contains(stderr, "warning: "+f+": "+key+": ") {
			t.Errorf("no warning for %s:\n%s", key, stderr)
		}
	}
	if !strings.Contains(stderr, "resman gen-secret token") {
		t.Errorf("the warnings do not say how to make a token:\n%s", stderr)
	}

	editFile(t, f, `(?m)^(  token:) .*$`, `$1 "`+newAPIToken()+`"`)
	hash, err := bcrypt.GenerateFromPassword([]byte("correct horse battery"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	editFile(t, f, `(?m)^(\s+- \{name: admin, password_hash:) .*$`, `$1 "`+strings.ReplaceAll(string(hash), "$", "$$")+`"}`)
	editFile(t, f, `change-me-mds1-password`, `mds1-digest-pw-8c7e1`)
	editFile(t, f, `change-me-mds2-password`, `mds2-digest-pw-31f0a`)
	out, stderr, code = cli(t, "config", "check", f)
	if code != 0 || out != f+": ok\n" || stderr != "" {
		t.Errorf("with secrets of its own: exit %d\n%s%s", code, out, stderr)
	}
}

// config check reads the pair files of fleet.pairs_dir as resman run
// does: a bad pair file, an empty directory or a missing one fails the
// check with the file and key, not only the start.
func TestConfigCheckReadsFleetPairFiles(t *testing.T) {
	dir := t.TempDir()
	pairs := filepath.Join(dir, "pairs")
	if err := os.Mkdir(pairs, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "fleet.yaml")
	writeFile := func(path, body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(cfg, "api:\n  listen: 127.0.0.1:9550\n  token: fleet-Reader-Token-0123456789abcdef\nfleet:\n  pairs_dir: "+pairs+"\n")
	writeFile(filepath.Join(pairs, "paris.yaml"),
		"pairs:\n  - name: paris-1\n    nodes: [http://10.0.0.1:9440, http://10.0.0.2:9440]\n    token: pair-Token-Paris-0123456789abcdefgh\n")
	if out, stderr, code := cli(t, "config", "check", cfg); code != 0 || !strings.Contains(out, cfg+": ok") {
		t.Fatalf("a good pair file: exit %d\n%s%s", code, out, stderr)
	}

	lyon := filepath.Join(pairs, "lyon.yaml")
	writeFile(lyon, "pairs:\n  - name: lyon-1\n    nodes: [http://10.0.1.1:9440]\n    token: pair-Token-Lyon-0123456789abcdefgh\n")
	_, stderr, code := cli(t, "config", "check", cfg)
	want := lyon + ": pairs[0].nodes: must list the pair's 2 nodes' API base URLs"
	if code != exitFailed || !strings.Contains(stderr, "the pairs of fleet.pairs_dir") || !strings.Contains(stderr, want) {
		t.Errorf("a bad pair file: want exit %d and %q, got exit %d\n%s", exitFailed, want, code, stderr)
	}

	if err := os.RemoveAll(pairs); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := cli(t, "config", "check", cfg); code != exitFailed || !strings.Contains(stderr, "fleet.pairs_dir: open "+pairs) {
		t.Errorf("a missing pairs_dir: exit %d\n%s", code, stderr)
	}
}
