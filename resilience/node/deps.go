package node

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/hooks"
	"github.com/resman-pbx/resman/resilience/replication"
)

// Deps: what a node is built from, and the interfaces it drives.

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
	// clock is where the node reads the time and gets its tickers and
	// timers (tests pass testkit.FakeClock); default: the real one.
	clock clock
}

// clock is the node's source of time: its readings, ticks and timers.
// NewTicker and NewTimer behave as the time package's (a ticker drops the
// ticks its reader misses); their stop functions are Ticker.Stop and
// Timer.Stop. The bounds of I/O (context deadlines) stay on real time.
type clock interface {
	Now() time.Time
	NewTicker(d time.Duration) (ticks <-chan time.Time, stop func())
	NewTimer(d time.Duration) (fire <-chan time.Time, stop func() bool)
}

// realClock is the time package.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

func (realClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// setDefaults fills in what was left unset: the timings, a discarding
// logger, the real state file and store probe, and the real clock.
func (d *Deps) setDefaults() {
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
	if d.clock == nil {
		d.clock = realClock{}
	}
}
