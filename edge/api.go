package edge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/resman-pbx/resman/edge/sipfront"
	"github.com/resman-pbx/resman/resilience/api"
)

// Paths of the Edge's status API, served on the file's api.listen.
const (
	PathStatus = "/api/v1/edge/status"
	// PathNodeStatus is served only when Standalone: the Edge then answers
	// like a node (resman status), with NodeStatus.
	PathNodeStatus = "/api/v1/status"
)

// Role and Mode are what the Edge reports in its node-shaped status.
const (
	Role = "edge"
	Mode = "proxy"
)

// Status is the answer of GET /api/v1/edge/status.
type Status struct {
	// Side receiving the traffic; empty when no side is Active.
	Side string `json:"side"`
	// Since when Side has had the traffic (or none has).
	Since time.Time `json:"since"`
	// Switches counts the changes of Side since the Edge started.
	Switches uint64 `json:"switches"`
	// Listen is the proxy's address.
	Listen string `json:"listen"`
	TLS    bool   `json:"tls"`
	// Check is the health check's setting.
	Check CheckStatus  `json:"check"`
	Sides []SideStatus `json:"sides"`
	// SIP is the SIP front's status, absent without edge.sip.
	SIP *sipfront.Status `json:"sip,omitempty"`
}

// CheckStatus is the Edge's health check setting.
type CheckStatus struct {
	Interval string `json:"interval"`
	Rise     int    `json:"rise"`
	Fall     int    `json:"fall"`
}

// SideStatus is what the Edge knows of one side.
type SideStatus struct {
	Name string `json:"name"`
	Node string `json:"node"`
	// Health is up (receives traffic when chosen), down or unknown.
	Health string `json:"health"`
	// Routed: this side has the traffic.
	Routed bool `json:"routed"`
	// Active: the node's last answer said Active.
	Active bool `json:"active"`
	// NodeStatus is the status in the node's last answer.
	NodeStatus string `json:"node_status,omitempty"`
	Epoch      uint64 `json:"epoch"`
	// Passes and Fails are the current runs of passed and failed checks.
	Passes    int       `json:"passes"`
	Fails     int       `json:"fails"`
	LastCheck time.Time `json:"last_check,omitzero"`
	Error     string    `json:"error,omitempty"`
	// Streams counts the open WebSocket and streaming connections.
	Streams int           `json:"streams"`
	Routes  []RouteStatus `json:"routes"`
	// UpstreamTLS is the side's upstream_tls, when set.
	UpstreamTLS *UpstreamTLSStatus `json:"upstream_tls,omitempty"`
}

// RouteStatus is one route of a side.
type RouteStatus struct {
	Path     string `json:"path"`
	Upstream string `json:"upstream"`
	// Error says why the upstream last failed to answer (the client got a
	// 502), at ErrorAt; empty once it answers again.
	Error   string    `json:"error,omitempty"`
	ErrorAt time.Time `json:"error_at,omitzero"`
}

// UpstreamTLSStatus is how a side's https servers are verified.
type UpstreamTLSStatus struct {
	CAFile     string `json:"ca_file,omitempty"`
	ServerName string `json:"server_name,omitempty"`
	// InsecureSkipVerify: the side's certificates are not verified.
	InsecureSkipVerify bool `json:"insecure_skip_verify"`
}

// Status is a snapshot of the Edge.
func (e *Edge) Status() Status {
	e.mu.Lock()
	routed := e.routed.Load()
	st := Status{
		Since:    e.since.UTC(),
		Switches: e.switches,
		Listen:   e.addr,
		TLS:      e.tls != nil,
		Check:    CheckStatus{Interval: e.interval.String(), Rise: e.rise, Fall: e.fall},
	}
	if st.Listen == "" {
		st.Listen = e.listen
	}
	if routed != nil {
		st.Side = routed.name
	}
	for _, s := range e.sides {
		ss := SideStatus{
			Name: s.name, Node: s.node, Health: orUnknown(s.health), Routed: s == routed,
			Active: s.claims, NodeStatus: s.nodeState, Epoch: s.epoch,
			Passes: s.checks.Passes(), Fails: s.checks.Fails(), Error: s.lastErr,
		}
		if !s.lastCheck.IsZero() {
			ss.LastCheck = s.lastCheck.UTC()
		}
		for _, rt := range s.routes {
			rs := RouteStatus{Path: rt.path, Upstream: rt.upstream.String()}
			if le := rt.lastErr.Load(); le != nil {
				rs.Error, rs.ErrorAt = le.msg, le.at.UTC()
			}
			ss.Routes = append(ss.Routes, rs)
		}
		if t := s.tlsConf; t != nil {
			ss.UpstreamTLS = &UpstreamTLSStatus{CAFile: t.CAFile, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
		}
		st.Sides = append(st.Sides, ss)
	}
	e.mu.Unlock()
	for i, s := range e.sides {
		st.Sides[i].Streams = s.openStreams()
	}
	if e.sip != nil {
		ss := e.sip.Status()
		st.SIP = &ss
	}
	return st
}

// NodeStatus is the Edge's status in the shape of a node's (GET
// /api/v1/status when Standalone, read by resman status): role edge, mode
// proxy, active while a side receives the traffic (the epoch is that
// side's; with none, the highest a side has told), healthy while the proxy
// listens, HA ready while it routes, with
// reasons naming the sides that are not up otherwise. No peer; LastChange
// is the last change of the routed side.
func (e *Edge) NodeStatus() api.Status {
	st := e.Status()
	e.mu.Lock()
	serving := e.serving
	var last *api.Transition
	if e.lastSwitch != nil {
		cp := *e.lastSwitch
		last = &cp
	}
	e.mu.Unlock()
	out := api.Status{
		Node:        e.name,
		Role:        Role,
		Mode:        Mode,
		Status:      api.StatusInactive,
		Since:       st.Since,
		Healthy:     serving,
		HA:          api.HA{Reasons: []string{}},
		Services:    []api.Service{},
		Replication: []api.Replication{},
		XDS:         []api.Registration{},
		LastChange:  last,
	}
	if !serving {
		out.HA.Reasons = append(out.HA.Reasons, "the proxy does not listen on "+st.Listen)
	}
	for _, ss := range st.Sides {
		switch {
		case ss.Routed:
			out.Status, out.Epoch = api.StatusActive, ss.Epoch
		case out.Status != api.StatusActive:
			out.Epoch = max(out.Epoch, ss.Epoch)
		}
	}
	if out.Status != api.StatusActive {
		out.HA.Reasons = append(out.HA.Reasons, "no side is Active: users get the 503 page")
		for _, ss := range st.Sides {
			out.HA.Reasons = append(out.HA.Reasons, sideReason(ss, st.Check.Rise))
		}
	}
	out.HA.Ready = len(out.HA.Reasons) == 0
	return out
}

// sideReason says why a side does not receive the traffic.
func sideReason(ss SideStatus, rise int) string {
	what := "side " + ss.Name + " is " + ss.Health
	if ss.Health == HealthUnknown {
		what = "side " + ss.Name + " is not up yet"
	}
	switch {
	case ss.Error != "":
		return fmt.Sprintf("%s: checks of its node fail: %s (%d in a row)", what, ss.Error, ss.Fails)
	case ss.NodeStatus != "" && !ss.Active:
		return fmt.Sprintf("%s: its node is %s (epoch %d)", what, ss.NodeStatus, ss.Epoch)
	case ss.Health == HealthUp:
		return what // not routed while up: only for a moment
	case ss.Passes > 0:
		return fmt.Sprintf("%s: its node answered active %d of %d times", what, ss.Passes, rise)
	}
	return what + ": its node has not answered yet"
}

// APIHandler serves the status API: GET /api/v1/edge/status, and GET
// /api/v1/status (NodeStatus) when Standalone, with the bearer token (the
// file's api.token). Errors are JSON api.Error answers.
func (e *Edge) APIHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != PathStatus && !(e.standalone && r.URL.Path == PathNodeStatus) {
			writeJSON(w, http.StatusNotFound, api.Error{Error: "not found"})
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, api.Error{Error: "method " + r.Method + " not allowed; allowed: GET, HEAD"})
			return
		}
		if !e.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="resman"`)
			writeJSON(w, http.StatusUnauthorized, api.Error{Error: "a valid bearer token is required"})
			return
		}
		if r.URL.Path == PathNodeStatus {
			writeJSON(w, http.StatusOK, e.NodeStatus())
			return
		}
		writeJSON(w, http.StatusOK, e.Status())
	})
}

func (e *Edge) authorized(r *http.Request) bool { return e.token.Allows(r) }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
