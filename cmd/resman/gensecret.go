package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/spf13/cobra"
)

// newAPIToken returns a new random API token: hex of 24 bytes from
// crypto/rand, 48 characters (api.token, cc.token, edge.token).
func newAPIToken() string {
	return hex.EncodeToString(randomBytes(24))
}

// newGossipKey returns a new random gossip key: base64 of 32 bytes from
// crypto/rand (gossip.key).
func newGossipKey() string {
	return base64.StdEncoding.EncodeToString(randomBytes(32))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return b
}

func newGenSecretCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "gen-secret [token|gossip-key]",
		Short: "Print a new random API token and gossip key, as YAML lines to paste in the config",
		Long: `Prints a new random API token (hex of 24 random bytes) and a new gossip key
(base64 of 32 random bytes), each as a YAML line ready to paste:

  token: "..."   under api: (and as cc.token, edge.token), the same in every file
  key: "..."     under gossip:, the same on both nodes and the witness

With an argument, prints only that one: "token" or "gossip-key".`,
		Args:      cobra.MaximumNArgs(1),
		ValidArgs: []string{"token", "gossip-key"},
		RunE: func(cmd *cobra.Command, args []string) error {
			what := ""
			if len(args) == 1 {
				what = args[0]
			}
			out := cmd.OutOrStdout()
			switch what {
			case "":
				fmt.Fprintf(out, "token: %q\nkey: %q\n", newAPIToken(), newGossipKey())
			case "token":
				fmt.Fprintf(out, "token: %q\n", newAPIToken())
			case "gossip-key":
				fmt.Fprintf(out, "key: %q\n", newGossipKey())
			default:
				return usageErr("gen-secret makes a token or a gossip-key, not %q", what)
			}
			return nil
		},
	}
}
