package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/resilience/web"
)

// buildFollowers wires the components that follow the nodes: the CC
// follower and the Edge proxy. It returns their API mounts on the shared
// listener, their runners (each runs until ctx is done) and a cleanup.
func buildFollowers(cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer) ([]web.Mount, []func(context.Context) error, func(), error) {
	if cfg.CC != nil {
		return nil, nil, nil, withCode(exitUsage, errors.New("cc: the CC follower is not available in this build yet"))
	}
	if cfg.Edge != nil {
		return nil, nil, nil, withCode(exitUsage, errors.New("edge: the Edge proxy is not available in this build yet"))
	}
	return nil, nil, func() {}, nil
}
