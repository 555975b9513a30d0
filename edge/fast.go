package edge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The fast path serves the Edge's plain requests without fasthttp: a
// goroutine per client connection reads a request head once, checks it
// (scanHead, fasthead.go), writes it rewritten to a kept-alive upstream
// connection (upstream.go) and relays the answer's head and body with the
// raw parser of the tunnels (hop.go). No clock is read and no deadline set
// per request: a watchdog closes the connections whose time is up, once a
// second. The last write to each peer waits for its answer without the
// read that would find nothing (sock.go).
//
// Whatever the fast path does not take goes, with the rest of its
// connection, to the general path (fasthttp and proxy.go), which reads it
// from its first byte: a head that is not plain HTTP/1.1 in its strictest
// form, or not whole within maxHeadReads reads (a client that sends it
// slowly gets fasthttp's timeouts), WebSocket upgrades, event streams, chunked
// uploads, Expect: 100-continue, and every request the Edge refuses. So
// the refusals, the tunnels and every reading of a strange request are the
// general path's, as before; the fast path is the common case, made cheap.
//
// What the fast path does is what the general path does: the same
// headers removed and set (TestFastPathAgreesWithTheGeneralPath), the same
// streams cut on a switch, the same pages, metrics and logs.

// watchdogInterval is the watchdog's period and the clock's grain.
const watchdogInterval = time.Second

// The fast path's timeouts: the server's readTimeout and idleTimeout
// (variables for the tests).
var fastReadTimeout, fastIdleTimeout = readTimeout, idleTimeout

// writeTimeout: a connection whose write to its client, or to its
// upstream, has not ended after it is closed (a peer that does not read:
// each write is at most one buffer, 32 KiB). As nginx's send_timeout. The
// general path bounds each write to its client the same way (replayConn).
var writeTimeout = 60 * time.Second

// fastServer accepts the Edge's client connections and serves them on the
// fast path; to fasthttp it is the listener, whose Accept returns the
// connections handed over to the general path.
type fastServer struct {
	e     *Edge
	ln    net.Listener
	proto string // X-Forwarded-Proto: http or https
	// off hands every connection over at once (the tests compare both
	// paths).
	off bool

	handoff   chan net.Conn
	done      chan struct{} // closed with the listener
	closeOnce sync.Once
	acceptErr error // why the accept loop stopped, when not closed (closeWith)

	// now is the coarse clock (Unix nanoseconds), set by the watchdog;
	// date is that time as a Date header says it.
	now      atomic.Int64
	date     atomic.Pointer[[]byte]
	stopping atomic.Bool
	open     atomic.Int32

	mu    sync.Mutex
	conns map[*fastConn]struct{}
	wg    sync.WaitGroup
}

func newFastServer(e *Edge, ln net.Listener) *fastServer {
	fs := &fastServer{e: e, ln: ln, proto: "http", handoff: make(chan net.Conn),
		done: make(chan struct{}), conns: map[*fastConn]struct{}{}}
	if e.tls != nil {
		fs.proto = "https"
	}
	fs.tick(time.Now())
	return fs
}

// Accept returns the next connection handed over to the general path.
func (fs *fastServer) Accept() (net.Conn, error) {
	select {
	case c := <-fs.handoff:
		return c, nil
	case <-fs.done:
		if fs.acceptErr != nil {
			return nil, fs.acceptErr
		}
		return nil, io.EOF
	}
}

// Close stops accepting: new connections are refused.
func (fs *fastServer) Close() error {
	fs.closeWith(nil)
	return nil
}

// closeWith closes the listener; err, when not nil, is the accept loop's
// reason, which Accept returns then. The reason is set in the Once,
// before done closes, so that Accept reads it after: the accept loop
// sees done closed when its Accept fails because Close closed the
// listener, and keeps no reason then.
func (fs *fastServer) closeWith(err error) {
	fs.closeOnce.Do(func() {
		fs.acceptErr = err
		close(fs.done)
		fs.ln.Close()
	})
}

func (fs *fastServer) Addr() net.Addr { return fs.ln.Addr() }

// acceptLoop accepts client connections until the listener closes. A
// shortage of file descriptors is waited out, as a timeout is; another
// error ends the Edge's Serve.
func (fs *fastServer) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := fs.ln.Accept()
		if err != nil {
			select {
			case <-fs.done:
				return
			default:
			}
			var ne net.Error
			if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				fs.e.log.Warn("accepting connections", "error", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			fs.closeWith(err)
			return
		}
		backoff = 0
		fc := &fastConn{fs: fs, c: c, s: newSock(c, &fs.now)}
		fs.mu.Lock()
		if fs.stopping.Load() {
			fs.mu.Unlock()
			c.Close()
			continue
		}
		fs.conns[fc] = struct{}{}
		fs.wg.Add(1)
		fs.mu.Unlock()
		fs.open.Add(1)
		go fc.serve()
	}
}

// watchdog keeps the coarse clock and closes the connections whose time
// is up, and the upstream connections idle for upstreamIdle, until ctx is
// done.
func (fs *fastServer) watchdog(ctx context.Context) {
	tick := time.NewTicker(watchdogInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-tick.C:
			fs.tick(t)
			now := t.UnixNano()
			fs.mu.Lock()
			for fc := range fs.conns {
				if d := fc.deadline.Load(); (d != 0 && now > d) || fc.writeStuck(now-int64(writeTimeout)) {
					fc.expire()
					continue
				}
				fc.poke(now - int64(watchdogInterval))
			}
			fs.mu.Unlock()
			for _, s := range fs.e.sides {
				for _, rt := range s.routes {
					rt.pool.closeIdle(now-int64(upstreamIdle), false)
				}
			}
		}
	}
}

// tick sets the coarse clock to t.
func (fs *fastServer) tick(t time.Time) {
	fs.now.Store(t.UnixNano())
	date := t.UTC().AppendFormat(nil, http.TimeFormat)
	fs.date.Store(&date)
}

// shutdown stops accepting, closes the connections waiting for a request
// and waits for the others to end their exchange, until ctx is done; then
// it closes them.
func (fs *fastServer) shutdown(ctx context.Context) {
	fs.Close()
	fs.mu.Lock()
	fs.stopping.Store(true)
	for fc := range fs.conns {
		if fc.waiting.Load() {
			fc.c.Close()
		}
	}
	fs.mu.Unlock()
	ended := make(chan struct{})
	go func() { fs.wg.Wait(); close(ended) }()
	select {
	case <-ended:
		return
	case <-ctx.Done():
	}
	fs.mu.Lock()
	for fc := range fs.conns {
		fc.expire()
	}
	fs.mu.Unlock()
	<-ended
}

// openConns counts the client connections on the fast path.
func (fs *fastServer) openConns() int32 { return fs.open.Load() }

// Buffers of the client connections, shared.
var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufferSize) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufferSize) }}
)

// fastConn is a client connection on the fast path.
type fastConn struct {
	fs *fastServer
	c  net.Conn
	s  *sock // under bw
	// sent and answered are sentHook and answeredHook, made once.
	sent, answered func() bool
	br             *bufio.Reader
	bw             *bufio.Writer
	ip             []byte // the client's address, for X-Forwarded-For
	// head is the upstream's request head, then the answer's as received;
	// out the answer's head as the client gets it.
	head, out []byte

	// deadline is when the watchdog closes the connection (coarse clock),
	// 0 for never; up is the upstream connection in use.
	deadline atomic.Int64
	up       atomic.Pointer[upConn]
	// waiting: between requests (a shutdown closes it).
	waiting atomic.Bool
	// expired: the watchdog or the shutdown closed it.
	expired atomic.Bool
}

// expire closes the connection and its upstream connection in use.
func (fc *fastConn) expire() {
	fc.expired.Store(true)
	fc.c.Close()
	if uc := fc.up.Load(); uc != nil {
		uc.c.Close()
	}
}

// writeStuck says whether a write of the connection or of its upstream
// connection started before since.
func (fc *fastConn) writeStuck(since int64) bool {
	if fc.s.writeStuck(since) {
		return true
	}
	uc := fc.up.Load()
	return uc != nil && uc.s.writeStuck(since)
}

// poke cuts the waits of the connection and of its upstream connection
// that started before since (see sock).
func (fc *fastConn) poke(since int64) {
	fc.s.poke(since)
	if uc := fc.up.Load(); uc != nil {
		uc.s.poke(since)
	}
}

func (fc *fastConn) setDeadline(d time.Duration) {
	fc.deadline.Store(fc.fs.now.Load() + int64(d))
}

// serve serves the connection's requests until it closes or is handed
// over.
func (fc *fastConn) serve() {
	fs := fc.fs
	handedOver := false
	defer func() {
		fs.mu.Lock()
		delete(fs.conns, fc)
		fs.mu.Unlock()
		fs.open.Add(-1)
		if !handedOver {
			fc.c.Close()
		}
		fs.wg.Done()
	}()
	if fs.off {
		handedOver = fc.handOver(nil)
		return
	}
	fc.br = readers.Get().(*bufio.Reader)
	fc.br.Reset(fc.s)
	fc.bw = writers.Get().(*bufio.Writer)
	fc.bw.Reset(fc.s)
	fc.sent, fc.answered = fc.sentHook, fc.answeredHook
	defer fc.release()
	if ta, ok := fc.c.RemoteAddr().(*net.TCPAddr); ok {
		fc.ip = ta.AddrPort().Addr().Unmap().AppendTo(nil)
	} else {
		fc.ip = []byte("0.0.0.0")
	}
	timeout := fastReadTimeout
	for {
		fc.setDeadline(timeout)
		timeout = fastIdleTimeout
		fc.waiting.Store(true)
		if fs.stopping.Load() {
			return
		}
		if fc.br.Buffered() == 0 {
			if _, err := fc.br.Peek(1); err != nil {
				return
			}
		}
		fc.waiting.Store(false)
		fc.setDeadline(fastReadTimeout)
		b, n := fc.readHead()
		var r fastRequest
		if n <= 0 || !scanHead(b[:n], &r) {
			handedOver = fc.handOver(b)
			return
		}
		side := fs.e.routed.Load()
		var rt *route
		if side != nil {
			rt = side.match(r.path)
		}
		if rt == nil && r.length > 0 {
			// The general path reads the body it refuses.
			handedOver = fc.handOver(b)
			return
		}
		if !fc.exchange(b[:n], &r, side, rt) {
			return
		}
	}
}

// maxHeadReads bounds the reads a head may take on the fast path: a head
// larger than a TCP segment comes in a few, but a client that sends it a
// few bytes at a time goes to the general path, whose timeouts answer it.
const maxHeadReads = 4

// readHead returns the buffered bytes and the length of the head they
// start with (see headEnd), reading more while the head is not whole and
// the buffer has room, up to maxHeadReads reads.
func (fc *fastConn) readHead() ([]byte, int) {
	for reads := 1; ; reads++ {
		b, _ := fc.br.Peek(fc.br.Buffered())
		n := headEnd(b)
		if n != 0 || len(b) == fc.br.Size() || reads == maxHeadReads {
			return b, n
		}
		if _, err := fc.br.Peek(len(b) + 1); err != nil {
			b, _ = fc.br.Peek(fc.br.Buffered())
			return b, 0
		}
	}
}

// handOver gives the connection to the general path, with the bytes
// read from it that it has not served (a copy: the buffer goes back to
// the pool). It reports whether the general path took it.
func (fc *fastConn) handOver(unread []byte) bool {
	fc.deadline.Store(0)
	fs := fc.fs
	fs.mu.Lock()
	delete(fs.conns, fc)
	fs.mu.Unlock()
	var c net.Conn = &replayConn{Conn: fc.c, unread: bytes.Clone(unread)}
	if tc, ok := fc.c.(*tls.Conn); ok {
		c = &replayTLSConn{replayConn: c.(*replayConn), tc: tc}
	}
	// Counted before: the general path may answer before the send
	// returns here.
	fs.e.metrics.handedOver.Inc()
	select {
	case fs.handoff <- c:
		return true
	case <-fs.done:
		return false
	}
}

func (fc *fastConn) release() {
	if fc.br != nil {
		fc.br.Reset(nil)
		readers.Put(fc.br)
		fc.bw.Reset(nil)
		writers.Put(fc.bw)
		fc.br, fc.bw = nil, nil
	}
}

// exchange serves one request whose head is head (buffered, not yet
// consumed) on route rt of side s, and reports whether the connection
// stays open for another. With no side Active (s nil) or no route for the
// path, the answer is the Edge's page, as on the general path.
func (fc *fastConn) exchange(head []byte, r *fastRequest, s *side, rt *route) bool {
	if rt == nil {
		code := http.StatusServiceUnavailable
		if s != nil {
			code = http.StatusNotFound
		}
		fc.br.Discard(len(head))
		fc.fs.e.metrics.own(code)
		return fc.page(code, r.close)
	}
	fc.head = appendUpstreamHead(fc.head[:0], head, r, rt, fc.ip, fc.fs.proto)
	fc.br.Discard(len(head))
	uc, err := fc.send(rt, r)
	if err != nil {
		var se *sourceError
		if fc.expired.Load() || errors.As(err, &se) {
			// The watchdog closed the connection (the request did not
			// arrive whole in time), or the shutdown did, or the client
			// closed it before its body ended: no answer goes, and the
			// upstream did not fail.
			return false
		}
		rt.failed(err)
		rt.count(http.StatusBadGateway)
		// A body partly sent is partly read: the connection cannot go on.
		return fc.page(http.StatusBadGateway, r.close || r.length > 0)
	}
	return fc.relay(rt, r, uc)
}

// send writes the request to an upstream connection and waits for the
// first byte of the answer. A request without a body and of an idempotent
// method is sent again, on another connection, when a kept-alive one
// turns out to be closed: the upstream closed it while it was idle.
func (fc *fastConn) send(rt *route, r *fastRequest) (*upConn, error) {
	for attempt := 0; ; attempt++ {
		uc, err := rt.pool.get(&fc.fs.now)
		if err != nil {
			return nil, err
		}
		fc.up.Store(uc)
		_, err = uc.bw.Write(fc.head)
		if err == nil && r.length > 0 {
			var se *sourceError
			if err = relayN(uc.bw, fc.br, r.length); errors.As(err, &se) {
				fc.up.Store(nil)
				rt.pool.discard(uc)
				return nil, err
			}
		}
		if err == nil {
			uc.s.arm(fc.sent)
			err = uc.bw.Flush()
			uc.s.disarm()
		}
		if err == nil {
			// The answer may take its time: a long poll.
			fc.deadline.Store(0)
			_, err = uc.br.Peek(1)
		}
		if err == nil {
			return uc, nil
		}
		fc.up.Store(nil)
		rt.pool.discard(uc)
		if uc.reused && !fc.expired.Load() {
			// The upstream closed it while it was idle: it closed the
			// connections idle for longer too (its idle timeout, or a
			// restart). Each would cost a request an attempt, and a
			// request that cannot go again its answer.
			rt.pool.closeIdle(uc.idleSince+1, false)
		}
		// A request whose connection expired failed for that: sent again,
		// it would outlive its time (and a shutdown would wait for it).
		if !uc.reused || !r.retryable || attempt == 2 || fc.expired.Load() {
			return nil, err
		}
	}
}

// maxInterim bounds the interim answers (1xx) before an answer, as
// fasthttp does on the general path.
const maxInterim = 100

// relay sends the upstream's answer to the client (see fast.go's
// comment), and reports whether the client connection stays open. An
// answer without a length is a stream of its side: the client connection
// closes after it, and a switch cuts it.
func (fc *fastConn) relay(rt *route, r *fastRequest, uc *upConn) bool {
	var ans answerHead
	for interim := 0; ; interim++ {
		raw, err := readRawHead(fc.head[:0], uc.br)
		if err == nil {
			ans, err = parseAnswer(raw)
		}
		switch {
		case err != nil:
		case ans.status == http.StatusSwitchingProtocols:
			err = errors.New("101 Switching Protocols to a request that asked for no upgrade")
		case ans.status < 200 && interim == maxInterim:
			err = errors.New("more than 100 interim answers")
		}
		fc.head = raw
		if err != nil {
			fc.up.Store(nil)
			rt.pool.discard(uc)
			rt.failed(err)
			rt.count(http.StatusBadGateway)
			return fc.page(http.StatusBadGateway, r.close)
		}
		// A proxy sends its own version (RFC 9110 §6.2): an HTTP/1.0
		// upstream's answer, relayed as such, would tell the client that
		// its kept connection closes.
		raw[len("HTTP/1.")] = '1'
		if ans.status >= 200 {
			break
		}
		// An interim answer (103 Early Hints) is meant to come before
		// the answer: it goes at once.
		fc.out = relayHead(fc.out[:0], raw, headInterim)
		if _, err = fc.bw.Write(fc.out); err == nil {
			err = fc.bw.Flush()
		}
		if err != nil {
			fc.up.Store(nil)
			rt.pool.discard(uc)
			return false
		}
	}
	noBody := r.headOnly || ans.status == http.StatusNoContent || ans.status == http.StatusNotModified
	streamed := !noBody && ans.length < 0
	keep := !r.close && !streamed && !fc.fs.stopping.Load()
	kind := headFinal
	if keep {
		kind = headKept
	}
	fc.out = relayHead(fc.out[:0], fc.head, kind)
	if !ans.dated {
		// A proxy adds the Date an upstream without a clock left out
		// (RFC 9110 §6.6.1), from the watchdog's clock.
		fc.out = append(append(append(fc.out[:len(fc.out)-2], "Date: "...), *fc.fs.date.Load()...), "\r\n\r\n"...)
	}
	rt.answered()
	rt.count(ans.status)
	_, err := fc.bw.Write(fc.out)
	switch {
	case err != nil || noBody:
	case streamed:
		st := &stream{conns: []net.Conn{fc.c, uc.c}}
		rt.side.track(st)
		err = copyBody(fc.bw, uc.br, ans)
		rt.side.untrack(st)
	default:
		err = relayN(fc.bw, uc.br, ans.length)
	}
	fc.up.Store(nil)
	// Bytes past the answer: the upstream sent more than it said (a body
	// to a HEAD, a 204 or a 304). Kept, they would be read as the next
	// request's answer, another client's.
	if err != nil || streamed || ans.close || uc.br.Buffered() > 0 {
		rt.pool.discard(uc)
	} else {
		rt.pool.put(uc, fc.fs.now.Load())
	}
	if err == nil {
		// The last bytes of the answer, then (see sock) the wait for the
		// next request, unless one is here already.
		if keep && fc.br.Buffered() == 0 {
			fc.s.arm(fc.answered)
		}
		err = fc.bw.Flush()
		fc.s.disarm()
	}
	return err == nil && keep
}

// sent is the hook of the wait after a request is written (see sock): the
// answer may take its time (a long poll).
func (fc *fastConn) sentHook() bool {
	fc.deadline.Store(0)
	return true
}

// answered is the hook of the wait after an answer is written (see
// sock): the connection is between requests.
func (fc *fastConn) answeredHook() bool {
	fc.setDeadline(fastIdleTimeout)
	fc.waiting.Store(true)
	return !fc.fs.stopping.Load()
}

// page answers code with the Edge's page; with close, the connection
// closes after it. It reports whether the page was sent.
func (fc *fastConn) page(code int, close bool) bool {
	e := fc.fs.e
	fc.out = e.pages.appendRaw(fc.out[:0], code, close)
	if _, err := fc.bw.Write(fc.out); err != nil {
		return false
	}
	return fc.bw.Flush() == nil && !close
}

// relayN copies n bytes from br to bw, or up to br's end when n < 0,
// flushing bw before each wait for more: the client gets each byte as it
// comes. A failure to read br is a *sourceError: on a request body, the
// client's failure, not the upstream's.
func relayN(bw *bufio.Writer, br *bufio.Reader, n int64) error {
	for n != 0 {
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
			if _, err := br.Peek(1); err != nil {
				if n < 0 && errors.Is(err, io.EOF) {
					return nil
				}
				return &sourceError{err}
			}
		}
		k := br.Buffered()
		if n > 0 && int64(k) > n {
			k = int(n)
		}
		b, _ := br.Peek(k)
		w, err := bw.Write(b)
		_, _ = br.Discard(w)
		if n > 0 {
			n -= int64(w)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// sourceError is relayN's failure to read its source (br).
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "reading the body: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// replayConn is a connection handed over to the general path: its reads
// return first the bytes the fast path read and did not serve.
type replayConn struct {
	net.Conn
	unread []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.unread) > 0 {
		n := copy(p, c.unread)
		c.unread = c.unread[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// Write gives each write to the client writeTimeout to end, as the fast
// path's watchdog does: a client that does not read an answer (or the
// upstream's side of a tunnel) is closed, and its upstream connection with
// it, instead of holding them for ever. fasthttp's own WriteTimeout would
// bound a whole answer, and cut a long download or an event stream.
func (c *replayConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.Conn.Write(p)
}

// replayTLSConn is a replayConn of a TLS connection: fasthttp tells a TLS
// connection by these methods (X-Forwarded-Proto: https).
type replayTLSConn struct {
	*replayConn
	tc *tls.Conn
}

func (c *replayTLSConn) Handshake() error                     { return c.tc.Handshake() }
func (c *replayTLSConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// appendRaw appends the page of code as a whole answer, as write sends
// it; with close, it says Connection: close.
func (p pages) appendRaw(dst []byte, code int, close bool) []byte {
	body := p.bodies[code]
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(code)...)
	dst = append(dst, "\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n"...)
	if code == http.StatusServiceUnavailable {
		dst = append(append(append(dst, "Retry-After: "...), p.retryAfter...), "\r\n"...)
	}
	if close {
		dst = append(dst, "Connection: close\r\n"...)
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, body...)
}
