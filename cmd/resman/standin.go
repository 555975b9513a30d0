package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

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
	for _, c := range []*cobra.Command{sip, http} {
		c.Flags().StringVar(&listen, "listen", "127.0.0.1:5060", "host:port")
		cmd.AddCommand(c)
	}
	http.Flags().StringVar(&name, "name", "app", "the name shown on the page")
	return cmd
}
