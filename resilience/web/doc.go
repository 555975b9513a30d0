// Package web is the HTTP server of a resman node: its API and its
// Resilience Management page.
//
// It serves a [Node] over HTTP with fiber: the authenticated REST API under
// /api/v1 (status, services start/stop, audit log, a Server-Sent Events
// stream, the peer's status and commands forwarded through a [PeerNode],
// and the pair timeline: both nodes' audit logs on one axis, the peer's
// read through a [PeerAuditNode], merged by package pairaudit), the
// unauthenticated probes /active and /healthz and the Prometheus endpoint
// /metrics, and the web page at / with its login. The
// JSON wire types are those of package api; README.md beside this file
// documents every endpoint and error.
//
// The page (plain HTML, CSS and JavaScript embedded in the binary, under
// ui/) shows this node and its peer side by side, live over the event
// stream, with Start and Stop services for both. Admins log in with the
// users of [Options.Users] (bcrypt hashes); a session is a random 256-bit
// ID in an HttpOnly, SameSite=Strict cookie, kept in memory with an idle
// timeout and an absolute lifetime, and every write made with it needs the
// session's CSRF token. Failed logins lock out the user name from one
// client address (the TCP peer, never a forwarded header) and an address
// spraying names, and slow down a name attacked from many addresses
// except from the addresses it logged in from; attempts take their place
// before the password check, so parallel attempts get no more checks.
// Event streams are limited per client and in all. Logins, failures and
// logouts are logged with component=web. [Server.SetAccess] swaps the
// users and the read tokens while serving (a config reload): the sessions
// of removed users and of users whose hash or role changed end.
//
// Every error answer, including those fiber and fasthttp produce themselves
// (unknown path, wrong method, body too large, panics), is a JSON api.Error.
// Refusals of the node are mapped from the sentinel errors of package
// resilience: ErrConflict and ErrBusy to 409, ErrInvalid to 400,
// ErrPrecondition to 412, ErrFailed (a command carried out that failed) to
// a 500 with its message, ErrNotDurable (a decision the node could not
// persist, so did not carry out) to a 503 with its message; any other
// error is a 500 whose detail is only logged.
//
// Authentication is a separate middleware step that yields the principal
// recorded as "who" in the audit log ("api", or "api:<actor>" when the
// client sends X-Resman-Actor), or "web:<user>" for a web session.
package web
