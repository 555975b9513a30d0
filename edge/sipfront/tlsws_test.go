package sipfront

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/resilience/testkit/sippeers"
)

// testCert is a self-signed certificate for 127.0.0.1, made for the test,
// and the pool that trusts it.
func testCert(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "resman edge test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}}, pool
}

// withTLSAndWS turns on the front's TLS, WS and WSS listeners on free
// loopback ports.
func withTLSAndWS(t *testing.T, conf *tls.Config) func(*Options) {
	return func(o *Options) {
		o.TLSListen = "127.0.0.1:" + itoa(testkit.Port(t))
		o.WSListen = "127.0.0.1:" + itoa(testkit.Port(t))
		o.WSSListen = "127.0.0.1:" + itoa(testkit.Port(t))
		o.TLSConfig = conf
	}
}

// sipgoPhone is a phone made of sipgo's client and server on one user
// agent: it registers over TLS, WS or WSS and answers the INVITEs that
// come back on its connection.
type sipgoPhone struct {
	t      *testing.T
	user   string
	netw   string // tls, ws, wss
	ua     *sipgo.UserAgent
	client *sipgo.Client
	invite chan *sip.Request
	bye    chan *sip.Request
}

func newSipgoPhone(t *testing.T, user, netw string, pool *x509.CertPool) *sipgoPhone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(user), sipgo.WithUserAgenTLSConfig(&tls.Config{RootCAs: pool}))
	if err != nil {
		t.Fatal(err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	p := &sipgoPhone{t: t, user: user, netw: netw, ua: ua, client: client, invite: make(chan *sip.Request, 4),
		bye: make(chan *sip.Request, 4)}
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.To().Params.Add("tag", "ph"+user)
		res.AppendHeader(sip.NewHeader("Contact", "<sip:"+user+"@127.0.0.1;transport="+netw+">"))
		_ = tx.Respond(res)
		select {
		case p.invite <- req:
		default:
		}
	})
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		select {
		case p.bye <- req:
		default:
		}
	})
	t.Cleanup(func() { ua.Close() })
	return p
}

// register sends a REGISTER to the front's listener of the phone's
// transport, and returns the final answer.
func (p *sipgoPhone) register(edge string, expires int) *sip.Response {
	p.t.Helper()
	host, port, _ := net.SplitHostPort(edge)
	ruri := sip.Uri{Scheme: "sip", Host: host, Port: atoi(p.t, port), UriParams: sip.NewParams()}
	ruri.UriParams.Add("transport", p.netw)
	req := sip.NewRequest(sip.REGISTER, ruri)
	aor := "<sip:" + p.user + "@example.com>"
	req.AppendHeader(sip.NewHeader("From", aor+";tag=rg"+p.user))
	req.AppendHeader(sip.NewHeader("To", aor))
	// A WebSocket client has no address of its own (RFC 7118 §5.2).
	req.AppendHeader(sip.NewHeader("Contact", "<sip:"+p.user+"@"+p.user+"phone.invalid;transport="+p.netw+">"))
	req.AppendHeader(sip.NewHeader("Expires", itoa(expires)))
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	res, err := p.client.Do(ctx, req)
	if err != nil {
		p.t.Fatalf("%s REGISTER over %s: %v", p.user, p.netw, err)
	}
	return res
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTLSAndWebSocketPhones: phones on TLS, WS and WSS (sipgo's client)
// register through the Edge to kamailio as the Active side; kamailio
// keeps a Path that names each phone's flow; a call from the PBX reaches
// each phone on its own connection, with a Record-Route of the phone's
// transport, and the phone's BYE goes back the way it names. When side b
// takes Active, the Edge's BYE of a call of side a reaches the phone on its
// connection. With the phone's connection gone, the PBX's INVITE gets 480.
func TestTLSAndWebSocketPhones(t *testing.T) {
	t.Parallel()
	tpl, err := filepath.Abs(filepath.Join("testdata", "kamailio.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	kam := sippeers.StartKamailio(t, tpl, testkit.Port(t))
	conf, pool := testCert(t)
	other := newPeer(t) // side b: answers nothing
	f := startFront(t, []Side{sideOf("a", kam.Addr), sideOf("b", other.addr)}, withTLSAndWS(t, conf))
	f.switchTo(t, "a")
	listen := map[string]string{"tls": f.tlsListen, "ws": f.wsListen, "wss": f.wssListen}
	caller := newPeer(t)
	caller.answer = ok200 // the BYEs that come to it
	for i, netw := range []string{"tls", "ws", "wss"} {
		t.Run(netw, func(t *testing.T) {
			user := "70" + itoa(i)
			phone := newSipgoPhone(t, user, netw, pool)
			res := phone.register(listen[netw], 300)
			if res.StatusCode != 200 {
				t.Fatalf("REGISTER: %s", res.Short())
			}
			// kamailio holds the binding with the Edge's Path, naming the
			// phone's flow on its transport.
			locs := kam.Locations(t)
			flowPrefix := "fl=" + hex.EncodeToString([]byte(netw+":127.0.0.1:"))
			if !strings.Contains(locs, user+"phone.invalid") || !strings.Contains(locs, flowPrefix) {
				t.Fatalf("kamailio's location table lacks %s's contact or a Path with %s:\n%s", user, flowPrefix, locs)
			}
			if st := f.Status(); st.Transports[netw] != 1 {
				t.Errorf("status transports %v: want one %s binding", st.Transports, netw)
			}

			// A call to the phone, from the PBX's side: kamailio sends it
			// to the Path, the Edge on the phone's connection.
			id := "in-" + netw
			inv := msg("INVITE sip:"+user+"@"+kam.Addr+" SIP/2.0",
				"Via: SIP/2.0/UDP "+caller.addr+";branch=z9hG4bK"+id+";rport",
				"From: <sip:caller@example.com>;tag=c"+id, "To: <sip:"+user+"@example.com>",
				"Call-ID: "+id, "CSeq: 1 INVITE", "Contact: <sip:caller@"+caller.addr+">", "Max-Forwards: 70")
			caller.sendTo(kam.Addr, inv)
			var got *sip.Request
			select {
			case got = <-phone.invite:
			case <-time.After(waitLimit):
				t.Fatalf("the phone got no INVITE over %s", netw)
			}
			if tr := got.Transport(); !strings.EqualFold(tr, netw) {
				t.Errorf("the INVITE came over %q, want %s", tr, netw)
			}
			_, port, _ := net.SplitHostPort(listen[netw])
			if v := got.Via(); v == nil || !strings.EqualFold(v.Transport, netw) || v.Port != atoi(t, port) {
				t.Errorf("the Edge's Via %v: want transport %s, port %s", got.Via(), netw, port)
			}
			rr := hdr(got, "Record-Route")
			if len(rr) < 2 || !strings.Contains(rr[0], "transport="+netw) || !strings.Contains(rr[0], ":"+port+";") ||
				!strings.Contains(rr[0], "d=p") {
				t.Fatalf("Record-Route %q: want the phone-facing entry on top, on port %s with transport=%s", rr, port, netw)
			}
			res = callerResponse(t, caller, id)
			if res.StatusCode != 200 {
				t.Fatalf("the caller got %s", res.Short())
			}

			// The phone hangs up: its BYE follows the route set (the
			// Edge's phone-facing entry names its transport).
			bye := sip.NewRequest(sip.BYE, sip.Uri{Scheme: "sip", User: "caller", Host: "127.0.0.1", Port: atoi(t, strings.Split(caller.addr, ":")[1])})
			bye.AppendHeader(sip.NewHeader("From", "<sip:"+user+"@example.com>;tag=ph"+user))
			bye.AppendHeader(sip.NewHeader("To", "<sip:caller@example.com>;tag=c"+id))
			cid := sip.CallIDHeader(id)
			bye.AppendHeader(&cid)
			bye.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.BYE})
			for _, r := range rr {
				bye.AppendHeader(sip.NewHeader("Route", r))
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			byeRes, err := phone.client.Do(ctx, bye)
			if err != nil || byeRes.StatusCode != 200 {
				t.Fatalf("the phone's BYE: %v %v", byeRes, err)
			}
			testkit.EventuallyWithin(t, waitLimit, func() bool { return f.Status().Calls == 0 }, "the call forgotten")

			// Another call, up when side b takes Active: the Edge's BYE
			// reaches the phone on its connection.
			id2 := id + "-2"
			caller.sendTo(kam.Addr, strings.ReplaceAll(inv, id, id2))
			select {
			case <-phone.invite:
			case <-time.After(waitLimit):
				t.Fatal("the phone got no second INVITE")
			}
			if res := callerResponse(t, caller, id2); res.StatusCode != 200 {
				t.Fatalf("the second call: %s", res.Short())
			}
			testkit.EventuallyWithin(t, waitLimit, func() bool { return f.Status().Calls == 1 }, "the call confirmed")
			f.switchTo(t, "b")
			select {
			case b := <-phone.bye:
				if b.CallID().Value() != id2 || !strings.EqualFold(b.Transport(), netw) || !strings.EqualFold(b.Via().Transport, netw) {
					t.Errorf("the Edge's BYE: Call-ID %s over %s, Via %s", b.CallID().Value(), b.Transport(), b.Via().Value())
				}
			case <-time.After(waitLimit):
				t.Fatalf("the phone got no BYE from the Edge over %s", netw)
			}
			testkit.EventuallyWithin(t, waitLimit, func() bool { return f.Status().Calls == 0 }, "the call forgotten")
			f.switchTo(t, "a")

			// The phone goes away: its connection closes, and a call from
			// the PBX gets 480 (the Edge cannot open one towards it).
			phone.ua.Close()
			testkit.EventuallyWithin(t, waitLimit, func() bool { return !f.hasConnFrom(netw) }, "the phone's connection closed")
			id += "-gone"
			caller.sendTo(kam.Addr, strings.ReplaceAll(inv, "in-"+netw, id))
			if res := callerResponse(t, caller, id); res.StatusCode != 480 {
				t.Fatalf("a call to a phone whose connection is gone: %s, want 480", res.Short())
			}
		})
	}
}

// callerResponse is the next final response p gets for Call-ID id (a
// retransmission of an earlier call's is skipped).
func callerResponse(t *testing.T, p *peer, id string) *sip.Response {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		res := p.response(time.Until(deadline))
		if res.CallID() != nil && res.CallID().Value() == id {
			return res
		}
	}
}

// hasConnFrom reports whether the front holds a connection of transport
// netw.
func (f *Front) hasConnFrom(netw string) bool {
	f.tr.mu.Lock()
	defer f.tr.mu.Unlock()
	for fl := range f.tr.conns {
		if fl.net == netw {
			return true
		}
	}
	return false
}

// TestTLSPhoneRegistersWithTheRegistrar: a phone on TLS (raw TLS
// connection) registers; the answer comes on its connection; the side
// holds the binding. The listener survives a client that is not TLS.
func TestTLSPhoneRegistersWithTheRegistrar(t *testing.T) {
	t.Parallel()
	pa := testkit.Port(t)
	ra := sippeers.Registrar(t, pa)
	conf, pool := testCert(t)
	f := startFront(t, []Side{sideOf("a", "127.0.0.1:"+itoa(pa))}, withTLSAndWS(t, conf))
	f.switchTo(t, "a")

	// Not TLS: the handshake fails, the connection is closed.
	raw, err := net.Dial("tcp", f.tlsListen)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = raw.Write([]byte(register(&peer{addr: raw.LocalAddr().String()}, f.tlsListen, "800", 1, 60)))
	_ = raw.SetReadDeadline(time.Now().Add(waitLimit))
	var got []byte
	for {
		b := make([]byte, 512)
		n, err := raw.Read(b)
		got = append(got, b[:n]...)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the TLS listener keeps a connection that is not TLS open")
		}
		if err != nil {
			break
		}
	}
	if strings.Contains(string(got), "SIP/2.0") {
		t.Errorf("the TLS listener answered plain SIP: %q", got)
	}
	raw.Close()
	// A client that does not trust the certificate: refused by the client.
	if c, err := tls.Dial("tcp", f.tlsListen, &tls.Config{RootCAs: x509.NewCertPool()}); err == nil {
		c.Close()
		t.Error("a client with no trusted root connected")
	}

	c, err := tls.Dial("tcp", f.tlsListen, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	reg := msg("REGISTER sip:"+f.tlsListen+";transport=tls SIP/2.0",
		"Via: SIP/2.0/TLS "+local+";branch=z9hG4bKtls1",
		"From: <sip:801@example.com>;tag=t8", "To: <sip:801@example.com>",
		"Call-ID: tls-801", "CSeq: 1 REGISTER", "Contact: <sip:801@"+local+";transport=tls>", "Expires: 600")
	if _, err := c.Write([]byte(reg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
		t.Fatalf("answer on the phone's TLS connection: %q %v", buf[:n], err)
	}
	if got := sippeers.Contacts(ra); !slices.Equal(got, []string{"sip:801@" + local + ";transport=tls"}) {
		t.Fatalf("side a holds %q", got)
	}
	// The Edge's own TLS and UDP still serve.
	phone := newPeer(t)
	phone.sendTo(f.addr, msg("OPTIONS sip:"+f.addr+" SIP/2.0", "Via: SIP/2.0/UDP "+phone.addr+";branch=z9hG4bKopt;rport",
		"From: <sip:x@example.com>;tag=o", "To: <sip:"+f.addr+">", "Call-ID: opt", "CSeq: 1 OPTIONS"))
	if res := phone.response(waitLimit); res.StatusCode != 200 {
		t.Fatalf("OPTIONS: %s", res.Short())
	}
}

// frames is what a WebSocket client writes: the frames a test builds by
// hand, masked as a client must (RFC 6455 §5.3) unless unmasked.
func frame(op byte, fin, masked bool, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	mbit := byte(0)
	if masked {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, mbit|byte(n))
	case n < 1<<16:
		out = append(out, mbit|126, byte(n>>8), byte(n))
	default:
		out = append(out, mbit|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	if !masked {
		return append(out, payload...)
	}
	key := []byte{0x12, 0x34, 0x56, 0x78}
	out = append(out, key...)
	for i, c := range payload {
		out = append(out, c^key[i%4])
	}
	return out
}

// wsDial opens a TCP connection to addr and upgrades it with protocol
// (none when ""), returning the connection after the server's 101.
func wsDial(t *testing.T, addr, protocol string) (net.Conn, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	req := "GET /sip HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://softphone.example\r\n"
	if protocol != "" {
		req += "Sec-WebSocket-Protocol: " + protocol + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	// Read the response head byte by byte: frames may follow it.
	var head []byte
	one := make([]byte, 1)
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		if _, err := c.Read(one); err != nil {
			t.Fatalf("upgrade: %v after %q", err, head)
		}
		head = append(head, one[0])
	}
	return c, string(head)
}

// readFrame reads one unmasked frame from the server: opcode and payload.
func readFrame(c net.Conn) (byte, []byte, error) {
	h := make([]byte, 2)
	if _, err := ioReadFull(c, h); err != nil {
		return 0, nil, err
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		x := make([]byte, 2)
		if _, err := ioReadFull(c, x); err != nil {
			return 0, nil, err
		}
		n = int(x[0])<<8 | int(x[1])
	case 127:
		x := make([]byte, 8)
		if _, err := ioReadFull(c, x); err != nil {
			return 0, nil, err
		}
		n = int(x[6])<<8 | int(x[7])
	}
	p := make([]byte, n)
	_, err := ioReadFull(c, p)
	return h[0] & 0x0f, p, err
}

func ioReadFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// wsOptions is an OPTIONS to the Edge from a WebSocket client.
func wsOptions(edge, id string) []byte {
	return []byte(msg("OPTIONS sip:"+edge+";transport=ws SIP/2.0",
		"Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK"+id,
		"From: <sip:ws@example.com>;tag="+id, "To: <sip:"+edge+">", "Call-ID: "+id, "CSeq: 1 OPTIONS", "Max-Forwards: 70"))
}

// TestWebSocketGarbage: what a WebSocket client sends that is not SIP, or
// not WebSocket, does no harm: a message that is not SIP is dropped and
// the connection serves on; broken framing, a message over the limit, a
// missing "sip" subprotocol close that connection only; the front serves
// every other connection and transport.
func TestWebSocketGarbage(t *testing.T) {
	t.Parallel()
	pbx := newPeer(t)
	conf, _ := testCert(t)
	f := startFront(t, []Side{sideOf("a", pbx.addr)}, withTLSAndWS(t, conf))
	f.switchTo(t, "a")
	ws := f.wsListen

	t.Run("not SIP in a message: dropped, the connection serves on", func(t *testing.T) {
		c, head := wsDial(t, ws, "sip")
		defer c.Close()
		if !strings.HasPrefix(head, "HTTP/1.1 101") || !strings.Contains(head, "Sec-Websocket-Protocol: sip") &&
			!strings.Contains(head, "Sec-WebSocket-Protocol: sip") {
			t.Fatalf("upgrade answer %q: want 101 with the sip subprotocol", head)
		}
		for _, m := range []struct {
			op byte
			p  []byte
		}{
			{1, []byte("this is not SIP\r\n\r\n")},
			{2, []byte{0, 1, 2, 3, 0xff, 0xfe}},
			{1, []byte("INVITE sip:x SIP/2.0\r\nVia: garbage\r\n\r\n")},
			{1, []byte("\r\n\r\n")}, // a keep-alive
		} {
			if _, err := c.Write(frame(m.op, true, true, m.p)); err != nil {
				t.Fatal(err)
			}
		}
		// The keep-alive is answered (RFC 5626 pong).
		_ = c.SetReadDeadline(time.Now().Add(waitLimit))
		if op, p, err := readFrame(c); err != nil || op != 1 || string(p) != "\r\n" {
			t.Fatalf("pong: opcode %d %q %v", op, p, err)
		}
		// A message in two fragments, then an OPTIONS: answered on the
		// connection, in a text frame.
		opt := wsOptions(f.addr, "wsok1")
		if _, err := c.Write(append(frame(1, false, true, opt[:20]), frame(0, true, true, opt[20:])...)); err != nil {
			t.Fatal(err)
		}
		op, p, err := readFrame(c)
		if err != nil || op != 1 || !strings.HasPrefix(string(p), "SIP/2.0 200") {
			t.Fatalf("answer: opcode %d %q %v: want a text frame with 200", op, p, err)
		}
		if res, err := sip.ParseMessage(p); err != nil || !strings.Contains(res.(*sip.Response).Via().Value(), "received=127.0.0.1") {
			t.Errorf("answer %q: want the client's Via with received", p)
		}
	})

	t.Run("a Via with no address nor rport: the PBX's answer comes back on the connection", func(t *testing.T) {
		c, _ := wsDial(t, ws, "sip")
		defer c.Close()
		inv := msg("INVITE sip:200@"+f.addr+" SIP/2.0",
			"Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKwsinv",
			"From: <sip:100@example.com>;tag=wsinv", "To: <sip:200@example.com>",
			"Call-ID: wsinv", "CSeq: 1 INVITE", "Contact: <sip:100@df7jal23ls0d.invalid;transport=ws>", "Max-Forwards: 70")
		if _, err := c.Write(frame(1, true, true, []byte(inv))); err != nil {
			t.Fatal(err)
		}
		req := pbx.request(waitLimit)
		if vias := hdr(req, "Via"); len(vias) != 2 || !strings.Contains(vias[1], "received=127.0.0.1") || !strings.Contains(vias[1], "rport=") {
			t.Fatalf("Vias at the PBX %q: want the client's with received and rport", vias)
		}
		if rr := hdr(req, "Record-Route"); len(rr) != 2 || !strings.Contains(rr[1], "transport=ws") || !strings.Contains(rr[1], ws[strings.LastIndex(ws, ":"):]+";") {
			t.Errorf("Record-Route %q: want the phone-facing entry on the WS port with transport=ws", rr)
		}
		pbx.sendTo(f.addr, ok200(req).String())
		_ = c.SetReadDeadline(time.Now().Add(waitLimit))
		op, p, err := readFrame(c)
		if err != nil || op != 1 || !strings.HasPrefix(string(p), "SIP/2.0 200") {
			t.Fatalf("answer: opcode %d %q %v: want the PBX's 200 in a text frame", op, p, err)
		}
	})

	garbage := map[string][]byte{
		"an unmasked client frame":     frame(1, true, false, wsOptions(f.addr, "unmasked")),
		"a reserved opcode":            frame(3, true, true, []byte("x")),
		"reserved bits":                append([]byte{0xf1}, frame(1, true, true, []byte("x"))[1:]...),
		"a fragmented control frame":   frame(9, false, true, []byte("ping")),
		"a continuation with no start": frame(0, true, true, []byte("x")),
		"a message over 16 KiB":        frame(1, true, true, []byte(invite(&peer{addr: "127.0.0.1:1"}, f.addr, "big", "X-Pad: "+strings.Repeat("x", maxMessage)))),
		"a length of 2^63":             append([]byte{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}, make([]byte, maxMessage+10)...),
	}
	names := make([]string, 0, len(garbage))
	for n := range garbage {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		t.Run(name+": that connection is closed", func(t *testing.T) {
			c, _ := wsDial(t, ws, "sip")
			defer c.Close()
			if _, err := c.Write(garbage[name]); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(waitLimit))
			for {
				op, _, err := readFrame(c)
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("the connection is still open after %s", name)
				}
				if err != nil {
					break // closed
				}
				if op == 8 { // close frame: then the connection ends
					continue
				}
				if op == 1 {
					t.Fatalf("the front answered %q with a SIP message", name)
				}
			}
		})
	}

	t.Run("no sip subprotocol: closed", func(t *testing.T) {
		c, head := wsDial(t, ws, "")
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(waitLimit))
		op, p, err := readFrame(c)
		if err != nil || op != 8 || len(p) < 2 || int(p[0])<<8|int(p[1]) != 1008 {
			t.Fatalf("after %q: frame %d %q %v, want a close with 1008", head, op, p, err)
		}
	})

	t.Run("plain HTTP and not HTTP: refused", func(t *testing.T) {
		for _, req := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x16\x03\x01garbage\r\n\r\n"} {
			c, err := net.Dial("tcp", ws)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = c.Write([]byte(req))
			_ = c.SetReadDeadline(time.Now().Add(waitLimit))
			b := make([]byte, 512)
			n, _ := c.Read(b)
			c.Close()
			if strings.HasPrefix(string(b[:n]), "HTTP/1.1 101") {
				t.Fatalf("%q upgraded", req)
			}
		}
	})

	t.Run("random garbage after the upgrade, in parallel", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Go(func() {
				c, _ := wsDial(t, ws, "sip")
				defer c.Close()
				b := randomBytes(t, 64+i*97)
				if i%2 == 0 {
					b = frame(byte(i%16), i%3 != 0, true, b)
				}
				_, _ = c.Write(b)
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, _ = c.Read(make([]byte, 1024))
			})
		}
		wg.Wait()
	})

	// Still serving: a new WebSocket client, and UDP.
	c, _ := wsDial(t, ws, "sip")
	defer c.Close()
	if _, err := c.Write(frame(1, true, true, wsOptions(f.addr, "after"))); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	if op, p, err := readFrame(c); err != nil || op != 1 || !strings.HasPrefix(string(p), "SIP/2.0 200") {
		t.Fatalf("after the garbage: %d %q %v", op, p, err)
	}
	phone := newPeer(t)
	phone.sendTo(f.addr, invite(phone, f.addr, "after-ws"))
	if req := pbx.request(waitLimit); req.Method != sip.INVITE {
		t.Fatalf("pbx got %s", req.Short())
	}
	if n := testkit.Metric(t, f.reg, "resman_edge_sip_messages_total", map[string]string{"kind": "malformed"}); n < 3 {
		t.Errorf("malformed = %v, want at least 3 (the messages that are not SIP, the one too large)", n)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWebSocketToTCPPBX: a WebSocket client may leave Content-Length out
// (the frame delimits the message); on the PBX's TCP connection the Edge
// writes it.
func TestWebSocketToTCPPBX(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:"+itoa(testkit.Port(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan sip.Message, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		par := sip.NewParser().NewSIPStream()
		buf := make([]byte, 8192)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			_ = par.ParseSIPStream(buf[:n], func(m sip.Message) { got <- m })
		}
	}()
	conf, _ := testCert(t)
	f := startFront(t, []Side{{Name: "a", URI: "sip:" + ln.Addr().String() + ";transport=tcp"}}, withTLSAndWS(t, conf))
	f.switchTo(t, "a")
	c, _ := wsDial(t, f.wsListen, "sip")
	defer c.Close()
	m := "MESSAGE sip:200@example.com SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bKwsmsg\r\n" +
		"From: <sip:100@example.com>;tag=m\r\nTo: <sip:200@example.com>\r\nCall-ID: wsmsg\r\nCSeq: 1 MESSAGE\r\n" +
		"Content-Type: text/plain\r\n\r\nhello"
	if _, err := c.Write(frame(1, true, true, []byte(m))); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-got:
		if cl := msg.ContentLength(); cl == nil || *cl != 5 || string(msg.Body()) != "hello" {
			t.Fatalf("the PBX read %q", msg.String())
		}
	case <-time.After(waitLimit):
		t.Fatal("the PBX got nothing on TCP")
	}
}
