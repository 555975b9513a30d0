package golden

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	if d := Diff("a\nb\nc", "a\nB\nc\nd"); d != "line 2:\n  want b\n  got  B\nline 4:\n  want \n  got  d\n" {
		t.Errorf("diff = %q", d)
	}
	if d := Diff("same\n", "same\n"); d != "" {
		t.Errorf("no difference gave %q", d)
	}
}

// upper answers each "> x" line with "= X".
func upper(src string) (string, error) {
	var out []string
	lines := strings.Split(strings.TrimRight(src, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		out = append(out, lines[i])
		if strings.HasPrefix(lines[i], "> ") {
			out = append(out, "= "+strings.ToUpper(strings.TrimPrefix(lines[i], "> ")))
			i++ // the expected line, replaced
		}
	}
	return strings.Join(out, "\n") + "\n", nil
}

// A file the run leaves as it is passes, in a subtest named after it; with
// -rewrite a file is written back as the run made it.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	write("ok.txt", "# why\n> x\n= X\n")
	var ran []string
	Files(t, filepath.Join(dir, "*.txt"), func(src string) (string, error) {
		ran = append(ran, src)
		return upper(src)
	})
	if len(ran) != 1 {
		t.Fatalf("the run saw %d files, want 1", len(ran))
	}

	stale := write("stale.txt", "> y\n= wrong\n")
	*rewrite = true
	defer func() { *rewrite = false }()
	Files(t, stale, upper)
	if got, _ := os.ReadFile(stale); string(got) != "> y\n= Y\n" {
		t.Errorf("rewritten file: %q", got)
	}
}
