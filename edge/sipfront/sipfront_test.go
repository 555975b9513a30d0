package sipfront

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/resilience/testkit/sippeers"
	"github.com/resman-pbx/resman/xds/registrar"
)

func sideOf(name string, addr string) Side { return Side{Name: name, URI: "sip:" + addr} }

func TestProxyRulesPhoneToPBX(t *testing.T) {
	t.Parallel()
	pbxA, pbxB := newPeer(t), newPeer(t)
	f := startFront(t, []Side{sideOf("a", pbxA.addr), sideOf("b", pbxB.addr)})
	phone := newPeer(t)

	t.Run("no side active: 503 with Retry-After", func(t *testing.T) {
		phone.sendTo(f.addr, invite(phone, f.addr, "c0"))
		res := phone.response(waitLimit)
		if res.StatusCode != 503 || len(hdr(res, "Retry-After")) != 1 {
			t.Fatalf("got %s %v", res.Short(), hdr(res, "Retry-After"))
		}
	})
	f.switchTo(t, "a")

	t.Run("Max-Forwards 0: 483", func(t *testing.T) {
		phone.sendTo(f.addr, invite(phone, f.addr, "c1", "Max-Forwards: 0"))
		if res := phone.response(waitLimit); res.StatusCode != 483 {
			t.Fatalf("got %s", res.Short())
		}
		pbxA.nothing(200 * time.Millisecond)
	})

	t.Run("an INVITE goes to the Active side, routed back through the Edge", func(t *testing.T) {
		phone.sendTo(f.addr, invite(phone, f.addr, "c2", "Max-Forwards: 9"))
		req := pbxA.request(waitLimit)
		if req.Method != sip.INVITE {
			t.Fatalf("pbx got %s", req.Short())
		}
		if mf := req.MaxForwards(); mf == nil || *mf != 8 {
			t.Errorf("Max-Forwards = %v, want 8", mf)
		}
		vias := hdr(req, "Via")
		if len(vias) != 2 || !strings.Contains(vias[0], f.addr) || !strings.Contains(vias[0], "branch="+fwdBranch) {
			t.Fatalf("Vias %q: want the Edge's on top of the phone's", vias)
		}
		_, port, _ := net.SplitHostPort(phone.addr)
		if !strings.Contains(vias[1], "rport="+port) || !strings.Contains(vias[1], "rport") {
			t.Errorf("phone's Via %q: want rport=%s", vias[1], port)
		}
		rr := hdr(req, "Record-Route")
		if len(rr) != 2 || !strings.Contains(rr[0], "d=s") || !strings.Contains(rr[0], "s=a") || !strings.Contains(rr[1], "d=p") {
			t.Fatalf("Record-Route %q: want the PBX-facing entry (side a) on top of the phone-facing one", rr)
		}
		// The PBX answers: the answer reaches the phone without the Edge's Via.
		res := ok200(req)
		pbxA.sendTo(f.addr, res.String())
		got := phone.response(waitLimit)
		if got.StatusCode != 200 || len(hdr(got, "Via")) != 1 {
			t.Fatalf("phone got %s, Vias %q", got.Short(), hdr(got, "Via"))
		}
		// In-dialog BYE from the phone, with the route set the 200 gave.
		routes := slices.Clone(hdr(got, "Record-Route"))
		slices.Reverse(routes)
		bye := msg("BYE sip:pbx@"+pbxA.addr+" SIP/2.0",
			"Via: SIP/2.0/UDP "+phone.addr+";branch=z9hG4bKbye2;rport",
			"From: <sip:100@example.com>;tag=ftc2", "To: <sip:200@example.com>;tag=pbx",
			"Call-ID: c2", "CSeq: 2 BYE", "Route: "+strings.Join(routes, ", "), "Max-Forwards: 70")
		phone.sendTo(f.addr, bye)
		req = pbxA.request(waitLimit)
		if req.Method != sip.BYE || len(hdr(req, "Route")) != 0 {
			t.Fatalf("pbx got %s with Route %q: want the BYE, the Edge's entries popped", req.Short(), hdr(req, "Route"))
		}
		// The PBX sends an in-dialog request to the phone: back through the Edge.
		info := msg("INFO sip:100@10.255.255.1:5060 SIP/2.0", // a contact behind NAT: unreachable
			"Via: SIP/2.0/UDP "+pbxA.addr+";branch=z9hG4bKinfo2",
			"From: <sip:200@example.com>;tag=pbx", "To: <sip:100@example.com>;tag=ftc2",
			"Call-ID: c2", "CSeq: 3 INFO", "Route: "+strings.Join(hdr(got, "Record-Route"), ", "), "Max-Forwards: 70")
		pbxA.sendTo(f.addr, info)
		req = phone.request(waitLimit)
		if req.Method != sip.INFO {
			t.Fatalf("phone got %s", req.Short())
		}

		if n := f.Status().Calls; n != 1 {
			t.Errorf("calls known = %d, want the confirmed one", n)
		}
		// Side b becomes Active: the Edge ends the call of side a with a
		// BYE to the phone.
		f.switchTo(t, "b")
		edgeBye := phone.request(waitLimit)
		if edgeBye.Method != sip.BYE || edgeBye.CallID().Value() != "c2" ||
			edgeBye.From().Params.GetOr("tag", "") != got.To().Params.GetOr("tag", "-") || edgeBye.To().Params.GetOr("tag", "") != "ftc2" ||
			edgeBye.CSeq().SeqNo <= 1 {
			t.Fatalf("the phone got %s", edgeBye.String())
		}
		phone.sendTo(f.addr, ok200(edgeBye).String())
		testkit.EventuallyWithin(t, waitLimit, func() bool { return f.Status().Calls == 0 }, "the call forgotten")
		// A request of the phone in that dialog gets a 481.
		bye = strings.Replace(bye, "z9hG4bKbye2", "z9hG4bKbye3", 1)
		bye = strings.Replace(bye, "CSeq: 2 BYE", "CSeq: 4 BYE", 1)
		phone.sendTo(f.addr, bye)
		if res := phone.response(waitLimit); res.StatusCode != 481 {
			t.Fatalf("got %s, want 481 for a dialog of the side that lost Active", res.Short())
		}
		pbxA.nothing(200 * time.Millisecond)
		pbxB.nothing(10 * time.Millisecond)
		// A new call goes to side b.
		phone.sendTo(f.addr, invite(phone, f.addr, "c3"))
		if req := pbxB.request(waitLimit); req.Method != sip.INVITE {
			t.Fatalf("side b got %s", req.Short())
		}
		f.switchTo(t, "a")
	})

	t.Run("only a PBX may use the entries that lead to phones", func(t *testing.T) {
		stranger := newPeerAt(t, "127.0.0.2") // no side's PBX is there
		forged := msg("INVITE sip:100@127.0.0.1:5060 SIP/2.0",
			"Via: SIP/2.0/UDP "+stranger.addr+";branch=z9hG4bKforged;rport",
			"From: <sip:x@example.com>;tag=x", "To: <sip:100@example.com>",
			"Call-ID: forged", "CSeq: 1 INVITE",
			"Route: <sip:"+f.addr+";lr;d=s;s=a;fl="+flow{net: "udp", addr: mustAddrPort(phone.addr)}.token()+">")
		stranger.sendTo(f.addr, forged)
		if res := stranger.response(waitLimit); res.StatusCode != 403 {
			t.Fatalf("got %s, want 403", res.Short())
		}
		phone.nothing(200 * time.Millisecond)
	})
}

func mustAddrPort(s string) (ap netipAddrPort) {
	a, err := parseAddrPort(s)
	if err != nil {
		panic(err)
	}
	return a
}

func TestLoopDetected(t *testing.T) {
	t.Parallel()
	port := testkit.Port(t)
	self := "127.0.0.1:" + itoa(port)
	// The side's PBX is the Edge itself: the request comes back unchanged.
	f := startFront(t, []Side{sideOf("a", self)}, func(o *Options) { o.Listen = self })
	f.switchTo(t, "a")
	phone := newPeer(t)
	phone.sendTo(f.addr, invite(phone, f.addr, "loop1"))
	if res := phone.response(waitLimit); res.StatusCode != 482 {
		t.Fatalf("got %s, want 482 Loop Detected", res.Short())
	}
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	pbx := newPeer(t)
	f := startFront(t, []Side{sideOf("a", pbx.addr)})
	f.switchTo(t, "a")
	phone := newPeer(t)

	phone.sendTo(f.addr, "this is not SIP\r\n\r\n")
	phone.sendTo(f.addr, "INVITE sip:x SIP/2.0\r\nVia: garbage\r\n\r\n")
	big := invite(phone, f.addr, "big", "X-Pad: "+strings.Repeat("x", maxMessage))
	phone.sendTo(f.addr, big)
	phone.nothing(300 * time.Millisecond)
	pbx.nothing(10 * time.Millisecond)
	// Readable but without Call-ID: 400.
	phone.sendTo(f.addr, msg("OPTIONS sip:200@"+f.addr+" SIP/2.0",
		"Via: SIP/2.0/UDP "+phone.addr+";branch=z9hG4bKnocid;rport",
		"From: <sip:100@example.com>;tag=a", "To: <sip:200@example.com>", "CSeq: 1 OPTIONS"))
	if res := phone.response(waitLimit); res.StatusCode != 400 {
		t.Fatalf("got %s, want 400", res.Short())
	}
	// CSeq's method differs from the request's: 400.
	phone.sendTo(f.addr, msg("OPTIONS sip:200@"+f.addr+" SIP/2.0",
		"Via: SIP/2.0/UDP "+phone.addr+";branch=z9hG4bKbadcseq;rport",
		"From: <sip:100@example.com>;tag=a", "To: <sip:200@example.com>", "Call-ID: x", "CSeq: 1 INVITE"))
	if res := phone.response(waitLimit); res.StatusCode != 400 {
		t.Fatalf("got %s, want 400", res.Short())
	}
	// Still serving.
	phone.sendTo(f.addr, invite(phone, f.addr, "after"))
	if req := pbx.request(waitLimit); req.Method != sip.INVITE {
		t.Fatalf("pbx got %s", req.Short())
	}
	if n := testkit.Metric(t, f.reg, "resman_edge_sip_messages_total", map[string]string{"kind": "malformed"}); n < 4 {
		t.Errorf("malformed = %v, want at least 4", n)
	}
}

// TestRegistrationCacheAndRehome: a phone's refresh is answered from the
// cache while the side's binding is not due; on a switch the Edge moves the
// binding to the new side and removes it from the old one.
func TestRegistrationCacheAndRehome(t *testing.T) {
	t.Parallel()
	pa, pb := testkit.Port(t), testkit.Port(t)
	ra, rb := sippeers.Registrar(t, pa), sippeers.Registrar(t, pb)
	f := startFront(t, []Side{sideOf("a", "127.0.0.1:"+itoa(pa)), sideOf("b", "127.0.0.1:"+itoa(pb))})
	f.switchTo(t, "a")
	phone := newPeer(t)
	contact := "sip:100@" + phone.addr

	phone.sendTo(f.addr, register(phone, f.addr, "100", 1, 3600))
	res := phone.response(waitLimit)
	if res.StatusCode != 200 {
		t.Fatalf("REGISTER: %s", res.Short())
	}
	if c := res.Contact(); c == nil || c.Params.GetOr("expires", "") != "30" {
		t.Fatalf("Contact %v: want expires=30, the front's expiry", res.Contact())
	}
	if got := sippeers.Contacts(ra); !slices.Equal(got, []string{contact}) {
		t.Fatalf("side a holds %q", got)
	}
	if b := ra.Bindings()[0]; time.Until(b.Expires) < 3000*time.Second {
		t.Errorf("side a's binding expires in %s: want the phone's 3600 s", time.Until(b.Expires))
	}
	before := ra.Stats().Registers
	phone.sendTo(f.addr, register(phone, f.addr, "100", 2, 3600))
	if res := phone.response(waitLimit); res.StatusCode != 200 {
		t.Fatalf("refresh: %s", res.Short())
	}
	if n := ra.Stats().Registers; n != before {
		t.Errorf("side a got %d REGISTERs for a refresh that was not due", n-before)
	}

	f.switchTo(t, "b")
	testkit.EventuallyWithin(t, waitLimit, func() bool {
		return slices.Equal(sippeers.Contacts(rb), []string{contact}) && len(sippeers.Contacts(ra)) == 0
	}, "the binding on side b and gone from side a")
	st := f.Status()
	if st.Registered != 1 || st.Sides[1].Registered != 1 || st.Sides[0].Registered != 0 {
		t.Errorf("status %+v", st)
	}
	// Side a forgets the binding before it answers the removal, which the
	// front counts once the answer comes.
	testkit.EventuallyWithin(t, waitLimit, func() bool {
		r := f.Status().LastRehome
		return r != nil && r.Done && r.Removed == 1
	}, "the re-homing to end, its removal from side a answered")
	r := f.Status().LastRehome
	if r.To != "b" || r.From != "a" || r.Moved != 1 || r.ByEdge != 1 || r.Max <= 0 {
		t.Errorf("last rehome %+v", r)
	}
	// The phone refreshes: answered from the cache, side b keeps it.
	before = rb.Stats().Registers
	phone.sendTo(f.addr, register(phone, f.addr, "100", 3, 3600))
	if res := phone.response(waitLimit); res.StatusCode != 200 {
		t.Fatalf("refresh: %s", res.Short())
	}
	if n := rb.Stats().Registers; n != before {
		t.Errorf("side b got %d REGISTERs for a refresh that was not due", n-before)
	}
	// The phone unregisters: gone from side b.
	phone.sendTo(f.addr, register(phone, f.addr, "100", 4, 0))
	if res := phone.response(waitLimit); res.StatusCode != 200 {
		t.Fatalf("unregister: %s", res.Short())
	}
	if got := sippeers.Contacts(rb); len(got) != 0 {
		t.Errorf("side b still holds %q", got)
	}
	if f.Status().Registered != 0 {
		t.Errorf("status after unregister: %+v", f.Status())
	}
}

// TestTCPPhone: a phone on TCP registers; its answer comes back on its
// connection and the Path names its flow.
func TestTCPPhone(t *testing.T) {
	t.Parallel()
	pa := testkit.Port(t)
	ra := sippeers.Registrar(t, pa)
	f := startFront(t, []Side{{Name: "a", URI: "sip:127.0.0.1:" + itoa(pa) + ";transport=tcp"}})
	f.switchTo(t, "a")
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	reg := msg("REGISTER sip:"+f.addr+" SIP/2.0",
		"Via: SIP/2.0/TCP "+local+";branch=z9hG4bKtcp1",
		"From: <sip:300@example.com>;tag=t3", "To: <sip:300@example.com>",
		"Call-ID: tcp-300", "CSeq: 1 REGISTER", "Contact: <sip:300@"+local+";transport=tcp>", "Expires: 600")
	if _, err := c.Write([]byte(reg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SIP/2.0 200") {
		t.Fatalf("answer on the phone's connection: %q %v", line, err)
	}
	bs := ra.Bindings()
	if len(bs) != 1 || bs[0].Transport != "TCP" {
		t.Fatalf("side a holds %+v: want the contact, over TCP", bs)
	}
	// A message over the size limit closes the connection.
	huge := strings.Replace(reg, "Content-Length: 0", "Content-Length: 100000", 1)
	if _, err := c.Write([]byte(huge)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := c.Read(make([]byte, 4096)); err == nil {
		t.Fatal("the connection still reads after a message over the limit")
	}
}

// authorize answers the challenge of res for REGISTER sip:edge.
func authorize(t *testing.T, res *sip.Response, uri, user, password string) string {
	t.Helper()
	h := res.GetHeader("WWW-Authenticate")
	if h == nil {
		t.Fatalf("no challenge in %s", res.Short())
	}
	chal, err := digest.ParseChallenge(h.Value())
	if err != nil {
		t.Fatal(err)
	}
	cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: uri, Username: user, Password: password, Cnonce: "0a1b2c3d", Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	return "Authorization: " + cred.String()
}

// TestChallengedSideLeftToThePhone: sides that ask credentials get the
// phone's (the front relays the challenge); a side that challenges the
// front's own re-registration gets the binding at the phone's next
// REGISTER, and only then is the binding counted on it.
func TestChallengedSideLeftToThePhone(t *testing.T) {
	t.Parallel()
	const user, password = "100", "s3cret-Pass"
	pa, pb := testkit.Port(t), testkit.Port(t)
	ra := sippeers.RegistrarWith(t, pa, registrar.Options{User: user, Password: password})
	rb := sippeers.RegistrarWith(t, pb, registrar.Options{User: user, Password: password})
	f := startFront(t, []Side{sideOf("a", "127.0.0.1:"+itoa(pa)), sideOf("b", "127.0.0.1:"+itoa(pb))})
	f.switchTo(t, "a")
	phone := newPeer(t)
	uri := "sip:" + f.addr
	cseq := 0
	registerWithAuth := func() {
		t.Helper()
		cseq++
		phone.sendTo(f.addr, register(phone, f.addr, user, cseq, 3600))
		res := phone.response(waitLimit)
		if res.StatusCode != 401 {
			t.Fatalf("first REGISTER: %s, want the side's 401", res.Short())
		}
		cseq++
		phone.sendTo(f.addr, strings.Replace(register(phone, f.addr, user, cseq, 3600), "Max-Forwards: 70",
			"Max-Forwards: 70\r\n"+authorize(t, res, uri, user, password), 1))
		if res := phone.response(waitLimit); res.StatusCode != 200 {
			t.Fatalf("REGISTER with credentials: %s", res.Short())
		}
	}
	registerWithAuth()
	if len(sippeers.Contacts(ra)) != 1 {
		t.Fatalf("side a holds %q", sippeers.Contacts(ra))
	}

	f.switchTo(t, "b")
	testkit.EventuallyWithin(t, waitLimit, func() bool {
		r := f.Status().LastRehome
		return r != nil && r.Failed == 1
	}, "the front's attempt on side b")
	if r := f.Status().LastRehome; r.Done || r.Pending != 1 || len(sippeers.Contacts(rb)) != 0 {
		t.Fatalf("after a challenged re-registration: %+v, side b holds %q", r, sippeers.Contacts(rb))
	}
	if st := f.Status(); st.Sides[0].Registered != 1 {
		t.Errorf("the binding should stay counted on side a until it is on b: %+v", st.Sides)
	}
	// The phone's next refresh goes to side b, with its credentials.
	registerWithAuth()
	if len(sippeers.Contacts(rb)) != 1 {
		t.Fatalf("side b holds %q", sippeers.Contacts(rb))
	}
	r := f.Status().LastRehome
	if !r.Done || r.Moved != 1 || r.ByEdge != 0 {
		t.Errorf("last rehome %+v: want done, moved by its phone", r)
	}
}

// TestRefreshForwardedWhenDue: a side that grants less than the phone's
// refresh period gets every refresh.
func TestRefreshForwardedWhenDue(t *testing.T) {
	t.Parallel()
	pa := testkit.Port(t)
	ra := sippeers.RegistrarWith(t, pa, registrar.Options{Knobs: registrar.Knobs{MaxExpires: 40}})
	f := startFront(t, []Side{sideOf("a", "127.0.0.1:"+itoa(pa))})
	f.switchTo(t, "a")
	phone := newPeer(t)
	for i := 1; i <= 3; i++ {
		phone.sendTo(f.addr, register(phone, f.addr, "100", i, 3600))
		res := phone.response(waitLimit)
		if res.StatusCode != 200 || res.Contact().Params.GetOr("expires", "") != "30" {
			t.Fatalf("REGISTER %d: %s %v", i, res.Short(), res.Contact())
		}
		if n := ra.Stats().Registers; n != i {
			t.Fatalf("after %d REGISTERs side a got %d: a binding of 40 s is due at each refresh", i, n)
		}
	}
}

// TestSilentPhoneExpires: a phone that stops refreshing is removed from
// its side once its short expiry (and a grace) has passed.
func TestSilentPhoneExpires(t *testing.T) {
	t.Parallel()
	pa := testkit.Port(t)
	ra := sippeers.Registrar(t, pa)
	f := startFront(t, []Side{sideOf("a", "127.0.0.1:"+itoa(pa))}, func(o *Options) { o.Expires = 1 })
	f.switchTo(t, "a")
	phone := newPeer(t)
	phone.sendTo(f.addr, register(phone, f.addr, "100", 1, 3600))
	if res := phone.response(waitLimit); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %s", res.Short())
	}
	if len(sippeers.Contacts(ra)) != 1 {
		t.Fatal("not registered on side a")
	}
	testkit.EventuallyWithin(t, waitLimit, func() bool {
		return len(sippeers.Contacts(ra)) == 0 && f.Status().Registered == 0
	}, "the silent phone removed from side a")
}

// TestPreloadedRoute: phones that set the Edge as outbound proxy preload a
// Route to it; their REGISTER is still cached and their INVITE still
// record-routed.
func TestPreloadedRoute(t *testing.T) {
	t.Parallel()
	pa := testkit.Port(t)
	ra := sippeers.Registrar(t, pa)
	pbx := newPeer(t)
	f := startFront(t, []Side{sideOf("a", "127.0.0.1:"+itoa(pa))})
	f.switchTo(t, "a")
	phone := newPeer(t)
	route := "Route: <sip:" + f.addr + ";lr>"
	for cseq := 1; cseq <= 2; cseq++ {
		phone.sendTo(f.addr, strings.Replace(register(phone, f.addr, "100", cseq, 3600), "Max-Forwards: 70", "Max-Forwards: 70\r\n"+route, 1))
		res := phone.response(waitLimit)
		if res.StatusCode != 200 || res.Contact() == nil || res.Contact().Params.GetOr("expires", "") != "30" {
			t.Fatalf("REGISTER %d: %s, Contact %v: want the front's 30 s", cseq, res.Short(), res.Contact())
		}
	}
	if n := ra.Stats().Registers; n != 1 {
		t.Errorf("side a got %d REGISTERs, want 1 (the refresh answered from the cache)", n)
	}

	f2 := startFront(t, []Side{sideOf("a", pbx.addr)})
	f2.switchTo(t, "a")
	phone.sendTo(f2.addr, invite(phone, f2.addr, "pre1", "Route: <sip:"+f2.addr+";lr>"))
	req := pbx.request(waitLimit)
	if rr := hdr(req, "Record-Route"); len(rr) != 2 || len(hdr(req, "Route")) != 0 {
		t.Fatalf("INVITE with Record-Route %q, Route %q: want two entries of the Edge, the preloaded Route popped", rr, hdr(req, "Route"))
	}
}

// listenUDPAndTCP listens on one loopback port for UDP and TCP, as a
// transport does.
func listenUDPAndTCP(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	port := testkit.Port(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:"+itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+itoa(port))
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	return pc, ln
}

// TestHandlerPanicIsContained: a message whose handling panics is dropped
// and reported; the transport keeps serving.
func TestHandlerPanicIsContained(t *testing.T) {
	t.Parallel()
	pc, ln := listenUDPAndTCP(t)
	handled := make(chan string, 4)
	panics := make(chan any, 4)
	tr := newTransport(pc, ln, func(m sip.Message, _ flow) {
		id := m.(*sip.Request).CallID().Value()
		if id == "boom" {
			panic("boom")
		}
		handled <- id
	}, func(flow, string) {})
	tr.panicked = func(_ flow, r any) { panics <- r }
	tr.serve()
	defer tr.close()
	phone := newPeer(t)
	for _, id := range []string{"boom", "after"} {
		phone.sendTo(pc.LocalAddr().String(), invite(phone, pc.LocalAddr().String(), id))
	}
	select {
	case r := <-panics:
		if r != "boom" {
			t.Errorf("panic %v", r)
		}
	case <-time.After(waitLimit):
		t.Fatal("the panic was not reported")
	}
	select {
	case id := <-handled:
		if id != "after" {
			t.Errorf("handled %q", id)
		}
	case <-time.After(waitLimit):
		t.Fatal("the transport stopped serving after a panic")
	}
}

// TestConcurrentDialsKeepOneConnection: sends racing to a PBX on TCP that
// has no connection yet each dial it; the pool keeps one connection, every
// message goes on it, the other dials are closed, and close ends every
// reader (a connection left out of the pool kept its reader, and so the
// shutdown, waiting until its idle timeout).
func TestConcurrentDialsKeepOneConnection(t *testing.T) {
	t.Parallel()
	const senders = 6
	pbx, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	ended := make(chan string, senders) // what each connection carried
	go func() {
		for {
			c, err := pbx.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				ended <- string(b)
			}()
		}
	}()
	pc, ln := listenUDPAndTCP(t)
	tr := newTransport(pc, ln, func(sip.Message, flow) {}, func(flow, string) {})
	tr.idle = time.Hour
	// Every dial waits until all have dialed: they race for the pool.
	var dialed sync.WaitGroup
	dialed.Add(senders)
	tr.dial = func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		dialed.Done()
		dialed.Wait()
		return c, err
	}
	tr.serve()
	dst := flow{net: "tcp", addr: netip.MustParseAddrPort(pbx.Addr().String())}
	phone := newPeer(t)
	var sent sync.WaitGroup
	for i := range senders {
		raw := invite(phone, pbx.Addr().String(), "dial-"+itoa(i))
		sent.Go(func() {
			msg, err := sip.ParseMessage([]byte(raw))
			if err != nil {
				t.Error(err)
				return
			}
			if err := tr.send(context.Background(), dst, msg); err != nil {
				t.Errorf("send %d: %v", i, err)
			}
		})
	}
	sent.Wait()
	tr.mu.Lock()
	pooled := len(tr.conns)
	tr.mu.Unlock()
	if pooled != 1 {
		t.Errorf("%d connections in the pool, want 1", pooled)
	}
	// The dials that lost the race are closed without a byte sent.
	for range senders - 1 {
		select {
		case got := <-ended:
			if got != "" {
				t.Errorf("a closed dial carried %q", got)
			}
		case <-time.After(waitLimit):
			t.Fatal("a dial that lost the race is still open")
		}
	}
	closed := make(chan struct{})
	go func() { tr.close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(waitLimit):
		t.Fatal("close did not return: a reader is left")
	}
	select {
	case got := <-ended:
		if n := strings.Count(got, "INVITE sip:"); n != senders {
			t.Errorf("the pooled connection carried %d INVITEs, want the %d sent", n, senders)
		}
	case <-time.After(waitLimit):
		t.Fatal("the pooled connection was not closed by close")
	}
}

// TestSwitchWhileAPhonesRegisterIsUnderWay: the Active side changes while
// a phone's own REGISTER is on its way to the side that loses it (side a
// answers slowly). The binding ends on the new side only, not on a until
// the phone's next refresh; and a switch to the side a REGISTER is already
// going to sends it no second one.
func TestSwitchWhileAPhonesRegisterIsUnderWay(t *testing.T) {
	t.Parallel()
	pa, pb := testkit.Port(t), testkit.Port(t)
	ra := sippeers.RegistrarWith(t, pa, registrar.Options{Knobs: registrar.Knobs{Delay: 500 * time.Millisecond}})
	rb := sippeers.Registrar(t, pb)
	f := startFront(t, []Side{sideOf("a", "127.0.0.1:"+itoa(pa)), sideOf("b", "127.0.0.1:"+itoa(pb))})
	f.switchTo(t, "a")
	testkit.Eventually(t, func() bool { r := f.Status().LastRehome; return r != nil && r.Done }, "the first (empty) re-homing")

	phone := newPeer(t)
	phone.sendTo(f.addr, register(phone, f.addr, "100", 1, 3600))
	// Switch once the front has sent it to side a (which answers at
	// 500 ms), whatever the machine's speed.
	testkit.Eventually(t, func() bool {
		f.regs.mu.Lock()
		defer f.regs.mu.Unlock()
		for _, b := range f.regs.bindings {
			if b.toward != nil && b.toward.name == "a" {
				return true
			}
		}
		return false
	}, "the phone's REGISTER under way to side a")
	f.switchTo(t, "b")
	if res := phone.response(waitLimit); res.StatusCode != 200 {
		t.Fatalf("the phone's REGISTER: %s", res.Short())
	}
	testkit.EventuallyWithin(t, waitLimit, func() bool {
		return len(sippeers.Contacts(rb)) == 1 && len(sippeers.Contacts(ra)) == 0
	}, "the binding on side b only")
	if n := ra.Stats().Registers; n > 2 {
		t.Errorf("side a got %d REGISTERs: the phone's, and its removal at most", n)
	}
}
