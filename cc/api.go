package cc

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/resman-pbx/resman/resilience/api"
)

// Paths of the follower's API, served on the file's api.listen.
const (
	PathStatus = "/api/v1/cc/status"
	PathAudit  = "/api/v1/cc/audit"
	// PathNodeStatus, PathNodeAudit and PathActive are served only when
	// Standalone: the follower then answers like a node (resman status,
	// resman audit, load balancers).
	PathNodeStatus = "/api/v1/status"
	PathNodeAudit  = "/api/v1/audit"
	PathActive     = "/active"
)

// Limits of GET /api/v1/cc/audit, as on a node.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

// Role is the role the follower reports in its node-shaped status.
const Role = "cc"

// Handler serves the follower's API: GET /api/v1/cc/status and
// /api/v1/cc/audit?limit=N&before=ID with the bearer token (the file's
// api.token); when Standalone, also GET /api/v1/status (an api.Status),
// /api/v1/audit (the same entries) and the public GET /active (200 when
// Active, else 503, with api.Active).
// Errors are JSON api.Error answers.
func (f *Follower) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		known := path == PathStatus || path == PathAudit ||
			(f.standalone && (path == PathNodeStatus || path == PathNodeAudit || path == PathActive))
		if !known {
			writeJSON(w, http.StatusNotFound, api.Error{Error: "not found"})
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, api.Error{Error: "method " + r.Method + " not allowed; allowed: GET, HEAD"})
			return
		}
		if path == PathActive {
			st := f.Status()
			code := http.StatusServiceUnavailable
			if st.Status == api.StatusActive {
				code = http.StatusOK
			}
			writeJSON(w, code, api.Active{Status: st.Status, Epoch: st.Following.Epoch})
			return
		}
		if !f.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="resman"`)
			writeJSON(w, http.StatusUnauthorized, api.Error{Error: "a valid bearer token is required"})
			return
		}
		switch path {
		case PathStatus:
			writeJSON(w, http.StatusOK, f.Status())
		case PathNodeStatus:
			writeJSON(w, http.StatusOK, f.NodeStatus())
		case PathAudit, PathNodeAudit:
			f.serveAudit(w, r)
		}
	})
}

func (f *Follower) serveAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := defaultAuditLimit
	if v := q.Get("limit"); v != "" || q.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLimit {
			writeJSON(w, http.StatusBadRequest, api.Error{Error: "limit must be an integer from 1 to " + strconv.Itoa(maxAuditLimit)})
			return
		}
		limit = n
	}
	var before uint64
	if v := q.Get("before"); v != "" || q.Has("before") {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, api.Error{Error: "before must be an audit entry ID"})
			return
		}
		before = n
	}
	entries, err := f.Audit(limit, before)
	if err != nil {
		f.log.Error("read the audit log", "error", err)
		writeJSON(w, http.StatusInternalServerError, api.Error{Error: "internal error"})
		return
	}
	writeJSON(w, http.StatusOK, entries)
}

// NodeStatus is the follower's status in the shape of a node's
// (GET /api/v1/status when Standalone): role cc, the followed node as the
// peer, its epoch as the epoch.
func (f *Follower) NodeStatus() api.Status {
	st := f.Status()
	fw := st.Following
	out := api.Status{
		Node:        st.Name,
		Role:        Role,
		Mode:        "follower",
		Status:      st.Status,
		Epoch:       fw.Epoch,
		Since:       st.Since,
		Healthy:     st.Healthy,
		HA:          api.HA{Ready: fw.Reachable, Reasons: []string{}},
		Services:    st.Services,
		Replication: []api.Replication{},
		XDS:         []api.Registration{},
		LastChange:  st.LastChange,
		Peer: &api.Peer{Name: fw.Node, Reachable: fw.Reachable, Status: fw.Status, Epoch: fw.Epoch,
			Healthy: fw.Reachable, Error: fw.Error, CheckedAt: fw.CheckedAt},
	}
	if !fw.Reachable {
		out.HA.Reasons = append(out.HA.Reasons, "paired node "+fw.Node+" cannot be read: keeping "+st.Status)
	}
	if st.Error != "" {
		out.HA.Reasons = append(out.HA.Reasons, "last transition failed: "+st.Error)
	}
	return out
}

func (f *Follower) authorized(r *http.Request) bool { return f.token.Allows(r) }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
