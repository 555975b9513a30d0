package edge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/services/standin"
)

const (
	testToken = "edge-test-token-0123456789"
	waitLimit = 10 * time.Second
	// bigSize is an answer larger than any buffer of the Edge.
	bigSize = 3 << 20
)

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// answer is what a fake node says to GET /active: a status and an epoch,
// or no answer at all (the connection is cut).
type answer struct {
	status string
	epoch  uint64
	cut    bool
}

func active(epoch uint64) answer   { return answer{status: api.StatusActive, epoch: epoch} }
func inactive(epoch uint64) answer { return answer{status: api.StatusInactive, epoch: epoch} }
func cut() answer                  { return answer{cut: true} }

// fakeNode serves GET /active over loopback. It answers its current
// answer, or, when gated, blocks each check until the test answers it.
type fakeNode struct {
	srv    *httptest.Server
	mu     sync.Mutex
	now    answer
	checks atomic.Int64
	// gate, when set, receives the answer of each check.
	gate    chan answer
	arrived chan struct{}
	// subs are the event streams (GET /api/v1/events) open.
	subs map[chan api.Status]struct{}
}

func newFakeNode(t testing.TB, a answer) *fakeNode {
	t.Helper()
	return newFakeNodeWith(t, a, (*httptest.Server).Start)
}

// newFakeNodeWith is newFakeNode started by start (StartTLS for https).
func newFakeNodeWith(t testing.TB, a answer, start func(*httptest.Server)) *fakeNode {
	t.Helper()
	f := &fakeNode{now: a, subs: map[chan api.Status]struct{}{}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/events" && r.Header.Get("Authorization") == "Bearer "+testToken {
			f.events(w, r)
			return
		}
		if r.URL.Path != "/active" {
			http.NotFound(w, r)
			return
		}
		f.checks.Add(1)
		f.mu.Lock()
		a, gate, arrived := f.now, f.gate, f.arrived
		f.mu.Unlock()
		if gate != nil {
			arrived <- struct{}{}
			select {
			case a = <-gate:
			case <-r.Context().Done():
				return
			}
		}
		if a.cut {
			// The connection breaks mid-answer (a bare close would make
			// the client's transport retry the GET on a new connection).
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
				c.Close()
			}
			return
		}
		code := http.StatusServiceUnavailable
		if a.status == api.StatusActive {
			code = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(api.Active{Status: a.status, Epoch: a.epoch})
	}))
	ctx, cancel := context.WithCancel(context.Background())
	f.srv.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	start(f.srv)
	t.Cleanup(func() { cancel(); f.srv.Close() })
	return f
}

// events serves the node's event stream: one status event per push.
func (f *fakeNode) events(w http.ResponseWriter, r *http.Request) {
	ch := make(chan api.Status, 4)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case st := <-ch:
			b, _ := json.Marshal(st)
			fmt.Fprintf(w, "event: status\ndata: %s\n\n", b)
			http.NewResponseController(w).Flush()
		}
	}
}

// push sends a status event to the open event streams and says how many
// got it.
func (f *fakeNode) push(status string, epoch uint64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		ch <- api.Status{Node: "node", Status: status, Epoch: epoch}
	}
	return len(f.subs)
}

func (f *fakeNode) set(a answer) {
	f.mu.Lock()
	f.now = a
	f.mu.Unlock()
}

// gated makes every check wait for the test: the returned function answers
// the next check and returns once the Edge has counted it (its following
// check has arrived).
func (f *fakeNode) gated(t *testing.T) (answerNext func(answer)) {
	f.mu.Lock()
	f.gate = make(chan answer)
	f.arrived = make(chan struct{}, 1)
	arrived := f.arrived
	f.mu.Unlock()
	wait := func() {
		t.Helper()
		select {
		case <-arrived:
		case <-time.After(waitLimit):
			t.Fatal("no check arrived")
		}
	}
	first := true
	return func(a answer) {
		t.Helper()
		if first {
			wait()
			first = false
		}
		f.gate <- a
		wait()
	}
}

// upstream is a stand-in web app (/, /events, /ws, /stats) plus /headers,
// which echoes the request's headers and host as JSON.
type upstream struct {
	name string
	srv  *httptest.Server
}

func newUpstream(t *testing.T, name string) *upstream {
	t.Helper()
	app := standin.Handler(name)
	mux := http.NewServeMux()
	mux.Handle("/", app)
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", name)
		h := map[string]string{"Host": r.Host, "Path": r.URL.Path}
		for k := range r.Header {
			h[k] = r.Header.Get(k)
		}
		json.NewEncoder(w).Encode(h)
	})
	mux.HandleFunc("/body", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Served-By", name)
		fmt.Fprintf(w, "%s %d %x", r.Method, len(b), sha256.Sum256(b))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", name)
		w.Header().Set("Content-Length", strconv.Itoa(bigSize))
		w.Write(bytes.Repeat([]byte("x"), bigSize))
	})
	mux.HandleFunc("/query", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", name)
		fmt.Fprintf(w, "%s?%s", r.URL.EscapedPath(), r.URL.RawQuery)
	})
	mux.HandleFunc("/apix", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", name)
	})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", name)
		fmt.Fprintf(w, "api of %s: %s\n", name, r.URL.Path)
	})
	u := &upstream{name: name, srv: httptest.NewUnstartedServer(mux)}
	// Streams end when the test ends.
	ctx, cancel := context.WithCancel(context.Background())
	u.srv.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	u.srv.Start()
	t.Cleanup(func() { cancel(); u.srv.Close() })
	return u
}

func (u *upstream) url() string { return u.srv.URL }

// requests is how many requests the stand-in served (its /stats).
func (u *upstream) requests(t *testing.T) uint64 {
	t.Helper()
	res, err := http.Get(u.srv.URL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st standin.Stats
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Requests
}

// sideSpec is one side of a test Edge.
type sideSpec struct {
	name   string
	node   *fakeNode
	routes []config.Route
	tls    *config.UpstreamTLS
}

func side1(name string, node *fakeNode, up *upstream) sideSpec {
	return sideSpec{name: name, node: node, routes: []config.Route{{Path: "/", Upstream: up.url()}}}
}

type testEdge struct {
	*Edge
	url string
	reg *prometheus.Registry
}

type edgeOpt func(*Options)

// startEdge serves an Edge over loopback until the test ends.
func startEdge(t testing.TB, check config.EdgeCheck, sides []sideSpec, opts ...edgeOpt) *testEdge {
	t.Helper()
	cfg := config.Edge{Listen: "127.0.0.1:0", Token: testToken, Check: check}
	for _, s := range sides {
		cfg.Sides = append(cfg.Sides, config.Side{Name: s.name, Node: s.node.srv.URL, Routes: s.routes, UpstreamTLS: s.tls})
	}
	reg := prometheus.NewRegistry()
	// A check's timeout defaults to the check interval, 10 ms with fast():
	// a slow machine would fail checks and flap the sides. The tests test
	// answers and cut connections, never a node too slow to answer, so the
	// timeout is a generous safety net.
	o := Options{Config: cfg, Token: testToken, Registerer: reg, Logger: testLogger(t), CheckTimeout: waitLimit}
	for _, f := range opts {
		f(&o)
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(waitLimit):
			t.Error("Serve did not return")
		}
	})
	scheme := "http"
	if o.TLSCert != "" {
		scheme = "https"
	}
	return &testEdge{Edge: e, url: scheme + "://" + ln.Addr().String(), reg: reg}
}

// fast is a check quick enough for tests.
func fast() config.EdgeCheck {
	return config.EdgeCheck{Interval: 10 * time.Millisecond, Rise: 2, Fall: 2}
}

func (e *testEdge) waitRouted(t testing.TB, side string) {
	t.Helper()
	waitUntil(t, "routing to "+orNone(side), func() bool { return e.Status().Side == side })
}

func orNone(s string) string {
	if s == "" {
		return "no side"
	}
	return s
}

// get does a GET through the Edge and returns code, body and who served.
func get(t *testing.T, c *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b), res.Header
}

// sse opens an event stream and returns a function reading its next data
// line (an error when the stream ends). Without accept, the request does
// not say it wants an event stream (a plain streamed answer).
func sse(t *testing.T, url string, accept ...bool) (next func() (string, error), closeFn func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if len(accept) == 0 || accept[0] {
		req.Header.Set("Accept", "text/event-stream")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		cancel()
		t.Fatalf("GET %s: %d", url, res.StatusCode)
	}
	sc := bufio.NewScanner(res.Body)
	return func() (string, error) {
			for sc.Scan() {
				if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					return line, nil
				}
			}
			if err := sc.Err(); err != nil {
				return "", err
			}
			return "", io.EOF
		}, func() {
			cancel()
			res.Body.Close()
		}
}

// metric is the value of a counter or gauge with the given labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// logBuffer keeps the Edge's logs and prints them if the test fails.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func testLogger(t testing.TB) *slog.Logger {
	lb := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			lb.mu.Lock()
			t.Logf("edge logs:\n%s", lb.b.String())
			lb.mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
