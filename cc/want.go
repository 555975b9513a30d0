package cc

import (
	"time"

	"github.com/resman-pbx/resman/resilience/api"
)

// The follower's decision, as pure functions (no I/O, no clock): what the
// paired node's status asks of the CC services (wish), what the reconciler
// does now (decide), and how long a failed start waits before its retry
// (retryBackoff). Their rules are stated in testdata/want/*.txt, run by
// want_test.go.

// wish is what the paired node's status asks of the CC services: Active
// asks for active; Inactive or Deactivating (the node is stopping its own
// services) ask for inactive; Activating, or any other status, asks for
// nothing ("": keep the current state until the node has decided).
func wish(nodeStatus string) string {
	switch nodeStatus {
	case api.StatusActive:
		return api.StatusActive
	case api.StatusInactive, api.StatusDeactivating:
		return api.StatusInactive
	}
	return ""
}

// wantInput is what decide reads. The node's epoch is not an input (the
// follower follows the status, whatever the epoch), nor is how long the
// node has been unreachable (the follower keeps its state however long).
type wantInput struct {
	// Reachable: the node answered the last look. Node is the status it
	// answered (empty before the first answer).
	Reachable bool
	Node      string
	// Mine is the follower's own status.
	Mine string
	// RetryIn is how long a failed start still waits before its retry (0
	// or less: it may be retried now).
	RetryIn time.Duration
	// Swept: the services have been stopped once since the follower
	// started. Running: some service is running.
	Swept, Running bool
}

// move is what the reconciler does.
type move int

const (
	moveKeep  move = iota // nothing to do
	moveStart             // start the services (activate)
	moveStop              // stop the services (deactivate)
	// moveSweep stops the services found running while the follower is
	// already Inactive (units left active), once.
	moveSweep
	moveWait // a failed start waits for its retry
)

func (m move) String() string {
	return [...]string{"keep", "start", "stop", "sweep", "wait"}[m]
}

// decision is decide's answer: the move and, for moveWait, how long.
type decision struct {
	Move move
	Wait time.Duration
}

// decide says what the reconciler does now: start the services when the
// reachable node is Active and the follower is not (unless a failed start
// still waits for its retry); stop them when the node asks for inactive
// and the follower is not Inactive, or, once, when services were found
// running while Inactive; else keep (node unreachable, activating, or
// nothing to change).
func decide(in wantInput) decision {
	want := ""
	if in.Reachable {
		want = wish(in.Node)
	}
	switch {
	case want == "":
		return decision{Move: moveKeep}
	case want == api.StatusActive && in.Mine != api.StatusActive:
		if in.RetryIn > 0 {
			return decision{Move: moveWait, Wait: in.RetryIn}
		}
		return decision{Move: moveStart}
	case want == api.StatusInactive && in.Mine != api.StatusInactive:
		return decision{Move: moveStop}
	case want == api.StatusInactive && !in.Swept && in.Running:
		return decision{Move: moveSweep}
	}
	return decision{Move: moveKeep}
}

// retryBackoff is the wait before the retry of a start that failed for
// the failures-th time in a row: 1 s, 2 s, 4 s... up to maxBackoff.
func retryBackoff(failures int) time.Duration {
	return min(maxBackoff, time.Second<<min(failures-1, 4))
}
