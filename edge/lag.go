package edge

import (
	"context"
	"os"
	"sync"
	"time"
)

// The Edge's own stalls, measured so that a check of a node that failed
// because the Edge could not run is not held against the node.
//
// Under a load that saturates the Edge's processors (a thousand clients
// each downloading as fast as they can), a goroutine woken by the network
// poller, as a check's is when the node's answer arrives, waits its turn
// behind hundreds of others: a check can time out while the node answered
// at once, and two such checks took a healthy side down (503 for
// everyone) in the 1 MiB benchmark at 1,000 connections.
//
// The stall meter measures that wait on the same path: every tick (a
// quarter of the check timeout, from 10 to 100 ms) a timer-driven
// goroutine (timers run promptly) writes a byte to a pipe, and a goroutine
// blocked reading the pipe in the poller notes how late it wakes. A
// wake-up later than two ticks is a stall. A failed check during which the
// Edge stalled for half the check timeout or more is not counted (neither
// against the node nor for it): the next check decides. A dead node costs
// no processor time, so it does not keep the Edge stalled: its checks
// count again as soon as the load drains.

// lagPeriod is the stall meter's longest tick: it sees the stalls of two
// ticks or more. At 20 ms it cost an idle Edge 1 % of a core; at 100 ms,
// 0.25 %. minLagPeriod is its shortest.
const lagPeriod, minLagPeriod = 100 * time.Millisecond, 10 * time.Millisecond

// lagPeriodFor is the tick that sees the stalls that matter to a check
// timeout: half of it or more, so a quarter of it, within the bounds.
func lagPeriodFor(checkTimeout time.Duration) time.Duration {
	return min(max(checkTimeout/4, minLagPeriod), lagPeriod)
}

// stallMeter records the Edge's recent stalls; its zero value is ready,
// with a tick of lagPeriod.
type stallMeter struct {
	// period is the tick (zero: lagPeriod).
	period time.Duration

	mu sync.Mutex
	// sent is when the byte the reader has yet to see was written, zero
	// when none is pending.
	sent time.Time
	// stalls is a ring of the recent stalls, next its next slot.
	stalls [128]stall
	next   int
	// wakes counts the reader's wake-ups.
	wakes uint64
}

// stall is a time the stall meter's reader waited to be run.
type stall struct{ from, to time.Time }

// run measures until ctx ends.
func (m *stallMeter) run(ctx context.Context) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer w.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 64)
		for {
			if _, err := r.Read(b); err != nil {
				return
			}
			m.woke(time.Now())
		}
	}()
	t := time.NewTicker(m.tick())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.Close()
			<-done
			return nil
		case <-t.C:
			if m.send(time.Now()) {
				if _, err := w.Write([]byte{0}); err != nil {
					return err
				}
			}
		}
	}
}

// tick is the meter's period.
func (m *stallMeter) tick() time.Duration {
	if m.period == 0 {
		return lagPeriod
	}
	return m.period
}

// send notes a byte written at now, unless one is pending (whose lateness
// is what counts): it says whether to write.
func (m *stallMeter) send(now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.sent.IsZero() {
		return false
	}
	m.sent = now
	return true
}

// woke records the reader's wake-up at now.
func (m *stallMeter) woke(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.sent.IsZero() && now.Sub(m.sent) > 2*m.tick() {
		m.stalls[m.next] = stall{from: m.sent, to: now}
		m.next = (m.next + 1) % len(m.stalls)
	}
	m.sent = time.Time{}
	m.wakes++
}

// stalled is how long the Edge stalled between from and to, to being now:
// the recorded stalls, and the one under way if the reader is late now.
func (m *stallMeter) stalled(from, to time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var d time.Duration
	for _, s := range m.stalls {
		d += overlap(s, from, to)
	}
	if !m.sent.IsZero() && to.Sub(m.sent) > 2*m.tick() {
		d += overlap(stall{from: m.sent, to: to}, from, to)
	}
	return d
}

// overlap is the length of s within [from, to].
func overlap(s stall, from, to time.Time) time.Duration {
	if s.from.Before(from) {
		s.from = from
	}
	if s.to.After(to) {
		s.to = to
	}
	if !s.to.After(s.from) {
		return 0
	}
	return s.to.Sub(s.from)
}
