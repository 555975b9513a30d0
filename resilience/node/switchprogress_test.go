package node

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// A switchover's steps outlive a restart of the node that ran it: one that
// ended is shown as it ended; one cut by the restart (a crash in the
// middle) is shown interrupted, its running step failed and the pending
// ones skipped, not lost as if it never ran.
func TestSwitchoverStepsOutliveARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), switchoverName)
	clk := testkit.NewFakeClock(time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC))
	log := slog.New(slog.DiscardHandler)
	restart := func() *switchoverProgress {
		sp := &switchoverProgress{now: clk.Now}
		sp.load(path, log)
		return sp
	}

	before := restart() // no file yet: nothing shown
	if r := before.shown(clk.Now()); r != nil {
		t.Fatalf("a first start shows a switchover: %+v", r)
	}
	before.begin("sw-1", "xivo-standby", "alice", "maintenance", []string{api.StepPreconditions, api.StepStop, api.StepStartPeer})
	before.step(api.StepPreconditions, api.StepDone, "")
	before.step(api.StepStop, api.StepRunning, "")
	clk.Advance(2 * time.Second)

	after := restart() // the node crashed with "stop here" running
	r := after.shown(clk.Now())
	if r == nil || r.ID != "sw-1" || r.Who != "alice" || r.Outcome != api.SwitchoverInterrupted || !r.Ended.Equal(clk.Now()) {
		t.Fatalf("after a restart mid-switchover: %+v, want sw-1 interrupted, ended now", r)
	}
	want := map[string]string{api.StepPreconditions: api.StepDone, api.StepStop: api.StepFailed, api.StepStartPeer: api.StepSkipped}
	for _, s := range r.Steps {
		if s.State != want[s.Name] {
			t.Errorf("step %s: %s, want %s", s.Name, s.State, want[s.Name])
		}
		if s.Name == api.StepStop && s.Detail != "interrupted: the node restarted" {
			t.Errorf("the cut step says %q", s.Detail)
		}
	}

	// An ended run is shown as it ended, and no longer once it is old.
	after.begin("sw-2", "xivo-main", "bob", "back", []string{api.StepPreconditions})
	after.step(api.StepPreconditions, api.StepDone, "")
	after.end(api.SwitchoverDone)
	again := restart()
	if r := again.shown(clk.Now()); r == nil || r.ID != "sw-2" || r.Outcome != api.SwitchoverDone {
		t.Fatalf("an ended run after a restart: %+v, want sw-2 done", r)
	}
	clk.Advance(switchoverShownFor + time.Second)
	if r := restart().shown(clk.Now()); r != nil {
		t.Errorf("a run ended %s ago is still shown: %+v", switchoverShownFor, r)
	}

	// A file that cannot be read is not shown (and does not stop the node).
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := restart().shown(clk.Now()); r != nil {
		t.Errorf("a garbled file is shown: %+v", r)
	}
}
