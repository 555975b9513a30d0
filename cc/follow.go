package cc

import (
	"errors"
	"fmt"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
	"github.com/resman-pbx/resman/resilience/client/watch"
)

// watcher follows the node: its event stream, with the polls as its
// fallback (GET /api/v1/status while it is down, GET /active while it is
// up, so that a stream that stalls is noticed and reconnected).
func (f *Follower) watcher() *watch.Watcher {
	return watch.New(f.client, watch.Options{
		Interval:   f.interval,
		MinBackoff: minBackoff,
		MaxBackoff: maxBackoff,
		Fallback:   true,
		Observe: func(o watch.Observation) bool {
			f.observe(o)
			return true
		},
		OnStream: f.streamChanged,
	})
}

// streamChanged records and logs news of the event stream.
func (f *Follower) streamChanged(c watch.StreamChange) {
	f.setStream(c.Up)
	switch {
	case c.Up:
		f.log.Debug("event stream connected")
	case c.Err == nil:
		f.log.Info("event stream ended by the node; reconnecting")
	case errors.Is(c.Err, watch.ErrStalled):
		f.log.Debug("poll failed while streaming; reconnecting the stream", "error", c.Err)
		f.log.Info("event stream stalled (the node stopped answering polls); reconnecting")
	default:
		f.log.Debug("event stream failed", "error", c.Err, "retry_in", c.RetryIn)
	}
}

func (f *Follower) setStream(up bool) {
	f.mu.Lock()
	f.following.Stream = up
	f.metrics.stream.Set(b2f(up)) // with the state it shows (see setStatus)
	f.mu.Unlock()
}

// observe applies one look at the node (the watcher has dropped a poll
// overtaken by a newer look): what the follower knows of it, what it wants
// the services to be, the log and the audit of reachability changes.
func (f *Follower) observe(o watch.Observation) {
	f.mu.Lock()
	prev := f.following
	fw := &f.following
	fw.CheckedAt = o.At.UTC()
	fw.Reachable = o.OK()
	if !o.OK() {
		fw.Error = describe(o.Err)
		f.want, f.cause = "", ""
		mine := f.status
		f.metrics.reachable.Set(0)
		f.mu.Unlock()
		if prev.Reachable || prev.CheckedAt.IsZero() {
			why := "unreachable"
			if !errors.Is(o.Err, client.ErrUnreachable) {
				why = "cannot be read"
			}
			cause := fmt.Sprintf("paired node %s %s: keeping %s", prev.Node, why, mine)
			f.log.Warn("paired node "+why+": keeping the current state", "node", prev.Node, "status", mine, "error", o.Err)
			f.record(api.AuditEntry{Action: "follow", Cause: cause, Detail: errText(o.Err), Outcome: api.OutcomeOK,
				Epoch: prev.Epoch, From: mine, To: mine})
		}
		return
	}
	fw.Error = ""
	if o.Node != "" {
		fw.Node = o.Node
	}
	changed := o.Status != prev.Status || o.Epoch != prev.Epoch
	fw.Status, fw.Epoch = o.Status, o.Epoch
	switch {
	case !o.Since.IsZero():
		fw.Since = o.Since.UTC()
	case changed:
		fw.Since = o.At.UTC()
	}
	verb := "is"
	if changed && prev.Status != "" {
		verb = "went"
	}
	cause := fmt.Sprintf("paired node %s %s %s (epoch %d)", fw.Node, verb, o.Status, o.Epoch)
	want := wish(o.Status)
	// Keep the first cause of a wish that does not change.
	if want != f.want || changed {
		f.want, f.cause = want, cause
	}
	mine, node := f.status, fw.Node
	f.metrics.reachable.Set(1)
	f.metrics.epoch.Set(float64(o.Epoch))
	f.mu.Unlock()

	if !prev.Reachable && !prev.CheckedAt.IsZero() {
		f.log.Info("paired node reachable again", "node", node, "status", o.Status, "epoch", o.Epoch)
		f.record(api.AuditEntry{Action: "follow", Outcome: api.OutcomeOK, Epoch: o.Epoch, From: mine, To: mine,
			Cause: fmt.Sprintf("paired node %s reachable again (%s, epoch %d)", node, o.Status, o.Epoch)})
	}
	if changed {
		f.log.Info("paired node status", "node", node, "status", o.Status, "epoch", o.Epoch)
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
