package api

import "time"

// PairAudit is the answer of GET /api/v1/audit/pair: both nodes' audit
// entries on one time axis, newest first, with what the pair went
// through (the periods of each node's status, the windows with no Active
// node and with two). When the peer cannot be read, Entries holds this
// node's only and PeerError says why.
type PairAudit struct {
	// Node is the node that answers, Peer its peer (empty without one).
	Node string `json:"node"`
	Peer string `json:"peer,omitempty"`
	// PeerError is why the peer's entries are missing; empty when they
	// are there.
	PeerError string `json:"peer_error,omitempty"`
	// Limit is how many entries were read from each node.
	Limit int `json:"limit"`
	// Now is when the answer was made: the end of the last periods.
	Now     time.Time        `json:"now"`
	Entries []PairAuditEntry `json:"entries"`
	// Periods are each node's statuses, oldest first, from its first
	// transition among the entries read.
	Periods []PairPeriod `json:"periods"`
	// Windows are the spans with no Active node or two, oldest first,
	// from the first moment both nodes' status is known.
	Windows []PairWindow `json:"windows"`
	Summary PairSummary  `json:"summary"`
}

// PairAuditEntry is an audit entry and the node that wrote it.
type PairAuditEntry struct {
	Node string `json:"node"`
	AuditEntry
}

// PairPeriod is a span during which a node had one status; End is Now for
// the current one.
type PairPeriod struct {
	Node   string    `json:"node"`
	Status string    `json:"status"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
}

// Pair window kinds.
const (
	WindowNoActive  = "no_active"
	WindowTwoActive = "two_active"
)

// PairWindow is a span with no Active node (Kind WindowNoActive) or two
// (WindowTwoActive).
type PairWindow struct {
	Kind  string    `json:"kind"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// PairSummary adds the windows up. From is zero when the entries read do
// not tell both nodes' status (a longer limit may).
type PairSummary struct {
	From             time.Time   `json:"from,omitzero"`
	To               time.Time   `json:"to"`
	NoActiveSeconds  float64     `json:"no_active_seconds"`
	TwoActiveSeconds float64     `json:"two_active_seconds"`
	LastNoActive     *PairWindow `json:"last_no_active,omitempty"`
	LastTwoActive    *PairWindow `json:"last_two_active,omitempty"`
}
