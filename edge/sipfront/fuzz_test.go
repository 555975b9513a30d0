package sipfront

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// discardConn is a PacketConn that drops what is written: the fuzzed front
// sends nothing to the machine's real ports.
type discardConn struct{ net.PacketConn }

func (discardConn) WriteTo(b []byte, _ net.Addr) (int, error) { return len(b), nil }
func (discardConn) Close() error                              { return nil }
func (discardConn) LocalAddr() net.Addr                       { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5060} }

// FuzzMessage feeds what parses as SIP to the front's handler, from a
// phone's address and from a side's: nothing may panic, and the front
// must keep serving. A Front with both sides, one Active.
func FuzzMessage(f *testing.F) {
	seeds := []string{
		invite(&peer{addr: "127.0.0.1:5070"}, "127.0.0.1:5060", "seed1"),
		register(&peer{addr: "127.0.0.1:5070"}, "127.0.0.1:5060", "100", 1, 3600),
		register(&peer{addr: "127.0.0.1:5070"}, "127.0.0.1:5060", "100", 2, 0),
		"REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContact: *\r\nExpires: 0\r\n\r\n",
		"BYE sip:p@10.0.0.9 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKb\r\nRoute: <sip:127.0.0.1:5060;lr;d=s;s=a;fl=7564703a3132372e302e302e313a35303730>,<sip:127.0.0.1:5060;lr;d=p>\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c\r\nCSeq: 2 BYE\r\nMax-Forwards: 0\r\n\r\n",
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsffabc.def, SIP/2.0/TCP 127.0.0.1:5070;rport=1;received=127.0.0.1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsfo1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\r\n",
		// A WebSocket client's Via and a route to a phone's WSS flow.
		"INVITE sip:p@x.invalid;transport=ws SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKw\r\nRoute: <sip:127.0.0.1:5060;lr;d=s;s=a;fl=7773733a3132372e302e302e313a35303730>\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: w\r\nCSeq: 1 INVITE\r\n\r\n",
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsffabc.def, SIP/2.0/WSS df7.invalid;rport=1;received=127.0.0.1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	conf, _ := testCert(f)
	fr, err := New(Options{Listen: "127.0.0.1:5060", Sides: []Side{{Name: "a", URI: "sip:127.0.0.1:5080"}, {Name: "b", URI: "sip:127.0.0.2:5080"}},
		Timeout: 10 * time.Millisecond, TLSListen: "127.0.0.1:5061", WSListen: "127.0.0.1:8088", WSSListen: "127.0.0.1:8089", TLSConfig: conf})
	if err != nil {
		f.Fatal(err)
	}
	fr.tr = newTransport(discardConn{}, nil, fr.onMessage, fr.onBad)
	fr.tr.dial = func(context.Context, string) (net.Conn, error) { return nil, errors.New("no dialing in the fuzz test") }
	fr.SetActive("a")
	phone := flow{net: "udp", addr: netip.MustParseAddrPort("127.0.0.1:5070")}
	pbx := flow{net: "tcp", addr: netip.MustParseAddrPort("127.0.0.1:5080")}
	f.Fuzz(func(t *testing.T, data []byte, fromPBX bool) {
		msg, err := sip.ParseMessage(data)
		if err != nil {
			return
		}
		from := phone
		if fromPBX {
			from = pbx
		}
		fr.onMessage(msg, from)
	})
}
