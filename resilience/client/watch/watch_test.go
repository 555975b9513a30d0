package watch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
	"github.com/resman-pbx/resman/resilience/client/clienttest"
	"github.com/resman-pbx/resman/resilience/testkit"
)

const (
	token     = "watch-test-token-0123456789"
	waitLimit = 15 * time.Second
)

func newNode(t *testing.T, status string, epoch uint64, opts ...clienttest.Option) *clienttest.FakeNode {
	return clienttest.New(t, api.Status{Node: "pbx-main", Status: status, Epoch: epoch}, append(opts, clienttest.WithToken(token))...)
}

// recorder keeps what a watcher delivered; take says which observations
// Observe takes (all when nil).
type recorder struct {
	mu      sync.Mutex
	obs     []Observation
	changes []StreamChange
	take    func(Observation) bool
}

func (r *recorder) observe(o Observation) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.obs = append(r.obs, o)
	return r.take == nil || r.take(o)
}

func (r *recorder) onStream(c StreamChange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, c)
}

// find returns the first observation that matches, and whether there is
// one.
func (r *recorder) find(match func(Observation) bool) (Observation, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.obs {
		if match(o) {
			return o, true
		}
	}
	return Observation{}, false
}

func (r *recorder) observations() []Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Observation(nil), r.obs...)
}

func (r *recorder) streamChanges() []StreamChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]StreamChange(nil), r.changes...)
}

// hasChange says whether a stream change matches.
func (r *recorder) hasChange(match func(StreamChange) bool) bool {
	for _, c := range r.streamChanges() {
		if match(c) {
			return true
		}
	}
	return false
}

// start runs a watcher of node until the test ends; the test fails if Run
// does not return once its context is done. stop cancels it and waits.
func start(t *testing.T, node *clienttest.FakeNode, opts Options) (r *recorder, stop func()) {
	t.Helper()
	r = &recorder{}
	opts.Observe = func(o Observation) bool { return r.observe(o) }
	opts.OnStream = r.onStream
	w := New(client.New(node.URL(), token, client.WithTimeout(waitLimit)), opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		w.Run(ctx)
		close(done)
	}()
	var once sync.Once
	stop = func() {
		t.Helper()
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(waitLimit):
				t.Error("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

func isStatus(status string, epoch uint64, event bool) func(Observation) bool {
	return func(o Observation) bool {
		return o.OK() && o.Event == event && o.Status == status && o.Epoch == epoch
	}
}

// The stream brings each change of the node, with its name and since;
// with polls an hour apart, nothing else could.
func TestStreamDelivers(t *testing.T) {
	for _, fallback := range []bool{true, false} {
		t.Run(fmt.Sprintf("fallback=%v", fallback), func(t *testing.T) {
			node := newNode(t, api.StatusInactive, 1)
			r, _ := start(t, node, Options{Interval: time.Hour, Fallback: fallback})
			testkit.Eventually(t, func() bool { return r.hasChange(func(c StreamChange) bool { return c.Up }) }, "the stream up")
			node.Set(api.StatusActive, 2)
			testkit.Eventually(t, func() bool { _, ok := r.find(isStatus(api.StatusActive, 2, true)); return ok }, "the event")
			o, _ := r.find(isStatus(api.StatusActive, 2, true))
			if o.Node != "pbx-main" || o.Since.IsZero() || !o.Stream || o.At.IsZero() {
				t.Errorf("event observation = %+v", o)
			}
		})
	}
}

// The node ends its stream (it restarts): the watcher says so and
// reconnects after its backoff, without a poll to help.
func TestReconnectsAfterTheNodeEndsTheStream(t *testing.T) {
	node := newNode(t, api.StatusActive, 1)
	r, _ := start(t, node, Options{Interval: time.Hour, MinBackoff: 5 * time.Millisecond})
	testkit.Eventually(t, func() bool { return node.OpenStreams() == 1 }, "the stream up")
	node.EndStreams()
	testkit.Eventually(t, func() bool {
		streams, _ := node.Counts()
		return streams >= 2 && node.OpenStreams() == 1
	}, "the stream reconnected")
	if !r.hasChange(func(c StreamChange) bool { return !c.Up && c.Err == nil && c.RetryIn == 5*time.Millisecond }) {
		t.Errorf("no end of stream by the node (nil error, minimal backoff) in %+v", r.streamChanges())
	}
	node.Set(api.StatusInactive, 1)
	testkit.Eventually(t, func() bool { _, ok := r.find(isStatus(api.StatusInactive, 1, true)); return ok }, "an event on the new stream")
}

// Without a stream, the polls follow the node: GET /api/v1/status in
// Fallback (the node's name and since), GET /active otherwise.
func TestPollsWhileTheStreamIsRefused(t *testing.T) {
	for _, fallback := range []bool{true, false} {
		t.Run(fmt.Sprintf("fallback=%v", fallback), func(t *testing.T) {
			node := newNode(t, api.StatusInactive, 1)
			node.RefuseEvents(true)
			r, _ := start(t, node, Options{Interval: 5 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Fallback: fallback})
			testkit.Eventually(t, func() bool {
				return r.hasChange(func(c StreamChange) bool {
					var ae *client.Error
					return errors.As(c.Err, &ae) && ae.StatusCode == 404
				})
			}, "a refused stream")
			node.Set(api.StatusActive, 2)
			testkit.Eventually(t, func() bool { _, ok := r.find(isStatus(api.StatusActive, 2, false)); return ok }, "a poll seeing the change")
			o, _ := r.find(isStatus(api.StatusActive, 2, false))
			if o.Stream || (o.Node == "pbx-main") != fallback || o.Since.IsZero() != !fallback {
				t.Errorf("poll observation = %+v", o)
			}
			for _, o := range r.observations() {
				if o.Event {
					t.Fatalf("an event with the stream refused: %+v", o)
				}
			}
		})
	}
}

// The backoff doubles up to its bound while the stream is refused, and is
// back to its minimum after a stream that delivered.
func TestBackoff(t *testing.T) {
	node := newNode(t, api.StatusActive, 1)
	node.RefuseEvents(true)
	r, _ := start(t, node, Options{Interval: time.Hour, MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond})
	testkit.Eventually(t, func() bool { return len(r.streamChanges()) >= 5 }, "five refusals")
	node.RefuseEvents(false)
	testkit.Eventually(t, func() bool { return node.OpenStreams() == 1 }, "the stream up")
	node.EndStreams()
	testkit.Eventually(t, func() bool {
		return r.hasChange(func(c StreamChange) bool { return !c.Up && c.Err == nil })
	}, "the end of the stream")
	var waits []time.Duration
	for _, c := range r.streamChanges() {
		if !c.Up {
			waits = append(waits, c.RetryIn)
		}
	}
	want := []time.Duration{1, 2, 4, 4, 4}
	for i, w := range want {
		if waits[i] != w*time.Millisecond {
			t.Fatalf("waits %v, want %v ms first", waits, want)
		}
	}
	if last := waits[len(waits)-1]; last != time.Millisecond {
		t.Errorf("wait after a stream that delivered = %v, want 1ms (waits %v)", last, waits)
	}
}

// In Fallback, a successful poll reconnects the stream at once, however
// long the backoff.
func TestFallbackPollReconnectsAtOnce(t *testing.T) {
	node := newNode(t, api.StatusActive, 1)
	node.RefuseEvents(true)
	r, _ := start(t, node, Options{Interval: 5 * time.Millisecond, MinBackoff: time.Hour, MaxBackoff: time.Hour, Fallback: true})
	testkit.Eventually(t, func() bool { return len(r.streamChanges()) >= 1 }, "a refused stream")
	node.RefuseEvents(false)
	testkit.Eventually(t, func() bool { return r.hasChange(func(c StreamChange) bool { return c.Up }) }, "the stream up")
}

// In Fallback, a poll that fails while the stream is up (the stream may
// stall unnoticed) is not delivered: it ends the stream, and the full poll
// that follows says the node is unreachable. Without Fallback, the failed
// poll is delivered and the stream stays.
func TestStalledStream(t *testing.T) {
	t.Run("fallback", func(t *testing.T) {
		node := newNode(t, api.StatusActive, 1)
		r, _ := start(t, node, Options{Interval: 5 * time.Millisecond, MinBackoff: time.Hour, MaxBackoff: time.Hour, Fallback: true})
		testkit.Eventually(t, func() bool {
			_, ok := r.find(func(o Observation) bool { return !o.Event && o.Stream && o.OK() })
			return ok
		}, "a poll while streaming")
		node.SetAnswer(clienttest.Cut()) // the polls fail, the stream stays open
		testkit.Eventually(t, func() bool {
			return r.hasChange(func(c StreamChange) bool {
				return errors.Is(c.Err, ErrStalled) && errors.Is(c.Err, client.ErrUnreachable)
			})
		}, "the stream cut")
		testkit.Eventually(t, func() bool { _, ok := r.find(func(o Observation) bool { return !o.OK() }); return ok }, "a failed poll delivered")
		for _, o := range r.observations() {
			if !o.OK() && o.Stream {
				t.Errorf("a failed poll delivered while the stream was up: %+v", o)
			}
		}
		testkit.Eventually(t, func() bool { return node.OpenStreams() == 0 }, "the stream closed")
	})
	t.Run("checks", func(t *testing.T) {
		node := newNode(t, api.StatusActive, 1)
		r, _ := start(t, node, Options{Interval: 5 * time.Millisecond, MinBackoff: time.Hour, MaxBackoff: time.Hour})
		testkit.Eventually(t, func() bool { return r.hasChange(func(c StreamChange) bool { return c.Up }) }, "the stream up")
		node.SetAnswer(clienttest.Cut())
		testkit.Eventually(t, func() bool {
			_, ok := r.find(func(o Observation) bool { return !o.OK() && o.Stream })
			return ok
		}, "a failed poll delivered")
		if len(r.streamChanges()) != 1 || node.OpenStreams() != 1 {
			t.Errorf("the stream was cut: %+v, %d open", r.streamChanges(), node.OpenStreams())
		}
	})
}

// A poll that started before an event Observe took, and answered after,
// is dropped; one that started before an event Observe ignored is not.
func TestOvertakenPollIsDropped(t *testing.T) {
	for _, took := range []bool{true, false} {
		t.Run(fmt.Sprintf("event taken=%v", took), func(t *testing.T) {
			node := newNode(t, api.StatusActive, 1, clienttest.NoFirstEvent())
			next := node.Gate(t)
			r, _ := start(t, node, Options{Interval: time.Millisecond})
			r.mu.Lock()
			r.take = func(o Observation) bool { return !o.Event || took }
			r.mu.Unlock()
			next(clienttest.Active(1)) // poll 1 answered; poll 2 held
			testkit.Eventually(t, func() bool { return node.OpenStreams() == 1 }, "the stream open")
			node.Push(api.StatusDeactivating, 1)
			testkit.Eventually(t, func() bool { _, ok := r.find(isStatus(api.StatusDeactivating, 1, true)); return ok }, "the event")
			next(clienttest.Active(2)) // poll 2, started before the event
			next(clienttest.Active(3)) // poll 3, after
			_, got2 := r.find(isStatus(api.StatusActive, 2, false))
			if got2 != !took {
				t.Errorf("poll overtaken by an event taken=%v: delivered=%v; observations %+v", took, got2, r.observations())
			}
			if _, ok := r.find(isStatus(api.StatusActive, 3, false)); !ok {
				t.Errorf("the poll after the event is not delivered: %+v", r.observations())
			}
		})
	}
}

// Cancelling Run ends it, its stream and its held poll included.
func TestCancelEndsEverything(t *testing.T) {
	node := newNode(t, api.StatusActive, 1)
	next := node.Gate(t)
	r, stop := start(t, node, Options{Interval: time.Millisecond, Fallback: true})
	next(clienttest.Active(1)) // the next poll is held
	testkit.Eventually(t, func() bool { return r.hasChange(func(c StreamChange) bool { return c.Up }) }, "the stream up")
	stop() // fails the test if Run does not return
	testkit.Eventually(t, func() bool { return node.OpenStreams() == 0 }, "the stream closed")
	n := len(r.observations())
	_, polls := node.Counts()
	time.Sleep(50 * time.Millisecond)
	if _, p := node.Counts(); len(r.observations()) != n || p != polls {
		t.Errorf("observations %d -> %d, polls %d -> %d after Run returned", n, len(r.observations()), polls, p)
	}
}
