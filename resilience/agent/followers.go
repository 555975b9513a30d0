package agent

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/cc"
	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/edge"
	"github.com/resman-pbx/resman/resilience/fleet"
	"github.com/resman-pbx/resman/resilience/web"
)

// followers are the components that follow the nodes, built.
type followers struct {
	mounts  []web.Mount // their APIs on the shared listener
	runners []part      // each runs until ctx is done
	cleanup func()
	fleet   *fleet.Aggregator // nil without a fleet section: a reload changes its pairs
}

// buildFollowers wires the components that follow the nodes: the CC
// follower, the Edge proxy and the fleet aggregator.
func buildFollowers(cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer) (followers, error) {
	var mounts []web.Mount
	var runners []part
	var cleanups []func()
	var agg *fleet.Aggregator
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	if cfg.CC != nil {
		f, err := cc.New(cc.Options{
			Config:        *cfg.CC,
			Token:         cfg.API.Token,
			DataDir:       cfg.CC.DataDir,
			CheckInterval: cfg.CC.CheckInterval,
			Standalone:    cfg.Node == nil,
			Logger:        logger,
			Registerer:    reg,
		})
		if err != nil {
			return followers{}, fmt.Errorf("cc: %w", err)
		}
		cleanups = append(cleanups, func() { f.Close() })
		h := f.Handler()
		mounts = append(mounts, web.Mount{Prefix: "/api/v1/cc", Handler: h})
		if cfg.Node == nil {
			mounts = append(mounts,
				web.Mount{Prefix: cc.PathNodeStatus, Handler: h},
				web.Mount{Prefix: cc.PathNodeAudit, Handler: h},
				web.Mount{Prefix: cc.PathActive, Handler: h})
		}
		runners = append(runners, part{"cc", func(ctx context.Context) error {
			if err := f.Run(ctx); err != nil {
				return fmt.Errorf("cc: %w", err)
			}
			return nil
		}})
	}
	if cfg.Edge != nil {
		standalone := cfg.Node == nil && cfg.CC == nil
		opts := edge.Options{
			Config:       *cfg.Edge,
			Token:        cfg.API.Token,
			CheckTimeout: cfg.Edge.Check.Timeout,
			Standalone:   standalone,
			Logger:       logger,
			Registerer:   reg,
		}
		if t := cfg.Edge.TLS; t != nil {
			opts.TLSCert, opts.TLSKey = t.Cert, t.Key
		}
		e, err := edge.New(opts)
		if err != nil {
			cleanup()
			return followers{}, err
		}
		h := e.APIHandler()
		mounts = append(mounts, web.Mount{Prefix: "/api/v1/edge", Handler: h})
		if standalone {
			mounts = append(mounts, web.Mount{Prefix: edge.PathNodeStatus, Handler: h})
		}
		runners = append(runners, part{"edge", e.Run})
	}
	if cfg.Fleet != nil {
		a, err := fleet.New(fleet.Options{Config: *cfg.Fleet, Token: cfg.API.Token, Logger: logger, Registerer: reg})
		if err != nil {
			cleanup()
			return followers{}, fmt.Errorf("fleet: %w", err)
		}
		h := a.Handler()
		mounts = append(mounts, web.Mount{Prefix: fleet.PathAPI, Handler: h}, web.Mount{Prefix: fleet.PathPage, Handler: h})
		runners = append(runners, part{"fleet", a.Run})
		agg = a
	}
	return followers{mounts: mounts, runners: runners, cleanup: cleanup, fleet: agg}, nil
}
