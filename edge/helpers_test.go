package edge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client/clienttest"
	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/services/standin"
)

const (
	testToken = "edge-test-token-0123456789"
	waitLimit = 10 * time.Second
	// bigSize is an answer larger than any buffer of the Edge.
	bigSize = 3 << 20
)

// answer is what a fake node says to GET /active: a status and an epoch,
// or no answer at all (the connection is cut).
type answer = clienttest.Answer

func active(epoch uint64) answer   { return clienttest.Active(epoch) }
func inactive(epoch uint64) answer { return clienttest.Inactive(epoch) }
func cut() answer                  { return clienttest.Cut() }

// newFakeNode serves a node's GET /active over loopback (see clienttest),
// answering a until the test sets another answer (SetAnswer) or holds the
// checks (Gate), and its event stream, which carries only what the test
// pushes (Push).
func newFakeNode(t testing.TB, a answer) *clienttest.FakeNode {
	t.Helper()
	return newFakeNodeWith(t, a, (*httptest.Server).Start)
}

// newFakeNodeWith is newFakeNode started by start (StartTLS for https).
func newFakeNodeWith(t testing.TB, a answer, start func(*httptest.Server)) *clienttest.FakeNode {
	t.Helper()
	f := clienttest.New(t, api.Status{Node: "node", Status: a.Status, Epoch: a.Epoch},
		clienttest.WithToken(testToken), clienttest.NoFirstEvent(), clienttest.WithStart(start))
	f.SetAnswer(a)
	return f
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
	node   *clienttest.FakeNode
	routes []Route
	tls    *UpstreamTLS
}

func side1(name string, node *clienttest.FakeNode, up *upstream) sideSpec {
	return sideSpec{name: name, node: node, routes: []Route{{Path: "/", Upstream: up.url()}}}
}

type testEdge struct {
	*Edge
	url string
	reg *prometheus.Registry
}

type edgeOpt func(*Options)

// startEdge serves an Edge over loopback until the test ends.
func startEdge(t testing.TB, check Check, sides []sideSpec, opts ...edgeOpt) *testEdge {
	t.Helper()
	return serveEdge(t, check, sides, nil, opts...).testEdge
}

// served is an Edge that the test may stop itself (cancel), to see Serve
// return (done; a test that reads it sends nil again for the cleanup).
type served struct {
	*testEdge
	cancel context.CancelFunc
	done   chan error
}

// serveEdge serves an Edge over loopback until the test ends; setup, when
// not nil, sets the Edge up before it serves.
func serveEdge(t testing.TB, check Check, sides []sideSpec, setup func(*Edge), opts ...edgeOpt) *served {
	t.Helper()
	cfg := Config{Listen: "127.0.0.1:0", Token: testToken, Check: check}
	for _, s := range sides {
		cfg.Sides = append(cfg.Sides, Side{Name: s.name, Node: s.node.URL(), Routes: s.routes, UpstreamTLS: s.tls})
	}
	reg := prometheus.NewRegistry()
	// A check's timeout defaults to the check interval, 10 ms with fast():
	// a slow machine would fail checks and flap the sides. The tests test
	// answers and cut connections, never a node too slow to answer, so the
	// timeout is a generous safety net.
	o := Options{Config: cfg, Token: testToken, Registerer: reg, Logger: testkit.FailureLogger(t), CheckTimeout: waitLimit}
	for _, f := range opts {
		f(&o)
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(e)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	scheme := "http"
	if o.TLSCert != "" {
		scheme = "https"
	}
	s := &served{testEdge: &testEdge{Edge: e, url: scheme + "://" + ln.Addr().String(), reg: reg}, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- e.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(waitLimit):
			serveDidNotReturn(t)
		}
	})
	return s
}

// serveDidNotReturn fails the test with the goroutines of the Edge and its
// SIP front: what Serve still waits for.
func serveDidNotReturn(t testing.TB) {
	t.Helper()
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	var ours []string
	for _, g := range strings.Split(b.String(), "\n\n") {
		if strings.Contains(g, "resman/edge") {
			ours = append(ours, g)
		}
	}
	t.Errorf("Serve did not return; the Edge's goroutines:\n%s", strings.Join(ours, "\n\n"))
}

// fast is a check quick enough for tests.
func fast() Check {
	return Check{Interval: 10 * time.Millisecond, Rise: 2, Fall: 2}
}

func (e *testEdge) waitRouted(t testing.TB, side string) {
	t.Helper()
	testkit.Until(t, func() string { return e.Status().Side }, func(s string) bool { return s == side }, "routing to %s", orNone(side))
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
