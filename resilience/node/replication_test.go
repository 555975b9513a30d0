package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/replication"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// slowSender's runs last until released or cancelled.
type slowSender struct {
	started chan struct{}
	release chan struct{}
	ended   chan error
}

func (s *slowSender) run(ctx context.Context) error {
	s.started <- struct{}{}
	select {
	case <-s.release:
		s.ended <- nil
		return nil
	case <-ctx.Done():
		s.ended <- ctx.Err()
		return ctx.Err()
	}
}

func (s *slowSender) RunNow(ctx context.Context, job string) (replication.Result, error) {
	return replication.Result{}, s.run(ctx)
}
func (s *slowSender) RunAll(ctx context.Context) ([]replication.Result, error) {
	return nil, s.run(ctx)
}
func (s *slowSender) Status(time.Time) []api.Replication { return nil }
func (s *slowSender) StaleJobs(time.Time) []string       { return nil }

type idleReceiver struct{}

func (idleReceiver) Status(time.Time) []api.Replication { return nil }
func (idleReceiver) StaleJobs(time.Time) []string       { return nil }
func (idleReceiver) EndSessions(string)                 {}

// An asked replication run outlives the request but not the node: one at a
// time (a second request is refused, saying which run is under way, until
// it ends), and Run cancels it and waits for it before returning.
func TestReplicationRunsAreBounded(t *testing.T) {
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	snd := &slowSender{started: make(chan struct{}, 4), release: make(chan struct{}), ended: make(chan error, 4)}
	h := startWith(t, t.TempDir(), resilience.RoleMain, peer, &fakeServices{}, func(d *Deps) {
		d.ReplSender, d.ReplReceiver, d.ReplWait = snd, idleReceiver{}, 10*time.Millisecond
	})
	h.waitStatus("active")
	ctx := context.Background()
	started := func() {
		t.Helper()
		select {
		case <-snd.started:
		case <-time.After(10 * time.Second):
			t.Fatal("the run did not start")
		}
	}

	// The answer comes after ReplWait while the run goes on.
	if _, err := h.node.RunReplication(ctx, "alice", api.ReplicationRunRequest{Reason: "first"}); err != nil {
		t.Fatalf("first run: %v", err)
	}
	started()
	for _, job := range []string{"", "db"} {
		_, err := h.node.RunReplication(ctx, "bob", api.ReplicationRunRequest{Reason: "second", Job: job})
		if !errors.Is(err, resilience.ErrConflict) {
			t.Fatalf("a second run (job %q) while the first goes on: %v, want a conflict", job, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "run of all jobs, asked by alice at ") || !strings.Contains(msg, "still under way") {
			t.Fatalf("the refusal does not say which run is under way: %s", msg)
		}
	}

	// Once it has ended, a new run is taken.
	snd.release <- struct{}{}
	if err := <-snd.ended; err != nil {
		t.Fatalf("the released run ended with %v", err)
	}
	testkit.Until(t, func() error {
		_, err := h.node.RunReplication(ctx, "bob", api.ReplicationRunRequest{Reason: "again", Job: "db"})
		if err != nil && !errors.Is(err, resilience.ErrConflict) {
			t.Fatalf("a run after the first ended: %v", err)
		}
		return err
	}, func(err error) bool { return err == nil }, "a run to be taken once the first ended")
	started()

	h.stop() // Run returns only once the run has ended, cancelled
	select {
	case err := <-snd.ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the run ended with %v, want cancelled by the node's end", err)
		}
	default:
		t.Fatal("Run returned while the replication run was still going")
	}

	// After Run, no run begins.
	if _, err := h.node.RunReplication(ctx, "carol", api.ReplicationRunRequest{Reason: "late"}); !errors.Is(err, errStopped) {
		t.Fatalf("a run asked after the node ended: %v, want %v", err, errStopped)
	}
	select {
	case <-snd.started:
		t.Fatal("a run started after the node ended")
	default:
	}
}
