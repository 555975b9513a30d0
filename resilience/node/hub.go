package node

import (
	"sync"

	"github.com/resman-pbx/resman/resilience/api"
)

// hub fans events out to subscribers. A subscriber whose buffer is full is
// dropped (its channel closed) rather than blocking the node: it reconnects
// and gets the current status first.
type hub struct {
	mu   sync.Mutex
	next int
	subs map[int]chan api.Event
}

const subscriberBuffer = 64

func (h *hub) subscribe(first api.Event) (<-chan api.Event, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = map[int]chan api.Event{}
	}
	id := h.next
	h.next++
	ch := make(chan api.Event, subscriberBuffer)
	ch <- first
	h.subs[id] = ch
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if c, ok := h.subs[id]; ok {
				delete(h.subs, id)
				close(c)
			}
		})
	}
}

func (h *hub) publish(ev api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, ch := range h.subs {
		select {
		case ch <- ev:
		default:
			delete(h.subs, id)
			close(ch)
		}
	}
}
