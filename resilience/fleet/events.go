package fleet

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
)

// MaxEvents is how many events the aggregator keeps (the newest).
const MaxEvents = 200

// Kinds of Event.
const (
	// EventProblem: something went wrong on a pair (a class appeared).
	EventProblem = "problem"
	// EventCleared: one problem went away, others remain.
	EventCleared = "cleared"
	// EventReady: the pair is ready again.
	EventReady = "ready"
	// EventChange: a node of the pair changed status (a failover, a
	// switchover, a start or stop), as the node reports it.
	EventChange = "change"
)

// Event is one entry of the fleet's feed (GET /api/v1/fleet/events): a
// change the aggregator saw on a pair, in words.
type Event struct {
	// Seq numbers the events from 1, in the order they were seen.
	Seq uint64 `json:"seq"`
	// At is when the aggregator saw it (a node's status change is dated
	// by the node in Text).
	At   time.Time `json:"at"`
	Pair string    `json:"pair"`
	Kind string    `json:"kind"`
	// Class is the problem's class (Class* constants), for problem and
	// cleared events.
	Class    string `json:"class,omitempty"`
	Severity string `json:"severity"`
	Text     string `json:"text"`
}

// classLabels name the classes in events' texts.
var classLabels = map[string]string{
	ClassSplitBrain:       "split brain",
	ClassNoActive:         "no Active node",
	ClassUnreachable:      "a node unreachable",
	ClassHANotReady:       "HA not ready",
	ClassReplicationStale: "replication stale",
	ClassManualFailover:   "manual HA failover",
	ClassVersionMismatch:  "versions differ",
}

// watch is what the feed remembers of one pair, to tell what changed.
// Nothing is said until every node was read once (primed); a problem
// present then is said at once.
type watch struct {
	primed  bool
	classes []string // of the last update, those in classLabels
	ready   bool
	// changeSeen is the newest node status change already told: a node
	// back from unreachable shows its old change again.
	changeSeen time.Time
}

// update returns the events between the last update and p (Seq and At
// unset), and remembers p.
func (w *watch) update(p Pair) []Event {
	if !w.primed {
		if slices.Contains(p.Classes, ClassNotPolled) {
			return nil
		}
		w.primed, w.ready = true, true
		if p.LastChange != nil {
			w.changeSeen = p.LastChange.At
		}
	}
	var out []Event
	if lc := p.LastChange; lc != nil && lc.At.After(w.changeSeen) {
		w.changeSeen = lc.At
		at := lc.At.UTC().Format(time.RFC3339)
		text := fmt.Sprintf("pair %s: %s went %s at %s (from %s: %s)", p.Name, lc.Node, lc.To, at, lc.From, lc.Cause)
		if lc.To == api.StatusActive {
			text = fmt.Sprintf("pair %s: %s became Active at %s (from %s: %s)", p.Name, lc.Node, at, lc.From, lc.Cause)
		}
		out = append(out, Event{Pair: p.Name, Kind: EventChange, Severity: SeverityInfo, Text: text})
	}
	var cur []string
	for _, c := range p.Classes {
		if _, ok := classLabels[c]; ok {
			cur = append(cur, c)
		}
	}
	for _, c := range cur {
		if slices.Contains(w.classes, c) {
			continue
		}
		i := slices.Index(p.reasonClasses, c)
		out = append(out, Event{Pair: p.Name, Kind: EventProblem, Class: c, Severity: p.reasonSeverities[i],
			Text: fmt.Sprintf("pair %s: %s because %s", p.Name, classLabels[c], p.Reasons[i])})
	}
	if p.Ready && !w.ready {
		out = append(out, Event{Pair: p.Name, Kind: EventReady, Severity: SeverityOK, Text: fmt.Sprintf("pair %s: ready again", p.Name)})
	} else {
		for _, c := range w.classes {
			if !slices.Contains(cur, c) {
				out = append(out, Event{Pair: p.Name, Kind: EventCleared, Class: c, Severity: p.Severity,
					Text: fmt.Sprintf("pair %s: no longer %s", p.Name, classLabels[c])})
			}
		}
	}
	w.classes, w.ready = cur, p.Ready
	return out
}

// eventLog is the ring of the newest MaxEvents events.
type eventLog struct {
	mu   sync.Mutex
	seq  uint64
	ring []Event // oldest first
}

// add numbers evs, dates them at, and keeps them.
func (l *eventLog) add(at time.Time, evs []Event) {
	if len(evs) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range evs {
		l.seq++
		e.Seq, e.At = l.seq, at
		l.ring = append(l.ring, e)
	}
	if n := len(l.ring) - MaxEvents; n > 0 {
		l.ring = append(l.ring[:0:0], l.ring[n:]...)
	}
}

// list is the events numbered above after, newest first.
func (l *eventLog) list(after uint64) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []Event{}
	for i := len(l.ring) - 1; i >= 0 && l.ring[i].Seq > after; i-- {
		out = append(out, l.ring[i])
	}
	return out
}

// Events is the feed, newest first: the events numbered above after (0:
// all those kept, at most MaxEvents).
func (a *Aggregator) Events(after uint64) []Event { return a.events.list(after) }
