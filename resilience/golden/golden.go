// Package golden runs golden scenario files, the way resman states its
// rules: a file is a story whose expected lines a function rewrites from
// what the code does; the test passes when the file comes back unchanged.
// With -rewrite it writes what the code did instead, to be read as a diff.
//
// It is test support, imported by tests only: the decision core's
// scenarios (resilience/testdata), the pair's (resilience/testdata/pair),
// the CC's want rule (cc/testdata/want) and the Edge's side selection
// (edge/testdata/select).
package golden

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected lines of the scenario files the test runs, then read the diff")

// Rewriting reports whether the test runs with -rewrite.
func Rewriting() bool { return *rewrite }

// Files runs every file matching glob as a subtest named after it: run
// gets the file's text and returns it with its expected lines replaced by
// what the code did. The test fails on any difference, showing it line by
// line; with -rewrite the file is written back instead. No file matching
// is a failure: a glob that finds nothing must not pass.
func Files(t *testing.T, glob string, run func(src string) (string, error)) {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario files match %s: %v", glob, err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := run(string(raw))
			if err != nil {
				t.Fatal(err)
			}
			if *rewrite {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != string(raw) {
				t.Errorf("scenario output differs (run with -rewrite and read the diff):\n%s", Diff(string(raw), got))
			}
		})
	}
}

// Diff lists the lines where got differs from want.
func Diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %s\n  got  %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}
