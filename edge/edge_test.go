package edge

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
)

func TestRoutesToTheActiveSideOnly(t *testing.T) {
	mainNode, standbyNode := newFakeNode(t, active(1)), newFakeNode(t, inactive(0))
	mainUp, standbyUp := newUpstream(t, "main"), newUpstream(t, "standby")
	e := startEdge(t, fast(), []sideSpec{side1("main", mainNode, mainUp), side1("standby", standbyNode, standbyUp)})
	e.waitRouted(t, "main")

	for range 20 {
		if code, _, h := get(t, nil, e.url+"/"); code != 200 || h.Get("X-Served-By") != "main" {
			t.Fatalf("GET / = %d served by %q, want 200 by main", code, h.Get("X-Served-By"))
		}
	}
	if n := standbyUp.requests(t); n != 0 {
		t.Fatalf("the inactive standby's upstream got %d requests", n)
	}

	// Failover: the main stops, the standby starts.
	mainNode.SetAnswer(inactive(1))
	standbyNode.SetAnswer(active(2))
	e.waitRouted(t, "standby")
	frozen := mainUp.requests(t)
	for range 20 {
		if code, _, h := get(t, nil, e.url+"/"); code != 200 || h.Get("X-Served-By") != "standby" {
			t.Fatalf("after the failover GET / = %d served by %q", code, h.Get("X-Served-By"))
		}
	}
	if n := mainUp.requests(t); n != frozen {
		t.Fatalf("the inactive main's upstream got %d requests after the switch", n-frozen)
	}
	st := e.Status()
	// none -> main -> standby, through none if the main's stop is seen first.
	if st.Switches < 2 || st.Sides[1].Epoch != 2 || !st.Sides[1].Routed || st.Sides[0].Health != HealthDown {
		t.Errorf("status after the failover: %+v", st)
	}
	if got := testkit.Metric(t, e.reg, "resman_edge_active_side", map[string]string{"side": "standby"}); got != 1 {
		t.Errorf("resman_edge_active_side{side=standby} = %v", got)
	}
	if got := testkit.Metric(t, e.reg, "resman_edge_requests_total", map[string]string{"side": "standby", "route": "/", "code": "200"}); got != 20 {
		t.Errorf("resman_edge_requests_total{standby,/,200} = %v, want 20", got)
	}
	if got := testkit.Metric(t, e.reg, "resman_edge_switches_total", nil); got != float64(st.Switches) {
		t.Errorf("resman_edge_switches_total = %v, want %d", got, st.Switches)
	}
}

func TestAllRoutesSwitchTogether(t *testing.T) {
	mainNode, standbyNode := newFakeNode(t, active(1)), newFakeNode(t, inactive(0))
	mainWeb, mainAPI := newUpstream(t, "main-web"), newUpstream(t, "main-api")
	sbWeb, sbAPI := newUpstream(t, "standby-web"), newUpstream(t, "standby-api")
	e := startEdge(t, fast(), []sideSpec{
		{name: "main", node: mainNode, routes: []Route{{Path: "/", Upstream: mainWeb.url()}, {Path: "/api", Upstream: mainAPI.url()}}},
		{name: "standby", node: standbyNode, routes: []Route{{Path: "/api", Upstream: sbAPI.url()}, {Path: "/", Upstream: sbWeb.url()}}},
	})
	e.waitRouted(t, "main")
	check := func(path, want string) {
		t.Helper()
		code, body, h := get(t, nil, e.url+path)
		if code != 200 || h.Get("X-Served-By") != want {
			t.Errorf("GET %s = %d by %q (%q), want 200 by %s", path, code, h.Get("X-Served-By"), body, want)
		}
	}
	check("/", "main-web")
	check("/api/calls", "main-api")
	check("/api", "main-api")
	check("/apix", "main-web") // a prefix ends at a segment boundary

	mainNode.SetAnswer(inactive(1))
	standbyNode.SetAnswer(active(2))
	e.waitRouted(t, "standby")
	check("/", "standby-web")
	check("/api/calls", "standby-api")
	check("/apix", "standby-web")
}

func TestStreamsOfTheSideThatLostActiveAreClosed(t *testing.T) {
	mainNode, standbyNode := newFakeNode(t, active(1)), newFakeNode(t, inactive(0))
	mainUp, standbyUp := newUpstream(t, "main"), newUpstream(t, "standby")
	e := startEdge(t, fast(), []sideSpec{side1("main", mainNode, mainUp), side1("standby", standbyNode, standbyUp)})
	e.waitRouted(t, "main")
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	// Event streams (one asked for as such, one read as a plain answer
	// without a length) and a WebSocket through the Edge, from the main.
	next, closeSSE := sse(t, e.url+"/events")
	defer closeSSE()
	if line, err := next(); err != nil || line != "tick 1 from main" {
		t.Fatalf("first event = %q, %v", line, err)
	}
	plain, closePlain := sse(t, e.url+"/events", false)
	defer closePlain()
	if line, err := plain(); err != nil || line != "tick 1 from main" {
		t.Fatalf("first event of the plain stream = %q, %v", line, err)
	}
	wsURL := "ws" + strings.TrimPrefix(e.url, "http") + "/ws"
	ws, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != "hello from main" {
		t.Fatalf("greeting = %q, %v", msg, err)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != "ping" {
		t.Fatalf("echo through the Edge = %q, %v", msg, err)
	}
	testkit.Eventually(t, func() bool { return e.Status().Sides[0].Streams == 3 }, "3 streams tracked")

	// The main loses Active: both are closed, though its upstream still
	// runs; the clients reconnect to the standby.
	mainNode.SetAnswer(inactive(1))
	standbyNode.SetAnswer(active(2))
	for {
		line, err := next()
		if err != nil {
			break
		}
		if !strings.HasSuffix(line, "from main") {
			t.Fatalf("event from the old stream: %q", line)
		}
	}
	for {
		line, err := plain()
		if err != nil {
			break
		}
		if !strings.HasSuffix(line, "from main") {
			t.Fatalf("event from the old plain stream: %q", line)
		}
	}
	if _, _, err := ws.Read(ctx); err == nil {
		t.Fatal("the WebSocket to the main was not closed")
	}
	e.waitRouted(t, "standby")

	next2, closeSSE2 := sse(t, e.url+"/events")
	defer closeSSE2()
	if line, err := next2(); err != nil || line != "tick 1 from standby" {
		t.Fatalf("after reconnecting: %q, %v", line, err)
	}
	ws2, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws2.CloseNow()
	if _, msg, err := ws2.Read(ctx); err != nil || string(msg) != "hello from standby" {
		t.Fatalf("greeting after reconnecting = %q, %v", msg, err)
	}
	if got := testkit.Metric(t, e.reg, "resman_edge_closed_connections_total", nil); got != 3 {
		t.Errorf("resman_edge_closed_connections_total = %v, want 3", got)
	}
	if n := e.Status().Sides[0].Streams; n != 0 {
		t.Errorf("the main still tracks %d streams", n)
	}
}

func TestNoSideActiveAnswers503WithRetryAfter(t *testing.T) {
	mainNode, standbyNode := newFakeNode(t, active(1)), newFakeNode(t, inactive(0))
	mainUp, standbyUp := newUpstream(t, "main"), newUpstream(t, "standby")
	e := startEdge(t, fast(), []sideSpec{side1("main", mainNode, mainUp), side1("standby", standbyNode, standbyUp)})
	e.waitRouted(t, "main")
	mainNode.SetAnswer(inactive(1))
	e.waitRouted(t, "")

	code, body, h := get(t, nil, e.url+"/")
	if code != 503 || h.Get("Retry-After") != "1" || !strings.Contains(body, "Service unavailable") {
		t.Fatalf("GET / = %d Retry-After %q %q, want 503 with Retry-After 1", code, h.Get("Retry-After"), body)
	}
	assertNoInternals(t, body, h, mainUp, standbyUp)
	if n := mainUp.requests(t) + standbyUp.requests(t); n != 0 {
		t.Fatalf("upstreams got %d requests while no side was Active", n)
	}
	if got := testkit.Metric(t, e.reg, "resman_edge_active_side", map[string]string{"side": "none"}); got != 1 {
		t.Errorf("resman_edge_active_side{side=none} = %v", got)
	}
}

func TestHigherEpochWins(t *testing.T) {
	mainNode, standbyNode := newFakeNode(t, active(3)), newFakeNode(t, active(4))
	mainUp, standbyUp := newUpstream(t, "main"), newUpstream(t, "standby")
	e := startEdge(t, fast(), []sideSpec{side1("main", mainNode, mainUp), side1("standby", standbyNode, standbyUp)})
	testkit.Eventually(t, func() bool {
		st := e.Status()
		return st.Sides[0].Health == HealthUp && st.Sides[1].Health == HealthUp
	}, "both sides up")
	e.waitRouted(t, "standby")
	if _, _, h := get(t, nil, e.url+"/"); h.Get("X-Served-By") != "standby" {
		t.Fatalf("served by %q, want the higher epoch (standby)", h.Get("X-Served-By"))
	}
	// The main takes a newer epoch: it wins.
	mainNode.SetAnswer(active(5))
	e.waitRouted(t, "main")
	if _, _, h := get(t, nil, e.url+"/"); h.Get("X-Served-By") != "main" {
		t.Fatalf("served by %q, want main (epoch 5)", h.Get("X-Served-By"))
	}
}

func TestForwardedHeaders(t *testing.T) {
	node := newFakeNode(t, active(1))
	up := newUpstream(t, "main")
	e := startEdge(t, fast(), []sideSpec{side1("main", node, up)})
	e.waitRouted(t, "main")

	req, _ := http.NewRequest("GET", e.url+"/headers", nil)
	req.Host = "pbx.example.org"
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("X-Forwarded-Proto", "gopher") // set by the client: replaced
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var h map[string]string
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"X-Forwarded-For":   "203.0.113.7, 127.0.0.1",
		"X-Forwarded-Host":  "pbx.example.org",
		"X-Forwarded-Proto": "http",
		"Path":              "/headers",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("upstream saw %s = %q, want %q", k, h[k], v)
		}
	}
	if h["Host"] != strings.TrimPrefix(up.url(), "http://") {
		t.Errorf("upstream saw Host %q, want its own address", h["Host"])
	}
}

func TestErrorPagesNameNoUpstream(t *testing.T) {
	// An upstream that is down: its port is closed.
	ln, err := net.Listen("tcp", testkit.Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	node := newFakeNode(t, active(1))
	up := newUpstream(t, "main")
	e := startEdge(t, fast(), []sideSpec{{name: "main", node: node, routes: []Route{
		{Path: "/app", Upstream: up.url()}, {Path: "/down", Upstream: dead},
	}}})
	e.waitRouted(t, "main")

	code, body, h := get(t, nil, e.url+"/down/x")
	if code != 502 || !strings.Contains(body, "Bad gateway") {
		t.Fatalf("GET /down/x = %d %q, want a 502 page", code, body)
	}
	assertNoInternals(t, body, h, up)
	if strings.Contains(body, ln.Addr().String()) || strings.Contains(body, "refused") || strings.Contains(body, "dial") {
		t.Errorf("502 page leaks the error: %q", body)
	}
	if got := testkit.Metric(t, e.reg, "resman_edge_upstream_errors_total", map[string]string{"side": "main"}); got != 1 {
		t.Errorf("resman_edge_upstream_errors_total{main} = %v, want 1", got)
	}
	code, body, h = get(t, nil, e.url+"/elsewhere")
	if code != 404 {
		t.Fatalf("GET /elsewhere = %d, want 404 (no route)", code)
	}
	assertNoInternals(t, body, h, up)
}

// assertNoInternals fails if an answer of the Edge names an upstream, a
// node or a loopback address.
func assertNoInternals(t *testing.T, body string, h http.Header, ups ...*upstream) {
	t.Helper()
	all := body
	for k, vs := range h {
		all += "\n" + k + ": " + strings.Join(vs, ",")
	}
	for _, u := range ups {
		if strings.Contains(all, strings.TrimPrefix(u.url(), "http://")) {
			t.Errorf("answer names upstream %s:\n%s", u.url(), all)
		}
	}
	for _, leak := range []string{"127.0.0.1", "X-Served-By", "main", "standby"} {
		if strings.Contains(all, leak) {
			t.Errorf("answer contains %q:\n%s", leak, all)
		}
	}
}

func TestRiseFallHysteresis(t *testing.T) {
	node := newFakeNode(t, active(1))
	next := node.Gate(t)
	up := newUpstream(t, "main")
	e := startEdge(t, Check{Interval: 5 * time.Millisecond, Rise: 3, Fall: 2},
		[]sideSpec{side1("main", node, up)}, func(o *Options) { o.CheckTimeout = waitLimit })
	routed := func() bool {
		code, _, _ := get(t, nil, e.url+"/")
		return code == 200
	}
	steps := []struct {
		a      answer
		routed bool
	}{
		{active(1), false}, {active(1), false}, {active(1), true}, // rise 3
		{cut(), true}, {active(1), true}, {cut(), true}, {cut(), false}, // fall 2, in a row
		{active(1), false}, {active(1), false}, {active(1), true},
		{inactive(1), false}, // an answer "not Active" counts at once
		{active(2), false}, {cut(), false}, {active(2), false}, {active(2), false}, {active(2), true},
	}
	for i, s := range steps {
		next(s.a)
		if got := routed(); got != s.routed {
			t.Fatalf("step %d (%+v): routed = %v, want %v; status %+v", i, s.a, got, s.routed, e.Status().Sides[0])
		}
	}
	if got := e.Status().Switches; got != 5 {
		t.Errorf("switches = %d, want 5", got)
	}
}

func TestStatusAPI(t *testing.T) {
	node := newFakeNode(t, active(7))
	up := newUpstream(t, "main")
	e := startEdge(t, fast(), []sideSpec{side1("main", node, up)}, func(o *Options) { o.Standalone = true })
	e.waitRouted(t, "main")
	srv := newAPIServer(t, e.APIHandler())

	for _, path := range []string{PathStatus, PathNodeStatus} {
		req, _ := http.NewRequest("GET", srv+path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s without a token = %d", path, res.StatusCode)
		}
	}
	var st Status
	authJSON(t, srv+PathStatus, &st)
	s := st.Sides[0]
	if st.Side != "main" || st.Switches != 1 || st.Since.IsZero() || s.Health != HealthUp || s.Epoch != 7 ||
		!s.Routed || !s.Active || s.Routes[0].Upstream != up.url() || st.Check.Rise != 2 {
		t.Errorf("GET %s = %+v", PathStatus, st)
	}
	// Alone in its file, the Edge answers like a node (resman status).
	var ns api.Status
	authJSON(t, srv+PathNodeStatus, &ns)
	if ns.Role != Role || ns.Status != api.StatusActive || ns.Epoch != 7 || !ns.HA.Ready {
		t.Errorf("GET %s = %+v", PathNodeStatus, ns)
	}
	// Beside a node or a CC follower, /api/v1/status is theirs.
	other := startEdge(t, fast(), []sideSpec{side1("main", node, up)})
	req, _ := http.NewRequest("GET", newAPIServer(t, other.APIHandler())+PathNodeStatus, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 404 {
		t.Errorf("GET %s not standalone = %v, %v", PathNodeStatus, res, err)
	} else {
		res.Body.Close()
	}
	req, _ = http.NewRequest("POST", srv+PathStatus, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 405 {
		t.Errorf("POST status = %v, %v", res, err)
	}
}

// authJSON GETs url with the token and decodes its 200 answer into v; it
// returns the raw body.
func authJSON(t *testing.T, url string, v any) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET %s = %d, %v: %s", url, res.StatusCode, err, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, b)
	}
	return b
}

func newAPIServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func TestTLSListener(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	node := newFakeNode(t, active(1))
	up := newUpstream(t, "main")
	e := startEdge(t, fast(), []sideSpec{side1("main", node, up)}, func(o *Options) { o.TLSCert, o.TLSKey = certFile, keyFile })
	e.waitRouted(t, "main")
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer c.CloseIdleConnections()
	code, body, _ := get(t, c, e.url+"/headers")
	var h map[string]string
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != 200 {
		t.Fatalf("GET over TLS = %d %q", code, body)
	}
	if h["X-Forwarded-Proto"] != "https" {
		t.Errorf("X-Forwarded-Proto = %q, want https", h["X-Forwarded-Proto"])
	}
	// Event streams work over TLS too.
	req, _ := http.NewRequest("GET", e.url+"/events", nil)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := make([]byte, 256)
	n, err := io.ReadAtLeast(res.Body, buf, len("retry: 1000\n\ndata: tick 1 from main"))
	if err != nil || !strings.Contains(string(buf[:n]), "tick 1 from main") {
		t.Fatalf("SSE over TLS: %q, %v", buf[:n], err)
	}

	if _, err := New(Options{Config: Config{Listen: ":0", Sides: []Side{{Name: "a", Node: "http://127.0.0.1:1",
		Routes: []Route{{Path: "/", Upstream: "http://127.0.0.1:1"}}}}}, TLSCert: certFile}); err == nil {
		t.Error("New accepted a certificate without a key")
	}
	if _, err := New(Options{Config: Config{Listen: ":0", Sides: []Side{{Name: "a", Node: "http://127.0.0.1:1",
		Routes: []Route{{Path: "/", Upstream: "http://127.0.0.1:1"}}}}}, TLSCert: keyFile, TLSKey: keyFile}); err == nil {
		t.Error("New accepted a key as a certificate")
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "edge test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestNewRejectsBadUpstream(t *testing.T) {
	cfg := Config{Listen: ":0", Sides: []Side{{Name: "a", Node: "http://127.0.0.1:1",
		Routes: []Route{{Path: "/", Upstream: "ftp://x"}}}}}
	if _, err := New(Options{Config: cfg}); err == nil || !strings.Contains(err.Error(), "routes[0].upstream") {
		t.Errorf("New with an ftp upstream = %v", err)
	}
	if _, err := New(Options{}); err == nil {
		t.Error("New without sides succeeded")
	}
}

func TestPlainHTTP(t *testing.T) {
	node := newFakeNode(t, active(1))
	up := newUpstream(t, "main")
	api := newUpstream(t, "api")
	e := startEdge(t, fast(), []sideSpec{{name: "main", node: node, routes: []Route{
		{Path: "/", Upstream: up.url()}, {Path: "/v2", Upstream: api.url() + "/api"},
	}}})
	e.waitRouted(t, "main")

	// Request bodies, small and larger than a buffer, in both framings.
	for _, size := range []int{0, 10, 100 << 10, 2 << 20} {
		body := bytes.Repeat([]byte("b"), size)
		want := fmt.Sprintf("POST %d %x", size, sha256.Sum256(body))
		res, err := http.Post(e.url+"/body", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(got) != want {
			t.Errorf("POST %d bytes = %d %q", size, res.StatusCode, got)
		}
		// Chunked: no length known in advance.
		res, err = http.Post(e.url+"/body", "application/octet-stream", io.MultiReader(bytes.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		got, _ = io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(got) != want {
			t.Errorf("chunked POST %d bytes = %d %q", size, res.StatusCode, got)
		}
	}
	// A large answer is streamed, with its length.
	res, err := http.Get(e.url + "/big")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil || n != bigSize || res.ContentLength != bigSize {
		t.Errorf("GET /big: %d bytes of %d, %v", n, res.ContentLength, err)
	}
	// The pool survives a large answer the client dropped half-way.
	res, err = http.Get(e.url + "/big")
	if err != nil {
		t.Fatal(err)
	}
	io.CopyN(io.Discard, res.Body, 1000)
	res.Body.Close()
	for range 5 {
		if code, body, _ := get(t, nil, e.url+"/query?a=1&b=%20"); code != 200 || body != "/query?a=1&b=%20" {
			t.Fatalf("GET /query after a dropped answer = %d %q", code, body)
		}
	}
	// HEAD has headers, no body.
	req, _ := http.NewRequest("HEAD", e.url+"/big", nil)
	res, err = http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 || res.ContentLength != bigSize {
		t.Fatalf("HEAD /big = %v, %v", res, err)
	}
	res.Body.Close()
	// The upstream URL's path comes before the request's.
	if code, body, _ := get(t, nil, e.url+"/v2/calls?x=1"); code != 200 || body != "api of api: /api/v2/calls\n" {
		t.Errorf("GET /v2/calls = %d %q, want the api upstream's /api/v2/calls", code, body)
	}
	// An upgrade to anything but a WebSocket or h2c is a plain request,
	// without its Upgrade.
	req, _ = http.NewRequest("GET", e.url+"/headers", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "foo/2")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]string
	json.NewDecoder(res.Body).Decode(&h)
	res.Body.Close()
	if res.StatusCode != 200 || h["Upgrade"] != "" || h["Connection"] != "" || e.Status().Sides[0].Streams != 0 {
		t.Errorf("foo upgrade: %d, upstream saw Upgrade %q, Connection %q", res.StatusCode, h["Upgrade"], h["Connection"])
	}
	// h2c is refused (TestH2CIsRefused has every form).
	req, _ = http.NewRequest("GET", e.url+"/headers", nil)
	req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
	req.Header.Set("Upgrade", "h2c")
	req.Header.Set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Errorf("h2c upgrade: %d, want 400", res.StatusCode)
	}
	// An upstream's 404 goes through as is.
	if code, _, h := get(t, nil, e.url+"/nope"); code != 404 || h.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("GET /nope = %d %q", code, h.Get("Content-Type"))
	}
	if got := testkit.Metric(t, e.reg, "resman_edge_requests_total", map[string]string{"side": "main", "route": "/", "code": "404"}); got != 1 {
		t.Errorf("requests{main,/,404} = %v", got)
	}
}

// The node's event stream takes the traffic away at once, while a check is
// still pending; coming back takes rise checks.
func TestEventStreamTakesTrafficAwayAtOnce(t *testing.T) {
	node := newFakeNode(t, active(1))
	next := node.Gate(t)
	up := newUpstream(t, "main")
	e := startEdge(t, Check{Interval: 5 * time.Millisecond, Rise: 2, Fall: 2},
		[]sideSpec{side1("main", node, up)}, func(o *Options) { o.CheckTimeout = waitLimit })
	next(active(1))
	next(active(1))
	e.waitRouted(t, "main")
	testkit.Eventually(t, func() bool { return node.Push(api.StatusActive, 1) > 0 }, "the event stream open")
	// A check is pending (held by the gate); the event alone decides.
	node.Push(api.StatusDeactivating, 1)
	e.waitRouted(t, "")
	if code, _, _ := get(t, nil, e.url+"/"); code != 503 {
		t.Fatalf("after the event: %d, want 503", code)
	}
	if st := e.Status().Sides[0]; st.NodeStatus != api.StatusDeactivating || st.Health != HealthDown {
		t.Errorf("side after the event: %+v", st)
	}
	// The check held since before the event says active: it is stale.
	next(active(1))
	if e.Status().Side != "" {
		t.Fatal("a check started before the event brought the side back")
	}
	next(active(2))
	next(active(2))
	e.waitRouted(t, "main")
}
