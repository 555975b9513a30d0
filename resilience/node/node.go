// Package node is the runtime around the decision core: it owns the
// goroutines, feeds the core events (admin commands, peer views, health,
// completions) and carries its actions out through small interfaces
// (services, SIP registrar, state file, audit log). One goroutine owns the
// core; everything else talks to it through messages.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/hooks"
	"github.com/resman-pbx/resman/resilience/replication"
)

// Services drives the local services. Start and Stop may block up to their
// timeouts and are called from a worker goroutine, never concurrently.
// Status and Unhealthy must not block on I/O.
type Services interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Status() []api.Service
	Unhealthy() []string
}

// Registrar registers the Active node over SIP (XDS). Activate must not
// block; Deactivate returns by the time ctx ends. Called from the node's
// goroutines; Status must not block on I/O.
type Registrar interface {
	Activate(epoch uint64)
	Deactivate(ctx context.Context) error
	Status() []api.Registration
}

// PeerClient talks to the peer's API. Deps.IsUnreachable tells its
// transport failures from answers.
type PeerClient interface {
	Status(ctx context.Context) (api.Status, error)
	StartServices(ctx context.Context, req api.StartRequest) (api.Status, error)
	StopServices(ctx context.Context, req api.StopRequest) (api.Status, error)
}

// Membership is the gossip layer of auto mode. SetMeta must not block for
// long; Events is read by the node's loop only. Never used in manual mode.
type Membership interface {
	SetMeta(cluster.Meta)
	Events() <-chan cluster.Event
}

// ReplicationSender runs the replication jobs from this node when it is
// Active (the runner); ReplicationReceiver takes them when it is not. Their
// Status and StaleJobs must not block on I/O.
type ReplicationSender interface {
	RunNow(ctx context.Context, job string) (replication.Result, error)
	RunAll(ctx context.Context) ([]replication.Result, error)
	Status(now time.Time) []api.Replication
	StaleJobs(now time.Time) []string
}

// ReplicationReceiver is the receiving side of replication.
type ReplicationReceiver interface {
	Status(now time.Time) []api.Replication
	StaleJobs(now time.Time) []string
	// EndSessions ends the transfers under way and returns once no
	// replication write is in progress.
	EndSessions(reason string)
}

// AuditLog stores audit entries durably.
type AuditLog interface {
	Append(api.AuditEntry) (api.AuditEntry, error)
	List(limit int, beforeID uint64) ([]api.AuditEntry, error)
}

// Deps is everything a node is built from.
type Deps struct {
	Core    resilience.Config
	Version string
	// Peer is nil when no peer is configured (a witness).
	Peer        PeerClient
	PeerName    string
	PeerURL     string        // the peer's API base URL (peer.api), shown for a link
	PeerEvery   time.Duration // how often the peer is polled
	PeerTimeout time.Duration // bound of one peer call
	// IsUnreachable tells a transport failure (peer down) from an answer
	// that could not be read (e.g. a wrong token).
	IsUnreachable func(error) bool
	Services      Services
	Registrar     Registrar // nil without XDS
	Audit         AuditLog
	DataDir       string
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
	// UnregisterTimeout bounds the SIP unregistration before services stop.
	UnregisterTimeout time.Duration
	// Membership is the heartbeat (auto mode only; nil in manual mode).
	Membership Membership
	// CountCalls, when set, counts the calls in progress on this node's
	// PBX (failover.calls), every CallsEvery in auto mode.
	CountCalls func(ctx context.Context) (int, error)
	CallsEvery time.Duration
	// SecondPath returns the second path running now (auto mode with
	// failover.confirm on), or nil: a gossip loss then counts alone.
	SecondPath func() SecondPath
	// TickEvery is the length of one core tick in auto mode; the core's
	// LostTicks and FailbackHoldTicks count in it.
	TickEvery time.Duration
	// ReplSender and ReplReceiver: nil without replication jobs.
	ReplSender   ReplicationSender
	ReplReceiver ReplicationReceiver
	// ReplWait bounds how long a replication run request waits for the
	// jobs before answering with their status (they go on). Default: 20s.
	ReplWait time.Duration
	// Drain, when set, returns once no call is active, or an error saying
	// why it gave up; a switchover waits on it before stopping here.
	Drain func(ctx context.Context) error
	// Hooks run on this node's transitions (see package hooks): a failing
	// before_activate hook vetoes the activation as a failed start would.
	Hooks hooks.Set

	// saveState persists a decision (tests replace it); default: the
	// atomic, synced write of state.json.
	saveState func(path string, s resilience.Saved, now time.Time) error
	// probeStore checks that the data directory takes writes again, every
	// probeEvery while a persist error stands (tests replace both);
	// default: a synced write of a temporary file, every 2 s.
	probeStore func(dir string) error
	probeEvery time.Duration
}

// Node is a running PBX node. Its exported methods are safe for concurrent
// use; they implement the web package's Node interface.
type Node struct {
	d   Deps
	log *slog.Logger
	// switchover: the steps of the switchover run here (switchover.go).
	switchover switchoverProgress
	m          *resilience.Machine // owned by the loop goroutine
	metrics    *metrics
	hub        hub
	msgs       chan any
	health     chan struct{}
	ready      chan struct{} // closed once Boot has been stepped
	stopped    chan struct{} // closed when Run returns
	// runs: the admin-asked replication runs, which outlive the request
	// but not the node (Run cancels and waits for them); replRunning: one
	// at a time.
	runs        sync.WaitGroup
	runsCtx     context.Context
	stopRuns    context.CancelFunc
	replRunning atomic.Bool

	// waiters are admin commands waiting for the transition they started to
	// end. Owned by the loop goroutine.
	waiters []chan outcome
	// failure is the failed record of the transition under way, if any.
	failure *resilience.Record
	// For the activation and failover histograms (loop only): when and
	// why the activation under way began, and when the peer was lost.
	activatingAt     time.Time
	activatingAction string
	peerLostAt       time.Time
	// claim: a gossip view of the peer that would move this node, waiting
	// for the peer's API to confirm it (loop only; see gossip.go).
	claim claimState
	// sp: a peer lost over gossip, asked about on the second path (loop
	// only; see secondpath.go).
	sp secondPathState

	hooks *hooks.Runner
	// trans is what the hooks are told of the transition under way or
	// last ended; vetoed: a before_activate hook vetoed it (no
	// after_deactivate then: nothing was started). Loop only.
	trans  hooks.Transition
	vetoed bool

	// absurd is the last absurd epoch logged, per source (api, gossip).
	absurdMu sync.Mutex
	absurd   map[string]uint64

	mu        sync.RWMutex
	snap      snapshot
	published []byte       // last status event, to publish only changes
	meta      cluster.Meta // last meta announced over gossip (loop only)
}

type snapshot struct {
	mode       resilience.Mode
	status     resilience.Status
	epoch      uint64
	since      time.Time
	peer       *api.Peer
	peerHealth bool
	unhealthy  []string
	last       *api.Transition
	holding    bool
	adminHold  bool
	// failoverUntil is the end of a manual HA failover under way;
	// failbackAt when an Active Standby hands back; bootGraceUntil the end
	// of the boot grace (nil: none under way).
	failoverUntil  *time.Time
	failbackAt     *time.Time
	bootGraceUntil *time.Time
	// persistErr: why the last decision could not be persisted ("" when
	// it was); switchover: the switchover that stopped this node and holds
	// it, until it ends.
	persistErr string
	switchover string
	// Auto mode: whether the peer was ever seen over gossip, and the
	// witness as last seen.
	peerInGossip bool
	witness      bool // a witness is configured
	witnessAlive bool
	// A witness: the pair's nodes it sees over gossip, and their roles.
	pairSeen map[string]resilience.Role
	// calls in progress here, when counted (failover.calls).
	calls *int
}

// outcome is how a transition ended, for a waiting admin command.
type outcome struct {
	status resilience.Status
	rec    resilience.Record
}

var errStopped = errors.New("node is shutting down")

// loopState is what the loop runs per mode: ticks and gossip in auto mode,
// the peer poller in manual mode. Loop goroutine only.
type loopState struct {
	ticker     *time.Ticker
	tick       <-chan time.Time
	gossip     <-chan cluster.Event
	pollCancel context.CancelFunc // the peer poller (manual mode) or the calls counter (auto)
}

func (ls *loopState) stop() {
	if ls.ticker != nil {
		ls.ticker.Stop()
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
		ls.ticker = time.NewTicker(n.d.TickEvery)
		ls.tick, ls.gossip = ls.ticker.C, n.d.Membership.Events()
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

// New builds a node; Run starts it.
func New(d Deps) (*Node, error) {
	m, err := resilience.New(d.Core)
	if err != nil {
		return nil, err
	}
	if d.Services == nil || d.Audit == nil || d.DataDir == "" {
		return nil, errors.New("node: services, audit log and data dir are required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.PeerEvery <= 0 {
		d.PeerEvery = 2 * time.Second
	}
	if d.CallsEvery <= 0 {
		d.CallsEvery = 2 * time.Second
	}
	if d.PeerTimeout <= 0 {
		d.PeerTimeout = 2 * time.Second
	}
	if d.UnregisterTimeout <= 0 {
		d.UnregisterTimeout = 5 * time.Second
	}
	if d.IsUnreachable == nil {
		d.IsUnreachable = func(error) bool { return true }
	}
	if d.TickEvery <= 0 {
		d.TickEvery = 50 * time.Millisecond
	}
	if d.ReplWait <= 0 {
		d.ReplWait = 20 * time.Second
	}
	if d.saveState == nil {
		d.saveState = saveState
	}
	if d.probeStore == nil {
		d.probeStore = probeStore
	}
	if d.probeEvery <= 0 {
		d.probeEvery = 2 * time.Second
	}
	if d.Core.Mode == resilience.ModeAuto && d.Membership == nil {
		return nil, errors.New("node: auto mode needs a membership (gossip)")
	}
	n := &Node{
		d:       d,
		log:     d.Logger.With("component", "node"),
		m:       m,
		metrics: newMetrics(d.Registerer),
		msgs:    make(chan any),
		health:  make(chan struct{}, 1),
		ready:   make(chan struct{}),
		stopped: make(chan struct{}),
	}
	n.runsCtx, n.stopRuns = context.WithCancel(context.Background())
	n.snap.status = resilience.Inactive
	n.snap.mode, n.snap.witness = d.Core.Mode, d.Core.Witness
	n.snap.since = time.Now()
	n.hooks = hooks.New(hooks.Options{Hooks: d.Hooks, Logger: d.Logger, Registerer: d.Registerer, OnFailure: n.hookFailed})
	return n, nil
}

// deadline turns ticks left into the instant they end, to the second. It
// keeps cur while that is still within a second of it: recomputed at every
// tick, it would change the status (and send an event) each time.
func (n *Node) deadline(cur *time.Time, ticks int) *time.Time {
	if ticks <= 0 {
		return nil
	}
	at := time.Now().Add(time.Duration(ticks) * n.d.TickEvery).UTC().Truncate(time.Second)
	if cur != nil && at.Sub(*cur).Abs() <= time.Second {
		return cur
	}
	return &at
}

// HealthChanged tells the node the services' health may have changed. It
// never blocks: pass it as the supervisor's change callback.
func (n *Node) HealthChanged() {
	select {
	case n.health <- struct{}{}:
	default:
	}
}

// Ready is closed once the node has booted (decided its first status).
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Run boots the node and serves until ctx is done. Services keep their state
// when Run returns: stopping resman does not stop the telephony.
func (n *Node) Run(ctx context.Context) error {
	defer close(n.stopped)
	// Replication runs asked meanwhile end with the node, and it waits
	// for them: nothing of it goes on writing after Run returns.
	defer n.runs.Wait()
	defer n.stopRuns()
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
	probe := time.NewTicker(n.d.probeEvery)
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-probe.C:
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

// step feeds one event to the core and carries out its actions. Only the
// loop goroutine calls it.
func (n *Node) step(ctx context.Context, ev resilience.Event) error {
	before := n.m.Status()
	acts, err := n.m.Step(ev)
	var work []resilience.Action
	var last resilience.Record
	failedPersist := false
	for i := 0; i < len(acts); i++ {
		switch a := acts[i].(type) {
		case resilience.Persist:
			// Durable before the next action runs; if it cannot be, none
			// of the actions after it run, only what the core answers to
			// PersistFailed.
			if failedPersist {
				n.log.Error("a second decision to persist after a failed one: not persisted", "decision", a.Saved)
				continue
			}
			perr := n.d.saveState(n.statePath(), a.Saved, time.Now())
			if perr == nil {
				continue
			}
			failedPersist = true
			var facts []resilience.Action
			facts, err = n.notDurable(ev, a, perr)
			acts = append(acts[:i+1:i+1], facts...)
		case resilience.Record:
			last = a
			if a.Outcome == resilience.OutcomeFailed && a.From != a.To {
				// A failed transition (not a refusal, not a decision that
				// could not be persisted): the waiters are told its cause.
				n.failure = &a
			}
			id := n.record(a)
			if a.From != a.To && (a.To == resilience.Activating || a.To == resilience.Deactivating) {
				n.trans = n.transition(id, a)
			}
		case resilience.RegisterSIP:
			if n.d.Registrar != nil {
				// The core activates only when the peer is not Active or
				// is outranked: a peer contact still at an MDS is a
				// leftover (a peer killed while Active, or stepping down),
				// to remove once this node is registered.
				if rp, ok := n.d.Registrar.(interface{ RemovePeer() }); ok {
					rp.RemovePeer()
				}
				n.d.Registrar.Activate(a.Epoch)
			}
		case resilience.UnregisterSIP, resilience.StartServices, resilience.StopServices:
			work = append(work, a)
		}
	}
	after := n.m.Status()
	n.observeTiming(before, after, last)
	n.mu.Lock()
	n.snap.status, n.snap.epoch = after, n.m.Epoch()
	n.snap.unhealthy = n.m.Unhealthy()
	n.snap.holding, n.snap.adminHold = n.m.Holding(), n.m.AdminHold()
	n.snap.persistErr, n.snap.switchover = n.m.PersistError(), n.m.Switchover()
	var foStarted *time.Time
	foEnded := false
	switch ft := n.m.FailoverTicks(); {
	case ft == 0:
		foEnded = n.snap.failoverUntil != nil
		n.snap.failoverUntil = nil
	case n.snap.failoverUntil == nil:
		until := time.Now().Add(time.Duration(ft) * n.d.TickEvery).UTC().Truncate(time.Second)
		n.snap.failoverUntil, foStarted = &until, &until
	}
	n.snap.failbackAt = n.deadline(n.snap.failbackAt, n.m.FailbackTicks())
	n.snap.bootGraceUntil = n.deadline(n.snap.bootGraceUntil, n.m.BootGraceTicks())
	if after != before {
		n.snap.since = time.Now()
		cause := last.Cause
		if f := n.failure; f != nil && f.Cause != last.Cause && (after == resilience.Active || after == resilience.Inactive) {
			// The end of a rolled-back start: say what failed, not only
			// that the services stopped.
			cause = f.Cause + "; then " + last.Cause
		}
		n.snap.last = &api.Transition{From: string(before), To: string(after), Cause: cause, At: n.snap.since}
	}
	n.mu.Unlock()
	switch {
	case foStarted != nil:
		n.markFailover(*foStarted)
	case foEnded:
		n.markFailover(time.Time{})
	}
	n.metrics.setStatus(after, n.m.Epoch())
	if before == resilience.Inactive && after != resilience.Inactive && n.d.ReplReceiver != nil {
		// The snapshot says `after`: the receiver refuses from now on.
		// End the transfers begun while Inactive before any service
		// starts: a long run from the old Main must not write here once
		// this node serves calls. Outside n.mu: the receiver's Accept
		// reads the status.
		n.d.ReplReceiver.EndSessions("this node is " + string(after))
	}
	if n.auto() {
		n.announce()
	}
	// The after hooks are queued before the work of a next transition can
	// queue its before hooks: the hooks run in this order.
	if after != before {
		switch after {
		case resilience.Active:
			n.hooks.After(ctx, hooks.AfterActivate, n.trans)
			n.vetoed = false
		case resilience.Inactive:
			if !n.vetoed {
				n.hooks.After(ctx, hooks.AfterDeactivate, n.trans)
			}
			n.vetoed = false
		}
	}
	if len(work) > 0 {
		go n.runWork(ctx, work, n.trans)
	}
	if after != before && (after == resilience.Active || after == resilience.Inactive) {
		if n.failure != nil {
			last = *n.failure
		}
		for _, w := range n.waiters {
			w <- outcome{status: after, rec: last}
		}
		n.waiters, n.failure = nil, nil
	}
	n.publishStatus()
	return err
}

// notDurable reports to the core that the decision p of the Step fed ev
// could not be persisted (perr), and returns the actions the core answers
// with (they replace the rest of the Step's) and the error for an admin
// command, which wraps resilience.ErrNotDurable when the decision was
// taken back. Loop only.
func (n *Node) notDurable(ev resilience.Event, p resilience.Persist, perr error) ([]resilience.Action, error) {
	n.log.Error("cannot persist the decision: not acting on it", "err", perr,
		"decision", fmt.Sprintf("%s (epoch %d)", p.Saved.Status, p.Saved.Epoch), "event", resilience.FormatEvent(ev))
	facts, err := n.m.Step(resilience.PersistFailed{Err: perr.Error()})
	if err == nil && len(facts) == 0 {
		// Nothing to take back, nothing to do: the decision stands, not
		// durable; the caller must still hear of it.
		err = fmt.Errorf("%w: %v", resilience.ErrNotDurable, perr)
	}
	return facts, err
}

// statePath is the file holding the persisted decision.
func (n *Node) statePath() string { return filepath.Join(n.d.DataDir, "state.json") }

func (n *Node) auto() bool { return n.d.Core.Mode == resilience.ModeAuto }

// observeTiming feeds the activation and failover histograms. Loop only.
func (n *Node) observeTiming(before, after resilience.Status, last resilience.Record) {
	now := time.Now()
	switch {
	case before != resilience.Activating && after == resilience.Activating:
		n.activatingAt, n.activatingAction = now, last.Action
	case before == resilience.Activating && after == resilience.Active && !n.activatingAt.IsZero():
		n.metrics.activation.WithLabelValues(n.activatingAction).Observe(now.Sub(n.activatingAt).Seconds())
		if n.activatingAction == "failover" && !n.peerLostAt.IsZero() {
			n.metrics.failover.Observe(now.Sub(n.peerLostAt).Seconds())
		}
	}
}

// announce gossips this node's meta when it changed. Loop goroutine only.
func (n *Node) announce() {
	m := cluster.Meta{
		Name: n.d.Core.Name, Role: string(n.d.Core.Role), Status: string(n.m.Status()), Version: n.d.Version,
		Epoch: n.m.Epoch(), Healthy: len(n.m.Unhealthy()) == 0, Holding: n.m.Holding(), HeldByAdmin: n.m.AdminHold(),
	}
	m.Calls, m.CallsKnown = n.m.Calls()
	n.mu.RLock()
	if u := n.snap.failoverUntil; u != nil {
		m.FailoverUntil = u.Unix()
	}
	n.mu.RUnlock()
	if m.Equal(n.meta) {
		return
	}
	n.meta = m
	n.d.Membership.SetMeta(m)
}

// runWork carries out the long actions of one transition in order, then
// reports the completion to the loop. Before starting the services it runs
// the before_activate hooks: a veto is reported as a failed start, so the
// core rolls back as it does for any failed start.
func (n *Node) runWork(ctx context.Context, work []resilience.Action, t hooks.Transition) {
	for _, a := range work {
		var done resilience.Event
		vetoed := false
		switch a.(type) {
		case resilience.UnregisterSIP:
			if n.d.Registrar != nil {
				uctx, cancel := context.WithTimeout(ctx, n.d.UnregisterTimeout)
				if err := n.d.Registrar.Deactivate(uctx); err != nil {
					// Never blocks the node's own transition.
					n.log.Warn("sip unregistration incomplete", "err", err)
				}
				cancel()
			}
			continue
		case resilience.StartServices:
			if err := n.hooks.Before(ctx, t); err != nil {
				done, vetoed = resilience.ServicesStarted{Err: err.Error()}, true
				break
			}
			done = resilience.ServicesStarted{Err: errText(n.d.Services.Start(ctx))}
		case resilience.StopServices:
			done = resilience.ServicesStopped{Err: errText(n.d.Services.Stop(ctx))}
		}
		select {
		case n.msgs <- workDone{ev: done, vetoed: vetoed}:
		case <-ctx.Done():
		}
	}
}

// transition is what the hooks are told of the transition that the record
// r (with audit ID id) begins.
func (n *Node) transition(id uint64, r resilience.Record) hooks.Transition {
	to := resilience.Active
	if r.To == resilience.Deactivating {
		to = resilience.Inactive
	}
	tid := strconv.FormatUint(id, 10)
	if id == 0 { // the audit log could not take the entry
		tid = fmt.Sprintf("%d-%d", r.Epoch, time.Now().UnixNano())
	}
	return hooks.Transition{ID: tid, Node: n.d.Core.Name, Role: string(n.d.Core.Role), Mode: string(n.d.Core.Mode),
		From: string(r.From), To: string(to), Epoch: r.Epoch, Cause: r.Cause}
}

// hookFailed audits an after hook that failed; the status stays as it is.
func (n *Node) hookFailed(p hooks.Phase, t hooks.Transition, f *hooks.Failure) {
	s := n.Status()
	detail := f.Status
	if f.Output != "" {
		detail += "; output: " + f.Output
	}
	n.record(resilience.Record{Who: resilience.Self, Action: "hook", Outcome: resilience.OutcomeFailed,
		Cause:  fmt.Sprintf("%s hook %s failed (transition %s: %s -> %s, epoch %d)", p, f.Hook, t.ID, t.From, t.To, t.Epoch),
		Detail: detail, Epoch: s.Epoch, From: resilience.Status(s.Status), To: resilience.Status(s.Status)})
}

// SetHooks replaces the hooks (a config reload): the next transitions run
// the new ones. Safe from any goroutine.
func (n *Node) SetHooks(s hooks.Set) { n.hooks.SetHooks(s) }

// record writes r to the audit log and returns its ID, 0 when it could
// not be written.
func (n *Node) record(r resilience.Record) uint64 {
	e, err := n.d.Audit.Append(api.AuditEntry{
		Who: r.Who, Action: r.Action, Reason: r.Reason, Cause: r.Cause, Outcome: r.Outcome,
		Detail: r.Detail, Epoch: r.Epoch, From: string(r.From), To: string(r.To),
	})
	if err != nil {
		n.log.Error("cannot write the audit log", "err", err, "action", r.Action, "who", r.Who)
		return 0
	}
	if r.From != r.To {
		n.metrics.transitions.WithLabelValues(string(r.From), string(r.To), r.Outcome).Inc()
	}
	n.log.Info("audit", "who", r.Who, "action", r.Action, "outcome", r.Outcome, "from", r.From, "to", r.To,
		"epoch", r.Epoch, "cause", r.Cause, "reason", r.Reason)
	n.hub.publish(api.Event{Name: api.EventAudit, Data: e})
	return e.ID
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
