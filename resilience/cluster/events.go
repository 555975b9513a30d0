package cluster

import (
	"fmt"
	"sync"
)

// EventKind says what happened to a member.
type EventKind int

// Event kinds.
const (
	// Up: a member is seen alive, for the first time or again after a Down.
	Up EventKind = iota + 1
	// Down: a member is no longer seen: it failed its probes and did not
	// refute the suspicion in time, or it left (Member.Meta.Leaving tells
	// a graceful stop).
	Down
	// Update: an alive member gossiped a new Meta.
	Update
	// Refused: a member that holds the gossip key but is not one of
	// Options.Expected (or not at its address, or with another role) was
	// kept out; Reason says why. Member carries its name and address only.
	Refused
)

func (k EventKind) String() string {
	switch k {
	case Up:
		return "up"
	case Down:
		return "down"
	case Update:
		return "update"
	case Refused:
		return "refused"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Member is one member of the gossip cluster as this node sees it.
type Member struct {
	Name string
	// Addr is the member's gossip host:port.
	Addr string
	// Meta is the last meta the member gossiped (Name always set).
	Meta Meta
	// Alive is this node's own tracking of the member (from join, leave and
	// update notifications), not memberlist's Node.State.
	Alive bool
}

// Event is a change of one member. Member is the member's state right after
// the change. Events are never about the local member.
type Event struct {
	Kind   EventKind
	Member Member
	// Reason says why a Refused member was kept out.
	Reason string
}

func (e Event) String() string {
	return fmt.Sprintf("%s %s status=%s epoch=%d healthy=%t sees=%v",
		e.Kind, e.Member.Name, e.Member.Meta.Status, e.Member.Meta.Epoch, e.Member.Meta.Healthy, e.Member.Meta.Sees)
}

// eventsBuffer is the capacity of the Events channel; coalesceAfter is how
// many more events wait in the queue before the events of one member are
// merged.
const (
	eventsBuffer  = 64
	coalesceAfter = 64
)

// eventQueue decouples memberlist's delegate goroutines, which must never
// block, from the reader of Events. Beyond coalesceAfter waiting events, a
// new event replaces the last waiting event of the same member, so the
// queue holds at most coalesceAfter + (number of members) events.
type eventQueue struct {
	mu     sync.Mutex
	items  []Event
	closed bool
	wake   chan struct{}
}

func newEventQueue() *eventQueue {
	return &eventQueue{wake: make(chan struct{}, 1)}
}

func (q *eventQueue) push(ev Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if len(q.items) >= coalesceAfter {
		if ev.Kind == Refused {
			// Only for the audit: dropped rather than merged into a
			// real member's event (its name may be a forged one). The
			// warning and the metric count it anyway.
			return
		}
		for i := len(q.items) - 1; i >= 0; i-- {
			if q.items[i].Member.Name == ev.Member.Name && q.items[i].Kind != Refused {
				q.items[i] = merge(q.items[i], ev)
				return
			}
		}
	}
	q.items = append(q.items, ev)
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// merge folds a later event of a member into an earlier one: the member's
// state is the latest; an Update does not hide the Up or Down before it.
func merge(old, ev Event) Event {
	if ev.Kind == Update {
		ev.Kind = old.Kind
	}
	return ev
}

// pop returns the oldest waiting event.
func (q *eventQueue) pop() (Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return Event{}, false
	}
	ev := q.items[0]
	q.items[0] = Event{}
	q.items = q.items[1:]
	return ev, true
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.items = nil
	q.mu.Unlock()
}

// forward moves queued events to out until stop is closed, then closes out.
func (q *eventQueue) forward(out chan<- Event, stop <-chan struct{}) {
	defer close(out)
	for {
		ev, ok := q.pop()
		if !ok {
			select {
			case <-q.wake:
				continue
			case <-stop:
				return
			}
		}
		select {
		case out <- ev:
		case <-stop:
			return
		}
	}
}
