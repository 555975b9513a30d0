// Package cc is the contact-center follower: it follows one PBX node (its
// paired node) and runs the contact-center services while that node is
// Active.
//
// The follower reads the node's event stream (GET /api/v1/events) for
// prompt news and polls the node every check interval besides: GET
// /api/v1/status while the stream is down, GET /active while it is up (a
// stream that stalls silently is then noticed and reconnected, with
// backoff): resilience/client/watch, with the polls as the stream's
// fallback. When the node goes Active the follower starts its services with
// the same supervisor and checks as a node; when the node goes Inactive (or
// starts deactivating) it stops them. When the node cannot be reached, the
// follower keeps its current state and says so in its status, its log and
// its audit log.
//
// One transition runs at a time, to its end; the follower then moves on to
// whatever the node's latest status asks for. Every transition is audited
// with its cause ("paired node xivo-main went active (epoch 4)"). A start
// that fails is rolled back (services stopped) and retried with backoff
// while the node stays Active.
package cc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/audit"
	"github.com/resman-pbx/resman/resilience/auth"
	"github.com/resman-pbx/resman/resilience/client"
	"github.com/resman-pbx/resman/services"
)

// Defaults of the Options the config does not (yet) carry.
const (
	DefaultCheckInterval = time.Second
	// maxBackoff bounds the wait between two reconnections of the event
	// stream, and between two retries of a failed start.
	maxBackoff = 10 * time.Second
	minBackoff = 100 * time.Millisecond
)

// who signs the follower's own audit entries.
const who = "resman"

// Options configure a Follower.
type Options struct {
	// Config is the cc section, validated and defaulted by config.
	Config Config
	// Token is the bearer token of the follower's own API (the file's
	// api.token); Config.Token is the followed node's.
	Token string
	// DataDir holds the follower's audit log (audit.db): cc.data_dir.
	// Required.
	DataDir string
	// Standalone also serves /api/v1/status and /active: no node runs in
	// the same file.
	Standalone bool
	// CheckInterval is the period of the polls of the node (default
	// DefaultCheckInterval): cc.check_interval.
	CheckInterval time.Duration
	// Timeout bounds one call to the node (default: CheckInterval, at
	// least a second).
	Timeout time.Duration
	// Logger receives the logs, tagged component=cc; nil discards them.
	Logger *slog.Logger
	// Registerer, if set, receives the resman_cc_* and the services'
	// metrics.
	Registerer prometheus.Registerer
	// Env is added to the environment of the services' commands.
	Env []string
}

// Follower follows one node and drives the CC services. Its methods are
// safe for concurrent use.
type Follower struct {
	log      *slog.Logger
	name     string
	url      string
	interval time.Duration
	client   *client.Client
	sup      *services.Supervisor
	audit    *audit.Log
	metrics  *metrics
	token    auth.Token
	// standalone also answers /api/v1/status and /active.
	standalone bool

	// kick wakes the reconciler.
	kick       chan struct{}
	runOnce    sync.Once
	closeOnce  sync.Once
	closeError error

	mu sync.Mutex
	// status is the follower's own: active, inactive, activating or
	// deactivating.
	status string
	since  time.Time
	last   *api.Transition
	// lastErr is the error of the last failed transition.
	lastErr string
	// following is what the follower knows of its node.
	following Following
	// want is what the node's status asks for ("" for nothing: the node
	// is unreachable, activating or not yet seen); cause says why, for
	// the audit of the next transition. The reconciler decides from
	// following (see decide in want.go).
	want, cause string
	// retryAt delays the retry of a failed start; failures counts them.
	retryAt  time.Time
	failures int
	// swept: the services have been stopped once since the start.
	swept bool
}

// Following is what the follower knows of its paired node.
type Following struct {
	// Node is the node's name (its URL until it has answered).
	Node string `json:"node"`
	URL  string `json:"url"`
	// Reachable: the node's API answered the last call.
	Reachable bool `json:"reachable"`
	// Status and Epoch are the node's, as last seen.
	Status string `json:"status,omitempty"`
	Epoch  uint64 `json:"epoch"`
	// Since is when the node entered Status.
	Since time.Time `json:"since,omitzero"`
	// Stream: the event stream is connected.
	Stream    bool      `json:"stream"`
	CheckedAt time.Time `json:"checked_at,omitzero"`
	Error     string    `json:"error,omitempty"`
}

// Status is the answer of GET /api/v1/cc/status.
type Status struct {
	Name string `json:"name"`
	// Status is active, inactive, activating or deactivating.
	Status string    `json:"status"`
	Since  time.Time `json:"since"`
	// Healthy: no critical service has failed or fallen.
	Healthy    bool            `json:"healthy"`
	Following  Following       `json:"following"`
	Services   []api.Service   `json:"services"`
	LastChange *api.Transition `json:"last_change,omitempty"`
	// Error is the error of the last failed transition.
	Error string `json:"error,omitempty"`
}

// New builds a Follower and opens its audit log. The services are not
// touched before Run.
func New(opts Options) (*Follower, error) {
	cfg := opts.Config
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The supervisor tags its own logs component=services.
	svcLog := log.With("cc", cfg.Name)
	log = log.With("component", "cc", "cc", cfg.Name)
	if cfg.Follow == "" {
		return nil, errors.New("no node to follow")
	}
	if opts.DataDir == "" {
		return nil, errors.New("no data dir for the audit log")
	}
	interval := opts.CheckInterval
	if interval <= 0 {
		interval = DefaultCheckInterval
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = max(interval, time.Second)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	sup, err := services.New(cfg.Services, services.Options{Logger: svcLog, Registerer: opts.Registerer, Env: opts.Env})
	if err != nil {
		return nil, fmt.Errorf("cc.services: %w", err)
	}
	if err := os.MkdirAll(opts.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	al, err := audit.Open(filepath.Join(opts.DataDir, "audit.db"))
	if err != nil {
		return nil, err
	}
	f := &Follower{
		log:        log,
		name:       cfg.Name,
		url:        cfg.Follow,
		interval:   interval,
		client:     client.New(cfg.Follow, cfg.Token, client.WithTimeout(timeout), client.WithActor(cfg.Name)),
		sup:        sup,
		audit:      al,
		metrics:    m,
		standalone: opts.Standalone,
		kick:       make(chan struct{}, 1),
		since:      time.Now(),
		following:  Following{Node: cfg.Follow, URL: cfg.Follow},
	}
	f.token = auth.NewToken(opts.Token)
	if !f.token.Set() {
		log.Warn("no API token configured: the follower's API refuses every authenticated call")
	}
	// Running services (units found active) make an Active follower; it
	// keeps them until the node says otherwise.
	f.status = api.StatusInactive
	if svcs := sup.Status(); len(svcs) > 0 && allIn(svcs, services.StateRunning) {
		f.status = api.StatusActive
	}
	m.setStatus(f.status)
	return f, nil
}

// Close closes the audit log; call it after Run has returned.
func (f *Follower) Close() error {
	f.closeOnce.Do(func() { f.closeError = f.audit.Close() })
	return f.closeError
}

// Run follows the node and drives the services until ctx is done. The
// services are left as they are when it returns (run: processes end with
// the process). Call it once.
func (f *Follower) Run(ctx context.Context) error {
	first := false
	f.runOnce.Do(func() { first = true })
	if !first {
		return errors.New("cc: Run called twice")
	}
	f.mu.Lock()
	status := f.status
	f.mu.Unlock()
	f.record(api.AuditEntry{Action: "boot", Cause: "following " + f.url, Outcome: api.OutcomeOK, From: status, To: status})
	f.log.Info("following", "node", f.url, "status", status, "interval", f.interval)

	var wg sync.WaitGroup
	wg.Go(func() { f.sup.Run(ctx) })
	wg.Go(func() { f.watcher().Run(ctx) })
	wg.Go(func() { f.reconcileLoop(ctx) })
	wg.Wait()
	return nil
}

// Status is a snapshot of the follower. It never blocks on I/O.
func (f *Follower) Status() Status {
	svcs := f.sup.Status()
	f.mu.Lock()
	defer f.mu.Unlock()
	st := Status{
		Name:      f.name,
		Status:    f.status,
		Since:     f.since.UTC(),
		Healthy:   len(f.sup.Unhealthy()) == 0,
		Following: f.following,
		Services:  svcs,
		Error:     f.lastErr,
	}
	if f.last != nil {
		t := *f.last
		st.LastChange = &t
	}
	return st
}

// Audit returns up to limit audit entries, newest first, older than the
// entry before when before is not 0.
func (f *Follower) Audit(limit int, before uint64) ([]api.AuditEntry, error) {
	return f.audit.List(limit, before)
}

// record appends e to the audit log (signed by resman) and logs it.
func (f *Follower) record(e api.AuditEntry) {
	if e.Who == "" {
		e.Who = who
	}
	if e.From != e.To {
		f.metrics.transitions.WithLabelValues(e.From, e.To, e.Outcome).Inc()
	}
	attrs := []any{"action", e.Action, "outcome", e.Outcome, "from", e.From, "to", e.To, "epoch", e.Epoch, "cause", e.Cause}
	if e.Detail != "" {
		attrs = append(attrs, "detail", e.Detail)
	}
	if _, err := f.audit.Append(e); err != nil {
		f.log.Error("cannot write the audit log", append(attrs, "error", err)...)
		return
	}
	if e.Outcome == api.OutcomeFailed {
		f.log.Error("audit", attrs...)
	} else {
		f.log.Info("audit", attrs...)
	}
}

func allIn(svcs []api.Service, state string) bool {
	for _, s := range svcs {
		if s.State != state {
			return false
		}
	}
	return true
}

func anyIn(svcs []api.Service, state string) bool {
	for _, s := range svcs {
		if s.State == state {
			return true
		}
	}
	return false
}

// signal wakes a loop without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
