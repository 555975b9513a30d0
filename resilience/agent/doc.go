// Package agent runs what one config file configures: a node of the pair
// (or a witness), the CC follower, the Edge and the fleet aggregator,
// whose APIs share one listener. It is the wiring behind resman run and
// resman demo, and can be run without the binary.
//
// New builds the parts from a config (node.go, followers.go, gossip.go);
// Run runs them under one errgroup until its context ends or a part fails;
// Reload applies a new config file by the reload policy (reload.go): the
// node's mode, the failover settings, the hooks, the gossip keys, the
// fleet aggregator's pairs and log.level change at run time, anything
// else needs a restart. Options.Events receives
// what happened (started, reloaded, a part failed, stopped), for tests
// and for the caller's own logging.
//
// The command (cmd/resman) keeps the flags, the logger, the signals
// (SIGHUP calls Reload), the exit codes and systemd's READY=1
// (Options.Ready).
package agent
