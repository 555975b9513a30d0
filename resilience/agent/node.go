package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/audit"
	"github.com/resman-pbx/resman/resilience/client"
	"github.com/resman-pbx/resman/resilience/echo"
	"github.com/resman-pbx/resman/resilience/hooks"
	"github.com/resman-pbx/resman/resilience/node"
	"github.com/resman-pbx/resman/resilience/replication"
	"github.com/resman-pbx/resman/resilience/web"
	"github.com/resman-pbx/resman/services"
	"github.com/resman-pbx/resman/xds"
)

// nodeParts is a node wired from its config, with the runners of its parts.
type nodeParts struct {
	node    *node.Node
	runners []part
	mounts  []web.Mount
	close   func()
	gossip  gossipSwitch
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
	p.runners = append(p.runners, part{"services", func(ctx context.Context) error { sup.Run(ctx); return nil }})

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
		p.runners = append(p.runners, part{"xds", func(ctx context.Context) error {
			if err := sipReg.Run(ctx); err != nil {
				return fmt.Errorf("xds: %w", err)
			}
			return nil
		}})
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
	p.runners = append(p.runners, part{"node", func(ctx context.Context) error {
		if err := n.Run(ctx); err != nil {
			return fmt.Errorf("node: %w", err)
		}
		return nil
	}})
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
	p.runners = append(p.runners, part{"replication", func(ctx context.Context) error {
		runner.Schedule(ctx, func() bool {
			n := nodeRef.Load()
			return n != nil && n.Active().Status == string(resilience.Active)
		})
		return nil
	}})
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
