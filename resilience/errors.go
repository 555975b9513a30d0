package resilience

import "errors"

// Sentinel errors for refused commands. The API maps them to HTTP codes:
// ErrConflict and ErrBusy to 409, ErrInvalid to 400, ErrPrecondition to 412.
var (
	// ErrConflict: the command would break a safety rule (e.g. a second
	// Active node) and was not forced.
	ErrConflict = errors.New("conflict")
	// ErrBusy: a transition is already under way.
	ErrBusy = errors.New("transition in progress")
	// ErrInvalid: the command itself is malformed (e.g. no reason).
	ErrInvalid = errors.New("invalid command")
	// ErrPrecondition: the command is not allowed in this mode or role.
	ErrPrecondition = errors.New("precondition failed")
)

// ErrFailed: the command was accepted and carried out, and failed (e.g. a
// service did not start and the node rolled back). The API answers 500 with
// the message, which is meant for the admin.
var ErrFailed = errors.New("failed")

// ErrNotDurable: the decision could not be persisted (full disk, read-only
// file system, I/O error), so nothing was started or stopped. The API
// answers 503 with the message; the CLI exits 1.
var ErrNotDurable = errors.New("decision not persisted")

// ErrStopping: the node is shutting down and takes no more commands. The
// API answers 503 with the message: the same command may work once the
// node runs again.
var ErrStopping = errors.New("node is shutting down")
