package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/echo"
	"github.com/resman-pbx/resman/resilience/node"
)

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
