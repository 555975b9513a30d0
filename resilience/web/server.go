package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/resilience/auth"
)

// Limits and timeouts of the server.
const (
	// BodyLimit is the largest request body accepted (413 beyond).
	BodyLimit = 64 << 10
	// MaxReasonLength is the longest reason accepted, in characters.
	MaxReasonLength = 500
	// MaxActorLength is the longest X-Resman-Actor value accepted.
	MaxActorLength = 64
	// DefaultAuditLimit and MaxAuditLimit bound GET /api/v1/audit.
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
	// KeepAliveInterval is the period of the SSE comment keep-alive.
	KeepAliveInterval = 15 * time.Second
	// DefaultEventStreamsPerClient bounds the event streams open at once
	// by one web session, or with the bearer token from one client
	// address; DefaultEventStreams bounds them all (Options can change
	// both). Beyond, GET /api/v1/events answers 429.
	DefaultEventStreamsPerClient = 8
	DefaultEventStreams          = 256

	readTimeout = 10 * time.Second
	// writeTimeout bounds writing one answer; on the event stream it is
	// renewed before each event, so it bounds one stalled write, not the
	// stream.
	writeTimeout = 30 * time.Second
	idleTimeout  = 60 * time.Second
)

// Route paths.
const (
	pathStatus     = "/api/v1/status"
	pathStart      = "/api/v1/services/start"
	pathStop       = "/api/v1/services/stop"
	pathEvents     = "/api/v1/events"
	pathAudit      = "/api/v1/audit"
	pathPeerStatus = "/api/v1/peer/status"
	pathPeerStart  = "/api/v1/peer/services/start"
	pathPeerStop   = "/api/v1/peer/services/stop"
	pathPage       = "/"
	pathLogin      = "/login"
	pathLogout     = "/logout"
	pathActive     = "/active"
	pathHealthz    = "/healthz"
	pathMetrics    = "/metrics"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("web: server closed")

// Options configure a Server.
type Options struct {
	// Token is the bearer token every /api/v1 call must present. An empty
	// Token refuses every authenticated call.
	Token string
	// ReadTokens are further bearer tokens that may only read: GET (and
	// HEAD) routes, /metrics with MetricsAuth; a write with one is
	// answered 403 (config api.read_tokens).
	ReadTokens []string
	// Gatherer is exposed on /metrics; nil exposes an empty registry.
	Gatherer prometheus.Gatherer
	// Registerer receives the server's own metrics
	// (resman_http_requests_total, resman_http_request_duration_seconds);
	// nil keeps them unregistered.
	Registerer prometheus.Registerer
	// Logger receives the server's logs, tagged component=api; nil
	// discards them. The access log is at debug level.
	Logger *slog.Logger
	// MetricsAuth requires the bearer token on /metrics too. It is off by
	// default, as node exporters usually are.
	MetricsAuth bool
	// Mounts serve other components' APIs (CC follower, Edge) on the same
	// listener: a request whose path starts with a mount's Prefix goes to
	// its Handler with the full path. A mounted handler does its own
	// authentication (it may leave some paths public, like /active).
	// Responses are buffered: mounted handlers must not stream.
	Mounts []Mount
	// Users may log in to the web page (GET /) with their password
	// (bcrypt hashes, as in config api.users). With none, the page is
	// served but nobody can log in.
	Users []config.User
	// MaxEventStreamsPerClient and MaxEventStreams bound the open event
	// streams per client and in all (0: DefaultEventStreamsPerClient,
	// DefaultEventStreams).
	MaxEventStreamsPerClient int
	MaxEventStreams          int
	// TrustedProxies are the reverse proxies (TLS in front of the page)
	// whose X-Forwarded-For names the client, for the login lock-out, the
	// stream limits and the logs. From any other peer the header is
	// ignored. None: the TCP peer is the client.
	TrustedProxies []netip.Prefix
}

// Mount is a net/http handler served under a path prefix.
type Mount struct {
	Prefix  string
	Handler http.Handler
}

// Server is the HTTP API server of one node.
type Server struct {
	node Node
	app  *fiber.App
	log  *slog.Logger
	// auth is the web login (nil without a node).
	auth    *webAuth
	metrics *httpMetrics
	// token is the bearer tokens in force; SetAccess swaps the read
	// tokens (under accessMu, so that two swaps do not lose one).
	token    atomic.Pointer[auth.Tokens]
	accessMu sync.Mutex
	// allow lists the methods of each route, for 405 answers.
	allow map[string]string
	// keepAlive is the SSE keep-alive period (tests shorten it).
	keepAlive time.Duration
	// proxies: Options.TrustedProxies.
	proxies []netip.Prefix
	// streams bounds the open event streams.
	streams *streamLimiter

	// closing is closed when Shutdown starts: event streams end.
	closing   chan struct{}
	closeOnce sync.Once
	// baseCtx is the context of the node calls of handlers: it is
	// cancelled when Shutdown gives up waiting for them (a client going
	// away does not cancel a command it sent).
	baseCtx    context.Context
	cancelBase context.CancelFunc

	mu     sync.Mutex
	ln     net.Listener
	closed bool
}

// New returns a Server for n. Routes are registered at once; App gives
// the fiber app for tests and for mounting more routes. A nil n serves only
// /healthz, /metrics and the mounts (a file with no node).
func New(n Node, opts Options) *Server {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	webLog := logger.With("component", "web")
	logger = logger.With("component", "api")
	gatherer := opts.Gatherer
	if gatherer == nil {
		gatherer = prometheus.NewRegistry()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		node:       n,
		log:        logger,
		metrics:    newHTTPMetrics(opts.Registerer, logger),
		allow:      map[string]string{},
		keepAlive:  KeepAliveInterval,
		streams:    newStreamLimiter(opts.MaxEventStreamsPerClient, opts.MaxEventStreams),
		proxies:    opts.TrustedProxies,
		closing:    make(chan struct{}),
		baseCtx:    ctx,
		cancelBase: cancel,
	}
	if n != nil {
		s.auth = newWebAuth(opts.Users, n.Status().Node, webLog, time.Now)
	}
	tokens := auth.NewTokens(opts.Token, opts.ReadTokens)
	s.token.Store(&tokens)
	switch {
	case !tokens.Set():
		logger.Warn("no API token configured: every /api/v1 call will be refused")
	case opts.Token == "":
		logger.Warn("no API token configured, only read tokens: every /api/v1 write with a token will be refused")
	}

	s.app = fiber.New(fiber.Config{
		DisableStartupMessage: true,
		BodyLimit:             BodyLimit,
		ReadTimeout:           readTimeout,
		WriteTimeout:          writeTimeout,
		IdleTimeout:           idleTimeout,
		StrictRouting:         true,
		CaseSensitive:         true,
		// Values handed to the node (who) outlive the request.
		Immutable:    true,
		ErrorHandler: s.handleError,
	})
	srv := s.app.Server()
	srv.CloseOnShutdown = true
	srv.Handler = s.rejectUnknownMethod(srv.Handler)

	s.routes(gatherer, opts.MetricsAuth, opts.Mounts)
	return s
}

func (s *Server) routes(gatherer prometheus.Gatherer, metricsAuth bool, mounts []Mount) {
	app := s.app
	app.Use(s.observe, securityHeaders)
	// Mounts first: a component mounted at /api/v1/cc/ must not meet the
	// node's authentication or 404 answers.
	for _, m := range mounts {
		h := fasthttpadaptor.NewFastHTTPHandler(m.Handler)
		app.Use(m.Prefix, func(c *fiber.Ctx) error {
			h(c.Context())
			return nil
		})
	}

	metrics := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
	}))
	metricsHandler := func(c *fiber.Ctx) error {
		metrics(c.Context())
		return nil
	}

	// Unauthenticated probes.
	s.get(app, pathHealthz, s.healthz)
	if metricsAuth {
		s.get(app, pathMetrics, s.authenticate, metricsHandler)
	} else {
		s.get(app, pathMetrics, metricsHandler)
	}
	if s.node == nil {
		return
	}
	s.get(app, pathActive, s.active)

	// The web page: login, logout, the page and its assets.
	s.get(app, pathPage, s.page)
	s.post(app, pathLogin, s.login)
	s.post(app, pathLogout, s.logout)
	s.assets(app)

	// The API: authentication first, then the routes.
	v1 := app.Group("/api/v1", s.authenticate, noStore)
	s.get(v1, "/status", s.status)
	s.post(v1, "/services/start", s.startServices)
	s.post(v1, "/services/stop", s.stopServices)
	s.get(v1, "/audit", s.audit)
	s.get(v1, "/audit/pair", s.pairAudit)
	s.get(v1, "/peer/status", s.peerStatus)
	s.post(v1, "/peer/services/start", s.peerStart)
	s.post(v1, "/peer/services/stop", s.peerStop)
	s.post(v1, "/replication/run", s.runReplication)
	s.route(v1, "/failover", []string{fiber.MethodPost, fiber.MethodDelete}, s.failover)
	s.post(v1, "/switchover", s.switchover)
	// GET only: a HEAD would open and drop a subscription.
	s.route(v1, "/events", []string{fiber.MethodGet}, s.events)
}

// get registers GET (and HEAD) handlers on path.
func (s *Server) get(r fiber.Router, path string, h ...fiber.Handler) {
	s.route(r, path, []string{fiber.MethodGet, fiber.MethodHead}, h...)
}

func (s *Server) post(r fiber.Router, path string, h ...fiber.Handler) {
	s.route(r, path, []string{fiber.MethodPost}, h...)
}

// route registers h for methods on path, then a 405 answer with an Allow
// header for every other method.
func (s *Server) route(r fiber.Router, path string, methods []string, h ...fiber.Handler) {
	r.Add(methods[0], path, h...)
	for _, m := range methods[1:] {
		r.Add(m, path, h...)
	}
	allow := methods[0]
	for _, m := range methods[1:] {
		allow += ", " + m
	}
	full := path
	if g, ok := r.(*fiber.Group); ok {
		full = g.Prefix + path
	}
	s.allow[full] = allow
	r.All(path, func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderAllow, allow)
		return errorf(fiber.StatusMethodNotAllowed, "method %s not allowed; allowed: %s", c.Method(), allow)
	})
}

// rejectUnknownMethod answers requests with a method fiber does not know
// (fiber would answer them in plain text) with a JSON error.
func (s *Server) rejectUnknownMethod(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	known := map[string]bool{}
	for _, m := range fiber.DefaultMethods {
		known[m] = true
	}
	return func(ctx *fasthttp.RequestCtx) {
		if known[string(ctx.Method())] {
			next(ctx)
			return
		}
		code, msg := fiber.StatusNotFound, "not found"
		if allow, ok := s.allow[string(ctx.Path())]; ok {
			code, msg = fiber.StatusMethodNotAllowed, "method not allowed; allowed: "+allow
			ctx.Response.Header.Set(fiber.HeaderAllow, allow)
		}
		writeJSONError(ctx, code, msg)
		s.metrics.observe("other", "other", code, 0)
	}
}

// SetAccess puts new read tokens and web users in force, as a reload of
// api.read_tokens and api.users does; the token (Options.Token) stays.
// From the next request on, a removed read token is refused and a new
// one reads; a removed user cannot log in, and the sessions of a removed
// user or of one whose password hash or role changed end (their event
// streams too); a new user may log in; the other users keep their
// sessions. Requests in flight finish with what they were authenticated
// with. It is safe to call while the server serves. The change names
// users only (a server without a node has no web login: none).
func (s *Server) SetAccess(readTokens []string, users []config.User) UsersChange {
	s.accessMu.Lock()
	defer s.accessMu.Unlock()
	tokens := s.token.Load().WithRead(readTokens)
	s.token.Store(&tokens)
	if s.auth == nil {
		return UsersChange{}
	}
	return s.auth.setUsers(users)
}

// App is the fiber app, for tests and for mounting more routes.
func (s *Server) App() *fiber.App { return s.app }

// Serve serves HTTP on ln until Shutdown; it returns nil after a clean
// Shutdown and ErrServerClosed when called after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.ln = ln
	s.mu.Unlock()
	s.log.Info("serving", "addr", ln.Addr().String())
	if err := s.app.Listener(ln); err != nil {
		return fmt.Errorf("web: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops accepting connections, ends the event streams and waits
// for the other requests to finish, or for ctx to be done: then the node
// calls still running see their context cancelled and Shutdown returns
// ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.mu.Lock()
	s.closed = true
	ln := s.ln
	s.mu.Unlock()

	stop := context.AfterFunc(ctx, s.cancelBase)
	defer stop()
	err := s.app.ShutdownWithContext(ctx)
	if ln != nil {
		// Serve may not have handed ln to fasthttp yet.
		_ = ln.Close()
	}
	s.cancelBase()
	if err != nil {
		return fmt.Errorf("web: shutdown: %w", err)
	}
	s.log.Info("stopped")
	return nil
}
