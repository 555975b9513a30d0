package edge

import (
	"context"
	"runtime/debug"
	"time"
)

// After a load ends, the memory of its connections (their buffers, their
// goroutines' stacks, the pools) is garbage, but an idle process does not
// collect it: Go runs a collection when the heap grows, or every two
// minutes, and only then gives the pages back. So the Edge watches its
// open client connections and, once a load of at least trimMinPeak of them
// has fallen to a quarter, collects and returns the free memory to the
// system: trimFirst samples after the fall, and again trimAgain samples
// after it if the load stays low, once the server's idle workers (10 s)
// are gone with their stacks.
const (
	trimMinPeak = 64
	trimFirst   = 2
	trimAgain   = 12
)

// trimInterval is the time between two samples (a variable for the tests).
var trimInterval = time.Second

// trimmer decides when a load has ended.
type trimmer struct {
	peak int
	low  int // samples in a row at or below a quarter of the peak
}

// observe takes a sample of the open connections and says whether to
// return memory now.
func (t *trimmer) observe(open int) bool {
	t.peak = max(t.peak, open)
	if t.peak < trimMinPeak || open > t.peak/4 {
		t.low = 0
		return false
	}
	t.low++
	switch t.low {
	case trimFirst:
		return true
	case trimAgain:
		// Done with this load: the next one starts from here.
		t.peak, t.low = open, 0
		return true
	}
	return false
}

// trimLoop returns memory to the system after each load, until ctx is
// done; open counts the open client connections.
func (e *Edge) trimLoop(ctx context.Context, open func() int32) {
	var t trimmer
	tick := time.NewTicker(trimInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if t.observe(int(open())) {
			debug.FreeOSMemory()
			e.log.Debug("load ended: memory returned to the system")
		}
	}
}
