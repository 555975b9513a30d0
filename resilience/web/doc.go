// Package web is the HTTP API server of a resman node.
//
// It serves a [Node] over HTTP with fiber: the authenticated REST API under
// /api/v1 (status, services start/stop, audit log, a Server-Sent Events
// stream), and the unauthenticated probes /active and /healthz and the
// Prometheus endpoint /metrics. The JSON wire types are those of package
// api; README.md beside this file documents every endpoint and error.
//
// Every error answer, including those fiber and fasthttp produce themselves
// (unknown path, wrong method, body too large, panics), is a JSON api.Error.
// Refusals of the node are mapped from the sentinel errors of package
// resilience: ErrConflict and ErrBusy to 409, ErrInvalid to 400,
// ErrPrecondition to 412; any other error is a 500 whose detail is only
// logged.
//
// Authentication is a separate middleware step that yields the principal
// recorded as "who" in the audit log ("api", or "api:<actor>" when the
// client sends X-Resman-Actor), so that another scheme (web sessions) can be
// added beside the bearer token later.
package web
