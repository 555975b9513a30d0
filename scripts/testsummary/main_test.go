package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// events makes a `go test -json` stream from (action, test, output) triples
// of package p.
func events(t *testing.T, p string, ev ...[3]string) string {
	t.Helper()
	var b strings.Builder
	for _, e := range ev {
		line, err := json.Marshal(event{Action: e[0], Package: p, Test: e[1], Output: e[2]})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func TestSkipReason(t *testing.T) {
	for _, c := range []struct {
		out  []string
		want string
	}{
		{[]string{"=== RUN   TestA\n", "    a_test.go:3: before\n", "    a_test.go:4: no kamailio:\n", "        apt-get install kamailio\n", "--- SKIP: TestA (0.00s)\n"},
			"no kamailio:\napt-get install kamailio"},
		{[]string{"=== RUN   TestB/sub\n", "    b_test.go:9: needs root\n", "stray stdout\n", "--- SKIP: TestB/sub (0.00s)\n"}, "needs root"},
		{[]string{"=== RUN   TestC\n", "--- SKIP: TestC (0.00s)\n"}, "(no reason given)"},
	} {
		if got := skipReason(c.out); got != c.want {
			t.Errorf("skipReason(%q) = %q, want %q", c.out, got, c.want)
		}
	}
}

func TestConverter(t *testing.T) {
	stream := events(t, "m/a",
		[3]string{"start", "", ""},
		[3]string{"run", "TestOK", ""},
		[3]string{"output", "TestOK", "=== RUN   TestOK\n"},
		[3]string{"output", "TestOK", "    ok_test.go:1: quiet when it passes\n"},
		[3]string{"pass", "TestOK", ""},
		[3]string{"run", "TestT", ""},
		[3]string{"output", "TestT", "=== RUN   TestT\n"},
		[3]string{"run", "TestT/good", ""},
		[3]string{"output", "TestT/good", "=== RUN   TestT/good\n"},
		[3]string{"pass", "TestT/good", ""},
		[3]string{"run", "TestT/bad", ""},
		[3]string{"output", "TestT/bad", "=== RUN   TestT/bad\n"},
		[3]string{"output", "TestT/bad", "    t_test.go:7: want 1, got 2\n"},
		[3]string{"output", "TestT/bad", "    --- FAIL: TestT/bad (0.00s)\n"},
		[3]string{"fail", "TestT/bad", ""},
		[3]string{"output", "TestT", "--- FAIL: TestT (0.00s)\n"},
		[3]string{"fail", "TestT", ""},
		[3]string{"run", "TestS", ""},
		[3]string{"output", "TestS", "    s_test.go:2: no chromium\n"},
		[3]string{"output", "TestS", "--- SKIP: TestS (0.00s)\n"},
		[3]string{"skip", "TestS", ""},
		[3]string{"output", "", "FAIL\n"},
		[3]string{"output", "", "FAIL\tm/a\t0.1s\n"},
		[3]string{"fail", "", ""},
	) + "go: not an event\n" + events(t, "m/b",
		[3]string{"start", "", ""},
		[3]string{"run", "TestHang", ""},
		[3]string{"output", "TestHang", "=== RUN   TestHang\n"},
		[3]string{"output", "", "panic: test timed out after 1s\n"},
		[3]string{"fail", "", ""},
	) + events(t, "m/c",
		[3]string{"start", "", ""},
		[3]string{"output", "", "ok  \tm/c\t0.2s\n"},
		[3]string{"pass", "", ""},
	)
	var out strings.Builder
	c := newConverter(&out)
	if err := c.read(strings.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	recs := c.finish()
	got := out.String()
	for _, want := range []string{"want 1, got 2", "--- FAIL: TestT (", "FAIL\tm/a", "go: not an event", "panic: test timed out", "=== RUN   TestHang", "ok  \tm/c"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, quiet := range []string{"quiet when it passes", "=== RUN   TestT/good"} {
		if strings.Contains(got, quiet) {
			t.Errorf("output shows %q of a test that passed:\n%s", quiet, got)
		}
	}
	count := map[string]int{}
	for _, r := range recs {
		count[r.Result]++
		if r.Test == "TestS" && r.Reason != "no chromium" {
			t.Errorf("TestS reason %q, want %q", r.Reason, "no chromium")
		}
	}
	// TestOK, TestT/good pass; TestT/bad, TestT, TestHang fail; TestS skips.
	if count[pass] != 2 || count[fail] != 3 || count[skip] != 1 {
		t.Errorf("counts %v, want 2 pass, 3 fail, 1 skip", count)
	}
}

func TestReport(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	for _, r := range []record{
		{Tier: "go", Package: "m/a", Test: "TestA", Result: pass},
		{Tier: "go", Package: "m/a", Test: "TestB", Result: skip, Reason: "needs root"},
		{Tier: "go", Package: "m/a", Test: "TestC", Result: fail},
		{Tier: "go", Command: "go test -json ./...", Exit: 1, Seconds: 3},
	} {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "tier-go.jsonl"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	failed, err := reportCmd([]string{"-dir", dir, "-tiers", "vet,go"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Error("report did not fail")
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	// vet recorded nothing: it counts as one failure.
	if last := lines[len(lines)-1]; last != "1 passed, 2 failed, 1 skipped" {
		t.Errorf("last line %q\n%s", last, out.String())
	}
	if !strings.Contains(out.String(), "needs root") || !strings.Contains(out.String(), "did not run") {
		t.Errorf("report lacks the skip reason or the missing tier:\n%s", out.String())
	}
}
