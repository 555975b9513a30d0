package registrar

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

func serve(t *testing.T, opts Options) (*Server, net.Conn) {
	t.Helper()
	s := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx, "udp", "127.0.0.1:0") }()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	c, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s, c
}

// register sends one REGISTER and returns the answer.
func register(t *testing.T, c net.Conn, cseq int, contact string, expires int, extra ...string) *sip.Response {
	t.Helper()
	msg := fmt.Sprintf("REGISTER sip:127.0.0.1 SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=z9hG4bK-%d-%d\r\n"+
		"From: <sip:pbx@127.0.0.1>;tag=t1\r\nTo: <sip:pbx@127.0.0.1>\r\n"+
		"Call-ID: call-1\r\nCSeq: %d REGISTER\r\nMax-Forwards: 70\r\n"+
		"Contact: %s\r\nExpires: %d\r\n", c.LocalAddr(), cseq, time.Now().UnixNano(), cseq, contact, expires)
	for _, h := range extra {
		msg += h + "\r\n"
	}
	msg += "Content-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	m, err := sip.ParseMessage(buf[:n])
	if err != nil {
		t.Fatalf("parse %q: %v", buf[:n], err)
	}
	res, ok := m.(*sip.Response)
	if !ok {
		t.Fatalf("not a response: %q", buf[:n])
	}
	return res
}

func TestBindingsLifecycle(t *testing.T) {
	s, c := serve(t, Options{Knobs: Knobs{MaxExpires: 30}})
	res := register(t, c, 1, "<sip:pbx@10.0.0.1:5060>", 60)
	if res.StatusCode != 200 || !strings.Contains(res.String(), "Contact: <sip:pbx@10.0.0.1:5060>;expires=30") {
		t.Fatalf("answer:\n%s", res)
	}
	b := s.Bindings()
	if len(b) != 1 || b[0].AOR != "sip:pbx@127.0.0.1" || b[0].CSeq != 1 || b[0].CallID != "call-1" ||
		b[0].Expires.After(time.Now().Add(30*time.Second)) {
		t.Fatalf("bindings = %+v", b)
	}
	if res := register(t, c, 1, "<sip:pbx@10.0.0.1:5060>", 60); res.StatusCode != 500 {
		t.Errorf("same CSeq again: %d, want 500", res.StatusCode)
	}
	if res := register(t, c, 2, "<sip:pbx@10.0.0.2:5060>", 60); res.StatusCode != 200 || len(s.Bindings()) != 2 {
		t.Errorf("second contact: %d, %+v", res.StatusCode, s.Bindings())
	}
	if res := register(t, c, 3, "<sip:pbx@10.0.0.1:5060>", 0); res.StatusCode != 200 || len(s.Bindings()) != 1 {
		t.Errorf("unregister one: %d, %+v", res.StatusCode, s.Bindings())
	}
	if res := register(t, c, 4, "*", 0); res.StatusCode != 200 || len(s.Bindings()) != 0 {
		t.Errorf("Contact *: %d, %+v", res.StatusCode, s.Bindings())
	}
	if st := s.Stats(); st.Registers != 5 {
		t.Errorf("stats = %+v", st)
	}
}

func TestKnobs(t *testing.T) {
	s, c := serve(t, Options{Knobs: Knobs{MinExpires: 100}})
	res := register(t, c, 1, "<sip:pbx@10.0.0.1>", 60)
	if h := res.GetHeader("Min-Expires"); res.StatusCode != 423 || h == nil || h.Value() != "100" {
		t.Errorf("answer:\n%s", res)
	}
	s.SetKnobs(Knobs{FailCode: 503})
	if res := register(t, c, 2, "<sip:pbx@10.0.0.1>", 60); res.StatusCode != 503 || res.Reason != "Service Unavailable" {
		t.Errorf("FailCode: %d %s", res.StatusCode, res.Reason)
	}
	if s.Knobs().FailCode != 503 || len(s.Bindings()) != 0 {
		t.Errorf("knobs %+v bindings %+v", s.Knobs(), s.Bindings())
	}
}

func TestDigest(t *testing.T) {
	for _, proxy := range []bool{false, true} {
		t.Run(fmt.Sprintf("proxy=%v", proxy), func(t *testing.T) {
			s, c := serve(t, Options{User: "pbx", Password: "pw", ProxyAuth: proxy})
			chalHdr, credHdr, code := "WWW-Authenticate", "Authorization", 401
			if proxy {
				chalHdr, credHdr, code = "Proxy-Authenticate", "Proxy-Authorization", 407
			}
			res := register(t, c, 1, "<sip:pbx@10.0.0.1>", 60)
			h := res.GetHeader(chalHdr)
			if res.StatusCode != code || h == nil {
				t.Fatalf("answer:\n%s", res)
			}
			chal, err := digest.ParseChallenge(h.Value())
			if err != nil || chal.Realm != "resman" || !chal.SupportsQOP("auth") {
				t.Fatalf("challenge %q: %v", h.Value(), err)
			}
			answer := func(password string) string {
				cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:127.0.0.1", Username: "pbx", Password: password})
				if err != nil {
					t.Fatal(err)
				}
				return credHdr + ": " + cred.String()
			}
			if res := register(t, c, 2, "<sip:pbx@10.0.0.1>", 60, answer("wrong")); res.StatusCode != 403 {
				t.Errorf("wrong password: %d", res.StatusCode)
			}
			if res := register(t, c, 3, "<sip:pbx@10.0.0.1>", 60, answer("pw")); res.StatusCode != 200 || len(s.Bindings()) != 1 {
				t.Errorf("right password: %d, %+v", res.StatusCode, s.Bindings())
			}
			chal.Nonce = "unknown"
			res = register(t, c, 4, "<sip:pbx@10.0.0.1>", 60, answer("pw"))
			if h := res.GetHeader(chalHdr); res.StatusCode != code || h == nil || !strings.Contains(h.Value(), "stale=true") {
				t.Errorf("unknown nonce:\n%s", res)
			}
		})
	}
}
