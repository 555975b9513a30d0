package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	osuser "os/user"
	"path/filepath"
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
	"github.com/resman-pbx/resman/resilience/node"
	"github.com/resman-pbx/resman/resilience/web"
	"github.com/resman-pbx/resman/services"
)

func newRunCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run every component the config file configures",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErr("--config is required")
			}
			cfg, err := config.Load(file)
			if err != nil {
				return withCode(exitUsage, err)
			}
			logger := newLogger(os.Stderr, cfg.Log)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runComponents(ctx, cfg, logger, nil)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "config file (YAML)")
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
	if lc.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runComponents runs what cfg configures until ctx is done. ready, when not
// nil, is called once the API listens.
func runComponents(ctx context.Context, cfg *config.Config, logger *slog.Logger, ready func()) error {
	if cfg.CC != nil {
		return withCode(exitUsage, errors.New("cc: the CC follower is not available in this build yet"))
	}
	if cfg.Edge != nil {
		return withCode(exitUsage, errors.New("edge: the Edge proxy is not available in this build yet"))
	}
	if cfg.Node == nil {
		return withCode(exitUsage, errors.New("nothing to run: the file configures no node"))
	}
	if cfg.Node.Mode == string(resilience.ModeAuto) {
		return withCode(exitUsage, errors.New("node.mode: auto mode is not available in this build yet; use manual"))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	n, sup, closeNode, err := buildNode(cfg, logger, reg)
	if err != nil {
		return err
	}
	defer closeNode()

	srv := web.New(n, web.Options{Token: cfg.API.Token, Gatherer: reg, Registerer: reg, Logger: logger})
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("api.listen %s: %w", cfg.API.Listen, err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Add(3)
	go func() { defer wg.Done(); sup.Run(ctx) }()
	go func() {
		defer wg.Done()
		if err := n.Run(ctx); err != nil {
			errs <- fmt.Errorf("node: %w", err)
			cancel()
		}
	}()
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && ctx.Err() == nil {
			errs <- fmt.Errorf("api: %w", err)
			cancel()
		}
	}()
	select {
	case <-n.Ready():
		logger.Info("serving", "component", "api", "listen", ln.Addr().String(), "node", cfg.Node.Name)
		if ready != nil {
			ready()
		}
	case <-ctx.Done():
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

// buildNode wires a node from its config: services supervisor, peer client,
// audit log and the runtime.
func buildNode(cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer) (*node.Node, *services.Supervisor, func(), error) {
	nc := cfg.Node
	if err := os.MkdirAll(nc.DataDir, 0o750); err != nil {
		return nil, nil, nil, fmt.Errorf("node.data_dir: %w", err)
	}
	al, err := audit.Open(filepath.Join(nc.DataDir, "audit.db"))
	if err != nil {
		return nil, nil, nil, err
	}
	// The supervisor's change callback needs the node, which needs the
	// supervisor: the pointer is filled once both exist.
	var nodeRef atomic.Pointer[node.Node]
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
		al.Close()
		return nil, nil, nil, err
	}
	d := node.Deps{
		Core:       resilience.Config{Name: nc.Name, Role: resilience.Role(nc.Role), Mode: resilience.Mode(nc.Mode)},
		Version:    nc.Version,
		Services:   sup,
		Audit:      al,
		DataDir:    nc.DataDir,
		Logger:     logger,
		Registerer: reg,
	}
	if cfg.Peer != nil {
		d.Peer = client.New(cfg.Peer.API, cfg.API.Token, client.WithTimeout(cfg.Peer.Timeout), client.WithActor(nc.Name))
		d.PeerName = cfg.Peer.Name
		d.PeerEvery = cfg.Peer.CheckInterval
		d.PeerTimeout = cfg.Peer.Timeout
		d.IsUnreachable = func(err error) bool { return errors.Is(err, client.ErrUnreachable) }
	}
	n, err := node.New(d)
	if err != nil {
		al.Close()
		return nil, nil, nil, err
	}
	nodeRef.Store(n)
	return n, sup, func() { al.Close() }, nil
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
