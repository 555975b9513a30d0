package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/resilience/fleet"
	"github.com/resman-pbx/resman/resilience/node"
	"github.com/resman-pbx/resman/resilience/web"
)

// Options are the optional parts of an agent.
type Options struct {
	// Logger receives the parts' logs. Default: slog.Default().
	Logger *slog.Logger
	// Reset: resman run --reset (see node.CheckStores).
	Reset bool
	// Ready, when set, is called once the API listens and the node (if
	// any) has booted: resman run tells systemd READY=1 there.
	Ready func()
	// Events, when set, receives what happens (see Event), one call at a
	// time, from the agent's goroutines: it must not block for long.
	Events func(Event)
	// LogLevel, when set, is the level of Logger's handler: a reload
	// then applies a new log.level to it. Without it, log.level is
	// restart-only, like log.format.
	LogLevel *slog.LevelVar
}

// EventKind says what happened.
type EventKind string

// The events an agent reports.
const (
	// Started: the API listens (Event.Addr) and the node, if any, has
	// booted. Reported once, just before Options.Ready is called.
	Started EventKind = "started"
	// Reloaded: a reload applied the changes in Event.Applied (node.mode,
	// failover, hooks, gossip keys, log.level, fleet.pairs; empty if the
	// file changed nothing of those) and left out those in
	// Event.NeedRestart (the sections, or fleet.* keys, that only a
	// restart applies; the logs and a node's audit log say so too).
	Reloaded EventKind = "reloaded"
	// ReloadRefused: a reload applied nothing (Event.Err says why: the
	// file does not load or validate, its fleet pairs have problems, or
	// the node refused the new mode); the last good config stays in force.
	ReloadRefused EventKind = "reload refused"
	// PartFailed: a part (Event.Part: api, node, services, xds,
	// replication, cc, edge, fleet) stopped with Event.Err while the
	// agent ran; the agent stops every other part and Run returns Err.
	PartFailed EventKind = "part failed"
	// Stopped: every part has stopped and what the agent held is closed;
	// Event.Err is what Run returns. The last event.
	Stopped EventKind = "stopped"
)

// Event is one thing that happened to an agent.
type Event struct {
	Kind        EventKind
	Addr        string   // Started: the API's listen address
	Part        string   // PartFailed
	Applied     []string // Reloaded
	NeedRestart []string // Reloaded, ReloadRefused
	Err         error    // PartFailed, ReloadRefused, Stopped
}

// Errors of New and Reload.
var (
	// ErrNothingToRun: the config has no node, cc, edge or fleet section.
	ErrNothingToRun = errors.New("nothing to run: the file configures no node, cc, edge or fleet")
	// ErrNoNode: Reload on an agent with neither a node nor a fleet
	// aggregator (only they reload: a CC- or Edge-only agent does not).
	ErrNoNode = errors.New("no node to reload: the file configures no node")
	// ErrNotRunning: Reload after Run has returned.
	ErrNotRunning = errors.New("the agent is not running")
)

// part is one of the agent's parts: it runs until ctx is done, and an
// error from one stops all.
type part struct {
	name string
	run  func(context.Context) error
}

// Agent is what one config file configures, built and ready to run: a
// node, the CC follower, the Edge and the fleet aggregator, whose APIs
// share one listener.
type Agent struct {
	cfg    *config.Config
	opts   Options
	logger *slog.Logger

	node  *nodeParts        // nil without a node section
	fleet *fleet.Aggregator // nil without a fleet section
	parts []part
	srv   *web.Server
	ln    net.Listener

	cleanups  []func() // in the order of building; Close runs them backwards
	closeOnce sync.Once

	reloads chan reloadRequest
	stopped chan struct{} // closed when Run returns

	emitMu sync.Mutex
}

type reloadRequest struct {
	path string
	done chan error
}

// New builds the parts cfg configures and opens the API's listener
// (api.listen); nothing runs until Run. On error, what was built is
// closed again. An agent that is never Run must be Closed.
func New(cfg *config.Config, opts Options) (*Agent, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &Agent{cfg: cfg, opts: opts, logger: opts.Logger, reloads: make(chan reloadRequest), stopped: make(chan struct{})}
	if err := a.build(); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// build builds the parts and opens the listener.
func (a *Agent) build() error {
	cfg, opts, logger := a.cfg, a.opts, a.logger

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var nodeMounts []web.Mount
	var n *node.Node
	if cfg.Node != nil {
		if err := node.CheckStores(cfg.Node.DataDir, opts.Reset, logger); err != nil {
			return err
		}
		parts, err := buildNode(cfg, logger, reg)
		if err != nil {
			return err
		}
		a.cleanups = append(a.cleanups, parts.close)
		a.node, n = parts, parts.node
		a.parts = append(a.parts, parts.runners...)
		nodeMounts = parts.mounts
	}
	f, err := buildFollowers(cfg, logger, reg)
	if err != nil {
		return err
	}
	a.cleanups = append(a.cleanups, f.cleanup)
	a.parts = append(a.parts, f.runners...)
	a.fleet = f.fleet
	if a.node != nil || a.fleet != nil {
		a.parts = append(a.parts, part{"reload", a.reloadLoop})
	}
	mounts := append(nodeMounts, f.mounts...)
	if len(a.parts) == 0 {
		return ErrNothingToRun
	}

	var webNode web.Node
	if n != nil {
		webNode = n
	}
	a.srv = web.New(webNode, web.Options{Token: cfg.API.Token, ReadTokens: cfg.API.ReadTokens, Users: cfg.API.Users, TrustedProxies: cfg.API.TrustedProxyPrefixes(), Gatherer: reg, Registerer: reg, Logger: logger, Mounts: mounts})
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("api.listen %s: %w", cfg.API.Listen, err)
	}
	a.ln = ln
	return nil
}

// Addr is the address the API listens on.
func (a *Agent) Addr() net.Addr { return a.ln.Addr() }

// Run runs every part until ctx is done or a part fails, then shuts the
// API down, waits for every part to stop, and closes what the agent
// holds. It returns the first part's error, or nil when ctx ended. Run
// once.
func (a *Agent) Run(ctx context.Context) (err error) {
	defer func() {
		close(a.stopped)
		a.Close()
		a.emit(Event{Kind: Stopped, Err: err})
	}()
	g, gctx := errgroup.WithContext(ctx)
	run := func(p part) {
		g.Go(func() error {
			if err := p.run(gctx); err != nil && gctx.Err() == nil {
				a.emit(Event{Kind: PartFailed, Part: p.name, Err: err})
				return err
			}
			return nil
		})
	}
	for _, p := range a.parts {
		run(p)
	}
	run(part{"api", func(context.Context) error {
		if err := a.srv.Serve(a.ln); err != nil {
			return fmt.Errorf("api: %w", err)
		}
		return nil
	}})
	if a.node != nil {
		select {
		case <-a.node.node.Ready():
		case <-gctx.Done():
		}
	}
	if gctx.Err() == nil {
		a.logger.Info("serving", "component", "api", "listen", a.ln.Addr().String())
		a.emit(Event{Kind: Started, Addr: a.ln.Addr().String()})
		if a.opts.Ready != nil {
			a.opts.Ready()
		}
	}
	<-gctx.Done()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := a.srv.Shutdown(sctx); err != nil {
		a.logger.Warn("api shutdown", "component", "api", "err", err)
	}
	return g.Wait()
}

// Close closes what the agent holds (the audit log, the gossip layer, the
// followers' stores, the listener). Run does it on return; call it only
// for an agent that is never Run. It is safe to call more than once.
func (a *Agent) Close() {
	a.closeOnce.Do(func() {
		if a.ln != nil {
			a.ln.Close()
		}
		for i := len(a.cleanups) - 1; i >= 0; i-- {
			a.cleanups[i]()
		}
	})
}

// Reload re-reads the config file at path and applies what may change at
// run time, by the policy of reload: the node's mode, the failover
// settings, the hooks and the gossip keys, the fleet aggregator's pairs,
// and log.level; other changes need a restart and are only reported. It
// waits for Run to take it (reloads are applied one at a time, never
// after the parts stopped) and returns nil when the reload was applied,
// even in part, or why nothing was. The event sink gets Reloaded or
// ReloadRefused; the logs (and a node's audit log) say the same. An
// agent with neither a node nor a fleet aggregator has nothing to reload
// (ErrNoNode).
func (a *Agent) Reload(path string) error {
	if a.node == nil && a.fleet == nil {
		return ErrNoNode
	}
	req := reloadRequest{path: path, done: make(chan error, 1)}
	select {
	case a.reloads <- req:
	case <-a.stopped:
		return ErrNotRunning
	}
	return <-req.done
}

// reloadLoop is the part that applies reloads, one at a time, with the
// config in force.
func (a *Agent) reloadLoop(ctx context.Context) error {
	current := a.cfg
	for {
		select {
		case <-ctx.Done():
			return nil
		case req := <-a.reloads:
			next, applied, needRestart, err := a.reload(ctx, req.path, current)
			if err != nil {
				a.emit(Event{Kind: ReloadRefused, NeedRestart: needRestart, Err: err})
			} else {
				a.emit(Event{Kind: Reloaded, Applied: applied, NeedRestart: needRestart})
			}
			current = next
			req.done <- err
		}
	}
}

func (a *Agent) emit(ev Event) {
	if a.opts.Events == nil {
		return
	}
	a.emitMu.Lock()
	defer a.emitMu.Unlock()
	a.opts.Events(ev)
}
