package edge

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// The fast path's behaviour (fast.go, upstream.go): keep-alive and retries
// to the upstreams, answers without a body, streams, the watchdog, the
// pool's bound, the shutdown, the Edge's pages and the upstreams' errors.
// Most tests also check that the fast path served the requests: the
// connections handed to the general path are counted.

// rawUpstream is an upstream written byte for byte: handle answers each
// request (its head and body as received) on the connection's writer,
// and says whether the connection stays open. It counts the connections it
// accepted and the requests it read.
type rawUpstream struct {
	ln       net.Listener
	conns    sync.Map // the open connections
	accepted atomic.Int32
	requests atomic.Int32
	mu       sync.Mutex
	got      []string // the request lines, in order
}

type upRequest struct {
	line, head, body string
	conn             int32 // the connection's number, from 1
}

func newRawUpstream(t *testing.T, handle func(c net.Conn, r upRequest) bool) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := u.accepted.Add(1)
			u.conns.Store(c, nil)
			wg.Go(func() {
				defer u.conns.Delete(c)
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					head, err := readHead(br)
					if err != nil {
						return
					}
					r := upRequest{head: head, conn: n}
					r.line, _, _ = strings.Cut(head, "\r\n")
					if cl := values(head, "Content-Length"); len(cl) == 1 {
						size, _ := strconv.Atoi(cl[0])
						b := make([]byte, size)
						if _, err := io.ReadFull(br, b); err != nil {
							return
						}
						r.body = string(b)
					}
					u.requests.Add(1)
					u.mu.Lock()
					u.got = append(u.got, r.line)
					u.mu.Unlock()
					if !handle(c, r) {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		u.closeConns()
		wg.Wait()
	})
	return u
}

// closeConns closes the open connections, as an upstream that restarts.
func (u *rawUpstream) closeConns() {
	u.conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
}

func (u *rawUpstream) url() string { return "http://" + u.ln.Addr().String() }

// lines are the request lines the upstream read, in order.
func (u *rawUpstream) lines() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.got...)
}

// path is the path of a request line.
func (r upRequest) path() string {
	f := strings.Fields(r.line)
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

// answerOK writes a 200 with body ok and keeps the connection.
func answerOK(c net.Conn) bool {
	_, err := io.WriteString(c, okAnswer)
	return err == nil
}

// startServed is startEdge with the Edge's context in the test's hands.
func startServed(t *testing.T, sides []sideSpec, opts ...edgeOpt) *served {
	t.Helper()
	return serveEdge(t, fast(), sides, nil, opts...)
}

// startFast is an Edge whose one side, Active, routes / to upstream.
func startFast(t *testing.T, upstream string) *served {
	t.Helper()
	node := newFakeNode(t, active(1))
	e := startServed(t, []sideSpec{{name: "main", node: node, routes: []Route{{Path: "/", Upstream: upstream}}}})
	e.waitRouted(t, "main")
	return e
}

// handedOver is how many client connections went to the general path.
func handedOver(t *testing.T, e *testEdge) float64 {
	t.Helper()
	return testkit.Metric(t, e.reg, "resman_edge_general_path_connections_total", nil)
}

// assertFastPath fails when a connection went to the general path.
func assertFastPath(t *testing.T, e *testEdge) {
	t.Helper()
	if n := handedOver(t, e); n != 0 {
		t.Errorf("%v connections went to the general path, want none", n)
	}
}

func upstreamErrors(t *testing.T, e *testEdge) float64 {
	t.Helper()
	return testkit.Metric(t, e.reg, "resman_edge_upstream_errors_total", map[string]string{"side": "main"})
}

// setVar sets a package variable for the test (before the Edge starts:
// it reads it) and restores it after (once the Edge has stopped: cleanups
// run last first).
func setVar[T any](t *testing.T, v *T, value T) {
	t.Helper()
	old := *v
	*v = value
	t.Cleanup(func() { *v = old })
}

// get1 is a GET of path on the connection, Host pbx.
func get1(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: pbx\r\n\r\n"
}

func TestFastUpstreamKeepAlive(t *testing.T) {
	up := newRawUpstream(t, func(c net.Conn, r upRequest) bool {
		var err error
		switch r.path() {
		case "/close":
			// Says close, and keeps the connection open: the Edge must
			// not use it again all the same.
			_, err = io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nclose")
		case "/old":
			_, err = io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold")
		default:
			_, err = io.WriteString(c, okAnswer)
		}
		return err == nil
	})
	e := startFast(t, up.url())
	rc := dialRaw(t, e.testEdge)
	for i := range 5 {
		if res := rc.do(get1("/a")); res.status != 200 || res.body != "ok" {
			t.Fatalf("request %d: %d %q", i, res.status, res.body)
		}
	}
	if n := up.accepted.Load(); n != 1 {
		t.Fatalf("5 requests on one client connection took %d upstream connections, want 1", n)
	}
	for i, c := range []struct{ path, body string }{{"/close", "close"}, {"/old", "old"}} {
		res := rc.do(get1(c.path))
		if res.status != 200 || res.body != c.body {
			t.Fatalf("GET %s: %d %q", c.path, res.status, res.body)
		}
		// The upstream's close is not the client's: its connection stays
		// open, and says it speaks HTTP/1.1 (a proxy sends its own
		// version).
		if vs := values(res.head, "Connection"); len(vs) != 0 {
			t.Errorf("GET %s: the client got Connection %q", c.path, vs)
		}
		if !strings.HasPrefix(res.head, "HTTP/1.1 200 ") {
			t.Errorf("GET %s: the client got the status line %q, want HTTP/1.1", c.path, strings.SplitN(res.head, "\r\n", 2)[0])
		}
		if res := rc.do(get1("/a")); res.status != 200 || res.body != "ok" {
			t.Fatalf("GET /a after %s: %d %q", c.path, res.status, res.body)
		}
		if n, want := up.accepted.Load(), int32(i+2); n != want {
			t.Errorf("after GET %s the upstream accepted %d connections, want %d", c.path, n, want)
		}
	}
	// The client's close is its own: its connection closes after the
	// answer, the upstream's stays kept for another client.
	res := rc.do("GET /a HTTP/1.1\r\nHost: pbx\r\nConnection: close\r\n\r\n")
	if vs := values(res.head, "Connection"); res.status != 200 || len(vs) != 1 || vs[0] != "close" {
		t.Errorf("GET with Connection: close: %d, Connection %q", res.status, vs)
	}
	if !rc.closed() {
		t.Error("the client's connection stayed open after its close")
	}
	if res := dialRaw(t, e.testEdge).do(get1("/a")); res.status != 200 {
		t.Errorf("GET from another client: %d", res.status)
	}
	if n := up.accepted.Load(); n != 3 {
		t.Errorf("the upstream accepted %d connections, want 3: the client's close went upstream", n)
	}
	if got := up.lines(); len(got) != 11 {
		t.Errorf("the upstream read %d requests, want 11: %q", len(got), got)
	}
	assertFastPath(t, e.testEdge)
	// An event stream goes to the general path, over a tunnel of its own:
	// the HTTP/1.0 upstream's answer says HTTP/1.1 there too.
	res = dialRaw(t, e.testEdge).do("GET /old HTTP/1.1\r\nHost: pbx\r\nAccept: text/event-stream\r\n\r\n")
	if !strings.HasPrefix(res.head, "HTTP/1.1 200 ") || res.body != "old" {
		t.Errorf("an event stream from an HTTP/1.0 upstream: %q %q, want HTTP/1.1", strings.SplitN(res.head, "\r\n", 2)[0], res.body)
	}
}

// An upstream closes a kept-alive connection while it is idle: a GET is
// sent again on a new connection, a POST with a body is not (it may have
// been read) and gets a 502.
func TestFastRetryOnAClosedKeptConnection(t *testing.T) {
	closed := make(chan int32, 10)
	// Each answer, then the connection closes, without saying so.
	up := newRawUpstream(t, func(c net.Conn, r upRequest) bool {
		answerOK(c)
		c.Close()
		closed <- r.conn
		return false
	})
	e := startFast(t, up.url())
	waitClosed := func(conn int32) {
		t.Helper()
		select {
		case n := <-closed:
			if n != conn {
				t.Fatalf("the upstream closed connection %d, want %d", n, conn)
			}
		case <-time.After(waitLimit):
			t.Fatalf("the upstream did not close connection %d", conn)
		}
	}
	rc := dialRaw(t, e.testEdge)
	if res := rc.do(get1("/first")); res.status != 200 {
		t.Fatalf("first GET: %d %q", res.status, res.body)
	}
	waitClosed(1)
	// The kept connection is closed: the GET goes again, on another.
	if res := rc.do(get1("/again")); res.status != 200 || res.body != "ok" {
		t.Fatalf("GET on a closed kept connection: %d %q, want it sent again", res.status, res.body)
	}
	waitClosed(2)
	if got := up.lines(); len(got) != 2 || got[1] != "GET /again HTTP/1.1" {
		t.Errorf("the upstream read %q, want /again once", got)
	}
	if n := up.accepted.Load(); n != 2 {
		t.Errorf("the upstream accepted %d connections, want 2", n)
	}
	// A POST is not sent again: 502, and the client's connection closes
	// (its body was read, in part or whole).
	res := rc.do("POST /post HTTP/1.1\r\nHost: pbx\r\nContent-Length: 5\r\n\r\nhello")
	if res.status != http.StatusBadGateway || !strings.Contains(res.body, "Bad gateway") {
		t.Fatalf("POST on a closed kept connection: %d %q, want the 502 page", res.status, res.body)
	}
	if vs := values(res.head, "Connection"); len(vs) != 1 || vs[0] != "close" {
		t.Errorf("the 502 says Connection %q, want close", vs)
	}
	if !rc.closed() {
		t.Error("the client's connection stayed open after the 502")
	}
	if got := up.lines(); len(got) != 2 {
		t.Errorf("the upstream read %q, want no POST", got)
	}
	if n := up.accepted.Load(); n != 2 {
		t.Errorf("the upstream accepted %d connections, want 2: the POST went again", n)
	}
	if n := upstreamErrors(t, e.testEdge); n != 1 {
		t.Errorf("upstream errors = %v, want 1 (the POST)", n)
	}
	assertFastPath(t, e.testEdge)
}

// Answers without a body: to a HEAD (with the length of the body it does
// not send), 204 and 304; a 103 before the answer goes to the client
// first. The client's connection stays open after each, and so does the
// upstream's.
func TestFastAnswersWithoutBody(t *testing.T) {
	e, rec := startRecorded(t)
	rec.answer("/head", rawAnswer{raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Head: 1\r\n\r\n"})
	rec.answer("/204", rawAnswer{raw: "HTTP/1.1 204 No Content\r\nX-Empty: 1\r\n\r\n"})
	rec.answer("/304", rawAnswer{raw: "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"x\"\r\n\r\n"})
	rec.answer("/103", rawAnswer{raw: "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhints"})
	rc := dialRaw(t, e)
	// head sends req and reads the head of its answer only.
	head := func(req string) string {
		t.Helper()
		if _, err := io.WriteString(rc.c, req); err != nil {
			t.Fatal(err)
		}
		h, err := readHead(rc.br)
		if err != nil {
			t.Fatalf("%q: no answer: %v", req, err)
		}
		return h
	}
	// next checks that the connection serves another request, and that
	// nothing came before its answer (a body where none is).
	next := func(after string) {
		t.Helper()
		if res := rc.do(get1("/ok")); res.status != 200 || res.body != "ok" {
			t.Fatalf("GET after %s: %d %q (%q)", after, res.status, res.body, res.head)
		}
	}
	for _, c := range []struct{ req, status, header string }{
		{"HEAD /head HTTP/1.1\r\nHost: pbx\r\n\r\n", "HTTP/1.1 200 ", "X-Head"},
		{get1("/204"), "HTTP/1.1 204 ", "X-Empty"},
		{get1("/304"), "HTTP/1.1 304 ", "ETag"},
	} {
		h := head(c.req)
		if !strings.HasPrefix(h, c.status) || len(values(h, c.header)) != 1 || len(values(h, "Connection")) != 0 {
			t.Errorf("%q: answer %q", c.req, h)
		}
		next(c.req)
	}
	if h := head("HEAD /head HTTP/1.1\r\nHost: pbx\r\n\r\n"); values(h, "Content-Length")[0] != "5" {
		t.Errorf("HEAD: Content-Length %q, want the upstream's", values(h, "Content-Length"))
	}
	next("a second HEAD")
	if h := head(get1("/103")); !strings.HasPrefix(h, "HTTP/1.1 103 ") || len(values(h, "Link")) != 1 {
		t.Errorf("GET /103: first head %q, want the 103 with its Link", h)
	}
	if res := rc.read(); res.status != 200 || res.body != "hints" || len(values(res.head, "Connection")) != 0 {
		t.Errorf("GET /103: then %d %q (%q)", res.status, res.body, res.head)
	}
	next("a 103")
	if n := len(rec.received()); n != 10 {
		t.Errorf("the upstream received %d requests, want 10", n)
	}
	assertFastPath(t, e)
}

// streamUpstream answers /chunked with chunks and /plain without a length
// (up to its close): a first part at once, the rest once release is
// closed. /held/chunked and /held/plain wait for no release: they send
// their name to cut when the Edge closes their connection.
func streamUpstream(t *testing.T, release <-chan struct{}, cut chan<- string) *rawUpstream {
	return newRawUpstream(t, func(c net.Conn, r upRequest) bool {
		var first, rest string
		wait := release
		path, isHeld := strings.CutPrefix(r.path(), "/held")
		if isHeld {
			wait = nil
		}
		switch path {
		case "/chunked":
			first = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"
			rest = "6\r\nsecond\r\n0\r\n\r\n"
		case "/plain":
			first = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst"
			rest = "second"
		default:
			return answerOK(c)
		}
		if _, err := io.WriteString(c, first); err != nil {
			return false
		}
		gone := make(chan struct{})
		go func() {
			// The Edge sends nothing more on it: a read ends when it
			// closes the connection.
			c.Read(make([]byte, 1))
			close(gone)
		}()
		select {
		case <-wait:
			io.WriteString(c, rest)
		case <-gone:
			cut <- r.path()
		}
		// /plain ends with the close; /chunked too, the Edge having
		// closed the connection of a stream.
		return false
	})
}

// Answers without a length reach the client as they come, say
// Connection: close, and are streams of their side: cut, upstream
// connection and all, when it loses Active.
func TestFastStreams(t *testing.T) {
	release := make(chan struct{})
	cut := make(chan string, 4)
	mainNode, standbyNode := newFakeNode(t, active(1)), newFakeNode(t, inactive(0))
	mainUp, standbyUp := streamUpstream(t, release, cut), newRecorder(t)
	e := startServed(t, []sideSpec{
		{name: "main", node: mainNode, routes: []Route{{Path: "/", Upstream: mainUp.url()}}},
		{name: "standby", node: standbyNode, routes: []Route{{Path: "/", Upstream: standbyUp.url()}}},
	})
	e.waitRouted(t, "main")
	// open sends a GET of path and reads its head and the first part.
	open := func(path, first string) *rawConn {
		t.Helper()
		rc := dialRaw(t, e.testEdge)
		if _, err := io.WriteString(rc.c, get1(path)); err != nil {
			t.Fatal(err)
		}
		head, err := readHead(rc.br)
		if err != nil {
			t.Fatalf("GET %s: no head before the upstream sent the rest: %v", path, err)
		}
		if !strings.HasPrefix(head, "HTTP/1.1 200 ") {
			t.Fatalf("GET %s: %q", path, head)
		}
		if vs := values(head, "Connection"); len(vs) != 1 || vs[0] != "close" {
			t.Errorf("GET %s: Connection %q, want close", path, vs)
		}
		b := make([]byte, len(first))
		if _, err := io.ReadFull(rc.br, b); err != nil || string(b) != first {
			t.Fatalf("GET %s: the first part %q, %v, before the upstream sent the rest", path, b, err)
		}
		return rc
	}
	streams := func() int { return e.Status().Sides[0].Streams }
	chunked := open("/chunked", "5\r\nfirst\r\n")
	plain := open("/plain", "first")
	testkit.Eventually(t, func() bool { return streams() == 2 }, "2 streams tracked")
	close(release)
	if rest, err := io.ReadAll(chunked.br); err != nil || string(rest) != "6\r\nsecond\r\n0\r\n\r\n" {
		t.Errorf("/chunked: the rest %q, %v, then the close", rest, err)
	}
	if rest, err := io.ReadAll(plain.br); err != nil || string(rest) != "second" {
		t.Errorf("/plain: the rest %q, %v, then the close", rest, err)
	}
	testkit.Eventually(t, func() bool { return streams() == 0 }, "the ended streams forgotten")

	// Two streams held open by the upstream; the main loses Active.
	chunked = open("/held/chunked", "5\r\nfirst\r\n")
	plain = open("/held/plain", "first")
	testkit.Eventually(t, func() bool { return streams() == 2 }, "2 held streams tracked")
	if n := testkit.Metric(t, e.reg, "resman_edge_closed_connections_total", nil); n != 0 {
		t.Errorf("closed connections = %v before any switch", n)
	}
	mainNode.SetAnswer(inactive(1))
	standbyNode.SetAnswer(active(2))
	for _, rc := range []*rawConn{chunked, plain} {
		if rest, _ := io.ReadAll(rc.br); len(rest) != 0 {
			t.Errorf("a cut stream got %q more", rest)
		}
	}
	for range 2 {
		select {
		case <-cut:
		case <-time.After(waitLimit):
			t.Fatal("the upstream connection of a cut stream stayed open")
		}
	}
	if n := testkit.Metric(t, e.reg, "resman_edge_closed_connections_total", nil); n != 2 {
		t.Errorf("closed connections = %v, want 2", n)
	}
	if n := streams(); n != 0 {
		t.Errorf("the main still tracks %d streams", n)
	}
	e.waitRouted(t, "standby")
	rc := dialRaw(t, e.testEdge)
	if res := rc.do(get1("/after")); res.status != 200 || len(standbyUp.received()) != 1 {
		t.Errorf("after the switch: %d, the standby received %d", res.status, len(standbyUp.received()))
	}
	assertFastPath(t, e.testEdge)
}

// The watchdog closes a client connection idle for idleTimeout, and one
// whose request has not arrived whole after readTimeout, its body
// stalled half-way; never before (less the clock's grain).
func TestFastWatchdog(t *testing.T) {
	const timeout = 3 * time.Second
	setVar(t, &fastIdleTimeout, timeout)
	setVar(t, &fastReadTimeout, timeout)
	e, rec := startRecorded(t)
	// closedAfter waits for the Edge to close rc (generously), and
	// returns how long that took from start.
	closedAfter := func(rc *rawConn, start time.Time) time.Duration {
		t.Helper()
		_ = rc.c.SetReadDeadline(time.Now().Add(testkit.Patience))
		b, err := io.ReadAll(rc.br)
		if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("the connection was not closed: %v", err)
		}
		if len(b) > 0 {
			t.Logf("the client got %q before the close", b)
		}
		return time.Since(start)
	}
	// The watchdog's clock is a second behind, or more on a loaded
	// machine: a margin of two.
	const least = timeout - 2*watchdogInterval

	// The three at once: the test takes one timeout.
	idle := dialRaw(t, e)
	if res := idle.do(get1("/rec")); res.status != 200 {
		t.Fatalf("GET: %d", res.status)
	}
	idleSince := time.Now()
	stalled := dialRaw(t, e)
	stalledSince := time.Now()
	if _, err := io.WriteString(stalled.c, "POST /rec HTTP/1.1\r\nHost: pbx\r\nContent-Length: 10\r\n\r\nhello"); err != nil {
		t.Fatal(err)
	}
	// A connection on which nothing comes.
	silent := dialRaw(t, e)
	silentSince := time.Now()

	if d := closedAfter(idle, idleSince); d < least {
		t.Errorf("an idle connection was closed after %v, before the idle timeout (%v)", d, timeout)
	}
	if d := closedAfter(stalled, stalledSince); d < least {
		t.Errorf("a stalled request was closed after %v, before the read timeout (%v)", d, timeout)
	}
	if d := closedAfter(silent, silentSince); d < least {
		t.Errorf("a silent connection was closed after %v, before the read timeout (%v)", d, timeout)
	}
	// The upstream got the head and the half body, then the close.
	for _, r := range rec.received()[1:] {
		if len(r.body) == 10 {
			t.Errorf("the upstream received a whole body %q", r.body)
		}
	}
	// The client's time was up, not the upstream's.
	assertNoUpstreamFailure(t, e)
	assertFastPath(t, e)
}

// assertNoUpstreamFailure checks that e counted no upstream error and
// sent no 502, and that its route's status names no error.
func assertNoUpstreamFailure(t *testing.T, e *testEdge) {
	t.Helper()
	if n := upstreamErrors(t, e); n != 0 {
		t.Errorf("upstream errors = %v, want none", n)
	}
	if msg := e.Status().Sides[0].Routes[0].Error; msg != "" {
		t.Errorf("the route's status says the upstream failed: %q", msg)
	}
	if n := testkit.Metric(t, e.reg, "resman_edge_requests_total", map[string]string{"side": "main", "code": "502"}); n != 0 {
		t.Errorf("requests{main,502} = %v, want none", n)
	}
}

// A client that stops reading an answer is closed once a write to it has
// not ended for writeTimeout, and the upstream connection with it:
// neither is held for ever. Not before (less the clock's grain).
// The general path (a percent-encoded path is handed over) bounds each
// write to its client the same way.
func TestFastClientThatDoesNotReadIsClosed(t *testing.T) {
	const timeout = 3 * time.Second
	setVar(t, &writeTimeout, timeout)
	for _, c := range []struct {
		path     string
		handOver bool
	}{{"/big", false}, {"/big%20x", true}} {
		t.Run(c.path, func(t *testing.T) {
			// The upstream sends a 1 GiB answer until its writes fail.
			upClosed := make(chan time.Time, 1)
			up := newRawUpstream(t, func(c net.Conn, r upRequest) bool {
				if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n"); err != nil {
					return false
				}
				chunk := make([]byte, 64<<10)
				for {
					if _, err := c.Write(chunk); err != nil {
						upClosed <- time.Now()
						return false
					}
				}
			})
			e := startFast(t, up.url())
			rc := dialRaw(t, e.testEdge)
			if _, err := io.WriteString(rc.c, get1(c.path)); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			// The client reads nothing; the Edge's writes to it stop once
			// the socket buffers are full, and the upstream's a little later.
			select {
			case at := <-upClosed:
				// The fast path's watchdog ticks; the general path's
				// deadline is exact.
				if d := at.Sub(start); d < timeout-2*watchdogInterval {
					t.Errorf("the upstream connection was closed after %v, before the write timeout (%v)", d, timeout)
				}
			case <-time.After(testkit.Patience):
				t.Fatal("the upstream connection is still held by a client that does not read")
			}
			_ = rc.c.SetReadDeadline(time.Now().Add(testkit.Patience))
			if _, err := io.Copy(io.Discard, rc.c); err != nil && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("the client's connection was not closed: %v", err)
			}
			assertNoUpstreamFailure(t, e.testEdge)
			if n := handedOver(t, e.testEdge); (n == 1) != c.handOver {
				t.Errorf("%v connections went to the general path, want handed over: %v", n, c.handOver)
			}
		})
	}
}

// A client that ends its side before its request body did gets no answer
// and its connection closed; the upstream did not fail: no 502, no
// upstream error, no error on the route's status.
func TestFastClientEndingMidBodyIsNotAnUpstreamError(t *testing.T) {
	e, _ := startRecorded(t)
	rc := dialRaw(t, e)
	if _, err := io.WriteString(rc.c, "POST /rec HTTP/1.1\r\nHost: pbx\r\nContent-Length: 100\r\n\r\nonly ten.."); err != nil {
		t.Fatal(err)
	}
	rc.c.(*net.TCPConn).CloseWrite()
	_ = rc.c.SetReadDeadline(time.Now().Add(testkit.Patience))
	got, err := io.ReadAll(rc.br)
	if err != nil {
		t.Fatalf("the Edge did not close the connection: %v", err)
	}
	if len(got) > 0 {
		t.Errorf("the client got %q, want no answer", got)
	}
	assertNoUpstreamFailure(t, e)
	assertFastPath(t, e)
}

// The general path (a chunked upload is handed over) answers a request
// whose body does not arrive whole with a 400 and a close: a bad chunk, or
// a client that ends mid-upload, is not the upstream's failure, and the
// route's status does not say it is.
func TestGeneralClientBodyErrorsAreNotUpstreamErrors(t *testing.T) {
	const post = "POST /rec HTTP/1.1\r\nHost: pbx\r\nTransfer-Encoding: chunked\r\n\r\n"
	e, rec := startRecorded(t)
	for _, c := range []struct {
		name, body string
		halfClose  bool
	}{
		{"a bad chunk size", "zz\r\nhello\r\n0\r\n\r\n", false},
		{"a chunk longer than its size", "2\r\nhello\r\n0\r\n\r\n", false},
		{"the client ends mid-chunk", "5\r\nhel", true},
		{"the client ends before the last chunk", "5\r\nhello\r\n", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, e)
			if _, err := io.WriteString(rc.c, post+c.body); err != nil {
				t.Fatal(err)
			}
			if c.halfClose {
				rc.c.(*net.TCPConn).CloseWrite()
			}
			_ = rc.c.SetReadDeadline(time.Now().Add(testkit.Patience))
			got, err := io.ReadAll(rc.br)
			if err != nil {
				t.Fatalf("the Edge did not close the connection: %v", err)
			}
			if !strings.HasPrefix(string(got), "HTTP/1.1 400 ") {
				t.Errorf("the client got %q, want a 400", got)
			}
			assertNoUpstreamFailure(t, e)
		})
	}
	if n := handedOver(t, e); n != 4 {
		t.Errorf("%v connections went to the general path, want the 4 chunked uploads", n)
	}
	// A whole chunked upload still goes through.
	before := len(rec.received())
	rc := dialRaw(t, e)
	if res := rc.do(post + "5\r\nhello\r\n0\r\n\r\n"); res.status != 200 {
		t.Fatalf("a whole chunked upload: %d", res.status)
	}
	if got := rec.received()[before:]; len(got) != 1 || got[0].body != "hello" {
		t.Errorf("the upstream received %q", got)
	}
}

// A kept connection the upstream closed while it was idle is found closed
// before a request is written on it: a POST, which cannot go again, gets
// its answer on a new connection, not a 502.
func TestFastIdleConnectionClosedByTheUpstreamIsNotUsed(t *testing.T) {
	// Probed at each reuse: no wait for the clock's tick.
	setVar(t, &idleProbeAfter, 0)
	closed := make(chan struct{}, 1)
	up := newRawUpstream(t, func(c net.Conn, r upRequest) bool {
		if !answerOK(c) {
			return false
		}
		if r.path() == "/first" {
			// Closed once answered, as an upstream's short idle timeout
			// closes it once idle.
			c.Close()
			closed <- struct{}{}
			return false
		}
		return true
	})
	e := startFast(t, up.url())
	rc := dialRaw(t, e.testEdge)
	if res := rc.do(get1("/first")); res.status != 200 {
		t.Fatalf("first GET: %d", res.status)
	}
	<-closed
	// The close reached the Edge's idle connection (on a loaded machine the
	// loopback may deliver it late).
	pool := e.sides[0].routes[0].pool
	testkit.EventuallyWithin(t, testkit.Patience, func() bool {
		pool.mu.Lock()
		defer pool.mu.Unlock()
		return len(pool.idle) == 1 && !pool.idle[0].s.quiet()
	}, "the upstream's close seen on the Edge's idle connection")
	if res := rc.do("POST /second HTTP/1.1\r\nHost: pbx\r\nContent-Length: 5\r\n\r\nhello"); res.status != 200 {
		t.Fatalf("a POST after the upstream closed the idle connection: %d", res.status)
	}
	if n := up.accepted.Load(); n != 2 {
		t.Errorf("the upstream accepted %d connections, want 2", n)
	}
	assertNoUpstreamFailure(t, e.testEdge)
	assertFastPath(t, e.testEdge)
}

// holdUpstream holds its answer to /hold until release is closed, and
// answers every other request at once; held gets a value when a /hold
// arrives.
func holdUpstream(t *testing.T, release <-chan struct{}, held chan<- struct{}) *rawUpstream {
	return newRawUpstream(t, func(c net.Conn, r upRequest) bool {
		if r.path() == "/hold" {
			held <- struct{}{}
			<-release
			_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nheld")
			return err == nil
		}
		return answerOK(c)
	})
}

// waitHeld waits for the upstream to hold a request.
func waitHeld(t *testing.T, held <-chan struct{}) {
	t.Helper()
	select {
	case <-held:
	case <-time.After(waitLimit):
		t.Fatal("the request did not reach the upstream")
	}
}

// holdTheOneConnection starts an Edge in front of an upstream that holds
// GET /hold until release is closed, and makes holder's request take the
// pool's one connection; waiter is a second client.
func holdTheOneConnection(t *testing.T) (up *rawUpstream, e *served, holder, waiter *rawConn, release chan struct{}) {
	t.Helper()
	release, held := make(chan struct{}), make(chan struct{}, 4)
	up = holdUpstream(t, release, held)
	e = startFast(t, up.url())
	holder, waiter = dialRaw(t, e.testEdge), dialRaw(t, e.testEdge)
	if _, err := io.WriteString(holder.c, get1("/hold")); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, held)
	return up, e, holder, waiter, release
}

// The fast path opens at most poolMaxConns connections to an upstream: a
// request beyond waits for one to be freed, and gets a 502 after
// poolWait when none is.
func TestFastUpstreamPoolBound(t *testing.T) {
	setVar(t, &poolMaxConns, 1)
	t.Run("freed", func(t *testing.T) {
		// Long enough for any machine.
		setVar(t, &poolWait, testkit.Patience)
		up, e, holder, waiter, release := holdTheOneConnection(t)
		if _, err := io.WriteString(waiter.c, get1("/next")); err != nil {
			t.Fatal(err)
		}
		// No answer while the one connection is held (a bound not kept
		// would answer at once).
		_ = waiter.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := waiter.br.Peek(1); err == nil {
			t.Fatal("a request beyond the bound was answered while the connection was held")
		}
		_ = waiter.c.SetReadDeadline(time.Now().Add(waitLimit))
		close(release)
		if res := holder.read(); res.status != 200 || res.body != "held" {
			t.Errorf("the held request: %d %q", res.status, res.body)
		}
		if res := waiter.read(); res.status != 200 || res.body != "ok" {
			t.Errorf("the waiting request: %d %q", res.status, res.body)
		}
		if n := up.accepted.Load(); n != 1 {
			t.Errorf("the upstream accepted %d connections, want 1", n)
		}
		assertFastPath(t, e.testEdge)
	})
	t.Run("none freed", func(t *testing.T) {
		setVar(t, &poolWait, time.Second)
		up, e, holder, waiter, release := holdTheOneConnection(t)
		res := waiter.do(get1("/next"))
		if res.status != http.StatusBadGateway || !strings.Contains(res.body, "Bad gateway") {
			t.Errorf("a request that found no connection: %d %q, want the 502 page", res.status, res.body)
		}
		if n := upstreamErrors(t, e.testEdge); n != 1 {
			t.Errorf("upstream errors = %v, want 1", n)
		}
		close(release)
		if res := holder.read(); res.status != 200 || res.body != "held" {
			t.Errorf("the held request: %d %q", res.status, res.body)
		}
		// The client's connection stayed open; the upstream's is free.
		if res := waiter.do(get1("/next")); res.status != 200 || res.body != "ok" {
			t.Errorf("the next request: %d %q", res.status, res.body)
		}
		if n := up.accepted.Load(); n != 1 {
			t.Errorf("the upstream accepted %d connections, want 1", n)
		}
		assertFastPath(t, e.testEdge)
	})
}

// waitServe waits (generously) for Serve to return after stop.
func (s *served) waitServe(t *testing.T) bool {
	t.Helper()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		s.done <- nil // for the cleanup
		return true
	case <-time.After(waitLimit + shutdownTimeout):
		serveDidNotReturn(t)
		return false
	}
}

// A shutdown closes the idle client connections at once and lets a
// request in flight end, its answer whole and saying Connection: close;
// then Serve returns.
func TestFastShutdown(t *testing.T) {
	release, held := make(chan struct{}), make(chan struct{}, 4)
	up := holdUpstream(t, release, held)
	e := startFast(t, up.url())
	idle, busy := dialRaw(t, e.testEdge), dialRaw(t, e.testEdge)
	if res := idle.do(get1("/a")); res.status != 200 {
		t.Fatalf("GET: %d", res.status)
	}
	if _, err := io.WriteString(busy.c, get1("/hold")); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, held)
	e.cancel()
	// The idle connection closes: the shutdown has begun.
	if !idle.closed() {
		t.Fatal("the idle connection stayed open")
	}
	// The answer comes now, well within the shutdown's time
	// (shutdownTimeout, 3 s).
	close(release)
	res := busy.read()
	if res.status != 200 || res.body != "held" {
		t.Errorf("the request in flight: %d %q, want its whole answer", res.status, res.body)
	}
	if vs := values(res.head, "Connection"); len(vs) != 1 || vs[0] != "close" {
		t.Errorf("the answer during the shutdown says Connection %q, want close", vs)
	}
	if !busy.closed() {
		t.Error("the connection stayed open after its answer")
	}
	e.waitServe(t)
	assertFastPath(t, e.testEdge)
}

// A request whose answer does not come before the shutdown's time is up
// is cut, and not sent again on another connection (which the shutdown
// would then wait for).
func TestFastShutdownCutsAHeldRequest(t *testing.T) {
	release, held := make(chan struct{}), make(chan struct{}, 4)
	up := holdUpstream(t, release, held)
	e := startFast(t, up.url())
	rc := dialRaw(t, e.testEdge)
	// The upstream connection is a kept one for the second request.
	if res := rc.do(get1("/a")); res.status != 200 {
		t.Fatalf("GET: %d", res.status)
	}
	if _, err := io.WriteString(rc.c, get1("/hold")); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, held)
	e.cancel()
	ok := e.waitServe(t)
	close(release)
	if !ok {
		<-e.done
		e.done <- nil
	}
	if got := up.lines(); len(got) != 2 {
		t.Errorf("the upstream read %q, want /hold once", got)
	}
	if !rc.closed() {
		t.Error("the client's connection stayed open")
	}
	// The shutdown cut it: the upstream did not fail.
	if n := upstreamErrors(t, e.testEdge); n != 0 {
		t.Errorf("upstream errors = %v, want none", n)
	}
	assertFastPath(t, e.testEdge)
}

// The Edge's pages on the fast path: 503 with Retry-After with no side
// Active, 404 with no route; the connection stays open. A request with a
// body the Edge answers itself goes to the general path, which reads the
// body, and gets the same page.
func TestFastPages(t *testing.T) {
	node := newFakeNode(t, inactive(0))
	rec := newRecorder(t)
	e := startServed(t, []sideSpec{{name: "main", node: node, routes: []Route{{Path: "/api", Upstream: rec.url()}}}})
	testkit.Eventually(t, func() bool { return e.Status().Sides[0].LastCheck != (time.Time{}) }, "a check of the node")
	rc := dialRaw(t, e.testEdge)
	var fastPage string
	for i := range 2 {
		res := rc.do(get1("/api/x"))
		if res.status != 503 || !strings.Contains(res.body, "Service unavailable") {
			t.Fatalf("GET %d with no side Active: %d %q", i, res.status, res.body)
		}
		if vs := values(res.head, "Retry-After"); len(vs) != 1 || vs[0] != "1" {
			t.Errorf("Retry-After %q, want 1", vs)
		}
		if vs := values(res.head, "Connection"); len(vs) != 0 {
			t.Errorf("the 503 says Connection %q: the connection stays open", vs)
		}
		fastPage = res.body
	}
	assertFastPath(t, e.testEdge)
	// A client's close is kept.
	if res := rc.do("GET /api/x HTTP/1.1\r\nHost: pbx\r\nConnection: close\r\n\r\n"); res.status != 503 || !rc.closed() {
		t.Errorf("GET with Connection: close: %d, then the connection stays open", res.status)
	}

	rc = dialRaw(t, e.testEdge)
	res := rc.do("POST /api/x HTTP/1.1\r\nHost: pbx\r\nContent-Length: 5\r\n\r\nhello")
	if res.status != 503 || res.body != fastPage {
		t.Errorf("POST with no side Active: %d %q, want the same 503 page", res.status, res.body)
	}
	if vs := values(res.head, "Retry-After"); len(vs) != 1 || vs[0] != "1" {
		t.Errorf("POST: Retry-After %q, want 1", vs)
	}
	if n := handedOver(t, e.testEdge); n != 1 {
		t.Errorf("%v connections went to the general path, want the POST's", n)
	}
	// The general path read the body: the connection serves another.
	if res := rc.do(get1("/api/x")); res.status != 503 {
		t.Errorf("GET after the POST: %d", res.status)
	}

	node.SetAnswer(active(1))
	e.waitRouted(t, "main")
	rc = dialRaw(t, e.testEdge)
	for i := range 2 {
		if res := rc.do(get1("/other")); res.status != 404 || !strings.Contains(res.body, "Not found") {
			t.Fatalf("GET %d of no route: %d %q", i, res.status, res.body)
		}
	}
	if res := rc.do(get1("/api/x")); res.status != 200 || len(rec.received()) != 1 {
		t.Errorf("GET /api/x: %d, the upstream received %d", res.status, len(rec.received()))
	}
	if n := handedOver(t, e.testEdge); n != 1 {
		t.Errorf("%v connections went to the general path, want the POST's only", n)
	}
	if n := testkit.Metric(t, e.reg, "resman_edge_requests_total", map[string]string{"side": "none", "code": "503"}); n != 5 {
		t.Errorf("requests{none,503} = %v, want 5", n)
	}
	if n := testkit.Metric(t, e.reg, "resman_edge_requests_total", map[string]string{"side": "none", "code": "404"}); n != 2 {
		t.Errorf("requests{none,404} = %v, want 2", n)
	}
}

// An upstream that refuses the connection, answers garbage or a 101 to a
// plain GET: the client gets the 502 page, its connection stays open, the
// error is counted and the route's status says why, until the upstream
// answers again.
func TestFastUpstreamErrors(t *testing.T) {
	dead, err := net.Listen("tcp", testkit.Addr(t)) // kept free once closed
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	bad := newRawUpstream(t, func(c net.Conn, r upRequest) bool {
		var err error
		switch r.path() {
		case "/garbage":
			_, err = io.WriteString(c, "hello, I am not HTTP\r\n\r\n")
		case "/101":
			_, err = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		default:
			return answerOK(c)
		}
		return err == nil
	})
	node := newFakeNode(t, active(1))
	e := startServed(t, []sideSpec{{name: "main", node: node, routes: []Route{
		{Path: "/dead", Upstream: deadURL}, {Path: "/", Upstream: bad.url()},
	}}})
	e.waitRouted(t, "main")
	// routeError is the route's last error in the status.
	routeError := func(path string) string {
		for _, r := range e.Status().Sides[0].Routes {
			if r.Path == path {
				return r.Error
			}
		}
		t.Fatalf("no route %s", path)
		return ""
	}
	rc := dialRaw(t, e.testEdge)
	for i, c := range []struct{ path, route string }{{"/dead", "/dead"}, {"/garbage", "/"}, {"/101", "/"}} {
		res := rc.do(get1(c.path))
		if res.status != http.StatusBadGateway || !strings.Contains(res.body, "Bad gateway") {
			t.Errorf("GET %s: %d %q, want the 502 page", c.path, res.status, res.body)
		}
		if strings.Contains(res.body, "127.0.0.1") {
			t.Errorf("GET %s: the page names an upstream: %q", c.path, res.body)
		}
		if n := upstreamErrors(t, e.testEdge); n != float64(i+1) {
			t.Errorf("after GET %s upstream errors = %v, want %d", c.path, n, i+1)
		}
		if msg := routeError(c.route); msg == "" {
			t.Errorf("after GET %s the route %s has no error in the status", c.path, c.route)
		} else {
			t.Logf("GET %s: route error %q", c.path, msg)
		}
	}
	if n := testkit.Metric(t, e.reg, "resman_edge_requests_total", map[string]string{"side": "main", "route": "/", "code": "502"}); n != 2 {
		t.Errorf("requests{main,/,502} = %v, want 2", n)
	}
	// The connection served them all; the upstream answers again.
	if res := rc.do(get1("/fine")); res.status != 200 || res.body != "ok" {
		t.Errorf("GET /fine: %d %q", res.status, res.body)
	}
	if msg := routeError("/"); msg != "" {
		t.Errorf("the route / still has the error %q after an answer", msg)
	}
	assertFastPath(t, e.testEdge)
}

// Over the Edge's TLS listener the fast path says X-Forwarded-Proto:
// https, and a WebSocket upgrade, handed to the general path with the
// bytes read already, still works over the TLS connection.
func TestFastTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	node := newFakeNode(t, active(1))
	rec := newRecorder(t)
	rec.answer("/ws", rawAnswer{raw: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", echo: true})
	e := startServed(t, []sideSpec{{name: "main", node: node, routes: []Route{{Path: "/", Upstream: rec.url()}}}},
		func(o *Options) { o.TLSCert, o.TLSKey = certFile, keyFile })
	e.waitRouted(t, "main")
	c, err := tls.Dial("tcp", e.Addr(), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	rc := &rawConn{t: t, c: c, br: bufio.NewReader(c)}
	for i := range 2 {
		if res := rc.do(get1("/rec")); res.status != 200 || res.body != "ok" {
			t.Fatalf("GET %d over TLS: %d %q", i, res.status, res.body)
		}
	}
	assertFastPath(t, e.testEdge)
	for i, r := range rec.received() {
		if vs := values(r.head, "X-Forwarded-Proto"); len(vs) != 1 || vs[0] != "https" {
			t.Errorf("request %d: the upstream got X-Forwarded-Proto %q, want https", i, vs)
		}
	}
	// The upgrade on the same connection: the general path takes it over.
	res := rc.do("GET /ws HTTP/1.1\r\nHost: pbx\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if res.status != http.StatusSwitchingProtocols {
		t.Fatalf("the upgrade over TLS: %d %q", res.status, res.head)
	}
	if n := handedOver(t, e.testEdge); n != 1 {
		t.Errorf("%v connections went to the general path, want the upgrade's", n)
	}
	if _, err := io.WriteString(rc.c, "ping"); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(rc.br, b); err != nil || string(b) != "ping" {
		t.Fatalf("echo through the tunnel over TLS: %q, %v", b, err)
	}
	got := rec.received()
	if len(got) != 3 {
		t.Fatalf("the upstream received %d requests, want 3", len(got))
	}
	if vs := values(got[2].head, "X-Forwarded-Proto"); len(vs) != 1 || vs[0] != "https" {
		t.Errorf("the upgrade: the upstream got X-Forwarded-Proto %q, want https (the general path sees TLS)", vs)
	}
}

// An upstream that closes its kept connections at once (it restarted, or
// its idle timeout is shorter than the Edge's): a GET that finds them
// closed still gets its answer, on a new connection, however many the
// pool kept.
func TestFastRetryAfterTheUpstreamClosedAllItsConnections(t *testing.T) {
	release, held := make(chan struct{}), make(chan struct{}, 4)
	up := holdUpstream(t, release, held)
	e := startFast(t, up.url())
	// Three upstream connections at once, then kept.
	var rcs []*rawConn
	for range 3 {
		rc := dialRaw(t, e.testEdge)
		if _, err := io.WriteString(rc.c, get1("/hold")); err != nil {
			t.Fatal(err)
		}
		waitHeld(t, held)
		rcs = append(rcs, rc)
	}
	close(release)
	for _, rc := range rcs {
		if res := rc.read(); res.status != 200 {
			t.Fatalf("GET /hold: %d", res.status)
		}
	}
	if n := up.accepted.Load(); n != 3 {
		t.Fatalf("the upstream accepted %d connections, want 3", n)
	}
	up.closeConns()
	if res := rcs[0].do(get1("/after")); res.status != 200 || res.body != "ok" {
		t.Errorf("GET after the upstream closed its connections: %d %q, want it sent again on a new one", res.status, res.body)
	}
	if got := up.lines(); len(got) != 4 || got[3] != "GET /after HTTP/1.1" {
		t.Errorf("the upstream read %q, want /after once", got)
	}
	if n := upstreamErrors(t, e.testEdge); n != 0 {
		t.Errorf("upstream errors = %v, want none", n)
	}
	assertFastPath(t, e.testEdge)
}

// An upstream that sends more than its answer (a body to a HEAD, a 204
// or a 304, or bytes after the body): what follows is no answer to the
// next request, which gets its own.
func TestFastBytesPastTheAnswerAreNotTheNextAnswer(t *testing.T) {
	const smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"
	up := newRawUpstream(t, func(c net.Conn, r upRequest) bool {
		var err error
		switch r.path() {
		case "/head":
			_, err = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody")
		case "/204":
			_, err = io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n"+smuggled)
		case "/304":
			_, err = io.WriteString(c, "HTTP/1.1 304 Not Modified\r\n\r\n"+smuggled)
		case "/more":
			_, err = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmore"+smuggled)
		default:
			return answerOK(c)
		}
		return err == nil
	})
	e := startFast(t, up.url())
	for _, req := range []string{"HEAD /head HTTP/1.1\r\nHost: pbx\r\n\r\n", get1("/204"), get1("/304"), get1("/more")} {
		rc := dialRaw(t, e.testEdge)
		if _, err := io.WriteString(rc.c, req); err != nil {
			t.Fatal(err)
		}
		head, err := readHead(rc.br)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(req, "GET /more") {
			if b := make([]byte, 4); func() bool { _, err := io.ReadFull(rc.br, b); return err != nil || string(b) != "more" }() {
				t.Fatalf("%q: the body %q", req, b)
			}
		}
		// Another client's request, then this client's.
		other := dialRaw(t, e.testEdge)
		for _, c := range []*rawConn{other, rc} {
			if res := c.do(get1("/next")); res.status != 200 || res.body != "ok" {
				t.Errorf("after %q (%q): the next request got %d %q, want the upstream's ok", req, head, res.status, res.body)
			}
		}
	}
	assertFastPath(t, e.testEdge)
}

// Interim answers (103 Early Hints) reach the client as they come, before
// the upstream has its answer; an upstream that sends interim answers
// without end gets a 502 after 100, as on the general path (fasthttp).
func TestFastInterimAnswers(t *testing.T) {
	release := make(chan struct{})
	up := newRawUpstream(t, func(c net.Conn, r upRequest) bool {
		var err error
		switch r.path() {
		case "/hints":
			if _, err = io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"); err != nil {
				return false
			}
			<-release
			_, err = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhints")
		case "/endless":
			_, err = io.WriteString(c, strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 101)+okAnswer)
		default:
			return answerOK(c)
		}
		return err == nil
	})
	e := startFast(t, up.url())
	rc := dialRaw(t, e.testEdge)
	if _, err := io.WriteString(rc.c, get1("/hints")); err != nil {
		t.Fatal(err)
	}
	head, err := readHead(rc.br)
	close(release)
	if err != nil || !strings.HasPrefix(head, "HTTP/1.1 103 ") || len(values(head, "Link")) != 1 {
		t.Fatalf("the 103 before the answer: %q, %v", head, err)
	}
	if res := rc.read(); res.status != 200 || res.body != "hints" {
		t.Errorf("then %d %q", res.status, res.body)
	}
	rc = dialRaw(t, e.testEdge)
	if _, err := io.WriteString(rc.c, get1("/endless")); err != nil {
		t.Fatal(err)
	}
	interim := 0
	for {
		head, err := readHead(rc.br)
		if err != nil {
			t.Fatalf("after %d interim answers: %v", interim, err)
		}
		if !strings.HasPrefix(head, "HTTP/1.1 1") {
			if !strings.HasPrefix(head, "HTTP/1.1 502 ") {
				t.Errorf("after %d interim answers: %q, want 502", interim, head)
			}
			break
		}
		if interim++; !strings.HasPrefix(head, "HTTP/1.1 100 ") {
			t.Fatalf("interim answer %d: %q", interim, head)
		}
	}
	if interim != 100 {
		t.Errorf("the client got %d interim answers, want 100", interim)
	}
	if n := upstreamErrors(t, e.testEdge); n != 1 {
		t.Errorf("upstream errors = %v, want 1", n)
	}
	assertFastPath(t, e.testEdge)
}
