package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/resman-pbx/resman/config"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with config files"}
	var print bool
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a config file; list every problem with its key path",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(args[0])
			var probs config.Problems
			if errors.As(err, &probs) {
				return withCode(exitFailed, fmt.Errorf("%s: %d problem(s):\n%s", args[0], len(probs), probs.Error()))
			}
			if err != nil {
				return withCode(exitFailed, err)
			}
			if print {
				out, err := cfg.Redacted().YAML()
				if err != nil {
					return err
				}
				cmd.OutOrStdout().Write(out)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", args[0])
			return nil
		},
	}
	check.Flags().BoolVar(&print, "print", false, "print the effective config (defaults filled, secrets redacted)")
	cmd.AddCommand(check)
	return cmd
}

func newHashPasswordCmd() *cobra.Command {
	var cost int
	cmd := &cobra.Command{
		Use:   "hash-password",
		Short: "Print a bcrypt hash of a password for the config's api.users",
		Long:  "Reads the password from the terminal (not echoed) or from standard input, and prints its bcrypt hash.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
				return usageErr("--cost must be between %d and %d", bcrypt.MinCost, bcrypt.MaxCost)
			}
			var pw []byte
			if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
				fmt.Fprint(os.Stderr, "password: ")
				var err error
				pw, err = term.ReadPassword(fd)
				fmt.Fprintln(os.Stderr)
				if err != nil {
					return err
				}
			} else {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return usageErr("no password on standard input")
				}
				pw = []byte(strings.TrimRight(line, "\r\n"))
			}
			if len(pw) == 0 {
				return usageErr("empty password")
			}
			if len(pw) > 72 {
				return usageErr("password longer than 72 bytes (bcrypt's limit)")
			}
			h, err := bcrypt.GenerateFromPassword(pw, cost)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(h))
			return nil
		},
	}
	cmd.Flags().IntVar(&cost, "cost", bcrypt.DefaultCost, "bcrypt cost")
	return cmd
}

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the resman version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "resman "+versionString())
		},
	}
}
