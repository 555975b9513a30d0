package xds

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resman-pbx/resman/xds/registrar"
)

// udpRelay stands in for an outbound proxy: it relays datagrams from the
// client to the registrar and the registrar's answers back, and keeps the
// requests it saw.
type udpRelay struct {
	addr string
	mu   sync.Mutex
	seen []string
}

func startRelay(t *testing.T, to string) *udpRelay {
	t.Helper()
	front, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close(); back.Close() })
	dst, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	r := &udpRelay{addr: front.LocalAddr().String()}
	var client net.Addr
	var cmu sync.Mutex
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			cmu.Lock()
			client = from
			cmu.Unlock()
			r.mu.Lock()
			r.seen = append(r.seen, string(buf[:n]))
			r.mu.Unlock()
			_, _ = back.WriteTo(buf[:n], dst)
		}
	}()
	go func() {
		buf := make([]byte, 65535)
		for {
			n, _, err := back.ReadFrom(buf)
			if err != nil {
				return
			}
			cmu.Lock()
			c := client
			cmu.Unlock()
			if c != nil {
				_, _ = front.WriteTo(buf[:n], c)
			}
		}
	}()
	return r
}

func (r *udpRelay) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// With an outbound proxy every request goes to it, with a Route header
// naming it (loose routing) and the MDS as the Request-URI.
func TestOutboundProxy(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{User: "pbx", Password: "pw"})
	proxy := startRelay(t, srv.Addr())
	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.OutboundProxy = "sip:" + proxy.addr
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "udp", "pbx", "pw")}}, opts)
	r.Activate(1)
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventReachable))
	if _, ok := bindingOf(srv, testContact); !ok {
		t.Fatalf("no binding: %+v", srv.Bindings())
	}
	reqs := proxy.requests()
	var registers, options int
	for _, m := range reqs {
		switch {
		case strings.HasPrefix(m, "REGISTER sip:"+srv.Addr()+" SIP/2.0\r\n"):
			registers++
		case strings.HasPrefix(m, "OPTIONS sip:"+srv.Addr()+" SIP/2.0\r\n"):
			options++
		default:
			t.Errorf("the proxy got %q", strings.SplitN(m, "\r\n", 2)[0])
			continue
		}
		if !strings.Contains(m, "\r\nRoute: <sip:"+proxy.addr+";lr>\r\n") {
			t.Errorf("no Route to the proxy in:\n%s", m)
		}
	}
	if registers < 2 || options < 1 {
		t.Errorf("the proxy relayed %d REGISTERs and %d OPTIONS, want the challenge, its answer and a probe", registers, options)
	}
}

// A silent outbound proxy is named in the error.
func TestOutboundProxySilent(t *testing.T) {
	hole, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	srv := startRegistrar(t, "udp", registrar.Options{})
	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.RequestTimeout = 100 * time.Millisecond
	opts.OutboundProxy = hole.LocalAddr().String()
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "udp", "", "")}}, opts)
	r.Activate(1)
	ev, _ := rec.wait(t, 0, 5*time.Second, kind("mds1", EventFailed))
	want := "mds1: no response to REGISTER from udp " + srv.Addr() + " through the outbound proxy " + hole.LocalAddr().String() + " within 100ms"
	if ev.Err == nil || !strings.HasPrefix(ev.Err.Error(), want) {
		t.Errorf("error = %v, want %q", ev.Err, want)
	}
	if _, ok := bindingOf(srv, testContact); ok {
		t.Error("registered around the proxy")
	}
}
