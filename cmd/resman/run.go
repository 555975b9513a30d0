package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	osuser "os/user"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/audit"
	"github.com/resman-pbx/resman/resilience/client"
	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/echo"
	"github.com/resman-pbx/resman/resilience/hooks"
	"github.com/resman-pbx/resman/resilience/node"
	"github.com/resman-pbx/resman/resilience/replication"
	"github.com/resman-pbx/resman/resilience/web"
	"github.com/resman-pbx/resman/services"
	"github.com/resman-pbx/resman/xds"
)

func newRunCmd() *cobra.Command {
	var file string
	var reset bool
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run every component the config file configures",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErr("--config is required")
			}
			cfg, err := config.Load(file)
			if err == nil {
				// Placeholders from the examples, or weak secrets: the
				// node would run, open to anyone who read the docs.
				err = cfg.RequireStrongSecrets(file)
			}
			if err != nil {
				return withCode(exitUsage, err)
			}
			logger := newLogger(os.Stderr, cfg.Log)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			return runComponents(ctx, cfg, logger, runOptions{
				configPath: file, reload: hup, reset: reset,
				ready: func() { notifySystemd("READY=1") },
			})
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "config file (YAML)")
	cmd.Flags().BoolVar(&reset, "reset", false, "start although a store in node.data_dir is damaged, or empty or missing next to the other's history: set a damaged file aside, start a new audit.db or rebuild state.json Inactive at the highest epoch either store shows (never lower), and audit the reset; once, by hand (docs/troubleshooting.md)")
	return cmd
}

// newLogger builds the process logger from the log section.
func newLogger(w io.Writer, lc config.Log) *slog.Logger {
	var level slog.Level
	switch lc.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if lc.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	routeSIPLogs(h)
	return slog.New(h)
}

// runOptions are the optional parts of runComponents.
type runOptions struct {
	// ready, when set, is called once the API listens and the node (if
	// any) has booted.
	ready func()
	// configPath and reload: each value on reload re-reads the file and
	// applies what can change at run time (see reloadNode).
	configPath string
	reload     <-chan os.Signal
	// reset: resman run --reset (see node.CheckStores).
	reset bool
}

// runComponents runs what cfg configures until ctx is done: a node, and
// the CC follower and Edge (followers.go) whose APIs share the listener.
func runComponents(ctx context.Context, cfg *config.Config, logger *slog.Logger, opts runOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Each runner runs until ctx is done; an error from one stops all.
	var runners []func(context.Context) error
	var booted <-chan struct{}
	var n *node.Node
	var nodeMounts []web.Mount
	if cfg.Node != nil {
		if err := node.CheckStores(cfg.Node.DataDir, opts.reset, logger); err != nil {
			return err
		}
		parts, err := buildNode(cfg, logger, reg)
		if err != nil {
			return err
		}
		defer parts.close()
		n = parts.node
		booted = n.Ready()
		runners = append(runners, parts.runners...)
		nodeMounts = parts.mounts
		if opts.reload != nil {
			runners = append(runners, func(ctx context.Context) error {
				current := cfg
				for {
					select {
					case <-ctx.Done():
						return nil
					case <-opts.reload:
						current = reloadNode(ctx, opts.configPath, current, parts, logger)
					}
				}
			})
		}
	}
	mounts, more, closeFollowers, err := buildFollowers(cfg, logger, reg)
	if err != nil {
		return err
	}
	defer closeFollowers()
	runners = append(runners, more...)
	mounts = append(nodeMounts, mounts...)
	if len(runners) == 0 {
		return withCode(exitUsage, errors.New("nothing to run: the file configures no node, cc, edge or fleet"))
	}

	var webNode web.Node
	if n != nil {
		webNode = n
	}
	srv := web.New(webNode, web.Options{Token: cfg.API.Token, ReadTokens: cfg.API.ReadTokens, Users: cfg.API.Users, TrustedProxies: cfg.API.TrustedProxyPrefixes(), Gatherer: reg, Registerer: reg, Logger: logger, Mounts: mounts})
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("api.listen %s: %w", cfg.API.Listen, err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, len(runners)+1)
	run := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errs <- err
				cancel()
			}
		}()
	}
	for _, r := range runners {
		run(r)
	}
	run(func(context.Context) error {
		if err := srv.Serve(ln); err != nil {
			return fmt.Errorf("api: %w", err)
		}
		return nil
	})
	if booted != nil {
		select {
		case <-booted:
		case <-ctx.Done():
		}
	}
	if ctx.Err() == nil {
		logger.Info("serving", "component", "api", "listen", ln.Addr().String())
		if opts.ready != nil {
			opts.ready()
		}
	}
	<-ctx.Done()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("api shutdown", "component", "api", "err", err)
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// nodeParts is a node wired from its config, with the runners of its parts.
type nodeParts struct {
	node    *node.Node
	runners []func(context.Context) error
	mounts  []web.Mount
	close   func()
	gossip  gossipSwitch
}

// gossipSwitch starts and stops the gossip layer, which runs in auto mode
// only (manual mode has no heartbeat at all): at start, and when a reload
// switches the mode.
type gossipSwitch struct {
	logger *slog.Logger
	reg    prometheus.Registerer
	// self is what the second path answers with: this node's status.
	self func() echo.Meta
	mu   sync.Mutex
	cl   *cluster.Cluster
	echo *echo.Echo // nil with failover.confirm off
	stop context.CancelFunc
	done chan struct{}
}

// start creates the cluster from cfg and runs it until stop or ctx ends.
func (g *gossipSwitch) start(ctx context.Context, cfg *config.Config) (*cluster.Cluster, error) {
	key, extra, err := cfg.GossipKeys()
	if err != nil {
		return nil, err
	}
	gc, nc := cfg.Gossip, cfg.Node
	cl, err := cluster.New(cluster.Options{
		Name: nc.Name, Bind: gc.Bind, Key: key, ExtraKeys: extra, Join: gc.Join,
		ProbeInterval: gc.ProbeInterval, ProbeTimeout: gc.ProbeTimeout, SuspicionMult: gc.SuspicionMult,
		RejoinInterval: gc.RejoinInterval, Logger: g.logger, Registerer: g.reg, Expected: expectedMembers(cfg),
	}, cluster.Meta{Name: nc.Name, Role: nc.Role, Status: string(resilience.Inactive), Version: nc.Version, Healthy: true})
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	var ec *echo.Echo
	if fc := cfg.Failover.Confirm; fc.On() && cfg.Peer != nil {
		ec, err = echo.New(echo.Options{
			Name: nc.Name, PeerName: cfg.Peer.Name, Listen: fc.Listen, Peer: fc.Peer,
			Every: fc.Every, Window: fc.Window, Keys: echo.NewKeys(key, extra), Vouch: echo.NewVouchKey(cfg.API.Token),
			Self: g.self, Logger: g.logger, Registerer: g.reg,
		})
		if err != nil {
			cl.Shutdown()
			return nil, fmt.Errorf("failover.confirm: %w", err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		if ec != nil {
			wg.Add(1)
			go func() { defer wg.Done(); ec.Run(cctx) }()
		}
		if err := cl.Run(cctx); err != nil {
			g.logger.Error("gossip stopped", "component", "cluster", "err", err)
		}
		wg.Wait()
	}()
	g.mu.Lock()
	g.cl, g.echo, g.stop, g.done = cl, ec, cancel, done
	g.mu.Unlock()
	return cl, nil
}

// secondPath is the second path running now, or nil.
func (g *gossipSwitch) secondPath() node.SecondPath {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.echo == nil {
		return nil
	}
	return g.echo
}

// setEchoKeys gives the second path the gossip keys in force.
func (g *gossipSwitch) setEchoKeys(primary []byte, extra [][]byte) {
	g.mu.Lock()
	ec := g.echo
	g.mu.Unlock()
	if ec != nil {
		ec.SetKeys(echo.NewKeys(primary, extra))
	}
}

// running is the cluster, or nil in manual mode.
func (g *gossipSwitch) running() *cluster.Cluster {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cl
}

// shutdown leaves the cluster and waits for it to stop.
func (g *gossipSwitch) shutdown() {
	g.mu.Lock()
	stop, done := g.stop, g.done
	g.cl, g.echo, g.stop, g.done = nil, nil, nil, nil
	g.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// buildNode wires a node from its config: services supervisor, SIP
// registrar (XDS), gossip (auto mode), peer client, audit log, runtime.
func buildNode(cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer) (*nodeParts, error) {
	nc := cfg.Node
	if err := os.MkdirAll(nc.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("node.data_dir: %w", err)
	}
	al, err := audit.Open(filepath.Join(nc.DataDir, "audit.db"))
	if err != nil {
		return nil, err
	}
	p := &nodeParts{close: func() { al.Close() }}
	p.gossip = gossipSwitch{logger: logger, reg: reg}
	// The parts' change callbacks need the node, which needs the parts:
	// the pointer is filled once all exist.
	var nodeRef atomic.Pointer[node.Node]
	p.gossip.self = func() echo.Meta {
		n := nodeRef.Load()
		if n == nil {
			return echo.Meta{Status: string(resilience.Inactive)}
		}
		var m echo.Meta
		m.Status, m.Epoch, m.Healthy, m.Holding = n.Brief()
		return m
	}
	fail := func(err error) (*nodeParts, error) { al.Close(); return nil, err }

	sup, err := services.New(cfg.Services, services.Options{
		Logger:     logger,
		Registerer: reg,
		OnChange: func() {
			if n := nodeRef.Load(); n != nil {
				n.HealthChanged()
			}
		},
	})
	if err != nil {
		return fail(err)
	}
	p.runners = append(p.runners, func(ctx context.Context) error { sup.Run(ctx); return nil })

	d := node.Deps{
		Core:       coreConfig(cfg),
		Version:    nc.Version,
		Services:   sup,
		Audit:      al,
		DataDir:    nc.DataDir,
		Logger:     logger,
		Registerer: reg,
		TickEvery:  coreTick,
		Hooks:      hookSet(cfg.Hooks),
	}

	if cfg.XDS != nil {
		host, _ := os.Hostname()
		var tlsNames map[string]string
		for _, m := range cfg.XDS.MDS {
			if m.TLSServerName != "" {
				if tlsNames == nil {
					tlsNames = map[string]string{}
				}
				tlsNames[m.Name] = m.TLSServerName
			}
		}
		sipReg, err := xds.New(*cfg.XDS, xds.Options{
			Logger:           logger,
			Registerer:       reg,
			Hostname:         host,
			PeerContact:      cfg.XDS.PeerContact,
			SourceAddress:    cfg.XDS.SourceAddress,
			OutboundProxy:    cfg.XDS.OutboundProxy,
			TLSCAFile:        cfg.XDS.TLSCAFile,
			TLSServerNames:   tlsNames,
			UnregisterOnStop: cfg.XDS.UnregisterOnStop,
			ContactEpoch:     cfg.XDS.ContactEpoch,
			OnEvent: func(ev xds.Event) {
				if n := nodeRef.Load(); n != nil {
					noteXDS(n, ev)
				}
			},
		})
		if err != nil {
			return fail(fmt.Errorf("xds: %w", err))
		}
		d.Registrar = sipReg
		p.runners = append(p.runners, func(ctx context.Context) error {
			if err := sipReg.Run(ctx); err != nil {
				return fmt.Errorf("xds: %w", err)
			}
			return nil
		})
	}

	if nc.Mode == config.ModeAuto {
		// The gossip layer lives as long as the process, or until a reload
		// switches to manual mode.
		cl, err := p.gossip.start(context.Background(), cfg)
		if err != nil {
			return fail(err)
		}
		d.Membership = cl
		d.SecondPath = p.gossip.secondPath
		closeAudit := p.close
		p.close = func() { p.gossip.shutdown(); closeAudit() }
	}

	if dc := cfg.Switchover.Drain; dc != nil {
		d.Drain = drainCheck(*dc)
	}
	if cc := cfg.Failover.Calls; cc != nil {
		d.CountCalls, d.CallsEvery = callsCounter(cc.Exec), cc.Interval
	}

	if len(cfg.Replication) > 0 && cfg.Peer != nil {
		if err := wireReplication(cfg, &d, p, &nodeRef, logger, reg); err != nil {
			return fail(err)
		}
	}

	if cfg.Peer != nil {
		// Status polls carry peer.timeout in their context; commands forwarded
		// to the peer (the page, a switchover) wait for its transition.
		d.Peer = client.New(cfg.Peer.API, cfg.API.Token, client.WithTimeout(2*time.Minute), client.WithActor(nc.Name))
		d.PeerName, d.PeerURL = cfg.Peer.Name, cfg.Peer.API
		d.PeerEvery = cfg.Peer.CheckInterval
		d.PeerTimeout = cfg.Peer.Timeout
		d.IsUnreachable = func(err error) bool { return errors.Is(err, client.ErrUnreachable) }
	}
	n, err := node.New(d)
	if err != nil {
		return fail(err)
	}
	nodeRef.Store(n)
	p.node = n
	p.runners = append(p.runners, func(ctx context.Context) error {
		if err := n.Run(ctx); err != nil {
			return fmt.Errorf("node: %w", err)
		}
		return nil
	})
	return p, nil
}

// drainCheck runs the configured drain command every interval until it
// exits 0 (no active call) or the timeout passes.
func drainCheck(dc config.Drain) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, dc.Timeout)
		defer cancel()
		var last string
		for {
			cctx, ccancel := context.WithTimeout(ctx, dc.Interval)
			out, err := exec.CommandContext(cctx, dc.Exec[0], dc.Exec[1:]...).CombinedOutput()
			ccancel()
			if err == nil {
				return nil
			}
			last = strings.TrimSpace(string(out))
			if len(last) > 200 {
				last = last[len(last)-200:]
			}
			if last == "" {
				last = err.Error()
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("not drained after %s (last check: %s)", dc.Timeout, last)
			case <-time.After(dc.Interval):
			}
		}
	}
}

// callsCounter runs argv and reads the calls in progress from its output
// (see parseCalls).
func callsCounter(argv []string) func(ctx context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
		if err != nil {
			return 0, fmt.Errorf("failover.calls.exec: %w", err)
		}
		return parseCalls(string(out))
	}
}

var (
	activeCallsRE = regexp.MustCompile(`(\d+)\s+active\s+calls?\b`)
	firstNumberRE = regexp.MustCompile(`\d+`)
)

// parseCalls reads a count of calls: the number before "active call(s)"
// (Asterisk's `core show calls`), else the first number of out.
func parseCalls(out string) (int, error) {
	m := activeCallsRE.FindStringSubmatch(out)
	if m == nil {
		m = firstNumberRE.FindStringSubmatch(out)
	}
	if m == nil {
		return 0, fmt.Errorf("failover.calls.exec printed no number: %q", strings.TrimSpace(out))
	}
	n, err := strconv.Atoi(m[len(m)-1])
	if err != nil || n > 1_000_000 {
		return 0, fmt.Errorf("failover.calls.exec printed %q: not a count of calls", m[len(m)-1])
	}
	return n, nil
}

// wireReplication builds both sides of replication: the jobs run from
// this node while it is Active (toward the peer), and the receiver takes
// them while it is not, so data flows from whichever side serves calls.
func wireReplication(cfg *config.Config, d *node.Deps, p *nodeParts, nodeRef *atomic.Pointer[node.Node], logger *slog.Logger, reg prometheus.Registerer) error {
	jobs := replicationJobs(cfg.Replication)
	dir := filepath.Join(cfg.Node.DataDir, "replication")
	runner, err := replication.New(replication.Options{
		Jobs: jobs, PeerURL: cfg.Peer.API, Token: cfg.API.Token, DataDir: dir, Logger: logger, Registerer: reg,
		OnResult: func(r replication.Result) {
			if n := nodeRef.Load(); n != nil {
				outcome, cause := resilience.OutcomeOK, fmt.Sprintf("%s job %s (%s) took %s", r.Trigger, r.Job, r.Kind, r.Duration.Round(time.Millisecond))
				if !r.OK {
					outcome = resilience.OutcomeFailed
				}
				n.Note("replication", outcome, cause, r.Error)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("replication: %w", err)
	}
	recv, err := replication.NewReceiver(replication.ReceiverOptions{
		Jobs: jobs, Token: cfg.API.Token, DataDir: dir, Logger: logger, Registerer: reg,
		Accept: func() error {
			n := nodeRef.Load()
			if n == nil {
				return errors.New("node not started")
			}
			if st := n.Active(); st.Status == string(resilience.Active) || st.Status == string(resilience.Activating) {
				return fmt.Errorf("this node is %s: it does not take replication (it would overwrite what serves calls)", st.Status)
			}
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("replication: %w", err)
	}
	d.ReplSender, d.ReplReceiver = runner, recv
	p.mounts = append(p.mounts, web.Mount{Prefix: replication.Prefix, Handler: recv.Handler()})
	p.runners = append(p.runners, func(ctx context.Context) error {
		runner.Schedule(ctx, func() bool {
			n := nodeRef.Load()
			return n != nil && n.Active().Status == string(resilience.Active)
		})
		return nil
	})
	return nil
}

// replicationJobs maps the config's jobs onto the replication package's.
func replicationJobs(rs []config.Replication) []replication.Job {
	var jobs []replication.Job
	for _, r := range rs {
		j := replication.Job{Name: r.Name, Run: r.Run, Every: r.Every, MaxAge: r.MaxAge, Timeout: r.Timeout}
		if f := r.Files; f != nil {
			j.Kind, j.Delete = replication.KindFiles, f.Delete
			j.Limits = replication.Limits{MaxFiles: f.MaxFiles, MaxFileSize: int64(f.MaxFileMiB) << 20, MaxTotalSize: int64(f.MaxTotalMiB) << 20}
			for _, root := range f.Roots {
				j.Roots = append(j.Roots, replication.Root{Name: root.Name, Path: root.Path})
			}
		} else {
			j.Kind = replication.KindExec
		}
		jobs = append(jobs, j)
	}
	return jobs
}

// hookSet maps the config's hooks onto the hooks package's.
func hookSet(h config.Hooks) hooks.Set {
	conv := func(hs []config.Hook) []hooks.Hook {
		var out []hooks.Hook
		for _, x := range hs {
			out = append(out, hooks.Hook{Name: x.Name, Run: x.Run, Timeout: x.Timeout})
		}
		return out
	}
	return hooks.Set{BeforeActivate: conv(h.BeforeActivate), AfterActivate: conv(h.AfterActivate), AfterDeactivate: conv(h.AfterDeactivate)}
}

// coreTick is the length of one tick of the decision core in auto mode.
const coreTick = 50 * time.Millisecond

// coreConfig is what the decision core needs of a node's config.
func coreConfig(cfg *config.Config) resilience.Config {
	nc := cfg.Node
	return resilience.Config{
		Name: nc.Name, Role: resilience.Role(nc.Role), Mode: resilience.Mode(nc.Mode),
		LostTicks:         ticks(cfg.Failover.LostAfter, coreTick),
		FailbackAuto:      cfg.Failover.Failback != config.FailbackManual,
		FailbackHoldTicks: ticks(cfg.Failover.FailbackHold, coreTick),
		BootGraceTicks:    graceTicks(cfg.Failover.BootGrace, coreTick),
		Witness:           cfg.Failover.Witness != "",
		Tick:              coreTick,
	}
}

// graceTicks converts failover.boot_grace to core ticks: 0 is no grace at
// all, anything else at least one tick.
func graceTicks(d, tick time.Duration) int {
	if d <= 0 {
		return 0
	}
	return ticks(d, tick)
}

// reloadNode re-reads the config file and applies what may change at run
// time: node.mode (starting or stopping the heartbeat), the failover
// settings, the hooks (for the transitions from then on) and the gossip
// keys (gossip.key and gossip.extra_keys, into the running keyring: a key
// rotation). A file that does not load or validate changes nothing (it may
// be half-written); other changes are reported as needing a restart. It
// returns the config now in force.
func reloadNode(ctx context.Context, path string, cur *config.Config, p *nodeParts, logger *slog.Logger) *config.Config {
	const who = "resman (config reload)"
	next, err := config.Load(path)
	if err == nil {
		err = next.RequireStrongSecrets(path)
	}
	if err != nil {
		logger.Error("config reload refused: keeping the last good config", "component", "node", "err", err)
		p.node.Note("reload config", resilience.OutcomeFailed,
			"the file does not load or validate, or holds placeholder or weak secrets: kept the last good config", err.Error())
		return cur
	}
	if others := restartOnlyChanges(cur, next); len(others) > 0 {
		p.node.Note("reload config", resilience.OutcomeFailed, "these changes need a restart and were not applied: "+
			strings.Join(others, ", "), "")
	}
	wantAuto := next.Node.Mode == config.ModeAuto
	var m node.Membership
	started := false
	switch cl := p.gossip.running(); {
	case wantAuto && cl != nil:
		m = cl
	case wantAuto:
		cl, err := p.gossip.start(context.Background(), next)
		if err != nil {
			p.node.Note("reload config", resilience.OutcomeFailed, "cannot start the heartbeat: kept the last good config", err.Error())
			return cur
		}
		m, started = cl, true
	}
	if err := p.node.Reconfigure(ctx, who, coreConfig(next), m); err != nil {
		if started {
			p.gossip.shutdown()
		}
		logger.Error("config reload refused", "component", "node", "err", err)
		return cur
	}
	if !wantAuto {
		p.gossip.shutdown()
	}
	// A heartbeat just started has the new keys already.
	keysInForce := next.Gossip
	if !started && !gossipKeysEqual(cur.Gossip, next.Gossip) {
		var cl *cluster.Cluster
		if wantAuto {
			cl = p.gossip.running()
		}
		if !applyGossipKeys(p.node, cl, next) {
			keysInForce = cur.Gossip
		} else if primary, extra, err := next.GossipKeys(); err == nil {
			p.gossip.setEchoKeys(primary, extra)
		}
	}
	if !reflect.DeepEqual(cur.Hooks, next.Hooks) {
		p.node.SetHooks(hookSet(next.Hooks))
		h := next.Hooks
		p.node.Note("reload config", resilience.OutcomeOK, fmt.Sprintf(
			"hooks replaced for the next transitions: %d before_activate, %d after_activate, %d after_deactivate",
			len(h.BeforeActivate), len(h.AfterActivate), len(h.AfterDeactivate)), "")
	}
	applied := *cur
	nodeCopy := *cur.Node
	nodeCopy.Mode = next.Node.Mode
	applied.Node, applied.Failover, applied.Hooks = &nodeCopy, next.Failover, next.Hooks
	applied.Failover.Confirm = cur.Failover.Confirm // restart-only: the second path keeps its sockets
	applied.Gossip.Key, applied.Gossip.ExtraKeys = keysInForce.Key, keysInForce.ExtraKeys
	logger.Info("config reloaded", "component", "node", "mode", next.Node.Mode)
	return &applied
}

// gossipKeysEqual reports whether two gossip sections have the same keys.
func gossipKeysEqual(a, b config.Gossip) bool {
	return a.Key == b.Key && slices.Equal(a.ExtraKeys, b.ExtraKeys)
}

// applyGossipKeys puts next's gossip keys into the running keyring cl (nil
// when no heartbeat runs: they are then only recorded, for when auto mode
// starts) and audits it, naming the keys by fingerprint only. It returns
// false when the keys could not be applied.
func applyGossipKeys(n *node.Node, cl *cluster.Cluster, next *config.Config) bool {
	primary, extra, err := next.GossipKeys()
	if err != nil { // the file was validated: not expected
		n.Note("reload config", resilience.OutcomeFailed, "gossip keys not applied", err.Error())
		return false
	}
	if cl == nil {
		now := cluster.KeyInfo{Primary: cluster.Fingerprint(primary)}
		for _, k := range extra {
			now.Extra = append(now.Extra, cluster.Fingerprint(k))
		}
		n.Note("reload config", resilience.OutcomeOK, "gossip keys recorded (no heartbeat runs; used when auto mode starts): "+now.String(), "")
		return true
	}
	before := cl.Keys()
	if _, err := cl.SetKeys(primary, extra); err != nil {
		n.Note("reload config", resilience.OutcomeFailed, "gossip keys not applied: the keyring is unchanged or partly changed", err.Error())
		return false
	}
	n.Note("reload config", resilience.OutcomeOK, "gossip keys applied live: "+keysChange(before, cl.Keys()), "")
	return true
}

// keysChange describes a keyring change by fingerprints: the ring now, and
// what was added, removed, or made primary.
func keysChange(before, after cluster.KeyInfo) string {
	all := func(k cluster.KeyInfo) []string { return append([]string{k.Primary}, k.Extra...) }
	var added, removed []string
	for _, fp := range all(after) {
		if !slices.Contains(all(before), fp) {
			added = append(added, fp)
		}
	}
	for _, fp := range all(before) {
		if !slices.Contains(all(after), fp) {
			removed = append(removed, fp)
		}
	}
	s := after.String()
	if before.Primary != after.Primary {
		s += " (primary was " + before.Primary + ")"
	}
	if len(added) > 0 {
		s += "; added " + strings.Join(added, ", ")
	}
	if len(removed) > 0 {
		s += "; removed " + strings.Join(removed, ", ")
	}
	return s
}

// restartOnlyChanges names the top-level sections that differ between two
// configs beyond node.mode, failover, hooks and the gossip keys, which a
// reload applies.
func restartOnlyChanges(a, b *config.Config) []string {
	x, y := *a, *b
	xn, yn := *a.Node, *b.Node
	xn.Mode, yn.Mode = "", ""
	x.Node, y.Node = &xn, &yn
	x.Failover, y.Failover = config.Failover{}, config.Failover{}
	x.Hooks, y.Hooks = config.Hooks{}, config.Hooks{}
	x.Gossip.Key, y.Gossip.Key = "", ""
	x.Gossip.ExtraKeys, y.Gossip.ExtraKeys = nil, nil
	var out []string
	if !reflect.DeepEqual(a.Failover.Confirm, b.Failover.Confirm) {
		out = append(out, "failover.confirm")
	}
	xv, yv := reflect.ValueOf(x), reflect.ValueOf(y)
	for i := range xv.NumField() {
		if !reflect.DeepEqual(xv.Field(i).Interface(), yv.Field(i).Interface()) {
			out = append(out, strings.ToLower(xv.Type().Field(i).Name))
		}
	}
	return out
}

// ticks converts a duration to core ticks, at least one.
func ticks(d, tick time.Duration) int {
	return max(1, int((d+tick-1)/tick))
}

// noteXDS puts registration changes in the audit log; reachability changes
// only update the status (they can flap, and the metrics count them).
func noteXDS(n *node.Node, ev xds.Event) {
	detail := ""
	if ev.Err != nil {
		detail = ev.Err.Error()
	}
	switch ev.Kind {
	case xds.EventRegistered:
		n.Note("sip register", resilience.OutcomeOK, "registered to MDS "+ev.MDS, "")
	case xds.EventUnregistered:
		outcome := resilience.OutcomeOK
		if ev.Err != nil {
			outcome = resilience.OutcomeFailed
		}
		n.Note("sip unregister", outcome, "unregistered from MDS "+ev.MDS, detail)
	case xds.EventFailed:
		n.Note("sip register", resilience.OutcomeFailed, "registration to MDS "+ev.MDS+" failed", detail)
	case xds.EventPeerRemoved:
		outcome := resilience.OutcomeOK
		if ev.Err != nil {
			outcome = resilience.OutcomeFailed
		}
		n.Note("sip unregister peer", outcome, "removed the peer's contact from MDS "+ev.MDS, detail)
	default:
		n.HealthChanged() // republish the status with the new reachability
	}
}

// notifySystemd sends a state ("READY=1") to systemd for a Type=notify
// unit; outside systemd (no NOTIFY_SOCKET) it does nothing.
func notifySystemd(state string) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return
	}
	if strings.HasPrefix(sock, "@") {
		sock = "\x00" + sock[1:] // an abstract socket
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	conn.Write([]byte(state))
}

// actor names the admin behind a CLI command in the audit log.
func actor() string {
	user := os.Getenv("USER")
	if u, err := osuser.Current(); user == "" && err == nil {
		user = u.Username
	}
	if user == "" {
		user = "unknown"
	}
	host, _ := os.Hostname()
	return strings.TrimSuffix(user+"@"+host, "@")
}
