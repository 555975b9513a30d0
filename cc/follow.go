package cc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
)

// observation is one look at the node: an event of its stream, or the
// answer (or failure) of a poll.
type observation struct {
	// at is when the look started: a poll overtaken by a newer look is
	// dropped.
	at     time.Time
	ok     bool
	err    error
	node   string // empty when the look does not name the node (/active)
	status string
	epoch  uint64
	since  time.Time // zero when unknown
}

func fromStatus(at time.Time, st api.Status) observation {
	return observation{at: at, ok: true, node: st.Node, status: st.Status, epoch: st.Epoch, since: st.Since}
}

// streamLoop keeps the event stream of the node connected, reconnecting
// with backoff; a successful poll cuts the wait short.
func (f *Follower) streamLoop(ctx context.Context) {
	backoff := minBackoff
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(ctx)
		f.mu.Lock()
		f.stopStream = cancel
		f.mu.Unlock()
		delivered := false
		err := f.client.Events(sctx, func(ev api.Event) error {
			st, ok := ev.Data.(api.Status)
			if !ok {
				return nil
			}
			if !delivered {
				delivered = true
				f.setStream(true)
				f.log.Debug("event stream connected")
			}
			f.observe(fromStatus(time.Now(), st))
			return nil
		})
		cancel()
		if ctx.Err() != nil {
			return
		}
		f.setStream(false)
		if delivered {
			backoff = minBackoff
		}
		switch {
		case err == nil:
			f.log.Info("event stream ended by the node; reconnecting")
		case errors.Is(err, context.Canceled):
			f.log.Info("event stream stalled (the node stopped answering polls); reconnecting")
		default:
			f.log.Debug("event stream failed", "error", err, "retry_in", backoff)
		}
		// Let the poller tell whether the node is still there.
		signal(f.pollNow)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-f.reconnect:
			t.Stop()
			backoff = minBackoff
		case <-t.C:
			backoff = min(2*backoff, maxBackoff)
		}
	}
}

func (f *Follower) setStream(up bool) {
	f.mu.Lock()
	f.streamUp = up
	f.following.Stream = up
	f.mu.Unlock()
	f.metrics.stream.Set(b2f(up))
}

// pollLoop polls the node every interval and when asked: /active while
// the stream is up (is the node still there?), /api/v1/status otherwise.
func (f *Follower) pollLoop(ctx context.Context) {
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		f.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.pollNow:
		}
	}
}

func (f *Follower) poll(ctx context.Context) {
	f.mu.Lock()
	streaming, stop := f.streamUp, f.stopStream
	f.mu.Unlock()
	at := time.Now()
	if streaming {
		a, err := f.client.Active(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// A stream that stalls may not notice for minutes: end it;
			// the stream loop asks for a full poll, which decides.
			f.log.Debug("poll failed while streaming; reconnecting the stream", "error", err)
			if stop != nil {
				stop()
			}
			return
		}
		f.observe(observation{at: at, ok: true, status: a.Status, epoch: a.Epoch})
		return
	}
	st, err := f.client.Status(ctx)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		f.observe(observation{at: at, err: err})
		return
	}
	f.observe(fromStatus(at, st))
	// The node answers: reconnect the stream now.
	signal(f.reconnect)
}

// observe applies one look at the node: what the follower knows of it,
// what it wants the services to be, the log and the audit of reachability
// changes.
func (f *Follower) observe(o observation) {
	f.mu.Lock()
	if o.at.Before(f.seen) {
		f.mu.Unlock()
		return
	}
	f.seen = o.at
	prev := f.following
	fw := &f.following
	fw.CheckedAt = o.at.UTC()
	fw.Reachable = o.ok
	if !o.ok {
		fw.Error = describe(o.err)
		f.want, f.cause = "", ""
		mine := f.status
		f.mu.Unlock()
		f.metrics.reachable.Set(0)
		if prev.Reachable || prev.CheckedAt.IsZero() {
			why := "unreachable"
			if !errors.Is(o.err, client.ErrUnreachable) {
				why = "cannot be read"
			}
			cause := fmt.Sprintf("paired node %s %s: keeping %s", prev.Node, why, mine)
			f.log.Warn("paired node "+why+": keeping the current state", "node", prev.Node, "status", mine, "error", o.err)
			f.record(api.AuditEntry{Action: "follow", Cause: cause, Detail: errText(o.err), Outcome: api.OutcomeOK,
				Epoch: prev.Epoch, From: mine, To: mine})
		}
		return
	}
	fw.Error = ""
	if o.node != "" {
		fw.Node = o.node
	}
	changed := o.status != prev.Status || o.epoch != prev.Epoch
	fw.Status, fw.Epoch = o.status, o.epoch
	switch {
	case !o.since.IsZero():
		fw.Since = o.since.UTC()
	case changed:
		fw.Since = o.at.UTC()
	}
	verb := "is"
	if changed && prev.Status != "" {
		verb = "went"
	}
	cause := fmt.Sprintf("paired node %s %s %s (epoch %d)", fw.Node, verb, o.status, o.epoch)
	want := wish(o.status)
	// Keep the first cause of a wish that does not change.
	if want != f.want || changed {
		f.want, f.cause = want, cause
	}
	mine, node := f.status, fw.Node
	f.mu.Unlock()

	f.metrics.reachable.Set(1)
	f.metrics.epoch.Set(float64(o.epoch))
	if !prev.Reachable && !prev.CheckedAt.IsZero() {
		f.log.Info("paired node reachable again", "node", node, "status", o.status, "epoch", o.epoch)
		f.record(api.AuditEntry{Action: "follow", Outcome: api.OutcomeOK, Epoch: o.epoch, From: mine, To: mine,
			Cause: fmt.Sprintf("paired node %s reachable again (%s, epoch %d)", node, o.status, o.epoch)})
	}
	if changed {
		f.log.Info("paired node status", "node", node, "status", o.status, "epoch", o.epoch)
	}
	signal(f.kick)
}

// describe says why the node could not be read, for the status.
func describe(err error) string {
	var ae *client.Error
	switch {
	case errors.As(err, &ae):
		return fmt.Sprintf("the node answered %d: %s", ae.StatusCode, ae.Message)
	case errors.Is(err, client.ErrUnreachable):
		return "unreachable: " + err.Error()
	case err != nil:
		return err.Error()
	}
	return ""
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
