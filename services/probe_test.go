package services

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/services/standin"
)

// probeOnce runs check c once with the probers of a supervisor that has it.
func probeCheck(t *testing.T, c Check) error {
	t.Helper()
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	c.Interval = c.Timeout
	s := newTestSupervisor(t, []Service{{Name: "x", Unit: "x", Timeout: time.Second, Check: &c}}, Options{})
	p := s.newProbers()
	defer p.close()
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	return s.services[0].check.probe(ctx, p)
}

func TestTCPCheck(t *testing.T) {
	ln, err := net.Listen("tcp", testkit.Addr(t)) // nothing takes it once closed
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := probeCheck(t, Check{TCP: addr}); err != nil {
		t.Errorf("listening port: %v", err)
	}
	ln.Close()
	if err := probeCheck(t, Check{TCP: addr}); err == nil {
		t.Error("closed port passed")
	}
}

func TestHTTPCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
		case "/moved":
			http.Redirect(w, r, "/broken", http.StatusFound)
		case "/broken":
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	for path, pass := range map[string]bool{
		"/ok":      true,
		"/moved":   true, // 3xx passes and is not followed
		"/broken":  false,
		"/missing": false,
	} {
		err := probeCheck(t, Check{HTTP: srv.URL + path})
		if (err == nil) != pass {
			t.Errorf("GET %s: err = %v, want pass=%v", path, err, pass)
		}
	}
	srv.Close()
	if err := probeCheck(t, Check{HTTP: srv.URL + "/ok"}); err == nil {
		t.Error("closed server passed")
	}
}

func TestExecCheck(t *testing.T) {
	if err := probeCheck(t, Check{Exec: []string{"true"}}); err != nil {
		t.Errorf("true: %v", err)
	}
	if err := probeCheck(t, Check{Exec: sh("echo not ready; exit 2")}); err == nil ||
		!strings.Contains(err.Error(), "exit status 2") || !strings.Contains(err.Error(), "not ready") {
		t.Errorf("exit 2: err = %v, want the status and output", err)
	}
	if err := probeCheck(t, Check{Exec: []string{"sleep", "60"}, Timeout: 200 * time.Millisecond}); err == nil ||
		!strings.Contains(err.Error(), "timed out") {
		t.Errorf("hanging check: err = %v, want a timeout", err)
	}
}

// startStandinSIP serves the stand-in SIP endpoint on UDP and TCP of one
// local port until the test ends, and returns its URI.
func startStandinSIP(t *testing.T) string {
	t.Helper()
	port := testkit.Port(t) // reserved, and free for both UDP and TCP
	udp, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		udp.Close()
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) error { return standin.ServeSIP(ctx, udp, tcp, nil) })
	return "sip:127.0.0.1:" + strconv.Itoa(port)
}

// serve runs f until the test ends.
func serve(t *testing.T, f func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
}

// startStatusSIP serves SIP on UDP that answers OPTIONS with the status
// code given as the user of the request URI (sip:404@...).
func startStatusSIP(t *testing.T) string {
	t.Helper()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		code, _ := strconv.Atoi(req.Recipient.User)
		_ = tx.Respond(sip.NewResponseFromRequest(req, code, "Test", nil))
	})
	serve(t, func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			udp.Close()
		}()
		_ = srv.ServeUDP(udp)
		return ua.Close()
	})
	return udp.LocalAddr().String()
}

func TestSIPCheck(t *testing.T) {
	uri := startStandinSIP(t)
	for _, target := range []string{uri, uri + ";transport=tcp", strings.TrimPrefix(uri, "sip:")} {
		if err := probeCheck(t, Check{SIP: target}); err != nil {
			t.Errorf("%s: %v", target, err)
		}
	}
}

func TestSIPCheckStatus(t *testing.T) {
	addr := startStatusSIP(t)
	for code, pass := range map[int]bool{200: true, 404: true, 405: true, 486: true, 500: false, 503: false, 603: false} {
		err := probeCheck(t, Check{SIP: "sip:" + strconv.Itoa(code) + "@" + addr})
		if (err == nil) != pass {
			t.Errorf("answer %d: err = %v, want pass=%v", code, err, pass)
		}
	}
}

func TestSIPCheckTimeout(t *testing.T) {
	// A UDP port that reads requests and never answers.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	err = probeCheck(t, Check{SIP: "sip:" + silent.LocalAddr().String(), Timeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("silent peer passed")
	}
	if !strings.Contains(err.Error(), "deadline") {
		t.Errorf("err = %v, want a deadline error", err)
	}
}

func TestSIPCheckRefusedTCP(t *testing.T) {
	addr := testkit.Addr(t) // nothing listens there
	if err := probeCheck(t, Check{SIP: "sip:" + addr + ";transport=tcp"}); err == nil {
		t.Error("closed TCP port passed")
	}
}

func TestParseSIPTarget(t *testing.T) {
	tests := []struct {
		in       string
		ok       bool
		host     string
		port     int
		scheme   string
		tcpParam bool
	}{
		{"sip:127.0.0.1:5060", true, "127.0.0.1", 5060, "sip", false},
		{"sip:pbx.example.com", true, "pbx.example.com", 0, "sip", false},
		{"SIP:pbx.example.com:5080", true, "pbx.example.com", 5080, "sip", false},
		{"sip:10.0.0.1:5060;transport=tcp", true, "10.0.0.1", 5060, "sip", true},
		{"sips:pbx.example.com:5061", true, "pbx.example.com", 5061, "sips", false},
		{"sip:ping@127.0.0.1", true, "127.0.0.1", 0, "sip", false},
		{"127.0.0.1:5060", true, "127.0.0.1", 5060, "sip", false},
		{"  sip:127.0.0.1  ", true, "127.0.0.1", 0, "sip", false},
		{"sip:[::1]:5060", true, "::1", 5060, "sip", false},
		{"", false, "", 0, "", false},
		{"sip:", false, "", 0, "", false},
		{"   ", false, "", 0, "", false},
	}
	for _, tt := range tests {
		got, err := parseSIPTarget(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("parseSIPTarget(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		u := got.uri
		if strings.Trim(u.Host, "[]") != tt.host || u.Port != tt.port || strings.ToLower(u.Scheme) != tt.scheme {
			t.Errorf("parseSIPTarget(%q) = host %q port %d scheme %q, want %q %d %q", tt.in, u.Host, u.Port, u.Scheme, tt.host, tt.port, tt.scheme)
		}
		if tp, _ := u.UriParams.Get("transport"); (tp == "tcp") != tt.tcpParam {
			t.Errorf("parseSIPTarget(%q) transport = %q", tt.in, tp)
		}
	}
}

func FuzzParseSIPTarget(f *testing.F) {
	for _, s := range []string{"sip:127.0.0.1:5060", "sips:a.b;transport=tcp", "host:1", "sip:u@h:99999", "sip:@", "sip:[::1]", ";;", "sip:a?b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseSIPTarget(s)
		if err != nil {
			return
		}
		if got.uri.Host == "" {
			t.Errorf("parseSIPTarget(%q) accepted a URI without host", s)
		}
		if got.uri.Port < 0 || got.uri.Port > 65535 {
			t.Errorf("parseSIPTarget(%q) accepted port %d", s, got.uri.Port)
		}
		// What it accepts must build a request without panicking.
		_ = sip.NewRequest(sip.OPTIONS, got.uri).String()
	})
}
