package node

import (
	"context"

	"github.com/resman-pbx/resman/resilience"
)

// Counting the calls in progress (auto mode, failover.calls): the count
// goes to the core, which lets the side with the calls keep the Active
// role when a partition heals, and over gossip to the peer, which judges
// the same two counts.

// callsCounted is one count, for the loop.
type callsCounted struct {
	n   int
	err error
}

// countCalls counts every CallsEvery until ctx ends. A node that is not
// Active runs no PBX services: it has no calls, and its command is not run.
func (n *Node) countCalls(ctx context.Context) {
	ticks, stop := n.d.clock.NewTicker(n.d.CallsEvery)
	defer stop()
	for {
		var c callsCounted
		if status, _, _, _ := n.Brief(); status == string(resilience.Active) {
			cctx, cancel := context.WithTimeout(ctx, n.d.CallsEvery)
			c.n, c.err = n.d.CountCalls(cctx)
			cancel()
		}
		select {
		case n.msgs <- c:
		case <-ctx.Done():
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
	}
}

// takeCalls steps a count. Loop goroutine only.
func (n *Node) takeCalls(ctx context.Context, c callsCounted) {
	_, wasKnown := n.m.Calls()
	if c.err != nil && wasKnown {
		n.log.Warn("calls cannot be counted: a healed split brain is decided by epochs alone until they can", "err", c.err)
	}
	n.mu.Lock()
	n.snap.calls = nil
	if c.err == nil {
		v := c.n
		n.snap.calls = &v
	}
	n.mu.Unlock()
	n.step(ctx, resilience.Calls{N: c.n, Known: c.err == nil})
}
