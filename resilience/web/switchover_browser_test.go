package web

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/web/browsertest"
)

// A switchover started from the page shows its steps as they happen, in
// the dialog and in the summary, the final sync with its progress; once
// ended, the summary keeps how it went.
func TestSwitchoverProgressInBrowser(t *testing.T) {
	ctx := browsertest.Start(t)
	node := newFakeNode()
	dressUp(node)
	node.status.Status = api.StatusActive
	node.status.Peer.Status = api.StatusInactive
	node.peer.Status = api.StatusInactive
	node.status.Replication[0].Direction = "send"
	node.switchHold = make(chan struct{})
	_, addr := serveFake(t, node)
	logIn(t, ctx, "http://"+addr)
	if !browsertest.Eval[bool](t, ctx, q("#switchover-run")+".hidden") {
		t.Fatal("switchover steps shown before any switchover")
	}

	// The node runs the switchover: its status says which step it is at.
	started := time.Now().UTC()
	job := node.status.Replication[0].Name
	steps := func(states ...string) []api.SwitchoverStep {
		var out []api.SwitchoverStep
		for i, name := range []string{api.StepPreconditions, api.StepSync, api.StepStop, api.StepStartPeer, api.StepVerify} {
			out = append(out, api.SwitchoverStep{Name: name, State: states[i]})
		}
		return out
	}
	waitJS(t, ctx, "switchover enabled", "!"+q("#btn-switchover")+".disabled")
	browsertest.Do(t, ctx, "switchover", chromedp.Click(chromedp.CSS("#btn-switchover")), chromedp.WaitVisible(chromedp.CSS("#confirm-reason")),
		chromedp.SendKeys(chromedp.CSS("#confirm-reason"), "kernel update"), chromedp.Click(chromedp.CSS("#confirm-ok")))
	// The request reached the node, which holds it while the test sets the
	// steps its status shows, as a node running the switchover would.
	lastCall(t, node, "switchover")
	node.setStatus(func(st *api.Status) {
		st.SwitchoverRun = &api.SwitchoverProgress{ID: "5f2a", To: st.Peer.Name, Who: "web:" + testUser, Started: started,
			Steps: steps(api.StepDone, api.StepRunning, api.StepPending, api.StepPending, api.StepPending)}
		st.Replication[0].Running = true
		st.Replication[0].Progress = &api.ReplicationProgress{Phase: "uploading", Files: 40000, ToSend: 3000, Sent: 1200, BytesSent: 45 << 20}
	})
	step := func(box, name string) string {
		return q(box) + ".querySelector('[data-step=\"" + name + "\"]')"
	}
	waitJS(t, ctx, "the steps in the dialog, the sync with its progress",
		"!"+q("#confirm-steps")+".hidden && "+step("#confirm-steps", api.StepSync)+" && "+
			step("#confirm-steps", api.StepSync)+".className === 'step-running' && "+
			step("#confirm-steps", api.StepSync)+".textContent.includes('"+job+": 1200 of 3000 files sent') && "+
			step("#confirm-steps", api.StepSync)+".querySelector('progress').value === 1200")
	if !browsertest.Eval[bool](t, ctx, "!"+q("#switchover-run")+".hidden && "+q("#switchover-run-title")+".textContent.includes('running since')") {
		t.Errorf("the summary's switchover: %q", browsertest.Eval[string](t, ctx, q("#switchover-run")+".textContent"))
	}
	screenshot(t, ctx, "switchover-progress-sync")

	// The sync is done, this node stops.
	node.setStatus(func(st *api.Status) {
		st.SwitchoverRun.Steps = steps(api.StepDone, api.StepDone, api.StepRunning, api.StepPending, api.StepPending)
		st.SwitchoverRun.Steps[1].Detail = "1 job: 3000 files sent, 3000 changed on the peer"
		st.Replication[0].Running, st.Replication[0].Progress = false, nil
	})
	waitJS(t, ctx, "the stop under way", step("#confirm-steps", api.StepStop)+".className === 'step-running' && "+
		step("#confirm-steps", api.StepSync)+".textContent.includes('3000 files sent, 3000 changed')")

	// Done: the dialog closes, the summary keeps the outcome.
	node.setStatus(func(st *api.Status) {
		st.SwitchoverRun.Steps = steps(api.StepDone, api.StepDone, api.StepDone, api.StepDone, api.StepDone)
		st.SwitchoverRun.Outcome, st.SwitchoverRun.Ended = api.SwitchoverDone, time.Now().UTC()
	})
	close(node.switchHold)
	waitJS(t, ctx, "the outcome in the summary", "!"+q("#confirm")+".open && "+q("#switchover-run-title")+".textContent.includes('— done at') && "+
		q("#switchover-steps")+".querySelectorAll('li.step-done').length === 5")
	screenshot(t, ctx, "switchover-progress-done")
}
