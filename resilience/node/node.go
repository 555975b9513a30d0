// Package node is the runtime around the decision core: it owns the
// goroutines, feeds the core events (admin commands, peer views, health,
// completions) and carries its actions out through small interfaces
// (services, SIP registrar, state file, audit log). One goroutine owns the
// core; everything else talks to it through messages.
package node

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/hooks"
)

// Node is a running PBX node. Its exported methods are safe for concurrent
// use; they implement the web package's Node interface.
type Node struct {
	d   Deps
	log *slog.Logger
	// switchover: the steps of the switchover run here (switchover.go).
	switchover switchoverProgress
	// auditErr is why the last audit write failed; nil once one succeeds
	// (record, from any goroutine).
	auditErr atomic.Pointer[string]
	m        *resilience.Machine // owned by the loop goroutine
	metrics  *metrics
	hub      hub
	msgs     chan any
	health   chan struct{}
	ready    chan struct{} // closed once Boot has been stepped
	stopped  chan struct{} // closed when Run returns
	// runs: the admin-asked replication run, which outlives the request
	// but not the node: Run cancels it and waits for it (replication.go).
	// runsMu guards asked, the run under way (at most one), and the start
	// of a run against the end of Run.
	runs     sync.WaitGroup
	runsCtx  context.Context
	stopRuns context.CancelFunc
	runsMu   sync.Mutex
	asked    *askedRun

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

var errStopped = resilience.ErrStopping

// now is the node's clock's time (Deps.clock).
func (n *Node) now() time.Time { return n.d.clock.Now() }

// New builds a node; Run starts it.
func New(d Deps) (*Node, error) {
	m, err := resilience.New(d.Core)
	if err != nil {
		return nil, err
	}
	if d.Services == nil || d.Audit == nil || d.DataDir == "" {
		return nil, errors.New("node: services, audit log and data dir are required")
	}
	d.setDefaults()
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
	n.snap.since = n.now()
	n.switchover.now = d.clock.Now
	n.switchover.load(filepath.Join(d.DataDir, switchoverName), n.log)
	n.hooks = hooks.New(hooks.Options{Hooks: d.Hooks, Logger: d.Logger, Registerer: d.Registerer, OnFailure: n.hookFailed})
	return n, nil
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

// statePath is the file holding the persisted decision.
func (n *Node) statePath() string { return filepath.Join(n.d.DataDir, "state.json") }

func (n *Node) auto() bool { return n.d.Core.Mode == resilience.ModeAuto }
