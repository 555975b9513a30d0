package edge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Limits of the upstream client.
const (
	// maxUpstreamConns bounds the connections to one upstream.
	maxUpstreamConns = 4096
	// upstreamWait bounds the wait for a free connection at that bound.
	upstreamWait = 10 * time.Second
	// upstreamWrite bounds sending a request to the upstream.
	upstreamWrite = 30 * time.Second
	// bufferSize is the read and write buffer of each connection: headers
	// must fit in it.
	bufferSize = 16 << 10
)

// route is one path prefix of a side and its upstream.
type route struct {
	side     *side
	path     string
	upstream *url.URL
	// addr is the upstream's host:port, host its Host header, prefix the
	// path the upstream URL adds (empty for none).
	addr, host, prefix string
	scheme             []byte
	tls                *tls.Config          // nil for http
	hc                 *fasthttp.HostClient // the general path's connections
	pool               *upPool              // the fast path's
	dialer             *net.Dialer
	// codes caches the requests counter of each status code, so that
	// counting a request allocates nothing.
	codes [600]atomic.Pointer[counterRef]
	// lastErr is why the upstream last failed to answer, nil once it
	// answers again.
	lastErr atomic.Pointer[routeError]
}

type counterRef struct{ c prometheus.Counter }

// routeError is an upstream's last failure, for the status.
type routeError struct {
	msg string
	at  time.Time
}

// newRoute is the route of path to u on side s; upTLS is the side's TLS
// client config, used when u is https.
func newRoute(s *side, path string, u *url.URL, upTLS *tls.Config) *route {
	rt := &route{side: s, path: path, upstream: u, host: u.Host, scheme: []byte(u.Scheme),
		dialer: &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}}
	rt.addr = u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		rt.addr = net.JoinHostPort(u.Hostname(), port)
	}
	if p := u.EscapedPath(); p != "" && p != "/" {
		rt.prefix = p
		if p[len(p)-1] == '/' {
			rt.prefix = p[:len(p)-1]
		}
	}
	if u.Scheme == "https" {
		rt.tls = upTLS.Clone()
		if rt.tls.ServerName == "" {
			rt.tls.ServerName = u.Hostname()
		}
	}
	rt.pool = newUpPool(rt.dial)
	rt.hc = &fasthttp.HostClient{
		Addr:                rt.addr,
		IsTLS:               rt.tls != nil,
		TLSConfig:           rt.tls,
		Dial:                func(addr string) (net.Conn, error) { return rt.dialer.Dial("tcp", addr) },
		MaxConns:            maxUpstreamConns,
		MaxConnWaitTimeout:  upstreamWait,
		MaxIdleConnDuration: upstreamIdle,
		WriteTimeout:        upstreamWrite,
		ReadBufferSize:      bufferSize,
		WriteBufferSize:     bufferSize,
		// Every answer is streamed: the client gets each byte as it comes,
		// and the Edge holds no more of an answer than its buffers (the
		// limit is ignored when streaming).
		StreamResponseBody:            true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		NoDefaultUserAgentHeader:      true,
	}
	return rt
}

// prepare turns the client's request into the upstream's, as nginx does
// by default: Host set to the upstream's, the path joined to the upstream
// URL's own path, the client's address appended to X-Forwarded-For,
// X-Forwarded-Host and -Proto set to what the client asked for. The
// hop-by-hop headers go first (see stripRequest), and those the Edge sets
// are set after, so that no client can remove them; for a WebSocket
// upgrade, Upgrade stays and Connection is Upgrade. Other headers go
// through, in their order.
func (rt *route) prepare(ctx *fasthttp.RequestCtx, s seen, websocket bool) {
	h := &ctx.Request.Header
	stripRequest(h, s, websocket)
	var buf [128]byte
	b := buf[:0]
	// Every X-Forwarded-For line of the client, in order, in one field.
	if s&seenXForwardedFor != 0 {
		for _, v := range h.PeekAll("X-Forwarded-For") {
			if len(v) > 0 {
				b = append(append(b, v...), ", "...)
			}
		}
	}
	if ta, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		b = ta.AddrPort().Addr().Unmap().AppendTo(b)
	} else {
		b = netip.IPv4Unspecified().AppendTo(b)
	}
	h.SetCanonical(keyXForwardedFor, b)
	if host := h.Host(); len(host) > 0 {
		h.SetCanonical(keyXForwardedHost, host)
	} else {
		// HTTP/1.0 without Host: no host asked for, none made up.
		delRequest(h, "X-Forwarded-Host")
	}
	// Set last: it also removes the sentinels of stripRequest.
	if ctx.IsTLS() {
		h.SetCanonical(keySentinel, []byte("https"))
	} else {
		h.SetCanonical(keySentinel, []byte("http"))
	}
	if websocket {
		h.Set("Connection", "Upgrade")
	}
	h.SetHost(rt.host)
	ctx.Request.UseHostHeader = true
	uri := ctx.Request.URI()
	// The path goes as the client wrote it (the route matched it
	// normalized).
	uri.DisablePathNormalizing = true
	if !bytes.Equal(uri.Scheme(), rt.scheme) {
		uri.SetSchemeBytes(rt.scheme)
	}
	if rt.prefix != "" {
		uri.SetPathBytes(append([]byte(rt.prefix), uri.PathOriginal()...))
	}
}

// forward proxies a plain request. Its answer is streamed, whatever its
// size: the head goes to the client once read, then the body as it comes,
// through the connections' buffers, and the upstream connection goes back
// to the pool when the body is read to its end (it is closed when the
// client goes away before: never kept half-read). A request fails over to
// a 502 (fasthttp may retry an idempotent one on another connection)
// only before the answer's head is read, so before any byte reached the
// client. An answer without a length (an event stream, a long poll,
// flushed as it comes) closes the client's connection after it, and is a
// stream of its side, cut when the side loses Active. The answer's
// hop-by-hop headers are removed (see stripResponse): the client's
// connection is the Edge's business, not the upstream's.
func (rt *route) forward(ctx *fasthttp.RequestCtx, s seen) {
	req := &ctx.Request
	clientClose := req.Header.ConnectionClose()
	// Connection goes: the upstream connection stays open whatever the
	// client does.
	rt.prepare(ctx, s, false)
	var body *clientBody
	if req.IsBodyStream() {
		// The server still owns (drains and releases) the stream it
		// handed over; the request reads it through body.
		body = &clientBody{r: ctx.RequestBodyStream(), want: req.Header.ContentLength()}
		req.SetBodyStream(body, body.want)
	}
	if err := rt.hc.Do(req, &ctx.Response); err != nil {
		if body != nil && body.err != nil {
			// The client's body did not arrive whole (a bad chunk, a
			// client gone mid-upload): the request is refused, and the
			// upstream did not fail.
			ctx.Response.Reset()
			rt.side.edge.log.Debug("request body did not arrive whole", "side", rt.side.name, "route", rt.path, "error", body.err)
			rt.side.edge.refuse(ctx, http.StatusBadRequest)
			return
		}
		rt.upstreamError(ctx, err)
	} else {
		rt.answered()
		rt.count(ctx.Response.StatusCode())
		stripResponse(&ctx.Response.Header)
		if ctx.Response.Header.ContentLength() < 0 && ctx.Response.BodyStream() != nil {
			// A stream (events, a long poll...): cut it, with its client
			// connection, when the side loses Active.
			ctx.SetConnectionClose()
			rt.side.track(&stream{conns: []net.Conn{ctx.Conn()}, byConn: true})
		}
	}
	if clientClose {
		ctx.SetConnectionClose()
	}
}

// clientBody reads a request's body from its client for the upstream
// request, and keeps why it did not arrive whole: the request then fails
// through no fault of the upstream.
type clientBody struct {
	r    io.Reader
	want int // the Content-Length, -1 for a chunked body
	read int
	err  error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += n
	if err == io.EOF && b.want >= 0 && b.read < b.want {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// tunnel proxies a WebSocket upgrade, or an event stream, over a
// connection of its own: the request goes to a new upstream connection
// and the head of the answer comes back without its hop-by-hop headers
// (see readAnswer); then, after a 101, bytes are copied both ways until
// either side closes, after another answer its body, and the connection
// closes. The tunnel is a stream of its side.
func (rt *route) tunnel(ctx *fasthttp.RequestCtx, s seen, websocket bool) {
	rt.prepare(ctx, s, websocket)
	if !websocket {
		// One answer per tunnel.
		ctx.Request.Header.SetConnectionClose()
	}
	up, err := rt.dial()
	if err != nil {
		rt.upstreamError(ctx, err)
		return
	}
	_ = up.SetWriteDeadline(time.Now().Add(upstreamWrite))
	bw := bufio.NewWriterSize(up, 4<<10)
	if err = ctx.Request.Write(bw); err == nil {
		err = bw.Flush()
	}
	_ = up.SetWriteDeadline(time.Time{})
	if err != nil {
		up.Close()
		rt.upstreamError(ctx, err)
		return
	}
	// Tracked from now: a side that loses Active cuts the wait for the
	// answer too.
	st := &stream{conns: []net.Conn{ctx.Conn(), up}}
	rt.side.track(st)
	br := bufio.NewReaderSize(up, 4<<10)
	head, ans, err := readAnswer(br, websocket)
	if err != nil {
		rt.side.untrack(st)
		up.Close()
		rt.upstreamError(ctx, err)
		return
	}
	rt.answered()
	rt.count(ans.status)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(client net.Conn) { rt.pipe(client, up, br, head, ans, st) })
}

func (rt *route) dial() (net.Conn, error) {
	if rt.tls == nil {
		return rt.dialer.Dial("tcp", rt.addr)
	}
	d := &tls.Dialer{NetDialer: rt.dialer, Config: rt.tls}
	return d.DialContext(context.Background(), "tcp", rt.addr)
}

// pipe sends the head of the upstream's answer to the client; then, after
// a 101, copies the client's bytes to the upstream and the upstream's
// back until either side closes; after another answer, the answer's body
// only: the connection then closes, and what the client sends meanwhile
// goes nowhere (never to the upstream, unchecked).
func (rt *route) pipe(client, up net.Conn, br *bufio.Reader, head []byte, ans answerHead, st *stream) {
	defer rt.side.untrack(st)
	switching := ans.status == http.StatusSwitchingProtocols
	done := make(chan struct{})
	go func() {
		defer close(done)
		if switching {
			_, _ = io.Copy(up, client)
		} else {
			_, _ = io.Copy(io.Discard, client)
		}
		// The client is done: let the upstream finish its answer.
		if cw, ok := up.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			up.Close()
		}
	}()
	if _, err := client.Write(head); err == nil {
		if switching {
			_, _ = io.Copy(client, br)
		} else {
			bw := bufio.NewWriterSize(client, 4<<10)
			if copyBody(bw, br, ans) == nil {
				_ = bw.Flush()
			}
		}
	}
	// The hijacked connection's Close waits for pipe to return: close the
	// connection itself, so that the client sees the end and the copy
	// from it ends.
	st.conns[0].Close()
	up.Close()
	<-done
}

// upstreamError answers a request the upstream did not: a 502 page that
// names no upstream. The log and the status say why, with what to do when
// the upstream's certificate is not trusted.
func (rt *route) upstreamError(ctx *fasthttp.RequestCtx, err error) {
	rt.failed(err)
	rt.count(http.StatusBadGateway)
	ctx.Response.Reset()
	rt.side.edge.pages.write(ctx, http.StatusBadGateway)
}

// failed counts, logs and keeps for the status why the upstream did not
// answer a request.
func (rt *route) failed(err error) {
	e := rt.side.edge
	e.metrics.upstreamErrors.WithLabelValues(rt.side.name).Inc()
	msg := err.Error()
	if m := tlsProblem(err); m != "" {
		msg = m
	}
	rt.lastErr.Store(&routeError{msg: msg, at: time.Now()})
	e.log.Warn("upstream error", "side", rt.side.name, "route", rt.path, "upstream", rt.addr, "error", msg)
}

// answered forgets the upstream's last failure: it answers again.
func (rt *route) answered() {
	if rt.lastErr.Load() != nil {
		rt.lastErr.Store(nil)
	}
}

// tlsProblem says, with what to do, why a TLS connection failed to
// verify the server's certificate, or "" for another error.
func tlsProblem(err error) string {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var notTLS tls.RecordHeaderError
	switch {
	case errors.As(err, &unknown):
		return "TLS: the certificate is signed by an unknown authority (self-signed?): trust it with upstream_tls.ca_file"
	case errors.As(err, &host):
		return "TLS: " + strings.TrimPrefix(host.Error(), "x509: ") +
			": set upstream_tls.server_name to a name the certificate lists"
	case errors.As(err, &invalid):
		return "TLS: " + strings.TrimPrefix(invalid.Error(), "x509: ")
	case errors.As(err, &notTLS):
		return "TLS: the server does not speak TLS (an http:// server?)"
	}
	return ""
}

func (rt *route) count(code int) {
	if code < 0 || code >= len(rt.codes) {
		code = 0
	}
	ref := rt.codes[code].Load()
	if ref == nil {
		ref = &counterRef{c: rt.side.edge.metrics.requests.WithLabelValues(rt.side.name, rt.path, codeLabel(code))}
		rt.codes[code].Store(ref)
	}
	ref.c.Inc()
}

// handle proxies a request to the routed side, or answers 503 when no
// side is Active and 404 when no route of that side matches. A request
// the Edge refuses (see checkRequest) gets its answer first, whatever the
// sides do, and never reaches an upstream.
func (e *Edge) handle(ctx *fasthttp.RequestCtx) {
	h := &ctx.Request.Header
	seen := seenIn(h)
	status, websocket := checkRequest(h, seen)
	if status != 0 {
		e.refuse(ctx, status)
		return
	}
	s := e.routed.Load()
	if s == nil {
		e.metrics.own(http.StatusServiceUnavailable)
		e.pages.write(ctx, http.StatusServiceUnavailable)
		return
	}
	rt := s.match(ctx.Path())
	if rt == nil {
		e.metrics.own(http.StatusNotFound)
		e.pages.write(ctx, http.StatusNotFound)
		return
	}
	switch {
	case websocket:
		rt.tunnel(ctx, seen, true)
	case h.IsGet() && bytes.Contains(h.Peek("Accept"), []byte("text/event-stream")):
		rt.tunnel(ctx, seen, false)
	default:
		rt.forward(ctx, seen)
	}
}

// refuse answers status with its page and closes the connection: what a
// client whose request was refused sends next is not to be read as
// HTTP/1.1.
func (e *Edge) refuse(ctx *fasthttp.RequestCtx, status int) {
	e.metrics.own(status)
	ctx.SetConnectionClose()
	e.pages.write(ctx, status)
}

// parseError answers a request fasthttp could not read (the server's
// ErrorHandler) as fasthttp would (400; 431 for a header block too large,
// 408 for a timeout), with the Edge's pages, counted. HTTP/2's
// prior-knowledge preface (PRI * HTTP/2.0) ends here, with a 400: the
// asterisk-form target is for OPTIONS only (RFC 9112 §3.2.4), and fasthttp
// forgets the request line of a request it refuses.
func (e *Edge) parseError(ctx *fasthttp.RequestCtx, err error) {
	status := http.StatusBadRequest
	var small *fasthttp.ErrSmallBuffer
	var netErr *net.OpError
	switch {
	case errors.As(err, &small):
		status = http.StatusRequestHeaderFieldsTooLarge
	case errors.As(err, &netErr) && netErr.Timeout():
		status = http.StatusRequestTimeout
	}
	e.refuse(ctx, status)
}

// stream is a long-lived answer of a side: an event stream, an answer
// without a length or an upgraded connection (WebSocket). Closing its
// connections ends it; the client reconnects to the routed side.
type stream struct {
	conns []net.Conn
	side  *side
	// byConn: the stream ends with its client connection (see connState).
	byConn bool
}

// track registers st as a stream of s. A stream that starts after s lost
// Active is closed at once.
func (s *side) track(st *stream) {
	st.side = s
	s.smu.Lock()
	s.streams[st] = struct{}{}
	if st.byConn {
		s.byConn[st.conns[0]] = st
	}
	s.smu.Unlock()
	if s.edge.routed.Load() != s {
		s.closeStream(st)
	}
}

func (s *side) untrack(st *stream) {
	s.smu.Lock()
	s.forgetLocked(st)
	s.smu.Unlock()
}

func (s *side) forgetLocked(st *stream) {
	delete(s.streams, st)
	if st.byConn && s.byConn[st.conns[0]] == st {
		delete(s.byConn, st.conns[0])
	}
}

// connState ends the streams of a client connection that closed.
func (e *Edge) connState(c net.Conn, state fasthttp.ConnState) {
	if state != fasthttp.StateClosed {
		return
	}
	for _, s := range e.sides {
		s.smu.Lock()
		if st := s.byConn[c]; st != nil {
			s.forgetLocked(st)
		}
		s.smu.Unlock()
	}
}

// closeStream cuts one stream of s, if it is still open.
func (s *side) closeStream(st *stream) {
	s.smu.Lock()
	_, open := s.streams[st]
	s.forgetLocked(st)
	s.smu.Unlock()
	if open {
		// Counted before the close, so whoever sees the close sees the count.
		s.edge.metrics.closed.Inc()
		st.close()
	}
}

func (st *stream) close() {
	for _, c := range st.conns {
		c.Close()
	}
}

// closeStreams cuts every open stream of s.
func (s *side) closeStreams(why string) {
	s.smu.Lock()
	open := make([]*stream, 0, len(s.streams))
	for st := range s.streams {
		open = append(open, st)
	}
	clear(s.streams)
	clear(s.byConn)
	s.smu.Unlock()
	if len(open) == 0 {
		return
	}
	// Counted and logged before the closes, so whoever sees a close sees the count.
	s.edge.metrics.closed.Add(float64(len(open)))
	s.edge.log.Info("closing streaming connections", "side", s.name, "count", len(open), "why", why)
	for _, st := range open {
		st.close()
	}
}

func (s *side) openStreams() int {
	s.smu.Lock()
	defer s.smu.Unlock()
	return len(s.streams)
}
