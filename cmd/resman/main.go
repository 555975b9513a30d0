// Command resman is the resilience manager of a PBX pair: one binary runs
// a node, a CC follower or an Edge from a config file, runs a whole demo
// deployment, and talks to a node's API for admins and scripts.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes, stable for scripts.
const (
	exitOK          = 0
	exitFailed      = 1 // the command failed (or any unexpected error)
	exitUsage       = 2 // bad flags or arguments, bad input refused by the node (400)
	exitRefused     = 3 // the node refused: a safety rule or a precondition (409, 412)
	exitUnreachable = 4 // the node could not be reached
)

// exitError carries an exit code with a one-line reason.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error { return &exitError{code: code, err: err} }

func usageErr(format string, args ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, args...))
}

func main() {
	root := newRoot()
	err := root.Execute()
	if err == nil {
		os.Exit(exitOK)
	}
	fmt.Fprintln(os.Stderr, "resman: "+err.Error())
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(exitUsage) // cobra's own errors are about flags and arguments
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "resman",
		Short: "Resilience manager for a Main/Standby PBX pair",
		Long: `resman keeps one node of a PBX pair Active (telephony services running) and the
other Inactive. In manual mode the admin starts and stops services and resman
refuses to make two Active nodes; in auto mode the Standby takes over by itself.

Try it with no setup:  resman demo`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newRunCmd(),
		newDemoCmd(),
		newStatusCmd(),
		newServicesCmd(),
		newAuditCmd(),
		newReplicationCmd(),
		newFailoverCmd(),
		newSwitchoverCmd(),
		newConfigCmd(),
		newHashPasswordCmd(),
		newGenSecretCmd(),
		newVersionCmd(),
		newStandinCmd(),
	)
	return root
}
