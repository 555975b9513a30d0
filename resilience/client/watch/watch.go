// Package watch follows one node over its API, for the components that
// act on what a node says: the CC follower (cc) and the Edge (edge).
//
// A Watcher keeps the node's event stream (GET /api/v1/events) connected,
// reconnecting with backoff, and polls the node every interval besides, so
// that a node whose stream is down or stalls is still seen. Each look at
// the node (an event, the answer or the failure of a poll) is an
// Observation handed to the caller's Observe function, one at a time. A
// poll overtaken by a newer observation that Observe took (a poll that
// started before an event arrived, and answered after) is dropped: the
// event is newer news.
//
// The polls serve one of two purposes (Options.Fallback):
//
//   - a fallback of the stream (the CC follower): while the stream is down
//     they ask GET /api/v1/status, and an answer reconnects the stream at
//     once; while it is up they ask GET /active only to tell whether the
//     node is still there, and a failure is not delivered but ends the
//     stream (which may not notice a dead node for minutes), which then
//     asks for a full poll at once;
//   - checks of their own (the Edge): every poll asks GET /active and is
//     delivered, whatever the stream does.
//
// What the callers make of the observations (the CC's wishes and audit,
// the Edge's rise/fall hysteresis and routing) stays theirs.
package watch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
)

// Defaults of the Options left zero.
const (
	DefaultInterval   = time.Second
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// ErrStalled is wrapped by the error of a stream the watcher ended: a poll
// failed while the stream was connected (Fallback only).
var ErrStalled = errors.New("event stream stalled: the node stopped answering polls")

// Observation is one look at the node.
type Observation struct {
	// At is when the look started (for an event, when it arrived).
	At time.Time
	// Event: the look is an event of the stream; else a poll.
	Event bool
	// Err is the failure of a poll; nil when the node answered.
	Err error
	// Node is the node's name, empty when the look does not tell it
	// (GET /active).
	Node   string
	Status string
	Epoch  uint64
	// Since is when the node entered Status, zero when the look does not
	// tell it.
	Since time.Time
	// Stream: the event stream was connected when the look started.
	Stream bool
}

// OK says the node answered.
func (o Observation) OK() bool { return o.Err == nil }

// StreamChange is news of the event stream.
type StreamChange struct {
	// Up: the stream delivered its first status event. Otherwise a
	// connection (or an attempt) ended.
	Up bool
	// Err says why the stream ended: nil when the node ended it, an error
	// wrapping ErrStalled (and the failed poll's error) when the watcher
	// ended it, else the failure to connect or to read.
	Err error
	// RetryIn is the wait before the next connection (a successful poll
	// may cut it short in Fallback).
	RetryIn time.Duration
}

// Options configure a Watcher.
type Options struct {
	// Interval is the period of the polls (default DefaultInterval). The
	// first poll is at once.
	Interval time.Duration
	// MinBackoff and MaxBackoff bound the wait between two connections
	// of the event stream (defaults DefaultMinBackoff, DefaultMaxBackoff):
	// the wait starts at MinBackoff, doubles each time it runs out, up to
	// MaxBackoff, and is back to MinBackoff after a stream that delivered
	// an event, or when a poll reconnects the stream.
	MinBackoff, MaxBackoff time.Duration
	// Fallback makes the polls a fallback of the stream rather than
	// checks of their own (see the package comment).
	Fallback bool
	// Observe receives each observation (required). It is called one
	// observation at a time, never for a poll that started before the
	// last observation it took; it returns whether it took o: an
	// observation it ignores does not make older polls stale.
	Observe func(o Observation) (took bool)
	// OnStream, if set, hears the stream deliver its first event and
	// every connection (or attempt) end. It is called from the stream's
	// goroutine, before the observation of that first event.
	OnStream func(StreamChange)
}

// Watcher follows one node. Build it with New, run it with Run.
type Watcher struct {
	client *client.Client
	opts   Options

	// wake the poller, the stream loop.
	pollNow   chan struct{}
	reconnect chan struct{}

	mu sync.Mutex
	// streamUp is true while the event stream delivers; stopStream ends
	// the current connection.
	streamUp   bool
	stopStream context.CancelCauseFunc

	// deliver serializes the calls of Observe; seen is the start of the
	// newest observation it took.
	deliver sync.Mutex
	seen    time.Time
}

// New returns a watcher of the node c calls. It panics without
// opts.Observe.
func New(c *client.Client, opts Options) *Watcher {
	if opts.Observe == nil {
		panic("watch: no Observe function")
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	return &Watcher{
		client:    c,
		opts:      opts,
		pollNow:   make(chan struct{}, 1),
		reconnect: make(chan struct{}, 1),
	}
}

// Run watches the node until ctx is done, and returns once every
// goroutine it started has ended. Call it once.
func (w *Watcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { w.streamLoop(ctx) })
	wg.Go(func() { w.pollLoop(ctx) })
	wg.Wait()
}

// observe hands o to Observe unless a newer observation was taken.
func (w *Watcher) observe(o Observation) {
	w.deliver.Lock()
	defer w.deliver.Unlock()
	if o.At.Before(w.seen) {
		return
	}
	if w.opts.Observe(o) {
		w.seen = o.At
	}
}

func fromStatus(at time.Time, st api.Status, event, stream bool) Observation {
	return Observation{At: at, Event: event, Stream: stream, Node: st.Node, Status: st.Status, Epoch: st.Epoch, Since: st.Since}
}

// streamLoop keeps the event stream of the node connected, reconnecting
// with backoff; in Fallback, a successful poll cuts the wait short.
func (w *Watcher) streamLoop(ctx context.Context) {
	backoff := w.opts.MinBackoff
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancelCause(ctx)
		w.mu.Lock()
		w.stopStream = cancel
		w.mu.Unlock()
		delivered := false
		err := w.client.Events(sctx, func(ev api.Event) error {
			st, ok := ev.Data.(api.Status)
			if !ok {
				return nil
			}
			if !delivered {
				delivered = true
				w.setStream(true)
				w.tell(StreamChange{Up: true})
			}
			w.observe(fromStatus(time.Now(), st, true, true))
			return nil
		})
		if ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, ErrStalled)) {
			// Only a failed poll ends sctx alone.
			err = context.Cause(sctx)
		}
		cancel(nil)
		if ctx.Err() != nil {
			return
		}
		w.setStream(false)
		if delivered {
			backoff = w.opts.MinBackoff
		}
		w.tell(StreamChange{Err: err, RetryIn: backoff})
		if w.opts.Fallback {
			// Let the poller tell whether the node is still there.
			signal(w.pollNow)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.reconnect:
			t.Stop()
			backoff = w.opts.MinBackoff
		case <-t.C:
			backoff = min(2*backoff, w.opts.MaxBackoff)
		}
	}
}

func (w *Watcher) setStream(up bool) {
	w.mu.Lock()
	w.streamUp = up
	w.mu.Unlock()
}

func (w *Watcher) tell(c StreamChange) {
	if w.opts.OnStream != nil {
		w.opts.OnStream(c)
	}
}

// pollLoop polls the node at once, then every interval and when asked.
func (w *Watcher) pollLoop(ctx context.Context) {
	t := time.NewTicker(w.opts.Interval)
	defer t.Stop()
	for {
		w.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.pollNow:
		}
	}
}

// poll asks the node once: GET /active, or in Fallback GET /api/v1/status
// while the stream is down.
func (w *Watcher) poll(ctx context.Context) {
	w.mu.Lock()
	streaming, stop := w.streamUp, w.stopStream
	w.mu.Unlock()
	at := time.Now()
	if !w.opts.Fallback || streaming {
		a, err := w.client.Active(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil && w.opts.Fallback {
			// A stream that stalls may not notice for minutes: end it;
			// the stream loop asks for a full poll, which decides.
			if stop != nil {
				stop(fmt.Errorf("%w: %w", ErrStalled, err))
			}
			return
		}
		w.observe(Observation{At: at, Err: err, Status: a.Status, Epoch: a.Epoch, Stream: streaming})
		return
	}
	st, err := w.client.Status(ctx)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		w.observe(Observation{At: at, Err: err, Stream: streaming})
		return
	}
	w.observe(fromStatus(at, st, false, streaming))
	// The node answers: reconnect the stream now.
	signal(w.reconnect)
}

// signal wakes a loop without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
