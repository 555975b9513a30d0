package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// TestSwitchoverWithSync: refused with every missing precondition when
// asked of the Inactive node; on the Active node it copies a changed file
// first, then moves the Active role, never with two Actives.
func TestSwitchoverWithSync(t *testing.T) {
	srcRoot, dstRoot := t.TempDir(), t.TempDir()
	job := func(root string) string {
		return fmt.Sprintf("replication:\n  - {name: conf, every: 1h, files: {roots: [{name: etc, path: %s}]}}\n", root)
	}
	mainP, standbyP, _, _ := pairWith(t, job(srcRoot), job(dstRoot))
	testkit.Eventually(t, func() bool { return status(t, mainP.url).Status == "active" }, "main active")
	chk := startChecker(t, mainP.url, standbyP.url)

	_, stderr, code := cli(t, "switchover", "--node", standbyP.url, "--reason", "wrong side")
	if code != exitRefused || !strings.Contains(stderr, "runs on the Active node") || !strings.Contains(stderr, "xivo-main is active, not Inactive") {
		t.Fatalf("switchover on the inactive node: exit %d %s", code, stderr)
	}

	if err := os.WriteFile(filepath.Join(srcRoot, "sip.conf"), []byte("changed just before the switchover\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := cli(t, "switchover", "--node", mainP.url, "--sync", "--reason", "maintenance of the main")
	if code != 0 || !strings.Contains(out, "INACTIVE") {
		t.Fatalf("switchover: exit %d %s %s", code, out, stderr)
	}
	// The answer shows the steps it went through, each done.
	for _, step := range []string{"to xivo-standby by api:", ": done at ", "preconditions", "final sync", "stop here", "start the peer", "verify"} {
		if !strings.Contains(out, step) {
			t.Errorf("the switchover's answer lacks %q:\n%s", step, out)
		}
	}
	if st := status(t, mainP.url); st.SwitchoverRun == nil || stepsNot(st.SwitchoverRun, "done") != "" {
		t.Errorf("the main's status after the switchover: %+v", st.SwitchoverRun)
	}
	if st := status(t, standbyP.url); st.Status != "active" {
		t.Fatalf("standby after the switchover: %s", st.Status)
	}
	got, err := os.ReadFile(filepath.Join(dstRoot, "sip.conf"))
	if err != nil || string(got) != "changed just before the switchover\n" {
		t.Fatalf("the changed file did not cross before the swap: %q %v", got, err)
	}
	for _, step := range []string{"begins", "final sync done", "done: xivo-standby is active"} {
		if !auditHas(t, mainP.url, step) {
			t.Errorf("the audit log lacks the step %q", step)
		}
	}
	chk.verify(t)
}

// TestSwitchoverRollsBack: the Standby cannot start (its Asterisk's port is
// taken): the Main starts again and the answer says so.
func TestSwitchoverRollsBack(t *testing.T) {
	mainP, standbyP, _, standbySpec := pair(t)
	testkit.Eventually(t, func() bool { return status(t, mainP.url).Status == "active" }, "main active")
	busy, err := net.ListenPacket("udp", fmt.Sprintf("%s:%d", standbySpec.host, standbySpec.sipPort))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, stderr, code := cli(t, "switchover", "--node", mainP.url, "--reason", "try")
	if code != exitFailed || !strings.Contains(stderr, "rolled back") {
		t.Fatalf("switchover to a standby that cannot start: exit %d %s", code, stderr)
	}
	if m, s := status(t, mainP.url), status(t, standbyP.url); m.Status != "active" || s.Status != "inactive" {
		t.Fatalf("after the rollback: main %s, standby %s", m.Status, s.Status)
	}
	if !auditHas(t, mainP.url, "rolled back: this node is Active again") {
		t.Fatal("the rollback is not in the audit log")
	}
	if run := status(t, mainP.url).SwitchoverRun; run == nil || run.Outcome != api.SwitchoverRolledBack ||
		stepsNot(run, "done") != "start the peer=failed verify=skipped" {
		t.Fatalf("the main's status shows the switchover as %+v", run)
	}
}

// stepsNot lists the steps of run not in state, as "name=state ...".
func stepsNot(run *api.SwitchoverProgress, state string) string {
	var out []string
	for _, s := range run.Steps {
		if s.State != state {
			out = append(out, s.Name+"="+s.State)
		}
	}
	return strings.Join(out, " ")
}

// TestSwitchoverWaitsForDrain: with a drain check, a switchover waits
// until no call is active, and gives up (changing nothing) past its
// timeout.
func TestSwitchoverWaitsForDrain(t *testing.T) {
	calls := filepath.Join(t.TempDir(), "active-calls")
	if err := os.WriteFile(calls, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	drain := fmt.Sprintf("switchover: {drain: {exec: [sh, -c, \"test ! -e %s\"], timeout: 2s, interval: 200ms}}\n", calls)
	mainP, standbyP, _, _ := pairWith(t, drain, "")
	testkit.Eventually(t, func() bool { return status(t, mainP.url).Status == "active" }, "main active")

	_, stderr, code := cli(t, "switchover", "--node", mainP.url, "--reason", "calls going on")
	if code != exitFailed || !strings.Contains(stderr, "calls are still active, nothing was changed") {
		t.Fatalf("switchover with active calls: exit %d %s", code, stderr)
	}
	if st := status(t, mainP.url); st.Status != "active" {
		t.Fatalf("an abandoned switchover changed the main to %s", st.Status)
	}
	if err := os.Remove(calls); err != nil { // the last call ends
		t.Fatal(err)
	}
	if _, stderr, code := cli(t, "switchover", "--node", mainP.url, "--reason", "drained"); code != 0 {
		t.Fatalf("switchover once drained: %s", stderr)
	}
	if st := status(t, standbyP.url); st.Status != "active" {
		t.Fatalf("standby after the drained switchover: %s", st.Status)
	}
}
