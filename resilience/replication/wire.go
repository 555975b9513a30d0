package replication

import "time"

// Prefix is where the Receiver's routes live: mount Receiver.Handler
// there on the node API (web.Mount{Prefix: replication.Prefix}). It leaves
// the rest of /api/v1/replication/ (run, status) to the node.
const Prefix = "/api/v1/replication/push"

// Routes of the receiver. All take the bearer token; all but the chunk
// upload carry JSON.
const (
	// PathBegin opens a transfer session of a files job.
	PathBegin = Prefix + "/begin"
	// PathManifest takes one page of a root's manifest and answers the
	// files to upload (?session=).
	PathManifest = Prefix + "/manifest"
	// PathChunk takes one chunk of a file
	// (PUT ?session=&root=&path=&offset=, the bytes as the body).
	PathChunk = Prefix + "/chunk"
	// PathCommit ends a session: deletes (with delete), records the
	// receive (?session=).
	PathCommit = Prefix + "/commit"
	// PathAbort drops a session and its temp files (?session=).
	PathAbort = Prefix + "/abort"
	// PathReport records a successful exec job run by the sender.
	PathReport = Prefix + "/report"
)

// Entry types of a manifest.
const (
	typeFile = "file"
	typeDir  = "dir"
	// typeOther is a path the sender holds but does not replicate (a
	// symlink, a socket...): the receiver leaves it alone and never
	// deletes what it holds there.
	typeOther = "other"
)

// entry is one path of a manifest.
type entry struct {
	Path string `json:"path"`
	Type string `json:"type"`
	// Size, SHA256 (hex): files only.
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Mode holds the permission bits (files and dirs).
	Mode uint32 `json:"mode,omitempty"`
	// MTime is the modification time in Unix nanoseconds (files only).
	MTime int64 `json:"mtime,omitempty"`
}

// beginRequest opens a session: the sender's totals let the receiver
// refuse at once what its limits do not allow.
type beginRequest struct {
	Job    string   `json:"job"`
	Roots  []string `json:"roots"`
	Delete bool     `json:"delete"`
	Files  int      `json:"files"`
	Bytes  int64    `json:"bytes"`
}

type beginResponse struct {
	Session string `json:"session"`
	// MaxRequestBytes is the largest body the receiver takes.
	MaxRequestBytes int `json:"max_request_bytes"`
}

type manifestRequest struct {
	Root    string  `json:"root"`
	Entries []entry `json:"entries"`
}

type manifestResponse struct {
	// Need lists the paths of the page to upload.
	Need []string `json:"need"`
	// Changed counts what the receiver fixed on its own (a directory
	// made, a mode or mtime set).
	Changed int `json:"changed"`
}

type chunkResponse struct {
	Received int64 `json:"received"`
	Done     bool  `json:"done"`
}

type commitResponse struct {
	Changed       int   `json:"changed"`
	Deleted       int   `json:"deleted"`
	BytesReceived int64 `json:"bytes_received"`
}

type reportRequest struct {
	Job             string    `json:"job"`
	Start           time.Time `json:"start"`
	DurationSeconds float64   `json:"duration_seconds"`
}

// Values of api.Replication.Direction.
const (
	// DirectionSend: this node runs the job.
	DirectionSend = "send"
	// DirectionReceive: this node holds the copy.
	DirectionReceive = "receive"
)
