package services

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseActiveState(t *testing.T) {
	for out, want := range map[string]string{
		"active\n":           StateRunning,
		"reloading\n":        StateRunning,
		"refreshing\n":       StateRunning,
		"activating\n":       StateStarting,
		"deactivating\n":     StateStopping,
		"failed\n":           StateFailed,
		"inactive\n":         StateStopped,
		"maintenance\n":      StateStopped,
		"unknown\n":          StateStopped,
		"":                   StateStopped,
		"  active  ":         StateRunning,
		"active\ninactive\n": StateRunning, // one unit asked: the first line
		"Active\n":           StateStopped, // systemctl prints lower case only
	} {
		if got := parseActiveState(out); got != want {
			t.Errorf("parseActiveState(%q) = %q, want %q", out, got, want)
		}
	}
}

func FuzzParseActiveState(f *testing.F) {
	for _, s := range []string{"active\n", "failed", "", "\n\n", "activating\r\n"} {
		f.Add(s)
	}
	states := []string{StateStopped, StateStarting, StateRunning, StateStopping, StateFailed}
	f.Fuzz(func(t *testing.T, out string) {
		if got := parseActiveState(out); !slices.Contains(states, got) {
			t.Errorf("parseActiveState(%q) = %q, not a state", out, got)
		}
	})
}

// fakeSystemctl puts a systemctl on PATH that logs its arguments to
// $dir/calls and answers is-active with the content of $dir/state.
func fakeSystemctl(t *testing.T, state string) (dir string) {
	t.Helper()
	dir = t.TempDir()
	script := `#!/bin/sh
echo "$*" >> "$FAKE_SYSTEMCTL_DIR/calls"
if [ "$1" = is-active ]; then cat "$FAKE_SYSTEMCTL_DIR/state"; exit 3; fi
`
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state"), []byte(state+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_SYSTEMCTL_DIR", dir)
	return dir
}

func readCalls(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "calls"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestUnitInitiallyActive(t *testing.T) {
	dir := fakeSystemctl(t, "active")
	s := newTestSupervisor(t, []Service{{Name: "asterisk", Unit: "asterisk.service", Timeout: 10 * time.Second}}, Options{})
	if st := statusOf(t, s, "asterisk"); st.State != StateRunning || !st.Healthy {
		t.Fatalf("asterisk = %+v, want running from is-active", st)
	}
	if err := s.Start(ctxT(t)); err != nil { // already running: nothing to do
		t.Fatal(err)
	}
	if err := s.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	want := []string{"is-active asterisk.service", "stop asterisk.service", "start asterisk.service"}
	if got := readCalls(t, dir); !slices.Equal(got, want) {
		t.Errorf("systemctl calls = %q, want %q", got, want)
	}
}

func TestUnitInitiallyFailed(t *testing.T) {
	fakeSystemctl(t, "failed")
	s := newTestSupervisor(t, []Service{{Name: "asterisk", Unit: "asterisk.service", Timeout: 10 * time.Second, Critical: true}}, Options{})
	if st := statusOf(t, s, "asterisk"); st.State != StateFailed || st.Error == "" {
		t.Fatalf("asterisk = %+v, want failed with an error", st)
	}
	if got := s.Unhealthy(); !slices.Equal(got, []string{"asterisk"}) {
		t.Errorf("Unhealthy = %v, want [asterisk]", got)
	}
}

func TestUnitStartFailure(t *testing.T) {
	dir := fakeSystemctl(t, "inactive")
	script := `#!/bin/sh
if [ "$1" = start ]; then echo "Job for $2 failed because the control process exited with error code." >&2; exit 1; fi
cat "$FAKE_SYSTEMCTL_DIR/state"; exit 3
`
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s := newTestSupervisor(t, []Service{{Name: "asterisk", Unit: "asterisk.service", Timeout: 10 * time.Second}}, Options{})
	if st := statusOf(t, s, "asterisk"); st.State != StateStopped {
		t.Fatalf("asterisk = %+v, want stopped", st)
	}
	err := s.Start(ctxT(t))
	if err == nil || !containsAll(err.Error(), `"asterisk"`, "systemctl start asterisk.service", "exit status 1", "Job for asterisk.service failed") {
		t.Errorf("Start = %v, want the service, command, status and stderr", err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
