package edge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/services/standin"
)

// pbxCert writes a self-signed server certificate (no CA), as a XiVO PBX
// makes at install, for the given names and addresses.
func pbxCert(t *testing.T, names []string, ips []net.IP) (certFile string, cert tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "xivo-main"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     names,
		IPAddresses:  ips,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(t.TempDir(), "server.crt")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// startTLS starts srv over TLS with cert.
func startTLS(cert tls.Certificate) func(*httptest.Server) {
	return func(srv *httptest.Server) {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		// The handshakes the tests make fail on purpose.
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.StartTLS()
	}
}

// newTLSUpstream is a stand-in web app served over https with cert.
func newTLSUpstream(t *testing.T, name string, cert tls.Certificate) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(standin.Handler(name))
	// The stand-in's event stream never ends by itself.
	srv.Config.SetKeepAlivesEnabled(false)
	startTLS(cert)(srv)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv
}

// An upstream with its own self-signed certificate: a 502 with the
// system's roots, as before upstream_tls, with the reason in the status and
// the log; served with ca_file or insecure_skip_verify; refused with a
// server_name the certificate does not list.
func TestUpstreamTLS(t *testing.T) {
	certFile, cert := pbxCert(t, []string{"xivo-main.example.com"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	// The same certificate, for its name only: reached by address, it
	// verifies only with server_name.
	nameOnlyFile, nameOnly := pbxCert(t, []string{"xivo-main.example.com"}, nil)
	byIP := newTLSUpstream(t, "main", cert)
	byName := newTLSUpstream(t, "main", nameOnly)
	node := newFakeNode(t, active(1))

	tests := []struct {
		name     string
		upstream *httptest.Server
		tls      *UpstreamTLS
		code     int
		errHas   []string // in the route's status error and the log
		logHas   string
	}{
		{name: "system roots only", upstream: byIP, code: 502,
			errHas: []string{"TLS: the certificate is signed by an unknown authority", "trust it with upstream_tls.ca_file"}},
		{name: "ca_file", upstream: byIP, tls: &UpstreamTLS{CAFile: certFile}, code: 200},
		{name: "insecure_skip_verify", upstream: byIP, tls: &UpstreamTLS{InsecureSkipVerify: true}, code: 200,
			logHas: `level=WARN msg="upstream_tls.insecure_skip_verify: this side's certificates are not verified`},
		{name: "ca_file, a certificate for a name, and that name", upstream: byName,
			tls: &UpstreamTLS{CAFile: nameOnlyFile, ServerName: "xivo-main.example.com"}, code: 200},
		{name: "ca_file, a certificate for a name, reached by address", upstream: byName,
			tls: &UpstreamTLS{CAFile: nameOnlyFile}, code: 502,
			errHas: []string{"TLS: cannot validate certificate for 127.0.0.1", "set upstream_tls.server_name"}},
		{name: "wrong server_name", upstream: byIP,
			tls: &UpstreamTLS{CAFile: certFile, ServerName: "xivo-standby.example.com"}, code: 502,
			errHas: []string{"not xivo-standby.example.com", "set upstream_tls.server_name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, logs := testkit.BufferLogger(t)
			e := startEdge(t, fast(), []sideSpec{{name: "main", node: node, tls: tt.tls,
				routes: []Route{{Path: "/", Upstream: tt.upstream.URL}}}}, func(o *Options) { o.Logger = logger })
			e.waitRouted(t, "main")
			code, body, h := get(t, nil, e.url+"/")
			if code != tt.code {
				t.Fatalf("GET / = %d, want %d: %s", code, tt.code, body)
			}
			rs := e.Status().Sides[0].Routes[0]
			if code == 200 {
				if h.Get("X-Served-By") != "main" || rs.Error != "" {
					t.Errorf("served by %q, route status %+v", h.Get("X-Served-By"), rs)
				}
				// The tunnel of an event stream verifies alike.
				next, closeFn := sse(t, e.url+"/events")
				defer closeFn()
				if line, err := next(); err != nil || !strings.Contains(line, "from main") {
					t.Errorf("event stream over https: %q, %v", line, err)
				}
			} else {
				assertNoInternals(t, body, h)
				if strings.Contains(body, "TLS") || strings.Contains(body, "certificate") {
					t.Errorf("the 502 page tells the reason: %s", body)
				}
				if rs.ErrorAt.IsZero() {
					t.Errorf("route status %+v: no error time", rs)
				}
				for _, want := range tt.errHas {
					if !strings.Contains(rs.Error, want) {
						t.Errorf("route status error %q lacks %q", rs.Error, want)
					}
					if !strings.Contains(logs.String(), want) {
						t.Errorf("the log lacks %q", want)
					}
				}
				if !strings.Contains(logs.String(), `level=WARN msg="upstream error" component=edge side=main route=/`) {
					t.Error("no upstream error in the log")
				}
				// An event stream gets the 502 too.
				req, _ := http.NewRequest("GET", e.url+"/events", nil)
				req.Header.Set("Accept", "text/event-stream")
				if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 502 {
					t.Errorf("event stream: %v, %v", res, err)
				} else {
					res.Body.Close()
				}
				if n := testkit.Metric(t, e.reg, "resman_edge_upstream_errors_total", map[string]string{"side": "main"}); n != 2 {
					t.Errorf("upstream errors = %v, want 2", n)
				}
			}
			st := e.Status().Sides[0].UpstreamTLS
			switch {
			case tt.tls == nil && st != nil:
				t.Errorf("status upstream_tls = %+v, want none", st)
			case tt.tls != nil && (st == nil || st.CAFile != tt.tls.CAFile || st.ServerName != tt.tls.ServerName ||
				st.InsecureSkipVerify != tt.tls.InsecureSkipVerify):
				t.Errorf("status upstream_tls = %+v, want %+v", st, tt.tls)
			}
			if tt.logHas != "" && !strings.Contains(logs.String(), tt.logHas) {
				t.Errorf("the log lacks %q", tt.logHas)
			}
			if tt.logHas == "" && strings.Contains(logs.String(), "insecure_skip_verify") {
				t.Error("a warning about insecure_skip_verify, which is not set")
			}
		})
	}
}

// A side's node over https with the PBX's certificate: not trusted with
// the system's roots (the side never comes up, the status says why),
// trusted with the side's upstream_tls.ca_file, event stream included.
func TestUpstreamTLSAppliesToTheNode(t *testing.T) {
	certFile, cert := pbxCert(t, nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	node := newFakeNodeWith(t, active(3), startTLS(cert))
	up := newTLSUpstream(t, "main", cert)
	routes := []Route{{Path: "/", Upstream: up.URL}}

	plain := startEdge(t, fast(), []sideSpec{{name: "main", node: node, routes: routes}})
	testkit.Eventually(t, func() bool {
		s := plain.Status().Sides[0]
		return s.Fails >= 2 && s.Health == HealthDown
	}, "failed checks")
	if s := plain.Status().Sides[0]; !strings.Contains(s.Error, "unknown authority") || !strings.Contains(s.Error, "upstream_tls.ca_file") {
		t.Errorf("check error %q does not say the certificate is not trusted", s.Error)
	}
	if ns := plain.NodeStatus(); ns.HA.Ready || !strings.Contains(strings.Join(ns.HA.Reasons, "\n"), "unknown authority") {
		t.Errorf("node status reasons %q", ns.HA.Reasons)
	}

	trusted := startEdge(t, fast(), []sideSpec{{name: "main", node: node, routes: routes,
		tls: &UpstreamTLS{CAFile: certFile}}})
	trusted.waitRouted(t, "main")
	if code, body, _ := get(t, nil, trusted.url+"/"); code != 200 {
		t.Fatalf("GET / = %d %s", code, body)
	}
	testkit.Eventually(t, func() bool {
		return node.OpenStreams() > 0
	}, "the event stream over https")
	if plain.Status().Side != "" {
		t.Error("the Edge without upstream_tls routes to a node it cannot verify")
	}
	// The node says it stops, on its event stream: traffic leaves at once.
	// Its GET /active still says active, so the next check brings the
	// side back: the switch away is what stays to be seen, and only the
	// event can have made it.
	before := trusted.Status().Switches
	node.Push("deactivating", 3)
	testkit.Eventually(t, func() bool { return trusted.Status().Switches > before }, "routing to leave main on the event")
}

func TestNewRejectsBadCAFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.crt")
	cfg := Config{Listen: ":0", Sides: []Side{{Name: "a", Node: "http://127.0.0.1:1",
		Routes:      []Route{{Path: "/", Upstream: "https://127.0.0.1:1"}},
		UpstreamTLS: &UpstreamTLS{CAFile: missing}}}}
	if _, err := New(Options{Config: cfg}); err == nil || !strings.Contains(err.Error(), "edge.sides[0].upstream_tls.ca_file") {
		t.Errorf("New with a missing ca_file = %v", err)
	}
}
