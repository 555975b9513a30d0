package fleet

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resman-pbx/resman/config/confcheck"
)

func TestReadPairsDir(t *testing.T) {
	t.Parallel()
	lists, err := ReadPairsDir("testdata/pairs.d")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range lists {
		if l.Key != "pairs" || !strings.HasPrefix(l.File, "testdata/pairs.d/") {
			t.Errorf("list %q %q", l.File, l.Key)
		}
		for _, p := range l.Pairs {
			names = append(names, p.Name)
			if len(p.Nodes) != 2 || len(p.Token) < confcheck.MinTokenLen {
				t.Errorf("pair %+v", p)
			}
		}
	}
	// Files in name order (lyon.yml, paris.yaml); README.txt ignored.
	if got := strings.Join(names, ","); got != "lyon-1,paris-1,paris-2" {
		t.Errorf("pairs %s", got)
	}
	if ps := CheckPairs(lists, "another-token-0123456789"); len(ps) != 0 {
		t.Errorf("problems: %v", ps)
	}
}

func TestReadPairsDirProblems(t *testing.T) {
	t.Parallel()
	// b.yaml has an unknown key: the file is refused as a whole.
	_, err := ReadPairsDir("testdata/bad.d")
	var ps confcheck.Problems
	if !errors.As(err, &ps) || len(ps) != 1 || !strings.HasSuffix(ps[0].File, "b.yaml") ||
		!strings.Contains(ps[0].Msg, "field tokn not found") {
		t.Fatalf("got %v", err)
	}

	// Without the unknown key, every problem is named with its file.
	dir := t.TempDir()
	for _, f := range []string{"a.yaml", "c.yaml"} {
		b, _ := os.ReadFile(filepath.Join("testdata/bad.d", f))
		_ = os.WriteFile(filepath.Join(dir, f), b, 0o600)
	}
	b, _ := os.ReadFile("testdata/bad.d/b.yaml")
	_ = os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(strings.ReplaceAll(string(b), "    tokn: typo\n", "")), 0o600)
	lists, err := ReadPairsDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := CheckPairs(lists, "").Error()
	for _, want := range []string{
		"a.yaml: pairs[1].name: must be 1 to 128 letters, digits",
		"a.yaml: pairs[1].nodes: must list the pair's 2 nodes",
		"a.yaml: pairs[1].token: must be at least 16 characters, got 5",
		"b.yaml: pairs[0].name: duplicate of " + filepath.Join(dir, "a.yaml") + ": pairs[0].name \"dup\"",
		"b.yaml: pairs[0].nodes[0]: must be an http(s) URL with a host",
		"b.yaml: pairs[0].nodes[1]: must not hold a user or password",
		"c.yaml: pairs[0].nodes[1]: must differ from pairs[0].nodes[0]",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "13579bdf") || strings.Contains(got, "short") {
		t.Errorf("a token is in the messages:\n%s", got)
	}
}

func TestReadPairsDirEmptyFiles(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		"":                                      "empty",
		"pairs: []\n":                           "no pair",
		"pairs:\n  - name: a\n---\npairs: []\n": "more than one YAML document",
		"pairs: {}\n":                           "invalid YAML",
	} {
		dir := t.TempDir()
		_ = os.WriteFile(filepath.Join(dir, "x.yaml"), []byte(body), 0o600)
		_, err := ReadPairsDir(dir)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
	if _, err := ReadPairsDir(filepath.Join(t.TempDir(), "missing")); err == nil ||
		!strings.HasPrefix(err.Error(), "fleet.pairs_dir: ") {
		t.Errorf("missing dir: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	ok := PairConfig{Name: "p1", Nodes: []string{"http://10.0.0.1:9440", "http://10.0.0.2:9440"}, Token: simToken}
	for _, tt := range []struct {
		name string
		cfg  Config
		tok  string
		want string
	}{
		{"no pairs", Config{}, aggToken, "fleet.pairs: list at least one pair"},
		{"shared token", Config{Pairs: []PairConfig{ok}}, simToken, "fleet.pairs[0].token: must differ from api.token"},
		{"timeout over interval", Config{Pairs: []PairConfig{ok}, Interval: 1e9, Timeout: 2e9}, aggToken,
			"fleet.timeout: must not exceed fleet.interval (1s), got 2s"},
		{"concurrency", Config{Pairs: []PairConfig{ok}, Concurrency: -1}, aggToken, "fleet.concurrency: must be 1 to 1024, got -1"},
		{"relative dir", Config{PairsDir: "fleet.d"}, aggToken, "fleet.pairs_dir: must be an absolute directory"},
		{"dir and list share a name", Config{Pairs: []PairConfig{{Name: "paris-1", Nodes: ok.Nodes, Token: simToken}},
			PairsDir: mustAbs(t, "testdata/pairs.d")}, aggToken, "paris.yaml: pairs[0].name: duplicate of fleet.pairs[0].name \"paris-1\""},
	} {
		_, err := New(Options{Config: tt.cfg, Token: tt.tok})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	a, err := New(Options{Config: Config{PairsDir: mustAbs(t, "testdata/pairs.d")}, Token: aggToken})
	if err != nil {
		t.Fatal(err)
	}
	if a.Pairs() != 3 {
		t.Errorf("%d pairs from the directory alone, want 3", a.Pairs())
	}
}

func mustAbs(t *testing.T, p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// LoadPairs names the problems of the files of fleet.pairs_dir file by
// file (in name order), pair by pair, and key by key in the order of
// PairConfig's fields.
func TestLoadPairsProblemsInOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"b.yaml": "pairs:\n  - name: paris-1\n    nodes: [http://10.0.0.3:9440, http://10.0.0.4:9440]\n    token: 0123456789abcdef0123\n",
		"a.yaml": "pairs:\n  - name: ok-1\n    nodes: [http://10.0.0.5:9440, http://10.0.0.6:9440]\n    token: 0123456789abcdef0123\n" +
			"  - name: has space\n    nodes: [ftp://10.0.0.7, http://10.0.0.8:9440]\n    token: short\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ok := PairConfig{Name: "paris-1", Nodes: []string{"http://10.0.0.1:9440", "http://10.0.0.2:9440"}, Token: simToken}
	_, err := LoadPairs(Config{Pairs: []PairConfig{ok}, PairsDir: dir}, aggToken)
	var ps confcheck.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want confcheck.Problems, got %v", err)
	}
	want := strings.Join([]string{
		dir + `/a.yaml: pairs[1].name: must be 1 to 128 letters, digits, '.', '_' or '-', got "has space"`,
		dir + `/a.yaml: pairs[1].nodes[0]: must be an http(s) URL with a host, like http://10.0.0.1:9440, got "ftp://10.0.0.7"`,
		dir + `/a.yaml: pairs[1].token: must be at least 16 characters, got 5`,
		dir + `/b.yaml: pairs[0].name: duplicate of fleet.pairs[0].name "paris-1"`,
	}, "\n")
	if got := err.Error(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
