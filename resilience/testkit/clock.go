package testkit

import (
	"sort"
	"sync"
	"time"
)

// FakeClock is a clock that stands still until the test moves it with
// Advance: a test of code that waits on timers and tickers then takes no
// real time and cannot be late. Its methods match the clock seams of the
// code under test (resilience/node's deps): Now, NewTicker, NewTimer. As
// with the time package, a ticker's channel holds one tick and drops the
// ones its reader misses; a timer fires once. Safe for concurrent use.
type FakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c      chan time.Time
	at     time.Time
	period time.Duration // 0 for a timer
}

// NewFakeClock is a FakeClock showing start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start}
}

// Now is the clock's time: its start plus every Advance.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTicker ticks every d of the clock's time; stop ends it.
func (c *FakeClock) NewTicker(d time.Duration) (ticks <-chan time.Time, stop func()) {
	if d <= 0 {
		panic("testkit: non-positive interval for NewTicker")
	}
	ft := c.add(d, d)
	return ft.c, func() { c.remove(ft) }
}

// NewTimer fires once when the clock has moved d on; stop ends it and
// reports whether it had not fired yet.
func (c *FakeClock) NewTimer(d time.Duration) (fire <-chan time.Time, stop func() bool) {
	if d <= 0 {
		ch := make(chan time.Time, 1)
		ch <- c.Now() // as time.NewTimer: due at once
		return ch, func() bool { return false }
	}
	ft := c.add(d, 0)
	return ft.c, func() bool { return c.remove(ft) }
}

// Pending is how many timers and tickers wait on the clock: a test waits
// for the code under test to have made its ticker before advancing.
func (c *FakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Advance moves the clock d on, and fires, in their order, the timers and
// the ticks that fall due on the way. It does not wait for their readers.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	end := c.now.Add(d)
	for {
		sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
		if len(c.timers) == 0 || c.timers[0].at.After(end) {
			break
		}
		ft := c.timers[0]
		c.now = ft.at
		select {
		case ft.c <- ft.at:
		default: // the reader has not taken the last tick: this one is lost
		}
		if ft.period > 0 {
			ft.at = ft.at.Add(ft.period)
		} else {
			c.timers = c.timers[1:]
		}
	}
	c.now = end
}

func (c *FakeClock) add(d, period time.Duration) *fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	ft := &fakeTimer{c: make(chan time.Time, 1), at: c.now.Add(d), period: period}
	c.timers = append(c.timers, ft)
	return ft
}

// remove takes ft off the clock and reports whether it was on it.
func (c *FakeClock) remove(ft *fakeTimer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.timers {
		if x == ft {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			return true
		}
	}
	return false
}
