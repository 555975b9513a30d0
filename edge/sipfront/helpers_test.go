package sipfront

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/resilience/testkit/sippeers"
)

func TestMain(m *testing.M) {
	sippeers.Quiet()
	os.Exit(m.Run())
}

const waitLimit = 15 * time.Second

// testFront runs a Front on a low loopback port until the test ends.
type testFront struct {
	*Front
	addr string
	reg  *prometheus.Registry
}

// switchTo makes side name Active and waits until the front has taken
// the switch in (SetActive does not block): its re-homing to name has
// started, with the bindings it had then. A phone's REGISTER sent after
// it goes to name, and the status describes this switch, not the last.
func (f *testFront) switchTo(t *testing.T, name string) {
	t.Helper()
	if f.Active() == name {
		t.Fatalf("side %s is Active already", name)
	}
	before := time.Now()
	f.SetActive(name)
	testkit.EventuallyWithin(t, waitLimit, func() bool {
		r := f.Status().LastRehome
		return r != nil && r.To == name && !r.Started.Before(before)
	}, "the front to take in the switch to %s", name)
}

func startFront(t *testing.T, sides []Side, opts ...func(*Options)) *testFront {
	t.Helper()
	port := testkit.Port(t)
	reg := prometheus.NewRegistry()
	o := Options{Listen: "127.0.0.1:" + strconv.Itoa(port), Expires: 30, RegisterRate: 200, Sides: sides,
		Timeout: 2 * time.Second, Registerer: reg}
	if testing.Verbose() {
		o.Logger = testkit.Logger(t)
	}
	for _, fn := range opts {
		fn(&o)
	}
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	testkit.EventuallyWithin(t, waitLimit, func() bool { return f.Addr() != "" }, "the front to listen")
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &testFront{Front: f, addr: o.Listen, reg: reg}
}

// peer is a raw SIP endpoint on a UDP socket: a phone or a PBX.
type peer struct {
	t    *testing.T
	pc   net.PacketConn
	addr string
	in   chan sip.Message
	// answer, if set, answers each request received (the PBX's role).
	mu     sync.Mutex
	answer func(*sip.Request) *sip.Response
	got    []sip.Message
}

func newPeer(t *testing.T) *peer { return newPeerAt(t, "127.0.0.1") }

func newPeerAt(t *testing.T, ip string) *peer {
	t.Helper()
	port := testkit.Port(t)
	pc, err := net.ListenPacket("udp", ip+":"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, pc: pc, addr: pc.LocalAddr().String(), in: make(chan sip.Message, 64)}
	go p.read()
	t.Cleanup(func() { pc.Close() })
	return p
}

func (p *peer) read() {
	buf := make([]byte, 65536)
	for {
		n, from, err := p.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			continue
		}
		p.mu.Lock()
		p.got = append(p.got, msg)
		answer := p.answer
		p.mu.Unlock()
		if req, ok := msg.(*sip.Request); ok && answer != nil {
			if res := answer(req); res != nil {
				p.pc.WriteTo([]byte(res.String()), from)
			}
			continue
		}
		select {
		case p.in <- msg:
		default:
		}
	}
}

func (p *peer) sendTo(addr, msg string) {
	p.t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.pc.WriteTo([]byte(msg), ua); err != nil {
		p.t.Fatal(err)
	}
}

// next is the next message received, failing the test after limit.
func (p *peer) next(limit time.Duration) sip.Message {
	p.t.Helper()
	select {
	case m := <-p.in:
		return m
	case <-time.After(limit):
		p.t.Fatalf("%s received nothing in %s", p.addr, limit)
		return nil
	}
}

// nothing checks that nothing arrives for d.
func (p *peer) nothing(d time.Duration) {
	p.t.Helper()
	select {
	case m := <-p.in:
		p.t.Fatalf("%s received %s", p.addr, short(m))
	case <-time.After(d):
	}
}

func (p *peer) response(limit time.Duration) *sip.Response {
	p.t.Helper()
	for {
		m := p.next(limit)
		if res, ok := m.(*sip.Response); ok && res.StatusCode >= 200 {
			return res
		} else if ok {
			continue
		}
		p.t.Fatalf("%s: want a response, got %s", p.addr, short(m))
	}
}

func (p *peer) request(limit time.Duration) *sip.Request {
	p.t.Helper()
	m := p.next(limit)
	req, ok := m.(*sip.Request)
	if !ok {
		p.t.Fatalf("%s: want a request, got %s", p.addr, short(m))
	}
	return req
}

// ok200 answers every request 200, echoing the Contact with expires.
func ok200(req *sip.Request) *sip.Response {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	if c := req.Contact(); c != nil && req.Method == sip.REGISTER {
		res.AppendHeader(sip.NewHeader("Contact", c.Value()))
	}
	if req.Method == sip.INVITE {
		res.AppendHeader(sip.NewHeader("Contact", "<sip:pbx@"+req.Destination()+">"))
	}
	return res
}

// msg builds a request from lines, adding Content-Length.
func msg(lines ...string) string {
	return strings.Join(lines, "\r\n") + "\r\nContent-Length: 0\r\n\r\n"
}

// invite is an INVITE from phone p to the front at edge, call-id id.
func invite(p *peer, edge, id string, extra ...string) string {
	lines := []string{
		"INVITE sip:200@" + edge + " SIP/2.0",
		"Via: SIP/2.0/UDP " + p.addr + ";branch=z9hG4bK" + id + ";rport",
		"From: <sip:100@example.com>;tag=ft" + id,
		"To: <sip:200@example.com>",
		"Call-ID: " + id,
		"CSeq: 1 INVITE",
		"Contact: <sip:100@" + p.addr + ">",
	}
	return msg(append(lines, extra...)...)
}

func register(p *peer, edge, user string, cseq, expires int) string {
	return msg(
		"REGISTER sip:"+edge+" SIP/2.0",
		"Via: SIP/2.0/UDP "+p.addr+";branch=z9hG4bKr"+user+strconv.Itoa(cseq)+";rport",
		"From: <sip:"+user+"@example.com>;tag=rt"+user,
		"To: <sip:"+user+"@example.com>",
		"Call-ID: reg-"+user,
		fmt.Sprintf("CSeq: %d REGISTER", cseq),
		"Contact: <sip:"+user+"@"+p.addr+">",
		fmt.Sprintf("Expires: %d", expires),
		"Max-Forwards: 70",
	)
}

func hdr(m sip.Message, name string) []string {
	var out []string
	for _, h := range m.(interface{ GetHeaders(string) []sip.Header }).GetHeaders(name) {
		out = append(out, h.Value())
	}
	return out
}

type netipAddrPort = netip.AddrPort

func parseAddrPort(s string) (netip.AddrPort, error) { return netip.ParseAddrPort(s) }

func itoa(n int) string { return strconv.Itoa(n) }

func short(m sip.Message) string {
	if s, ok := m.(interface{ Short() string }); ok {
		return s.Short()
	}
	return m.String()
}
