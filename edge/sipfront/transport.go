package sipfront

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/emiago/sipgo/sip"
)

// Limits of what the front reads.
const (
	// maxMessage bounds one SIP message, headers and body: a larger
	// datagram is dropped, a larger message on TCP closes the connection.
	maxMessage = 16 << 10
	// dialTimeout bounds a TCP connection to a PBX or back to a phone.
	dialTimeout = 3 * time.Second
	// writeTimeout bounds one write on a TCP connection.
	writeTimeout = 5 * time.Second
	// idleTCP closes a TCP, TLS or WebSocket connection that carried
	// nothing for this long, or twice the phones' expiry if longer
	// (phones keep theirs alive by refreshing their registration: on TLS
	// and WebSocket, the connection is the only way to reach them).
	idleTCP = 10 * time.Minute
	// maxInFlight bounds the messages handled at once: past it, datagrams
	// are dropped (UDP retransmits) and TCP connections wait.
	maxInFlight = 4096
	// handshakeTimeout bounds a TLS handshake and a WebSocket upgrade.
	handshakeTimeout = 10 * time.Second
)

// errNoConnection: a phone's TLS or WebSocket connection is gone. The
// Edge cannot open one towards the phone (behind NAT, or a browser): the
// phone comes back by itself when it registers again.
var errNoConnection = errors.New("the phone's connection is closed")

// flow is where a message goes or came from: a transport and an address.
type flow struct {
	net  string // "udp", "tcp", "tls", "ws" or "wss"
	addr netip.AddrPort
}

func (f flow) String() string { return f.net + ":" + f.addr.String() }

func (f flow) valid() bool {
	switch f.net {
	case "udp", "tcp", "tls", "ws", "wss":
		return f.addr.IsValid()
	}
	return false
}

// dialable: the Edge may open a connection of this flow when none is
// open (TCP, as before). TLS and WebSocket flows are phones' connections,
// reused only: a browser cannot be dialed, and a phone behind NAT on TLS
// has no certificate the Edge could check.
func (f flow) dialable() bool { return f.net == "tcp" }

// token encodes the flow for a URI parameter (Path, Record-Route).
func (f flow) token() string { return hex.EncodeToString([]byte(f.String())) }

func parseToken(s string) (flow, bool) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return flow{}, false
	}
	netw, addr, ok := strings.Cut(string(b), ":")
	if !ok {
		return flow{}, false
	}
	ap, err := netip.ParseAddrPort(addr)
	f := flow{net: netw, addr: ap}
	return f, err == nil && f.valid()
}

// transport reads and writes SIP over one UDP socket and TCP connections
// (accepted from phones or dialed to PBXs), and, when configured, TLS and
// WebSocket connections accepted from phones (RFC 7118: one SIP message
// per WebSocket message), parsing with sipgo's parser.
type transport struct {
	pc     net.PacketConn
	ln     net.Listener
	tlsLn  net.Listener // SIP over TLS, nil when off
	wsLns  []wsListener // WebSocket (ws, wss), none when off
	https  []*http.Server
	parser *sip.Parser
	handle func(msg sip.Message, from flow)
	// sent is called for each message written.
	sent func()
	// panicked is called when handling a message panicked.
	panicked func(from flow, r any)
	// bad is called for what cannot be read: a message too large or not
	// SIP; from is its source.
	bad func(from flow, why string)
	// note, if set, is told of a connection that failed before SIP (a TLS
	// handshake, a WebSocket upgrade).
	note func(from flow, why string)

	mu    sync.Mutex
	conns map[flow]*tcpConn
	wg    sync.WaitGroup
	done  chan struct{}
	// slots bounds the messages queued or being handled at once.
	slots chan struct{}
	// order holds the messages waiting behind one being handled of the
	// same call from the same flow (orderKey): they are handled in the
	// order they came. Under mu.
	order map[orderKey][]sip.Message
	// idle closes a connection that carried nothing for this long;
	// default idleTCP.
	idle time.Duration
	// dial opens a TCP connection (net.Dialer's, but in tests).
	dial func(ctx context.Context, addr string) (net.Conn, error)
}

// wsListener is a listener of WebSocket connections: net is "ws", or
// "wss" when ln is a TLS listener.
type wsListener struct {
	ln  net.Listener
	net string
}

// tcpConn is a connection of a stream transport: c for TCP and TLS, ws
// for WebSocket.
type tcpConn struct {
	c   net.Conn
	ws  *websocket.Conn
	wmu sync.Mutex
}

// write writes one message on the connection.
func (tc *tcpConn) write(b []byte) error {
	tc.wmu.Lock()
	defer tc.wmu.Unlock()
	if tc.ws != nil {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		defer cancel()
		// Text: SIP is UTF-8 text, and some clients (sipgo's) read only
		// text frames.
		return tc.ws.Write(ctx, websocket.MessageText, b)
	}
	_ = tc.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := tc.c.Write(b); err != nil {
		tc.c.Close()
		return err
	}
	return nil
}

func (tc *tcpConn) close() {
	if tc.ws != nil {
		_ = tc.ws.CloseNow()
		return
	}
	tc.c.Close()
}

func newTransport(pc net.PacketConn, ln net.Listener, handle func(sip.Message, flow), bad func(flow, string)) *transport {
	return &transport{
		pc: pc, ln: ln, handle: handle, bad: bad,
		parser: sip.NewParser(func(p *sip.Parser) { p.MaxMessageLength = maxMessage }),
		conns:  map[flow]*tcpConn{},
		order:  map[orderKey][]sip.Message{},
		done:   make(chan struct{}),
		slots:  make(chan struct{}, maxInFlight),
	}
}

func (t *transport) idleTimeout() time.Duration {
	if t.idle > 0 {
		return t.idle
	}
	return idleTCP
}

// orderKey is what dispatch keeps in order: the messages of one call
// (Call-ID) from one flow. A callee's 180 and 200 sent back to back must
// not overtake each other through the Edge; different calls, and the same
// call from another flow, go on side by side, so a phone whose connection
// is slow to write holds up nothing but its own call.
type orderKey struct {
	from   flow
	callID string
}

// dispatch handles msg on a goroutine once a slot is free (wait false
// drops it when none is), after the messages of the same call from the
// same flow that came before it.
func (t *transport) dispatch(msg sip.Message, from flow, wait bool) {
	if wait {
		select {
		case t.slots <- struct{}{}:
		case <-t.done:
			return
		}
	} else {
		select {
		case t.slots <- struct{}{}:
		default:
			t.bad(from, "overloaded: dropped")
			return
		}
	}
	key := orderKey{from: from}
	if id := msg.CallID(); id != nil {
		key.callID = id.Value()
	}
	t.mu.Lock()
	if waiting, busy := t.order[key]; busy {
		t.order[key] = append(waiting, msg)
		t.mu.Unlock()
		return
	}
	t.order[key] = nil
	t.mu.Unlock()
	go t.handleInOrder(key, msg)
}

// handleInOrder handles msg, then each message queued behind it for key.
func (t *transport) handleInOrder(key orderKey, msg sip.Message) {
	for {
		t.handleOne(msg, key.from)
		t.mu.Lock()
		waiting := t.order[key]
		if len(waiting) == 0 {
			delete(t.order, key)
			t.mu.Unlock()
			return
		}
		msg, t.order[key] = waiting[0], waiting[1:]
		t.mu.Unlock()
	}
}

// handleOne handles one message and frees its slot.
func (t *transport) handleOne(msg sip.Message, from flow) {
	defer func() { <-t.slots }()
	defer func() {
		// One message must not take the Edge down, HTTP proxy and all: a
		// bug is logged (with its stack) and the message lost.
		if r := recover(); r != nil && t.panicked != nil {
			t.panicked(from, r)
		}
	}()
	t.handle(msg, from)
}

// serve reads until close.
func (t *transport) serve() {
	t.wg.Go(t.readUDP)
	t.wg.Go(func() { t.accept(t.ln, "tcp") })
	if t.tlsLn != nil {
		t.wg.Go(func() { t.accept(t.tlsLn, "tls") })
	}
	for _, wl := range t.wsLns {
		srv := &http.Server{
			Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.serveWS(w, r, wl.net) }),
			ReadHeaderTimeout: handshakeTimeout,
			// An HTTP connection that did not upgrade (a plain GET) is
			// not kept waiting for another request for long.
			IdleTimeout:    handshakeTimeout,
			MaxHeaderBytes: maxMessage,
			// A failed handshake or upgrade is not worth a log line each.
			ErrorLog: log.New(io.Discard, "", 0),
		}
		t.https = append(t.https, srv)
		t.wg.Go(func() { _ = srv.Serve(wl.ln) })
	}
}

func (t *transport) close() {
	close(t.done)
	t.pc.Close()
	t.ln.Close()
	if t.tlsLn != nil {
		t.tlsLn.Close()
	}
	for _, srv := range t.https {
		srv.Close() // its listener; the upgraded connections are ours
	}
	t.mu.Lock()
	for _, c := range t.conns {
		c.close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}

func (t *transport) readUDP() {
	buf := make([]byte, 65536)
	for {
		n, ra, err := t.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		ua, ok := ra.(*net.UDPAddr)
		if !ok {
			continue
		}
		from := flow{net: "udp", addr: unmap(ua.AddrPort())}
		data := buf[:n]
		if len(bytes.Trim(data, "\r\n\x00 ")) == 0 {
			continue // keep-alive
		}
		if n > maxMessage {
			t.bad(from, "datagram too large")
			continue
		}
		msg, err := t.parser.ParseSIP(bytes.Clone(data))
		if err != nil {
			t.bad(from, "not SIP: "+err.Error())
			continue
		}
		t.dispatch(msg, from, false)
	}
}

func (t *transport) accept(ln net.Listener, netw string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-t.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		t.adopt(c, netw, false)
	}
}

// remoteAddr is c's remote address, unmapped.
func remoteAddr(c net.Conn) (netip.AddrPort, bool) {
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	return unmap(ta.AddrPort()), true
}

// adopt keeps c in the pool (keyed by its flow: transport and remote
// address) and reads it. netw is "tcp" or "tls". dialed: the front opened
// c; when another send dialed the same address meanwhile and its
// connection is in the pool already, c is closed and that one returned:
// a connection left out of the pool would be neither used nor closed at
// shutdown.
func (t *transport) adopt(c net.Conn, netw string, dialed bool) *tcpConn {
	tc := &tcpConn{c: c}
	ra, ok := remoteAddr(c)
	if !ok {
		c.Close()
		return tc
	}
	fl := flow{net: netw, addr: ra}
	t.mu.Lock()
	select {
	case <-t.done:
		t.mu.Unlock()
		c.Close()
		return tc
	default:
	}
	if old := t.conns[fl]; old != nil && dialed {
		t.mu.Unlock()
		c.Close()
		return old
	}
	t.conns[fl] = tc
	t.mu.Unlock()
	t.wg.Go(func() { t.readTCP(tc, fl) })
	return tc
}

// forget drops tc from the pool if it is still fl's connection.
func (t *transport) forget(fl flow, tc *tcpConn) {
	t.mu.Lock()
	if t.conns[fl] == tc {
		delete(t.conns, fl)
	}
	t.mu.Unlock()
}

func (t *transport) readTCP(tc *tcpConn, from flow) {
	defer func() {
		tc.c.Close()
		t.forget(from, tc)
	}()
	if tlc, ok := tc.c.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		err := tlc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			if t.note != nil {
				t.note(from, "TLS handshake: "+err.Error())
			}
			return
		}
	}
	par := t.parser.NewSIPStream()
	buf := make([]byte, 32<<10)
	for {
		_ = tc.c.SetReadDeadline(time.Now().Add(t.idleTimeout()))
		n, err := tc.c.Read(buf)
		if err != nil {
			return
		}
		data := buf[:n]
		if par.Buffer().Len() == 0 && len(bytes.Trim(data, "\r\n")) == 0 {
			if n == 4 { // RFC 5626 ping: pong
				_ = tc.write(data[:2])
			}
			continue
		}
		err = par.ParseSIPStream(data, func(msg sip.Message) { t.dispatch(msg, from, true) })
		if err != nil && !errors.Is(err, sip.ErrParseSipPartial) {
			// No message boundary to resync on.
			t.bad(from, "not SIP or too large: "+err.Error())
			return
		}
	}
}

// serveWS upgrades a phone's HTTP request to a WebSocket with the "sip"
// subprotocol (RFC 7118 §4.1) and reads one SIP message per WebSocket
// message until the connection ends.
func (t *transport) serveWS(w http.ResponseWriter, r *http.Request, netw string) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		http.Error(w, "bad remote address", http.StatusBadRequest)
		return
	}
	from := flow{net: netw, addr: unmap(ap)}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{"sip"},
		// Browsers' softphones are served from any origin: what protects
		// the PBX is its SIP authentication, not the origin (there are
		// no cookies here).
		InsecureSkipVerify: true,
	})
	if err != nil {
		if t.note != nil {
			t.note(from, "WebSocket upgrade: "+err.Error())
		}
		return // Accept answered the request
	}
	if ws.Subprotocol() != "sip" {
		if t.note != nil {
			t.note(from, "WebSocket without the sip subprotocol")
		}
		_ = ws.Close(websocket.StatusPolicyViolation, `the "sip" subprotocol is required (RFC 7118)`)
		return
	}
	// A larger message closes the connection (1009), as on TCP.
	ws.SetReadLimit(maxMessage)
	tc := &tcpConn{ws: ws}
	t.mu.Lock()
	select {
	case <-t.done:
		t.mu.Unlock()
		_ = ws.CloseNow()
		return
	default:
	}
	t.conns[from] = tc
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()
	defer func() {
		_ = ws.CloseNow()
		t.forget(from, tc)
	}()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), t.idleTimeout())
		_, data, err := ws.Read(ctx)
		cancel()
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				t.bad(from, "WebSocket message too large")
			}
			return
		}
		if len(bytes.Trim(data, "\r\n")) == 0 {
			if len(data) == 4 { // RFC 5626 ping, as SIP.js sends: pong
				_ = tc.write(data[:2])
			}
			continue
		}
		// One SIP message per WebSocket message: what is not SIP is
		// dropped, and the next message is read.
		msg, err := t.parser.ParseSIP(data)
		if err != nil {
			t.bad(from, "not SIP: "+err.Error())
			continue
		}
		t.dispatch(msg, from, true)
	}
}

// send writes msg to dst: a datagram from the front's socket, or on the
// connection of dst: a TCP one is dialed when there is none, a TLS or
// WebSocket one must be open (errNoConnection).
func (t *transport) send(ctx context.Context, dst flow, msg sip.Message) error {
	if dst.net != "udp" && msg.ContentLength() == nil {
		// A WebSocket client may leave it out (the frame delimits the
		// message); on a stream it is what delimits it (RFC 3261 §18.3).
		cl := sip.ContentLengthHeader(len(msg.Body()))
		msg.AppendHeader(&cl)
	}
	var b bytes.Buffer
	msg.StringWrite(&b)
	switch dst.net {
	case "udp":
		_, err := t.pc.WriteTo(b.Bytes(), net.UDPAddrFromAddrPort(dst.addr))
		if err == nil && t.sent != nil {
			t.sent()
		}
		return err
	case "tcp", "tls", "ws", "wss":
		tc, err := t.conn(ctx, dst)
		if err != nil {
			return err
		}
		if err := tc.write(b.Bytes()); err != nil {
			return err
		}
		if t.sent != nil {
			t.sent()
		}
		return nil
	}
	return fmt.Errorf("transport %q", dst.net)
}

// conn is dst's open connection; a TCP one is dialed when there is none.
// A connection from dst's address on another transport serves too: a
// response goes to the transport its Via names, and a phone may name WS
// on a secure WebSocket, or TCP on TLS; one remote address and port is
// one connection.
func (t *transport) conn(ctx context.Context, dst flow) (*tcpConn, error) {
	t.mu.Lock()
	tc := t.conns[dst]
	for _, n := range []string{"tcp", "tls", "ws", "wss"} {
		if tc != nil {
			break
		}
		tc = t.conns[flow{net: n, addr: dst.addr}]
	}
	t.mu.Unlock()
	if tc != nil {
		return tc, nil
	}
	if !dst.dialable() {
		return nil, errNoConnection
	}
	ap := dst.addr
	dial := t.dial
	if dial == nil {
		d := net.Dialer{Timeout: dialTimeout}
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	c, err := dial(ctx, ap.String())
	if err != nil {
		return nil, err
	}
	return t.adopt(c, "tcp", true), nil
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
