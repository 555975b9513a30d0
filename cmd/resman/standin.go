package main

import (
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/services/standin"
)

// newStandinCmd runs the built-in stand-in services the demo and the tests
// use in place of Asterisk and web apps. Hidden: not for production.
func newStandinCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "standin", Short: "Built-in stand-in services for the demo", Hidden: true}
	var listen, name string
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	sip := &cobra.Command{
		Use:   "sip --listen ADDR",
		Short: "A SIP endpoint answering OPTIONS (plays Asterisk)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return standin.SIP(ctx, listen, logger)
		},
	}
	http := &cobra.Command{
		Use:   "http --listen ADDR --name NAME",
		Short: "A small web app that names the side serving it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return standin.HTTP(ctx, listen, name, logger)
		},
	}
	sip.Flags().StringVar(&listen, "listen", "127.0.0.1:5060", "host:port")
	http.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "host:port")
	http.Flags().StringVar(&name, "name", "app", "the name shown on the page")
	cmd.AddCommand(sip, http, newStandinGossipCmd(logger))
	return cmd
}

// newStandinGossipCmd is a gossip member that announces a fixed meta: with
// the pair's gossip key it plays a forged member, for the tests of what a
// node admits. The key comes from RESMAN_GOSSIP_KEY (base64), never argv.
func newStandinGossipCmd(logger *slog.Logger) *cobra.Command {
	var bind string
	var join []string
	var meta cluster.Meta
	cmd := &cobra.Command{
		Use:   "gossip --name NAME --bind ADDR --join ADDR --role ROLE --status STATUS --epoch N",
		Short: "A gossip member announcing a fixed meta (plays a forged member); key in RESMAN_GOSSIP_KEY",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := base64.StdEncoding.DecodeString(os.Getenv("RESMAN_GOSSIP_KEY"))
			if err != nil || len(key) == 0 {
				return errors.New("RESMAN_GOSSIP_KEY must hold the gossip key in base64")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			meta.Healthy, meta.Version = true, "2025.10.3"
			cl, err := cluster.New(cluster.Options{Name: meta.Name, Bind: bind, Key: key, Join: join, Logger: logger}, meta)
			if err != nil {
				return err
			}
			return cl.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&meta.Name, "name", "standby", "the member's name")
	f.StringVar(&bind, "bind", "127.0.0.1:7946", "gossip host:port")
	f.StringSliceVar(&join, "join", nil, "members to join, host:port")
	f.StringVar(&meta.Role, "role", "standby", "the role announced")
	f.StringVar(&meta.Status, "status", "active", "the status announced")
	f.Uint64Var(&meta.Epoch, "epoch", 1001, "the epoch announced")
	return cmd
}
