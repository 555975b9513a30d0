package web

import (
	"context"

	"github.com/resman-pbx/resman/resilience/api"
)

// Node is the runtime the API serves. Its methods are called from HTTP
// handler goroutines, concurrently; StartServices and StopServices may block
// until the transition ends or ctx is done. Refusals are errors wrapping
// resilience.ErrConflict, ErrBusy, ErrInvalid or ErrPrecondition, with a
// message meant for the admin; a command carried out that failed wraps
// resilience.ErrFailed, and one not carried out because its decision
// could not be persisted wraps resilience.ErrNotDurable, their messages
// meant for the admin too.
type Node interface {
	// Status is the current status; it does not block on I/O.
	Status() api.Status
	// Active is the minimal answer of GET /active.
	Active() api.Active
	// StartServices and StopServices perform an admin command by who.
	StartServices(ctx context.Context, who string, req api.StartRequest) (api.Status, error)
	StopServices(ctx context.Context, who string, req api.StopRequest) (api.Status, error)
	// Audit returns up to limit entries, newest first, older than beforeID
	// when beforeID is not 0.
	Audit(ctx context.Context, limit int, beforeID uint64) ([]api.AuditEntry, error)
	// Subscribe streams status and audit events until cancel is called.
	// A slow subscriber loses events rather than blocking the node; the
	// first event is always the current status.
	Subscribe() (events <-chan api.Event, cancel func())
}

// PeerNode is a Node that reaches its peer, so that one page shows and
// drives both nodes: the /api/v1/peer routes need it (a Node without it
// answers them 412). *node.Node implements it. Errors from the peer are
// *client.Error (its answer) or wrap client.ErrUnreachable; no peer
// configured wraps resilience.ErrPrecondition.
type PeerNode interface {
	Node
	// PeerStatus is the peer's full status, read now.
	PeerStatus(ctx context.Context) (api.Status, error)
	// PeerStartServices and PeerStopServices forward an admin command by
	// who to the peer.
	PeerStartServices(ctx context.Context, who string, req api.StartRequest) (api.Status, error)
	PeerStopServices(ctx context.Context, who string, req api.StopRequest) (api.Status, error)
}

// ReplicationNode is a Node that runs replication jobs on demand: POST
// /api/v1/replication/run. RunReplication blocks until the jobs end, a
// bounded wait ends (they go on) or ctx is done, and returns the jobs'
// status; refusals wrap the resilience sentinel errors (a run from an
// Inactive node, or while a run asked earlier is under way, is
// ErrConflict).
type ReplicationNode interface {
	Node
	RunReplication(ctx context.Context, who string, req api.ReplicationRunRequest) ([]api.Replication, error)
}

// FailoverNode is a Node that runs manual HA failovers (auto mode, on the
// Main): POST and DELETE /api/v1/failover. Both may block until the
// transition ends.
type FailoverNode interface {
	Node
	StartFailover(ctx context.Context, who string, req api.FailoverRequest) (api.Status, error)
	StopFailover(ctx context.Context, who string, req api.StopRequest) (api.Status, error)
}

// SwitchoverNode is a Node that runs planned switchovers: POST
// /api/v1/switchover. Switchover blocks until the swap ends (or is
// refused or rolled back).
type SwitchoverNode interface {
	Node
	Switchover(ctx context.Context, who string, req api.SwitchoverRequest) (api.Status, error)
}
