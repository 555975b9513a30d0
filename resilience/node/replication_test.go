package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/replication"
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
// time, and Run cancels it and waits for it before returning.
func TestReplicationRunsAreBounded(t *testing.T) {
	peer := &fakePeer{}
	peer.set("", 0, errDown)
	snd := &slowSender{started: make(chan struct{}, 4), release: make(chan struct{}), ended: make(chan error, 4)}
	h := startWith(t, t.TempDir(), resilience.RoleMain, peer, &fakeServices{}, func(d *Deps) {
		d.ReplSender, d.ReplReceiver, d.ReplWait = snd, idleReceiver{}, 10*time.Millisecond
	})
	h.waitStatus("active")
	ctx := context.Background()
	if _, err := h.node.RunReplication(ctx, "test", api.ReplicationRunRequest{Reason: "first"}); err != nil {
		t.Fatalf("first run: %v", err)
	}
	<-snd.started
	if _, err := h.node.RunReplication(ctx, "test", api.ReplicationRunRequest{Reason: "second"}); !errors.Is(err, resilience.ErrConflict) {
		t.Fatalf("a second run while the first goes on: %v, want a conflict", err)
	}
	h.stop() // Run returns only once the run has ended, cancelled
	select {
	case err := <-snd.ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the run ended with %v, want cancelled by the node's end", err)
		}
	default:
		t.Fatal("Run returned while the replication run was still going")
	}
}
