// Package edge is the reverse proxy in front of a Main/Standby pair: users,
// browsers and phones connect to the Edge, and the Edge sends every request
// to the side whose node is Active.
//
// The Edge asks each side's node GET /active every check interval. A side
// receives traffic once it has answered "active" rise times in a row; it
// stops receiving traffic after fall failed checks in a row, or at once
// when its node says that it is not Active, in an answer or on the node's
// event stream (which the Edge follows with edge.token, so that a stopping
// node loses its traffic before its services are down; the checks and the
// stream are resilience/client/watch, shared with the CC follower). All
// routes switch together: the Edge routes to one side at a time (the
// higher epoch wins if both claim Active). When the routed side changes,
// the WebSocket and streaming connections (Server-Sent Events, answers
// without a length) of the side that lost Active are closed, so that
// clients reconnect to the new side. With no side Active, requests get a 503 page with Retry-After.
//
// Plain requests, nearly all of them, take the fast path (fast.go): a
// goroutine per client connection reads a head once, checks it strictly,
// writes it rewritten to a kept-alive upstream connection and relays the
// answer, with no clock read, deadline or allocation per request; it
// spends about nginx's CPU per request at 32 connections on small answers
// and less everywhere else (see README.md). Whatever it does not take
// goes, with the rest of its connection, to the general path: fasthttp's
// server and upstream client (net/http's ReverseProxy reached about half
// of nginx's throughput on the same job). Answers are streamed,
// whatever their size (the Edge holds no more of one than its buffers);
// answers without a length are flushed as they come. WebSocket upgrades
// and requests for an event
// stream get a connection of their own to the upstream, and bytes are
// copied both ways. Error pages never name an upstream.
//
// Hop-by-hop headers (RFC 9110 §7.6.1) are removed in both directions,
// and the headers a Connection header names; the Edge's own headers are
// set after, so that no client removes them. h2c, HTTP/2 and HTTP/1.1
// requests without Host are refused (hop.go, README.md).
package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/resman-pbx/resman/edge/sipfront"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/auth"
	"github.com/resman-pbx/resman/resilience/client"
	"github.com/resman-pbx/resman/services/hysteresis"
)

// Timeouts and limits of the proxy listener and of the upstream client.
const (
	// readTimeout bounds reading one request (headers and body).
	readTimeout     = 60 * time.Second
	idleTimeout     = 120 * time.Second
	shutdownTimeout = 3 * time.Second
	dialTimeout     = 5 * time.Second
	tlsTimeout      = 5 * time.Second
	upstreamIdle    = 90 * time.Second
	// maxRequestBody bounds an upload; bodies are streamed, not held.
	maxRequestBody = 1 << 30
)

// Options configure an Edge.
type Options struct {
	// Config is the edge section, validated and defaulted by config.
	Config Config
	// Token is the bearer token of the Edge's status API (the file's
	// api.token).
	Token string
	// TLSCert and TLSKey are PEM files; when both are set the proxy
	// listens with TLS (HTTPS, HTTP/1.1): edge.tls.cert and edge.tls.key.
	TLSCert, TLSKey string
	// CheckTimeout bounds one check of a side's node (default: the check
	// interval): edge.check.timeout.
	CheckTimeout time.Duration
	// Standalone also serves NodeStatus, the status in a node's shape, at
	// /api/v1/status: no node nor CC follower runs in the same file.
	Standalone bool
	// Logger receives the logs, tagged component=edge; nil discards them.
	Logger *slog.Logger
	// Registerer, if set, receives the resman_edge_* metrics.
	Registerer prometheus.Registerer
}

// Edge is the proxy. Its methods are safe for concurrent use.
type Edge struct {
	log        *slog.Logger
	listen     string
	name       string // the Edge's name in its node-shaped status
	interval   time.Duration
	rise, fall int
	// checkTimeout bounds one check; stalls are the Edge's own (lag.go):
	// a failed check during which it stalled half of checkTimeout is not
	// counted.
	checkTimeout time.Duration
	stalls       stallMeter
	sides        []*side
	tls          *tls.Config
	checkHC      *http.Client
	token        auth.Token
	standalone   bool
	metrics      *metrics
	pages        pages
	// generalOnly serves every request on the general path (fast.go), for
	// the tests that compare both.
	generalOnly bool

	// routed is the side receiving traffic, nil when none is Active.
	routed atomic.Pointer[side]
	// sip is the SIP front (edge.sip), nil when not configured; it sends
	// to the routed side.
	sip *sipfront.Front

	// mu guards the selection state and every side's check state.
	mu       sync.Mutex
	since    time.Time
	switches uint64
	started  bool
	serving  bool   // the proxy listens (between the start and the end of Serve)
	addr     string // the address the proxy listens on, once it does
	// lastSwitch is the last change of the routed side, nil before any.
	lastSwitch *api.Transition
}

// New builds an Edge from its config. It fails on an unusable upstream URL
// or TLS files.
func New(opts Options) (*Edge, error) {
	cfg := opts.Config
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "edge")
	if len(cfg.Sides) == 0 {
		return nil, errors.New("edge: no side configured")
	}
	e := &Edge{
		log:        log,
		listen:     cfg.Listen,
		interval:   cfg.Check.Interval,
		rise:       max(cfg.Check.Rise, 1),
		fall:       max(cfg.Check.Fall, 1),
		name:       edgeName(cfg.Listen),
		standalone: opts.Standalone,
		since:      time.Now(),
	}
	if e.interval <= 0 {
		e.interval = 500 * time.Millisecond
	}
	checkTimeout := opts.CheckTimeout
	if checkTimeout <= 0 {
		checkTimeout = e.interval
	}
	e.checkTimeout = checkTimeout
	e.stalls.period = lagPeriodFor(checkTimeout)
	e.token = auth.NewToken(opts.Token)
	if !e.token.Set() {
		log.Warn("no API token configured: the Edge's status API refuses every call")
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	e.metrics = m
	// Retry after about the time a side needs to be seen Active.
	retry := max(1, int((e.interval*time.Duration(e.rise)+time.Second-1)/time.Second))
	e.pages = newPages(strconv.Itoa(retry))

	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return nil, errors.New("edge tls: set both the certificate and the key, or neither")
	}
	if opts.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(opts.TLSCert, opts.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("edge tls: %w", err)
		}
		e.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	e.checkHC = newCheckClient(nil)
	seen := map[string]bool{}
	for i, sc := range cfg.Sides {
		if seen[sc.Name] {
			return nil, fmt.Errorf("edge.sides[%d].name: %q used twice", i, sc.Name)
		}
		seen[sc.Name] = true
		upTLS, err := upstreamTLSConfig(i, sc.UpstreamTLS)
		if err != nil {
			return nil, err
		}
		hc := e.checkHC
		if sc.UpstreamTLS != nil {
			// The node, when https, is trusted as the upstreams are.
			hc = newCheckClient(upTLS.Clone())
			if sc.UpstreamTLS.InsecureSkipVerify {
				log.Warn("upstream_tls.insecure_skip_verify: this side's certificates are not verified; anyone on the path can impersonate it",
					"side", sc.Name)
			}
		}
		s := &side{
			edge:    e,
			name:    sc.Name,
			node:    sc.Node,
			tlsConf: sc.UpstreamTLS,
			streams: map[*stream]struct{}{},
			byConn:  map[net.Conn]*stream{},
			client:  client.New(sc.Node, cfg.Token, client.WithHTTPClient(hc), client.WithTimeout(checkTimeout)),
			checks:  hysteresis.New(e.rise, e.fall, hysteresis.Counted),
		}
		if len(sc.Routes) == 0 {
			return nil, fmt.Errorf("edge.sides[%d].routes: no route", i)
		}
		for j, rc := range sc.Routes {
			u, err := url.Parse(rc.Upstream)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("edge.sides[%d].routes[%d].upstream: not an http(s) URL with a host", i, j)
			}
			s.routes = append(s.routes, newRoute(s, rc.Path, u, upTLS))
		}
		// Longest prefix first: the first match is the most specific.
		slices.SortStableFunc(s.routes, func(a, b *route) int { return len(b.path) - len(a.path) })
		e.sides = append(e.sides, s)
	}
	e.metrics.setRouted(e.sides, nil)
	if cfg.SIP != nil {
		if err := e.newSIPFront(cfg, opts); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// newSIPFront builds the SIP front of edge.sip, with each side's PBX.
func (e *Edge) newSIPFront(cfg Config, opts Options) error {
	so := sipfront.Options{
		Listen: cfg.SIP.Listen, Advertise: cfg.SIP.Advertise, Expires: cfg.SIP.Expires,
		RegisterRate: cfg.SIP.RegisterRate, Logger: opts.Logger, Registerer: opts.Registerer,
	}
	if t := cfg.SIP.TLS; t != nil {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return fmt.Errorf("edge.sip.tls: %w", err)
		}
		so.TLSListen = t.Listen
		so.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.SIP.WS != nil {
		so.WSListen = cfg.SIP.WS.Listen
	}
	if cfg.SIP.WSS != nil {
		so.WSSListen = cfg.SIP.WSS.Listen
	}
	for i, sc := range cfg.Sides {
		if sc.SIP == "" {
			return fmt.Errorf("edge.sides[%d].sip: required when edge.sip is set", i)
		}
		so.Sides = append(so.Sides, sipfront.Side{Name: sc.Name, URI: sc.SIP})
	}
	f, err := sipfront.New(so)
	if err != nil {
		return err
	}
	e.sip = f
	return nil
}

// routedChanged tells the SIP front the routed side (nil: none), under
// e.mu: phones switch with the HTTP routes.
func (e *Edge) routedChanged(s *side) {
	if e.sip == nil {
		return
	}
	if s == nil {
		e.sip.SetActive("")
		return
	}
	e.sip.SetActive(s.name)
}

// SIP is the SIP front, nil when edge.sip is not set.
func (e *Edge) SIP() *sipfront.Front { return e.sip }

// newCheckClient is the HTTP client of the checks of a side's node and of
// its event stream; tc, if set, is its TLS config (upstream_tls).
func newCheckClient(tc *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     upstreamIdle,
		TLSHandshakeTimeout: tlsTimeout,
		TLSClientConfig:     tc,
	}}
}

// upstreamTLSConfig is the TLS client config of side i's https
// connections (its upstreams and its node): the system's roots and each
// URL's host, unless edge.sides[i].upstream_tls says otherwise. ServerName
// stays empty unless configured: each connection then verifies its URL's
// host.
func upstreamTLSConfig(i int, t *UpstreamTLS) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if t == nil {
		return c, nil
	}
	if t.CAFile != "" {
		pool, err := CertPool(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("edge.sides[%d].upstream_tls.ca_file %s: %w", i, t.CAFile, err)
		}
		c.RootCAs = pool
	}
	c.ServerName = strings.Trim(t.ServerName, "[]")
	c.InsecureSkipVerify = t.InsecureSkipVerify
	return c, nil
}

// edgeName is the Edge's name in its node-shaped status: the host of
// edge.listen when it names one, else "edge".
func edgeName(listen string) string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil || host == "" {
		return Role
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		return Role
	}
	return host
}

// Run listens on edge.listen and serves until ctx is done, checking both
// sides meanwhile.
func (e *Edge) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", e.listen)
	if err != nil {
		return fmt.Errorf("edge.listen %s: %w", e.listen, err)
	}
	return e.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened (plain TCP: the Edge adds
// TLS when configured). It closes ln and returns nil when ctx is done. Call
// it once.
func (e *Edge) Serve(ctx context.Context, ln net.Listener) error {
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		ln.Close()
		return errors.New("edge: Serve called twice")
	}
	e.started = true
	e.serving = true
	e.addr = ln.Addr().String()
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.serving = false
		e.mu.Unlock()
	}()

	srv := &fasthttp.Server{
		Handler:                      e.handle,
		ErrorHandler:                 e.parseError,
		Name:                         "",
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		NoDefaultDate:                true,
		ReadBufferSize:               bufferSize,
		WriteBufferSize:              bufferSize,
		ReadTimeout:                  readTimeout,
		IdleTimeout:                  idleTimeout,
		MaxRequestBodySize:           maxRequestBody,
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		SecureErrorLogMessage:        true,
		Logger:                       fasthttpLogger{e.log},
		ConnState:                    e.connState,
	}
	scheme := "http"
	if e.tls != nil {
		ln = tls.NewListener(ln, e.tls.Clone())
		scheme = "https"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := e.stalls.run(ctx); err != nil {
			e.log.Warn("no stall meter: every failed check counts", "error", err)
		}
	})
	for _, s := range e.sides {
		wg.Go(func() { s.watcher().Run(ctx) })
	}
	sipErr := make(chan error, 1)
	if e.sip != nil {
		wg.Go(func() {
			if err := e.sip.Run(ctx); err != nil {
				sipErr <- err
				cancel()
			}
		})
	}
	fs := newFastServer(e, ln)
	fs.off = e.generalOnly
	wg.Go(func() { fs.watchdog(ctx) })
	wg.Go(func() { e.trimLoop(ctx, func() int32 { return fs.openConns() + srv.GetOpenConnectionsCount() }) })
	errc := make(chan error, 1)
	go fs.acceptLoop()
	go func() { errc <- srv.Serve(fs) }()
	e.log.Info("proxy listening", "addr", ln.Addr().String(), "scheme", scheme,
		"interval", e.interval, "rise", e.rise, "fall", e.fall)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		errc = nil
	}
	cancel()
	wg.Wait()
	// Streams never go idle: cut them, then let the other requests end.
	for _, s := range e.sides {
		s.closeStreams("shutdown")
	}
	sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer scancel()
	fs.shutdown(sctx)
	if err := srv.ShutdownWithContext(sctx); err != nil {
		e.log.Debug("shutdown", "error", err)
	}
	if errc != nil {
		serveErr = <-errc
	}
	for _, s := range e.sides {
		for _, rt := range s.routes {
			rt.hc.CloseIdleConnections()
			rt.pool.closeIdle(0, true)
		}
	}
	if serveErr != nil {
		return fmt.Errorf("edge: serve %s: %w", ln.Addr(), serveErr)
	}
	select {
	case err := <-sipErr:
		return err
	default:
	}
	return nil
}

// fasthttpLogger sends the server's messages to the log at debug level.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

// Addr is the address the proxy listens on, empty before Serve.
func (e *Edge) Addr() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addr
}
