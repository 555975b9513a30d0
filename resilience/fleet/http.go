package fleet

import (
	"embed"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/auth"
)

// Paths the aggregator serves (mount both prefixes on the API listener).
const (
	// PathAPI answers the fleet's state, a JSON array of Pair (bearer
	// token: the aggregator's api.token).
	PathAPI = "/api/v1/fleet"
	// PathEvents answers the feed of the fleet's changes, newest first
	// (EventsAnswer; same token as PathAPI); ?after=SEQ keeps the newer
	// ones.
	PathEvents = PathAPI + "/events"
	// PathPage is the read-only fleet page and, below it, its assets. It
	// holds no data: the page's script asks PathAPI with the token the
	// reader types.
	PathPage = "/fleet"
)

//go:embed ui
var uiFS embed.FS

// contentSecurityPolicy: scripts and styles from this origin only, and
// requests to this origin only (the page reads PathAPI).
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves PathAPI, PathEvents, PathPage and the page's assets, with net/http
// (as the CC follower and the Edge do): mount it under both prefixes on
// the node's API listener (web.Mount), or serve it alone.
func (a *Aggregator) Handler() http.Handler {
	token := auth.NewToken(a.token)
	mux := http.NewServeMux()
	// readOnly checks the token and the method of the API's routes.
	readOnly := func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Cache-Control", "no-store")
		if !token.Allows(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="resman"`)
			writeJSON(w, http.StatusUnauthorized, api.Error{Error: "a valid bearer token is required: the aggregator's api.token"})
			return false
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, api.Error{Error: "method not allowed: the fleet view is read-only"})
			return false
		}
		return true
	}
	mux.HandleFunc(PathAPI, func(w http.ResponseWriter, r *http.Request) {
		if readOnly(w, r) {
			writeJSON(w, http.StatusOK, a.Snapshot())
		}
	})
	mux.HandleFunc(PathEvents, func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r) {
			return
		}
		var after uint64
		if v := r.URL.Query().Get("after"); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, api.Error{Error: "after must be an event's seq (an unsigned integer)"})
				return
			}
			after = n
		}
		writeJSON(w, http.StatusOK, EventsAnswer{Events: a.Events(after), Max: MaxEvents})
	})
	asset := func(name, ctype string) http.HandlerFunc {
		body, err := uiFS.ReadFile("ui/" + name)
		if err != nil {
			panic(err) // embedded: cannot happen
		}
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				writeJSON(w, http.StatusMethodNotAllowed, api.Error{Error: "method not allowed"})
				return
			}
			h := w.Header()
			h.Set("Content-Type", ctype)
			h.Set("Cache-Control", "no-cache")
			h.Set("Content-Security-Policy", contentSecurityPolicy)
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusOK)
			if r.Method == http.MethodGet {
				_, _ = w.Write(body)
			}
		}
	}
	mux.HandleFunc(PathPage, asset("index.html", "text/html; charset=utf-8"))
	mux.HandleFunc(PathPage+"/fleet.js", asset("fleet.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc(PathPage+"/fleet.css", asset("fleet.css", "text/css; charset=utf-8"))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != PathAPI && r.URL.Path != PathEvents && !strings.HasPrefix(r.URL.Path, PathPage) {
			writeJSON(w, http.StatusNotFound, api.Error{Error: "not found"})
			return
		}
		if _, pattern := mux.Handler(r); pattern == "" {
			writeJSON(w, http.StatusNotFound, api.Error{Error: "not found"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// EventsAnswer is the answer of GET PathEvents.
type EventsAnswer struct {
	// Events, newest first.
	Events []Event `json:"events"`
	// Max is how many events the aggregator keeps (MaxEvents).
	Max int `json:"max"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
