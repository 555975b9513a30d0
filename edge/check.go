package edge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
	"github.com/resman-pbx/resman/resilience/client/watch"
	"github.com/resman-pbx/resman/services/hysteresis"
)

// Backoff between two connections of a node's event stream.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// Health of a side, as the checks see it.
const (
	HealthUnknown = "unknown" // not yet rise passes nor a failure verdict
	HealthUp      = "up"      // Active and answering: may receive traffic
	HealthDown    = "down"
)

// verdict is the result of one check of a side's node.
type verdict int

const (
	verdictFail     verdict = iota // no usable answer
	verdictActive                  // 200, status active
	verdictInactive                // the node answered that it is not Active
)

// side is one side behind the Edge: its node, its routes, its check state
// (guarded by Edge.mu) and its open streams (guarded by smu).
type side struct {
	edge   *Edge
	name   string
	node   string
	routes []*route
	client *client.Client
	// tlsConf is the side's upstream_tls, nil when not set.
	tlsConf *UpstreamTLS
	// stallWarned: the last failed check was not counted, and said so
	// (stalledDuring).
	stallWarned atomic.Bool

	// Check state, under edge.mu. checks counts the checks' rise and fall
	// (Counted from unknown; ForceDown when the node says it is not
	// Active); health is its state as the status API names it, "" while
	// unknown, set from checks after each result.
	checks    hysteresis.Hysteresis
	health    string
	claims    bool // the last answer said Active
	epoch     uint64
	nodeState string // status in the last answer
	lastCheck time.Time
	lastErr   string

	smu     sync.Mutex
	streams map[*stream]struct{}
	byConn  map[net.Conn]*stream
}

// match returns the route of path: the longest prefix that ends at a path
// segment boundary ("/api" takes /api and /api/x, not /apix).
func (s *side) match(path []byte) *route {
	for _, rt := range s.routes {
		p := rt.path
		if len(path) >= len(p) && string(path[:len(p)]) == p &&
			(len(path) == len(p) || p[len(p)-1] == '/' || path[len(p)] == '/') {
			return rt
		}
	}
	return nil
}

// watcher follows the side's node: GET /active every check interval, and
// its event stream (with the Edge's token), with backoff between
// reconnections: a node that starts deactivating stops receiving traffic
// at once, without waiting for the next check. Going back up still takes
// rise checks.
func (s *side) watcher() *watch.Watcher {
	warned := false // only the stream's goroutine calls OnStream
	return watch.New(s.client, watch.Options{
		Interval:   s.edge.interval,
		MinBackoff: minBackoff,
		MaxBackoff: maxBackoff,
		Observe:    s.observe,
		OnStream: func(c watch.StreamChange) {
			if c.Up {
				return
			}
			var ae *client.Error
			if errors.As(c.Err, &ae) && !warned {
				warned = true
				s.edge.log.Warn("no event stream from the node: checks only", "side", s.name, "error", c.Err)
			} else {
				s.edge.log.Debug("event stream ended", "side", s.name, "error", c.Err, "retry_in", c.RetryIn)
			}
		},
	})
}

// observe counts one look at the node: each check, and each event saying
// the node is not Active. It takes only those events: a check started
// before one is stale (the watcher drops it).
func (s *side) observe(o watch.Observation) (took bool) {
	a := api.Active{Status: o.Status, Epoch: o.Epoch}
	if o.Event {
		if o.Status == api.StatusActive {
			return false
		}
		s.edge.observe(s, verdictInactive, a, nil, true)
		return true
	}
	v := verdictInactive
	switch {
	case isTimeout(o.Err) && s.edge.stalledDuring(s, o.At):
		return false
	case o.Err != nil:
		v = verdictFail
	case o.Status == api.StatusActive:
		v = verdictActive
	}
	s.edge.observe(s, v, a, o.Err, false)
	return false
}

// stalledDuring says whether the Edge itself stalled for half the check
// timeout or more since at, when a check of s started (see lag.go): its
// timeout is then not counted, and counted in
// resman_edge_checks_not_counted_total. A refusal or an answer counts
// whatever the Edge's stalls: the node gave it.
func (e *Edge) stalledDuring(s *side, at time.Time) bool {
	d := e.stalls.stalled(at, time.Now())
	if d < e.checkTimeout/2 {
		s.stallWarned.Store(false)
		return false
	}
	e.metrics.notCounted.WithLabelValues(s.name).Inc()
	if !s.stallWarned.Swap(true) {
		e.log.Warn("check failed while the Edge itself stalled: not counted against the node", "side", s.name, "stalled", d.Round(time.Millisecond))
	}
	return true
}

// observe counts one check result (or event) of s and routes to the side
// that should have the traffic now.
func (e *Edge) observe(s *side, v verdict, a api.Active, err error, event bool) {
	e.mu.Lock()
	before := s.health
	s.lastCheck = time.Now()
	switch v {
	case verdictActive:
		s.checks.Observe(true)
		s.claims, s.epoch, s.nodeState, s.lastErr = true, a.Epoch, a.Status, ""
	case verdictInactive:
		// An answer, not a failure: the node says it does not serve.
		s.checks.ForceDown()
		s.claims, s.nodeState, s.lastErr = false, a.Status, ""
		if a.Epoch > s.epoch {
			s.epoch = a.Epoch
		}
	default:
		s.checks.Observe(false)
		s.nodeState = ""
		s.lastErr = checkError(err)
		if s.checks.Fails() >= e.fall {
			s.claims = false
		}
	}
	s.health = healthName(s.checks.State())
	after := s.health
	e.metrics.setHealth(s.name, after == HealthUp)
	if before != after {
		attrs := []any{"side", s.name, "from", orUnknown(before), "to", after, "epoch", s.epoch}
		switch v {
		case verdictFail:
			e.log.Warn("side down: its node does not answer", append(attrs, "fails", s.checks.Fails(), "error", err)...)
		case verdictInactive:
			e.log.Info("side down: its node is not active", append(attrs, "node_status", a.Status, "seen_by", map[bool]string{true: "event", false: "check"}[event])...)
		default:
			e.log.Info("side up: its node is active", attrs...)
		}
	} else if v == verdictFail {
		e.log.Debug("check failed", "side", s.name, "error", err)
	}
	lost := e.reselectLocked()
	e.mu.Unlock()
	if lost != nil {
		go lost.closeStreams("side lost active")
	}
}

// reselectLocked routes to the side that should have the traffic, as pick
// (select.go) decides: the one that is up, or, both being up, the higher
// epoch (on a tie the side already routed, else the first listed). It
// returns the side that lost the traffic, if any.
func (e *Edge) reselectLocked() *side {
	cur := e.routed.Load()
	var buf [4]sideView
	views, at := buf[:0], -1
	for i, s := range e.sides {
		views = append(views, sideView{Health: s.health, Epoch: s.epoch})
		if s == cur {
			at = i
		}
	}
	var best *side
	if i := pick(views, at); i >= 0 {
		best = e.sides[i]
	}
	if best == cur {
		return nil
	}
	e.routed.Store(best)
	e.routedChanged(best)
	e.since = time.Now()
	e.switches++
	e.metrics.switched(e.sides, best)
	from, to := "none", "none"
	change := &api.Transition{From: api.StatusInactive, To: api.StatusInactive, At: e.since.UTC()}
	if cur != nil {
		from = cur.name
		change.From = api.StatusActive
	}
	if best != nil {
		to = best.name
		change.To = api.StatusActive
		change.Cause = fmt.Sprintf("routed to side %s (epoch %d)", best.name, best.epoch)
		if cur != nil {
			change.Cause += ", was side " + cur.name
		}
		e.log.Info("routing switched", "from", from, "to", to, "epoch", best.epoch, "switches", e.switches)
	} else {
		change.Cause = "side " + cur.name + " lost Active: no side to route to"
		e.log.Warn("no side is active: answering 503", "from", from, "switches", e.switches)
	}
	e.lastSwitch = change
	return cur
}

// checkError says why a check failed, without the node's URL (the status
// API lists it beside).
func checkError(err error) string {
	var ae *client.Error
	if m := tlsProblem(err); m != "" {
		return m
	}
	switch {
	case errors.As(err, &ae):
		return fmt.Sprintf("answered %d", ae.StatusCode)
	case isTimeout(err):
		return "no answer in time"
	case errors.Is(err, client.ErrUnreachable):
		return "unreachable"
	case err != nil:
		return "unusable answer"
	}
	return ""
}

// isTimeout says whether err is a check's timeout, rather than an answer
// or a refusal.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// healthName is a side's health as the status API names it, "" while
// unknown (see orUnknown).
func healthName(h hysteresis.State) string {
	switch h {
	case hysteresis.Up:
		return HealthUp
	case hysteresis.Down:
		return HealthDown
	}
	return ""
}

func orUnknown(h string) string {
	if h == "" {
		return HealthUnknown
	}
	return h
}
