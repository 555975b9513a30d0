package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	osuser "os/user"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/resilience/agent"
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
			logger, level := newLogger(os.Stderr, cfg.Log)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			return runComponents(ctx, cfg, logger, runOptions{
				configPath: file, reload: hup, reset: reset, level: level,
				ready: func() { notifySystemd("READY=1") },
			})
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "config file (YAML)")
	cmd.Flags().BoolVar(&reset, "reset", false, "start although a store in node.data_dir is damaged, or empty or missing next to the other's history: set a damaged file aside, start a new audit.db or rebuild state.json Inactive at the highest epoch either store shows (never lower), and audit the reset; once, by hand (docs/troubleshooting.md)")
	return cmd
}

// newLogger builds the process logger from the log section; a reload sets
// its level through the LevelVar.
func newLogger(w io.Writer, lc config.Log) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(agent.LogLevel(lc.Level))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if lc.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	routeSIPLogs(h)
	return slog.New(h), level
}

// runOptions are the optional parts of runComponents.
type runOptions struct {
	// ready, when set, is called once the API listens and the node (if
	// any) has booted.
	ready func()
	// configPath and reload: each value on reload re-reads the file and
	// applies what can change at run time (agent.Agent.Reload).
	configPath string
	reload     <-chan os.Signal
	// reset: resman run --reset (see node.CheckStores).
	reset bool
	// level is the logger's level, which a reload may change.
	level *slog.LevelVar
}

// runComponents runs what cfg configures until ctx is done: a node, and
// the CC follower, Edge and fleet aggregator whose APIs share the
// listener (resilience/agent builds and runs them).
func runComponents(ctx context.Context, cfg *config.Config, logger *slog.Logger, opts runOptions) error {
	a, err := agent.New(cfg, agent.Options{Logger: logger, Reset: opts.reset, Ready: opts.ready, LogLevel: opts.level})
	if errors.Is(err, agent.ErrNothingToRun) {
		return withCode(exitUsage, err)
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if opts.reload != nil {
		// Reload logs and audits its outcome itself; with neither a node
		// nor a fleet aggregator, a signal changes nothing.
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-opts.reload:
					a.Reload(opts.configPath)
				}
			}
		}()
	}
	return a.Run(ctx)
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
