package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
)

// Each answer of the node maps to its documented exit code, with the
// node's message on one line.
func TestAPIErrExitCodes(t *testing.T) {
	for _, tc := range []struct {
		code     int
		msg      string
		exit     int
		wantLine string
	}{
		{503, "decision not persisted: the decision could not be persisted, so nothing was started or stopped: no space left on device",
			exitFailed, "decision not persisted: the decision could not be persisted, so nothing was started or stopped: no space left on device"},
		{503, "decision not persisted:\nsave state: read-only file system\n", exitFailed, "decision not persisted: save state: read-only file system"},
		{500, "failed: start services: start failed", exitFailed, "failed: start services: start failed"},
		{409, "conflict: peer xivo-main is active (epoch 2)", exitRefused, "refused: conflict: peer xivo-main is active (epoch 2)"},
		{412, "precondition failed: manual mode", exitRefused, "refused: precondition failed: manual mode"},
		{400, "reason is required", exitUsage, "bad request: reason is required"},
		{401, "unauthorized", exitFailed, "unauthorized: check --token or RESMAN_TOKEN"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.code)
			_ = json.NewEncoder(w).Encode(api.Error{Error: tc.msg})
		}))
		_, err := client.New(srv.URL, "token-0123456789abcdef").StartServices(context.Background(), api.StartRequest{Reason: "r"})
		srv.Close()
		err = apiErr(err)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != tc.exit {
			t.Errorf("%d: %v, want exit %d", tc.code, err, tc.exit)
			continue
		}
		if got := err.Error(); got != tc.wantLine || strings.Contains(got, "\n") {
			t.Errorf("%d: reason %q, want %q", tc.code, got, tc.wantLine)
		}
	}
	if err := apiErr(client.ErrUnreachable); !errors.As(err, new(*exitError)) || err.(*exitError).code != exitUnreachable {
		t.Errorf("unreachable: %v", err)
	}
}

// services start on a node that is already Active says so, instead of a
// bare status; a real start prints the new status.
func TestServicesSaysAlready(t *testing.T) {
	for _, tc := range []struct {
		verb, before, after, want string
	}{
		{"start", "active", "active", "xivo-main: already active (epoch 2): nothing to start\n"},
		{"start", "inactive", "active", "xivo-main: active (epoch 2)\n"},
		{"stop", "inactive", "inactive", "xivo-main: already inactive (epoch 2): nothing to stop\n"},
		{"stop", "active", "inactive", "xivo-main: inactive (epoch 2)\n"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st := api.Status{Node: "xivo-main", Status: tc.before, Epoch: 2}
			if r.Method == http.MethodPost {
				st.Status = tc.after
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(st)
		}))
		out, stderr, code := cli(t, "services", tc.verb, "--node", srv.URL, "--token", "token-0123456789abcdef", "--reason", "test")
		srv.Close()
		if code != 0 || out != tc.want {
			t.Errorf("%s from %s: exit %d, printed %q (%s), want %q", tc.verb, tc.before, code, out, stderr, tc.want)
		}
	}
}

// resman status shows what the page shows of the pair: the peer's manual
// failover and hold, and the replication jobs as this node answers for
// them (no STALE for the other side's rows on a healthy pair).
func TestStatusShowsThePairsPendingFacts(t *testing.T) {
	now := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	until := now.Add(12 * time.Minute)
	st := api.Status{Node: "xivo-standby", Role: "standby", Mode: "auto", Status: api.StatusActive, Epoch: 3, Since: now.Add(-time.Minute),
		HA:   api.HA{Ready: false, Reasons: []string{"manual failover: xivo-main held Inactive until 14:12"}},
		Peer: &api.Peer{Name: "xivo-main", Reachable: true, Status: api.StatusInactive, Epoch: 2, Version: "2025.10.3", FailoverUntil: &until},
		Replication: []api.Replication{
			{Name: "asterisk-conf", Kind: "files", Direction: "send", LastSuccess: now.Add(-time.Minute)},
			{Name: "asterisk-conf", Kind: "files", Direction: "receive", Stale: true, Error: "never received"},
		}}
	var b strings.Builder
	printStatus(&b, st, now)
	out := b.String()
	for _, want := range []string{
		"  manual failover: xivo-main held Inactive until " + until.Local().Format("2006-01-02 15:04:05 MST") + " (in 12m0s)\n",
		"replication asterisk-conf (files, send): last success ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "STALE") || strings.Contains(out, "never received") || strings.Contains(out, "(files, receive)") {
		t.Errorf("the Active node's status shows the receiving side's rows as a problem:\n%s", out)
	}
	back := now.Add(2 * time.Minute)
	st.Failover.FailbackAt = &back
	b.Reset()
	printStatus(&b, st, now)
	if want := "failback: hands the Active role back to xivo-main at " + back.Local().Format("2006-01-02 15:04:05 MST") + " (in 2m0s), if it stays up and ready\n"; !strings.Contains(b.String(), want) {
		t.Errorf("the failback countdown is not shown (want %q):\n%s", want, b.String())
	}
	st.Peer.FailoverUntil, st.Peer.HeldByAdmin = nil, true
	b.Reset()
	printStatus(&b, st, now)
	if !strings.Contains(b.String(), "  xivo-main held Inactive by an admin's Stop services: Start services on it to release\n") {
		t.Errorf("the peer's hold is not shown:\n%s", b.String())
	}
}

// A switchover under way shows its steps, and the final sync how far it
// has come; once ended, its outcome and how long it took.
func TestStatusShowsTheSwitchoverSteps(t *testing.T) {
	now := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	started := now.Add(-2 * time.Minute)
	st := api.Status{Node: "xivo-main", Role: "main", Mode: "auto", Status: api.StatusActive, Epoch: 2, Since: now.Add(-time.Hour),
		Replication: []api.Replication{{Name: "asterisk-conf", Kind: "files", Direction: "send", Running: true,
			Progress: &api.ReplicationProgress{Phase: "uploading", Files: 40000, ToSend: 3000, Sent: 1200, BytesSent: 45 << 20}}},
		SwitchoverRun: &api.SwitchoverProgress{ID: "5f2a", To: "xivo-standby", Who: "web:alice", Started: started, Steps: []api.SwitchoverStep{
			{Name: api.StepPreconditions, State: api.StepDone, Started: started, Ended: started.Add(12 * time.Millisecond)},
			{Name: api.StepSync, State: api.StepRunning, Started: started.Add(12 * time.Millisecond)},
			{Name: api.StepStop, State: api.StepPending},
		}}}
	var b strings.Builder
	printStatus(&b, st, now)
	for _, want := range []string{
		"switchover 5f2a to xivo-standby by web:alice: RUNNING since " + clock(started) + "\n",
		"preconditions  done     12ms",
		"final sync     running        asterisk-conf: uploading, 1200 of 3000 files sent (45.0 MiB)",
		"stop here      pending",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
	run := st.SwitchoverRun
	run.Ended, run.Outcome = now.Add(-time.Minute), api.SwitchoverRolledBack
	run.Steps = append(run.Steps, api.SwitchoverStep{Name: api.StepRollback, State: api.StepDone, Detail: "this node is Active again"})
	b.Reset()
	printStatus(&b, st, now)
	if want := "switchover 5f2a to xivo-standby by web:alice: rolled back at " + clock(run.Ended) + " (1m0s ago, took 1m0s)\n"; !strings.Contains(b.String(), want) ||
		!strings.Contains(b.String(), "this node is Active again") {
		t.Errorf("an ended switchover (want %q):\n%s", want, b.String())
	}
}
