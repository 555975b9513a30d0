// Package api holds the JSON wire types of the node HTTP API, shared by the
// server (resilience/web), the client (resilience/client), the CLI, the CC
// follower and the Edge. Changing a field here changes the public contract.
package api

import "time"

// Status values of a node's runtime status.
const (
	StatusActive       = "active"
	StatusInactive     = "inactive"
	StatusActivating   = "activating"
	StatusDeactivating = "deactivating"
)

// Status is the answer of GET /api/v1/status.
type Status struct {
	Node    string    `json:"node"`
	Role    string    `json:"role"`
	Mode    string    `json:"mode"`
	Status  string    `json:"status"`
	Epoch   uint64    `json:"epoch"`
	Since   time.Time `json:"since"`
	Version string    `json:"version"`
	Healthy bool      `json:"healthy"`
	// Calls in progress on this node's PBX (auto mode with
	// failover.calls); absent when not counted.
	Calls       *int           `json:"calls,omitempty"`
	HA          HA             `json:"ha"`
	Peer        *Peer          `json:"peer,omitempty"`
	Services    []Service      `json:"services"`
	Replication []Replication  `json:"replication"`
	XDS         []Registration `json:"xds"`
	Failover    Failover       `json:"failover"`
	LastChange  *Transition    `json:"last_change,omitempty"`
	// SwitchoverRun is the planned switchover this node runs, or the last
	// one it ran, for a while after its end; absent when none.
	SwitchoverRun *SwitchoverProgress `json:"switchover_run,omitempty"`
	// Sees: on a witness, the pair's nodes it sees over gossip, sorted by
	// name (a witness has no peer).
	Sees []Member `json:"sees,omitempty"`
}

// Member is a node of the pair as a witness sees it over gossip.
type Member struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// HA is the pair's readiness to fail over, with the reasons it is not.
type HA struct {
	Ready   bool     `json:"ready"`
	Reasons []string `json:"reasons"`
}

// Peer is what this node last saw of the other node.
type Peer struct {
	Name string `json:"name"`
	// URL is the peer's API and page as this node reaches it (peer.api),
	// for a link to the peer's own page.
	URL       string    `json:"url,omitempty"`
	Reachable bool      `json:"reachable"`
	Status    string    `json:"status,omitempty"`
	Epoch     uint64    `json:"epoch"`
	Version   string    `json:"version,omitempty"`
	Healthy   bool      `json:"healthy"`
	Error     string    `json:"error,omitempty"`
	CheckedAt time.Time `json:"checked_at"`
	// FailoverUntil: a manual HA failover holds the peer Inactive until
	// then (auto mode, as it announces over gossip).
	FailoverUntil *time.Time `json:"failover_until,omitempty"`
	// Holding: the peer will not go Active by itself; HeldByAdmin: an
	// admin's Stop holds it (auto mode).
	Holding     bool `json:"holding,omitempty"`
	HeldByAdmin bool `json:"held_by_admin,omitempty"`
	// Via is ViaSecondPath while gossip has lost the peer but it answers
	// over the second path (failover.confirm); empty otherwise.
	Via string `json:"via,omitempty"`
	// Calls in progress on the peer's PBX, as it announces them (auto
	// mode with failover.calls); absent when not counted.
	Calls *int `json:"calls,omitempty"`
	// LostWhy, for a lost peer, is what confirmed the loss (the second
	// path's verdict), for the cause of a takeover. Not in the API: Error
	// says it.
	LostWhy string `json:"-"`
}

// ViaSecondPath: the peer's view comes from the second path.
const ViaSecondPath = "second path"

// Service is one supervised local service.
type Service struct {
	Name     string `json:"name"`
	State    string `json:"state"` // running, stopped, starting, stopping, failed
	Healthy  bool   `json:"healthy"`
	Critical bool   `json:"critical"`
	Error    string `json:"error,omitempty"`
}

// Replication is the last run of one replication job.
type Replication struct {
	Name    string    `json:"name"`
	LastRun time.Time `json:"last_run"`
	OK      bool      `json:"ok"`
	Error   string    `json:"error,omitempty"`
	// Kind is exec (a command) or files (trees copied over the API).
	Kind string `json:"kind,omitempty"`
	// Direction is send (this node runs the job) or receive (this node
	// holds the copy; LastRun is the last receive).
	Direction string `json:"direction,omitempty"`
	// Running: a run is under way (send).
	Running bool `json:"running,omitempty"`
	// DurationSeconds of the last run (send).
	DurationSeconds float64 `json:"duration_seconds,omitempty"`
	// LastSuccess is the end of the last successful run or receive.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// AgeSeconds is the age of LastSuccess; 0 when there was none.
	AgeSeconds float64 `json:"age_seconds,omitempty"`
	// MaxAgeSeconds is the job's max_age.
	MaxAgeSeconds float64 `json:"max_age_seconds,omitempty"`
	// Stale: no success, or the last one is older than max_age.
	Stale bool `json:"stale"`
	// BytesSent by the last run (files jobs, request bodies).
	BytesSent int64 `json:"bytes_sent,omitempty"`
	// FilesChanged by the last run or receive: paths written, fixed or
	// deleted (files jobs).
	FilesChanged int `json:"files_changed,omitempty"`
	// NextRun is when the scheduler runs the job next (send, while
	// Active).
	NextRun time.Time `json:"next_run,omitzero"`
	// Output is the tail of a failed exec run's output.
	Output string `json:"output,omitempty"`
	// Progress of the run under way (send, files jobs).
	Progress *ReplicationProgress `json:"progress,omitempty"`
}

// ReplicationProgress is how far a files job's run under way has come.
type ReplicationProgress struct {
	// Phase: scanning (hashing the trees), manifest (the peer compares),
	// uploading, committing.
	Phase string `json:"phase"`
	// Files and Bytes in the trees (known from manifest on).
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// ToSend is how many files the peer needs (known from uploading on);
	// Sent how many of them went, BytesSent the request bodies so far.
	ToSend    int   `json:"to_send"`
	Sent      int   `json:"sent"`
	BytesSent int64 `json:"bytes_sent"`
}

// SwitchoverProgress is a planned switchover's steps as they happen.
type SwitchoverProgress struct {
	ID     string `json:"id"`
	To     string `json:"to"`
	Who    string `json:"who"`
	Reason string `json:"reason"`
	// Started and Ended (zero while it runs).
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	// Outcome once ended: done, rolled back, failed, refused, or
	// interrupted (the node restarted before its end).
	Outcome string           `json:"outcome,omitempty"`
	Steps   []SwitchoverStep `json:"steps"`
}

// Values of SwitchoverStep.Name, in the order they run.
const (
	StepPreconditions = "preconditions"
	StepSync          = "final sync"
	StepDrain         = "drain"
	StepStop          = "stop here"
	StepStartPeer     = "start the peer"
	StepVerify        = "verify"
	StepRollback      = "rollback"
)

// Values of SwitchoverProgress.Outcome.
const (
	SwitchoverDone       = "done"
	SwitchoverRolledBack = "rolled back"
	SwitchoverFailed     = "failed"
	SwitchoverRefused    = "refused"
	// SwitchoverInterrupted: the node running it restarted before its
	// end (its steps were kept in node.data_dir).
	SwitchoverInterrupted = "interrupted"
)

// Values of SwitchoverStep.State.
const (
	StepPending = "pending"
	StepRunning = "running"
	StepDone    = "done"
	StepFailed  = "failed"
	StepSkipped = "skipped"
)

// SwitchoverStep is one step of a switchover. The final sync's own
// progress is in the sending node's Replication[].Progress.
type SwitchoverStep struct {
	Name    string    `json:"name"`
	State   string    `json:"state"`
	Detail  string    `json:"detail,omitempty"`
	Started time.Time `json:"started,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
}

// Registration is the SIP registration state of this node at one MDS.
type Registration struct {
	MDS        string `json:"mds"`
	Registered bool   `json:"registered"`
	Error      string `json:"error,omitempty"`
	// Reachable: the MDS answers OPTIONS probes (rise/fall applied).
	Reachable bool `json:"reachable"`
	// StatusCode of the MDS's last final answer to REGISTER; 0 before any.
	StatusCode int `json:"status_code,omitempty"`
	// ExpiresAt is when the binding lapses unless refreshed (while registered).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// NextRefresh is when the next REGISTER, refresh or retry, is due
	// (while active).
	NextRefresh time.Time `json:"next_refresh,omitzero"`
}

// Failover is the failover state of auto mode: a manual HA failover (on
// the Main) and whether the node holds Inactive.
type Failover struct {
	Manual bool       `json:"manual"`
	Until  *time.Time `json:"until,omitempty"`
	// Holding: the node will not go Active by itself (it stepped down and
	// waits out its hold, or an admin stopped it).
	Holding bool `json:"holding"`
	// HeldByAdmin: an admin's Stop holds it until an admin's Start.
	HeldByAdmin bool `json:"held_by_admin"`
	// Switchover: the planned switchover that stopped this node and holds
	// it until it ends.
	Switchover string `json:"switchover,omitempty"`
	// FailbackAt: an Active Standby hands the role back to the Main then,
	// if the Main stays up and ready (automatic failback counting).
	FailbackAt *time.Time `json:"failback_at,omitempty"`
	// BootGraceUntil: a node that has not seen its peer since it started
	// does not take over for a lost peer before then.
	BootGraceUntil *time.Time `json:"boot_grace_until,omitempty"`
}

// Transition is the last status change with its cause.
type Transition struct {
	From  string    `json:"from"`
	To    string    `json:"to"`
	Cause string    `json:"cause"`
	At    time.Time `json:"at"`
}

// StartRequest is the body of POST /api/v1/services/start.
type StartRequest struct {
	Reason string `json:"reason"`
	Force  bool   `json:"force"`
}

// StopRequest is the body of POST /api/v1/services/stop.
type StopRequest struct {
	Reason string `json:"reason"`
}

// SwitchoverRequest is the body of POST /api/v1/switchover: a planned,
// ordered swap of the Active side, with a final data sync first when Sync.
type SwitchoverRequest struct {
	Reason string `json:"reason"`
	Sync   bool   `json:"sync"`
}

// FailoverRequest is the body of POST /api/v1/failover: a manual HA
// failover for For (a duration like 30m).
type FailoverRequest struct {
	Reason string `json:"reason"`
	For    string `json:"for"`
}

// ReplicationRunRequest is the body of POST /api/v1/replication/run: run
// one job (Job) or all (Job empty) now, from the Active node.
type ReplicationRunRequest struct {
	Reason string `json:"reason"`
	Job    string `json:"job,omitempty"`
}

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	Error string `json:"error"`
}

// Active is the body of GET /active: nothing more, it needs no auth.
type Active struct {
	Status string `json:"status"`
	Epoch  uint64 `json:"epoch"`
}

// AuditEntry is one record of the audit log: who did what, why, when, and
// how it ended. Automatic transitions have Who "resman" and a Cause.
type AuditEntry struct {
	ID      uint64    `json:"id"`
	Time    time.Time `json:"time"`
	Who     string    `json:"who"`
	Action  string    `json:"action"`
	Reason  string    `json:"reason,omitempty"`
	Cause   string    `json:"cause,omitempty"`
	Outcome string    `json:"outcome"` // ok, refused, failed
	Detail  string    `json:"detail,omitempty"`
	Epoch   uint64    `json:"epoch"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
}

// Audit outcomes.
const (
	OutcomeOK      = "ok"
	OutcomeRefused = "refused"
	OutcomeFailed  = "failed"
)

// SSE event names on GET /api/v1/events.
const (
	EventStatus = "status"
	EventAudit  = "audit"
)

// Event is one message of the SSE stream: Name is EventStatus (Data is a
// Status) or EventAudit (Data is an AuditEntry).
type Event struct {
	Name string
	Data any
}
