package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/cluster"
)

// The loop: the one goroutine that owns the core, and the messages it takes.

// Run boots the node and serves until ctx is done. Services keep their state
// when Run returns: stopping resman does not stop the telephony.
func (n *Node) Run(ctx context.Context) error {
	defer close(n.stopped)
	// Replication runs asked meanwhile end with the node, and it waits
	// for them: nothing of it goes on writing after Run returns.
	defer n.endRuns()
	statePath := n.statePath()
	saved, err := loadState(statePath)
	if err != nil {
		return err
	}
	peer := n.fetchPeer(ctx)
	n.setPeer(peer)
	if err := n.step(ctx, resilience.Boot{Saved: saved, Peer: n.peerView(peer)}); err != nil {
		// Running on a decision a restart would not find is how two
		// Active nodes happen: refuse to run instead.
		return fmt.Errorf("boot: the boot decision cannot be persisted in %s, so the node does not run (free space in node.data_dir, or make it writable): %w",
			statePath, err)
	}
	n.failoverEndedByRestart()
	close(n.ready)
	n.log.Info("node booted", "role", n.d.Core.Role, "mode", n.d.Core.Mode, "status", n.m.Status(), "epoch", n.m.Epoch())

	var ls loopState
	defer ls.stop()
	n.startMode(ctx, &ls)
	probe, stopProbe := n.d.clock.NewTicker(n.d.probeEvery)
	defer stopProbe()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-probe:
			// A persist error stands until the data directory takes a
			// write again: then the core hears of it, and the status
			// stops saying the node cannot persist.
			if n.m.PersistError() != "" && n.d.probeStore(n.d.DataDir) == nil {
				n.step(ctx, resilience.StoreWritable{})
			}
		case <-ls.tick:
			n.checkSecondPath(ctx)
			n.confirmClaim(ctx)
			n.step(ctx, resilience.Tick{})
		case ev, ok := <-ls.gossip:
			if !ok {
				ls.gossip = nil
				continue
			}
			n.onGossip(ctx, ev)
		case <-n.health:
			n.step(ctx, resilience.Health{Unhealthy: n.d.Services.Unhealthy()})
		case msg := <-n.msgs:
			switch msg := msg.(type) {
			case command:
				err := n.step(ctx, msg.ev)
				var wait chan outcome
				if err == nil && (n.m.Status() == resilience.Activating || n.m.Status() == resilience.Deactivating) {
					wait = make(chan outcome, 1)
					n.waiters = append(n.waiters, wait)
				}
				msg.reply <- commandReply{err: err, wait: wait}
			case workDone:
				n.vetoed = n.vetoed || msg.vetoed
				n.step(ctx, msg.ev)
			case claimChecked:
				n.claimChecked(ctx, msg.api)
			case callsCounted:
				if n.auto() {
					n.takeCalls(ctx, msg)
				}
			case peerSeen:
				if n.auto() {
					continue // a poll started before a switch to auto mode
				}
				if n.olderThanShown(msg.peer) {
					continue // an admin command's fresher read came first
				}
				n.setPeer(msg.peer)
				n.step(ctx, resilience.PeerSeen{Peer: n.peerView(msg.peer)})
			case reconfigure:
				msg.reply <- n.reconfigure(ctx, &ls, msg)
			}
		}
	}
}

type (
	command struct {
		ev    resilience.Event
		reply chan commandReply
	}
	commandReply struct {
		err  error
		wait chan outcome // nil when nothing is under way
	}
	workDone struct {
		ev     resilience.Event
		vetoed bool // a before_activate hook refused the start
	}
	peerSeen struct{ peer api.Peer }
	// claimChecked: the peer's API answer to a gossip claim (gossip.go).
	claimChecked struct{ api api.Peer }
	reconfigure  struct {
		core       resilience.Config
		membership Membership
		who        string
		reply      chan error
	}
)

// loopState is what the loop runs per mode: ticks and gossip in auto mode,
// the peer poller in manual mode. Loop goroutine only.
type loopState struct {
	stopTicker func()
	tick       <-chan time.Time
	gossip     <-chan cluster.Event
	pollCancel context.CancelFunc // the peer poller (manual mode) or the calls counter (auto)
}

func (ls *loopState) stop() {
	if ls.stopTicker != nil {
		ls.stopTicker()
	}
	if ls.pollCancel != nil {
		ls.pollCancel()
	}
	*ls = loopState{}
}

// startMode starts what the current mode runs. In auto mode the heartbeat
// gives the peer's view and the peer's API is read only for admin
// commands; in manual mode the API is polled.
func (n *Node) startMode(ctx context.Context, ls *loopState) {
	ls.stop()
	switch {
	case n.auto():
		ls.tick, ls.stopTicker = n.d.clock.NewTicker(n.d.TickEvery)
		ls.gossip = n.d.Membership.Events()
		n.meta, n.sp = cluster.Meta{}, secondPathState{}
		n.announce()
		if n.d.CountCalls != nil {
			cctx, cancel := context.WithCancel(ctx)
			ls.pollCancel = cancel
			go n.countCalls(cctx)
		}
	case n.d.Peer != nil:
		pctx, cancel := context.WithCancel(ctx)
		ls.pollCancel = cancel
		go n.pollPeer(pctx)
	}
}

// reconfigure applies a reloaded config in the loop: the core first (it
// may refuse), then what the mode runs.
func (n *Node) reconfigure(ctx context.Context, ls *loopState, r reconfigure) error {
	if r.core.Mode == resilience.ModeAuto && r.membership == nil {
		return fmt.Errorf("%w: auto mode needs the gossip layer", resilience.ErrInvalid)
	}
	if err := n.step(ctx, resilience.Reconfigure{Config: r.core, Who: r.who}); err != nil && !errors.Is(err, resilience.ErrNotDurable) {
		// A decision the new config led to that could not be persisted
		// is refused on its own: the reload stands.
		return err
	}
	modeChanged := r.core.Mode != n.d.Core.Mode
	n.d.Core, n.d.Membership = r.core, r.membership
	n.mu.Lock()
	n.snap.mode, n.snap.witness = r.core.Mode, r.core.Witness
	if modeChanged {
		// What gossip showed belongs to the mode that ran; the same
		// heartbeat going on (new timings, keys) still shows it.
		n.snap.peerInGossip, n.snap.witnessAlive = false, false
	}
	n.mu.Unlock()
	if modeChanged {
		n.startMode(ctx, ls)
	}
	n.publishStatus()
	return nil
}

// Reconfigure applies a reloaded config: the mode (with the gossip layer
// for auto mode, nil for manual) and the failover timing. Name and role
// cannot change. Safe from any goroutine; blocks until applied.
func (n *Node) Reconfigure(ctx context.Context, who string, core resilience.Config, m Membership) error {
	reply := make(chan error, 1)
	select {
	case n.msgs <- reconfigure{core: core, membership: m, who: who, reply: reply}:
	case <-n.stopped:
		return errStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-reply
}
