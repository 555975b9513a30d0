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
	"github.com/resman-pbx/resman/config/confcheck"
	"github.com/resman-pbx/resman/resilience/fleet"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with config files"}
	var print bool
	check := &cobra.Command{
		Use:   "check FILE...",
		Short: "Validate config files; list every problem with its key path",
		Long: `Validates each config file and lists every problem with its key path; exits 1
if there is any. Placeholder or weak secrets (the examples' change-me token,
CHANGEME gossip key...) are warnings here, on standard error: resman run
refuses to start with them. Make new ones with resman gen-secret.

Several files are one deployment (the main, the standby, a witness, CC
followers, an Edge): each is checked alone, then all together, that they
agree where a running deployment needs them to (the same token and gossip
key, peers that point at each other...).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if print && len(args) > 1 {
				return usageErr("--print takes one file")
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			var files []config.File
			for _, path := range args {
				cfg, err := checkOneConfig(path)
				if err != nil {
					if len(args) == 1 {
						return err
					}
					fmt.Fprintln(errOut, err)
					continue
				}
				if print {
					y, err := cfg.Redacted().YAML()
					if err != nil {
						return err
					}
					out.Write(y)
				} else {
					fmt.Fprintf(out, "%s: ok\n", path)
				}
				for _, p := range cfg.WeakSecrets() {
					fmt.Fprintf(errOut, "warning: %s: %s\n", path, p)
				}
				files = append(files, config.File{Name: path, Config: cfg})
			}
			if len(args) == 1 {
				return nil
			}
			if bad := len(args) - len(files); bad > 0 {
				return withCode(exitFailed, fmt.Errorf("%d of %d files have problems: the files were not checked together", bad, len(args)))
			}
			errs, warnings := config.CheckDeployment(files)
			for _, p := range warnings {
				fmt.Fprintf(errOut, "warning: %s\n", p)
			}
			if len(errs) > 0 {
				return withCode(exitFailed, fmt.Errorf("%d files, checked together: %d problem(s):\n%s", len(files), len(errs), errs.Error()))
			}
			fmt.Fprintf(out, "%d files, checked together: ok\n", len(files))
			return nil
		},
	}
	check.Flags().BoolVar(&print, "print", false, "print the effective config (defaults filled, secrets redacted)")
	cmd.AddCommand(check)
	return cmd
}

// checkOneConfig loads and validates one file, and reads the pair files
// of its fleet.pairs_dir as resman run would. The error (exit code 1)
// lists every problem under "PATH: N problem(s):".
func checkOneConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	var probs config.Problems
	if errors.As(err, &probs) {
		return nil, withCode(exitFailed, fmt.Errorf("%s: %d problem(s):\n%s", path, len(probs), probs.Error()))
	}
	if err != nil {
		return nil, withCode(exitFailed, err)
	}
	if f := cfg.Fleet; f != nil && f.PairsDir != "" {
		_, err := fleet.LoadPairs(*f, cfg.API.Token)
		var ps confcheck.Problems
		if errors.As(err, &ps) {
			return nil, withCode(exitFailed, fmt.Errorf("%s: the pairs of fleet.pairs_dir (%s): %d problem(s):\n%s", path, f.PairsDir, len(ps), ps.Error()))
		}
		if err != nil {
			return nil, withCode(exitFailed, fmt.Errorf("%s: %w", path, err))
		}
	}
	return cfg, nil
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
