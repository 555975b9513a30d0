package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// TestHooksVetoThenNotify: on a manual pair, the Standby's before_activate
// hook vetoes `resman services start` (exit 1 naming the hook, the node
// stays Inactive, the audit log says why); once the check passes, the start
// goes through and the after_activate hook gets the transition in its
// environment, and no token; a reload replaces the hooks.
func TestHooksVetoThenNotify(t *testing.T) {
	// In the nodes' environment, as an admin might keep it: it must not
	// reach a hook.
	t.Setenv("RESMAN_API_TOKEN", testToken)
	dir := t.TempDir()
	veto, envFile := filepath.Join(dir, "veto"), filepath.Join(dir, "after_activate.env")
	if err := os.WriteFile(veto, []byte("trunk sip-op1 down\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hooksCfg := fmt.Sprintf(`hooks:
  before_activate:
    - {name: check-trunk, run: [sh, -c, 'if [ -e "$1" ]; then cat "$1" >&2; exit 3; fi', check-trunk, %q], timeout: 5s}
  after_activate:
    - {name: dump-env, run: [sh, -c, 'env > "$1.tmp" && mv "$1.tmp" "$1"', dump-env, %q]}
`, veto, envFile)
	mainP, standbyP, _, _ := pairWith(t, "", hooksCfg)
	testkit.Eventually(t, func() bool { return status(t, mainP.url).Status == "active" }, "main active")
	if _, stderr, code := cli(t, "services", "stop", "--node", mainP.url, "--reason", "maintenance"); code != 0 {
		t.Fatalf("stop main: exit %d %s", code, stderr)
	}

	// Vetoed: exit 1 ("failed"), the hook named with its exit status and output.
	const why = "before_activate hook check-trunk vetoed the activation: exit status 3; output: trunk sip-op1 down"
	_, stderr, code := cli(t, "services", "start", "--node", standbyP.url, "--reason", "take over")
	if code != exitFailed || !strings.Contains(stderr, why) {
		t.Fatalf("vetoed start: exit %d %q, want exit %d naming the hook", code, stderr, exitFailed)
	}
	st := status(t, standbyP.url)
	if st.Status != "inactive" || st.Services[0].State != "stopped" {
		t.Fatalf("after the veto: %s, asterisk %s; want inactive and stopped", st.Status, st.Services[0].State)
	}
	if st.LastChange == nil || !strings.Contains(st.LastChange.Cause, why) {
		t.Fatalf("last change must name the hook: %+v", st.LastChange)
	}
	if !auditHas(t, standbyP.url, why) {
		t.Fatal("the veto is not in the audit log")
	}
	if _, err := os.Stat(envFile); err == nil {
		t.Fatal("after_activate ran although the activation was vetoed")
	}

	// The check passes: the start goes through, and after_activate runs.
	os.Remove(veto)
	out, stderr, code := cli(t, "services", "start", "--node", standbyP.url, "--reason", "take over")
	if code != 0 || !strings.Contains(out, "active") {
		t.Fatalf("start once the check passes: exit %d %q %q", code, out, stderr)
	}
	st = status(t, standbyP.url)
	testkit.Eventually(t, func() bool { _, err := os.Stat(envFile); return err == nil }, "after_activate's environment dump")
	raw, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	// The transition's id is the audit entry that began it.
	startID := ""
	for _, e := range auditEntries(t, standbyP.url) { // newest first
		if e.Action == "start services" && e.To == "activating" {
			startID = strconv.FormatUint(e.ID, 10)
			break
		}
	}
	want := map[string]string{
		"RESMAN_HOOK": "after_activate", "RESMAN_NODE": "xivo-standby", "RESMAN_ROLE": "standby", "RESMAN_MODE": "manual",
		"RESMAN_FROM": "inactive", "RESMAN_TO": "active", "RESMAN_EPOCH": strconv.FormatUint(st.Epoch, 10),
		"RESMAN_TRANSITION_ID": startID,
	}
	for k, v := range want {
		if env[k] != v || v == "" {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if !strings.HasPrefix(env["RESMAN_CAUSE"], "admin command") {
		t.Errorf("RESMAN_CAUSE = %q, want the admin command", env["RESMAN_CAUSE"])
	}
	if _, ok := env["RESMAN_API_TOKEN"]; ok || strings.Contains(string(raw), testToken) {
		t.Error("the API token reached the hook's environment")
	}

	// A reload (SIGHUP) replaces the hooks for the next transitions.
	marker := filepath.Join(dir, "deactivated")
	cfg, err := os.ReadFile(standbyP.cfg)
	if err != nil {
		t.Fatal(err)
	}
	base, _, _ := strings.Cut(string(cfg), "hooks:\n")
	reloaded := base + fmt.Sprintf("hooks:\n  after_deactivate:\n    - {name: mark, run: [sh, -c, 'echo \"$RESMAN_FROM $RESMAN_TO\" > \"$1\"', mark, %q]}\n", marker)
	if err := os.WriteFile(standbyP.cfg, []byte(reloaded), 0o600); err != nil {
		t.Fatal(err)
	}
	standbyP.cmd.Process.Signal(syscall.SIGHUP)
	testkit.Eventually(t, func() bool {
		return auditHas(t, standbyP.url, "hooks replaced for the next transitions: 0 before_activate, 0 after_activate, 1 after_deactivate")
	}, "the reload in the audit log")
	if auditHas(t, standbyP.url, "need a restart") {
		t.Fatal("a hooks change must not need a restart")
	}
	if _, stderr, code := cli(t, "services", "stop", "--node", standbyP.url, "--reason", "back to the main"); code != 0 {
		t.Fatalf("stop standby: exit %d %s", code, stderr)
	}
	testkit.Eventually(t, func() bool {
		got, _ := os.ReadFile(marker)
		return string(got) == "active inactive\n"
	}, "the new after_deactivate hook")
}
