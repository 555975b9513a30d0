package sipfront

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

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
	// idleTCP closes a TCP connection that carried nothing for this long
	// (phones keep theirs alive by refreshing their registration).
	idleTCP = 10 * time.Minute
	// maxInFlight bounds the messages handled at once: past it, datagrams
	// are dropped (UDP retransmits) and TCP connections wait.
	maxInFlight = 4096
)

// flow is where a message goes or came from: a transport and an address.
type flow struct {
	net  string // "udp" or "tcp"
	addr netip.AddrPort
}

func (f flow) String() string { return f.net + ":" + f.addr.String() }

func (f flow) valid() bool { return (f.net == "udp" || f.net == "tcp") && f.addr.IsValid() }

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
// (accepted from phones or dialed to PBXs), parsing with sipgo's parser.
type transport struct {
	pc     net.PacketConn
	ln     net.Listener
	parser *sip.Parser
	handle func(msg sip.Message, from flow)
	// sent is called for each message written.
	sent func()
	// panicked is called when handling a message panicked.
	panicked func(from flow, r any)
	// bad is called for what cannot be read: a message too large or not
	// SIP; from is its source.
	bad func(from flow, why string)

	mu    sync.Mutex
	conns map[netip.AddrPort]*tcpConn
	wg    sync.WaitGroup
	done  chan struct{}
	// slots bounds the handlers running at once.
	slots chan struct{}
	// dial opens a TCP connection (net.Dialer's, but in tests).
	dial func(ctx context.Context, addr string) (net.Conn, error)
}

type tcpConn struct {
	c   net.Conn
	wmu sync.Mutex
}

func newTransport(pc net.PacketConn, ln net.Listener, handle func(sip.Message, flow), bad func(flow, string)) *transport {
	return &transport{
		pc: pc, ln: ln, handle: handle, bad: bad,
		parser: sip.NewParser(func(p *sip.Parser) { p.MaxMessageLength = maxMessage }),
		conns:  map[netip.AddrPort]*tcpConn{},
		done:   make(chan struct{}),
		slots:  make(chan struct{}, maxInFlight),
	}
}

// dispatch handles msg on a goroutine of its own once a slot is free;
// wait false drops it when none is.
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
	go func() {
		defer func() { <-t.slots }()
		defer func() {
			// One message must not take the Edge down, HTTP proxy and
			// all: a bug is logged (with its stack) and the message lost.
			if r := recover(); r != nil && t.panicked != nil {
				t.panicked(from, r)
			}
		}()
		t.handle(msg, from)
	}()
}

// serve reads until close.
func (t *transport) serve() {
	t.wg.Go(t.readUDP)
	t.wg.Go(t.accept)
}

func (t *transport) close() {
	close(t.done)
	t.pc.Close()
	t.ln.Close()
	t.mu.Lock()
	for _, c := range t.conns {
		c.c.Close()
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

func (t *transport) accept() {
	for {
		c, err := t.ln.Accept()
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
		t.adopt(c)
	}
}

// adopt keeps c in the pool (keyed by its remote address) and reads it.
func (t *transport) adopt(c net.Conn) *tcpConn {
	ra := unmap(c.RemoteAddr().(*net.TCPAddr).AddrPort())
	tc := &tcpConn{c: c}
	t.mu.Lock()
	select {
	case <-t.done:
		t.mu.Unlock()
		c.Close()
		return tc
	default:
	}
	t.conns[ra] = tc
	t.mu.Unlock()
	t.wg.Go(func() { t.readTCP(tc, ra) })
	return tc
}

func (t *transport) readTCP(tc *tcpConn, ra netip.AddrPort) {
	defer func() {
		tc.c.Close()
		t.mu.Lock()
		if t.conns[ra] == tc {
			delete(t.conns, ra)
		}
		t.mu.Unlock()
	}()
	from := flow{net: "tcp", addr: ra}
	par := t.parser.NewSIPStream()
	buf := make([]byte, 32<<10)
	for {
		_ = tc.c.SetReadDeadline(time.Now().Add(idleTCP))
		n, err := tc.c.Read(buf)
		if err != nil {
			return
		}
		data := buf[:n]
		if par.Buffer().Len() == 0 && len(bytes.Trim(data, "\r\n")) == 0 {
			if n == 4 { // RFC 5626 ping: pong
				tc.wmu.Lock()
				_, _ = tc.c.Write(data[:2])
				tc.wmu.Unlock()
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

// send writes msg to dst: a datagram from the front's socket, or on the
// TCP connection of dst, dialed when there is none.
func (t *transport) send(ctx context.Context, dst flow, msg sip.Message) error {
	var b bytes.Buffer
	msg.StringWrite(&b)
	switch dst.net {
	case "udp":
		_, err := t.pc.WriteTo(b.Bytes(), net.UDPAddrFromAddrPort(dst.addr))
		if err == nil && t.sent != nil {
			t.sent()
		}
		return err
	case "tcp":
		tc, err := t.tcp(ctx, dst.addr)
		if err != nil {
			return err
		}
		tc.wmu.Lock()
		defer tc.wmu.Unlock()
		_ = tc.c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := tc.c.Write(b.Bytes()); err != nil {
			tc.c.Close()
			return err
		}
		if t.sent != nil {
			t.sent()
		}
		return nil
	}
	return fmt.Errorf("transport %q", dst.net)
}

func (t *transport) tcp(ctx context.Context, ap netip.AddrPort) (*tcpConn, error) {
	t.mu.Lock()
	tc := t.conns[ap]
	t.mu.Unlock()
	if tc != nil {
		return tc, nil
	}
	dial := t.dial
	if dial == nil {
		d := net.Dialer{Timeout: dialTimeout}
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	c, err := dial(ctx, ap.String())
	if err != nil {
		return nil, err
	}
	return t.adopt(c), nil
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
