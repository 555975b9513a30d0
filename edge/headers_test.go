package edge

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// recorder is an upstream that keeps, byte for byte, the header block of
// every request it receives (and the body), and answers what the test set
// for the request's path: what reaches a PBX is what it recorded.
type recorder struct {
	ln      net.Listener
	mu      sync.Mutex
	got     []recorded
	answers map[string]rawAnswer
}

type recorded struct {
	head    string // request line and header lines, as received
	body    string
	trailer string // a chunked body's trailer section, as received
}

// rawAnswer is written as is. echo: then copy the connection's bytes
// back (an upgraded connection); close: then close the connection.
type rawAnswer struct {
	raw         string
	echo, close bool
}

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln, answers: map[string]rawAnswer{}}
	var wg sync.WaitGroup
	var conns sync.Map
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, nil)
			wg.Go(func() {
				defer conns.Delete(c)
				defer c.Close()
				r.serve(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return r
}

func (r *recorder) url() string { return "http://" + r.ln.Addr().String() }

func (r *recorder) answer(path string, a rawAnswer) {
	r.mu.Lock()
	r.answers[path] = a
	r.mu.Unlock()
}

// received is what the upstream has received so far.
func (r *recorder) received() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.got...)
}

func (r *recorder) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		head, err := readHead(br)
		if err != nil {
			return
		}
		rec := recorded{head: head}
		req, perr := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if perr == nil {
			var body io.Reader
			switch {
			case len(req.TransferEncoding) > 0:
				body = httputil.NewChunkedReader(br)
			case req.ContentLength > 0:
				body = io.LimitReader(br, req.ContentLength)
			}
			if body != nil {
				b, err := io.ReadAll(body)
				if err != nil {
					return
				}
				rec.body = string(b)
				if len(req.TransferEncoding) > 0 {
					// The trailer section, up to its empty line.
					if rec.trailer, err = readHead(br); err != nil {
						return
					}
				}
			}
		}
		r.mu.Lock()
		r.got = append(r.got, rec)
		a, ok := rawAnswer{raw: okAnswer}, false
		if perr == nil {
			a, ok = r.answers[req.URL.Path]
		}
		r.mu.Unlock()
		if !ok && perr == nil {
			a = rawAnswer{raw: okAnswer}
		}
		if perr != nil {
			a = rawAnswer{raw: "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", close: true}
		}
		if _, err := io.WriteString(c, a.raw); err != nil {
			return
		}
		if a.echo {
			io.Copy(c, br)
			return
		}
		if a.close {
			return
		}
	}
}

// readHead reads a header block up to its empty line (the first line
// included), or a trailer section.
func readHead(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		b.WriteString(line)
		if line == "\r\n" || line == "\n" {
			return b.String(), nil
		}
	}
}

// field is a header line: its name as written and its value, trimmed.
type field struct{ name, value string }

// fields are the header lines of a head, in order (its first line left
// out).
func fields(head string) []field {
	var fs []field
	lines := strings.Split(strings.TrimRight(head, "\r\n"), "\n")
	for _, l := range lines[1:] {
		name, value, _ := strings.Cut(strings.TrimRight(l, "\r"), ":")
		fs = append(fs, field{name, strings.TrimSpace(value)})
	}
	return fs
}

// values are the values of the header lines named name (in any case), in
// order.
func values(head, name string) []string {
	var vs []string
	for _, f := range fields(head) {
		if strings.EqualFold(f.name, name) {
			vs = append(vs, f.value)
		}
	}
	return vs
}

// rawConn is a client connection to the Edge on which the test writes
// requests byte for byte.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, e *testEdge) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", e.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// rawResponse is an answer as the client received it.
type rawResponse struct {
	head    string
	status  int
	body    string
	trailer string // a chunked body's trailer section, its empty line included
}

// do writes req and reads the answer: a 101's head only, else the head and
// its body (by length, chunked, or up to the close).
func (rc *rawConn) do(req string) rawResponse {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, req); err != nil {
		rc.t.Fatal(err)
	}
	return rc.read()
}

func (rc *rawConn) read() rawResponse {
	rc.t.Helper()
	head, err := readHead(rc.br)
	if err != nil {
		rc.t.Fatalf("reading the answer: %v", err)
	}
	res := rawResponse{head: head}
	first, _, _ := strings.Cut(head, "\r\n")
	if f := strings.Fields(first); len(f) >= 2 {
		res.status, _ = strconv.Atoi(f[1])
	}
	if res.status == http.StatusSwitchingProtocols {
		return res
	}
	var body io.Reader
	chunked := false
	if cl := values(head, "Content-Length"); len(cl) == 1 {
		n, _ := strconv.ParseInt(cl[0], 10, 64)
		body = io.LimitReader(rc.br, n)
	} else if te := values(head, "Transfer-Encoding"); len(te) > 0 && strings.EqualFold(te[len(te)-1], "chunked") {
		body, chunked = httputil.NewChunkedReader(rc.br), true
	} else {
		body = rc.br
	}
	b, err := io.ReadAll(body)
	if err != nil {
		rc.t.Fatalf("reading the body: %v", err)
	}
	if chunked {
		if res.trailer, err = readHead(rc.br); err != nil {
			rc.t.Fatalf("reading the trailer section: %v", err)
		}
	}
	res.body = string(b)
	return res
}

// closed says whether the Edge closed the connection (no more bytes).
func (rc *rawConn) closed() bool {
	rc.t.Helper()
	_ = rc.c.SetReadDeadline(time.Now().Add(waitLimit))
	_, err := rc.br.ReadByte()
	return err != nil
}

// startRecorded is an Edge routing / to a recorder.
func startRecorded(t *testing.T) (*testEdge, *recorder) {
	t.Helper()
	node := newFakeNode(t, active(1))
	rec := newRecorder(t)
	e := startEdge(t, fast(), []sideSpec{{name: "main", node: node,
		routes: []Route{{Path: "/", Upstream: rec.url()}}}})
	e.waitRouted(t, "main")
	return e, rec
}

// onlyOne is the single request the upstream received.
func onlyOne(t *testing.T, rec *recorder) recorded {
	t.Helper()
	got := rec.received()
	if len(got) != 1 {
		t.Fatalf("the upstream received %d requests, want 1: %q", len(got), got)
	}
	return got[0]
}

// assertAbsent fails for every header of names present in head.
func assertAbsent(t *testing.T, where, head string, names ...string) {
	t.Helper()
	for _, n := range names {
		if vs := values(head, n); len(vs) > 0 {
			t.Errorf("%s got %s: %q", where, n, vs)
		}
	}
}

func TestHopByHopRequestHeadersAreRemoved(t *testing.T) {
	e, rec := startRecorded(t)
	rc := dialRaw(t, e)
	res := rc.do("GET /rec HTTP/1.1\r\n" +
		"Host: pbx.example.org\r\n" +
		"Connection: keep-alive, X-Secret\r\n" +
		"X-Kept: first\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"Proxy-Connection: keep-alive\r\n" +
		"Proxy-Authorization: Basic dXNlcjpwYXNz\r\n" +
		"Proxy-Authenticate: Basic\r\n" +
		"TE: trailers\r\n" +
		"Trailer: X-Checksum\r\n" +
		"Upgrade: foo/2\r\n" +
		"connection: X-Other , x-third\r\n" +
		"X-Secret: 1\r\n" +
		"x-secret: 2\r\n" +
		"X-Other: 3\r\n" +
		"X-Third: 4\r\n" +
		"X-Kept: second\r\n" +
		"\r\n")
	if res.status != 200 || res.body != "ok" {
		t.Fatalf("answer %d %q", res.status, res.body)
	}
	got := onlyOne(t, rec)
	assertAbsent(t, "the upstream", got.head, "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization",
		"Proxy-Authenticate", "TE", "Trailer", "Upgrade", "X-Secret", "X-Other", "X-Third")
	// What is not hop-by-hop goes through, in its order.
	if vs := values(got.head, "X-Kept"); strings.Join(vs, "|") != "first|second" {
		t.Errorf("the upstream got X-Kept %q, want first then second", vs)
	}
	if vs := values(got.head, "X-Forwarded-For"); len(vs) != 1 || vs[0] != "127.0.0.1" {
		t.Errorf("the upstream got X-Forwarded-For %q", vs)
	}
	if vs := values(got.head, "Host"); len(vs) != 1 || vs[0] != strings.TrimPrefix(rec.url(), "http://") {
		t.Errorf("the upstream got Host %q", vs)
	}
	// The client's connection stays open, and so does the upstream's: a
	// second request on it goes the same way.
	res = rc.do("GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nConnection: X-Secret\r\nX-Secret: 1\r\n\r\n")
	if got := rec.received(); res.status != 200 || len(got) != 2 {
		t.Fatalf("second request: %d, the upstream got %d", res.status, len(got))
	} else {
		assertAbsent(t, "the upstream (second request)", got[1].head, "Connection", "X-Secret")
	}
}

// A client that names the Edge's own headers in Connection cannot remove
// them, nor break the framing of its body by naming Content-Length.
func TestConnectionCannotRemoveTheEdgesHeaders(t *testing.T) {
	e, rec := startRecorded(t)
	rc := dialRaw(t, e)
	res := rc.do("POST /rec HTTP/1.1\r\n" +
		"Host: pbx.example.org\r\n" +
		"Connection: X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto, Host, Content-Length, Transfer-Encoding\r\n" +
		"X-Forwarded-For: 203.0.113.7\r\n" +
		"X-Forwarded-For: 198.51.100.9\r\n" +
		"X-Forwarded-Proto: gopher\r\n" +
		"Content-Length: 5\r\n" +
		"\r\n" +
		"hello")
	if res.status != 200 {
		t.Fatalf("answer %d %q", res.status, res.body)
	}
	got := onlyOne(t, rec)
	want := map[string]string{
		// The client's list, then the address the Edge saw, in one field.
		"X-Forwarded-For":   "203.0.113.7, 198.51.100.9, 127.0.0.1",
		"X-Forwarded-Host":  "pbx.example.org",
		"X-Forwarded-Proto": "http",
		"Host":              strings.TrimPrefix(rec.url(), "http://"),
		"Content-Length":    "5",
	}
	for name, v := range want {
		if vs := values(got.head, name); len(vs) != 1 || vs[0] != v {
			t.Errorf("the upstream got %s %q, want %q", name, vs, v)
		}
	}
	assertAbsent(t, "the upstream", got.head, "Connection")
	if got.body != "hello" {
		t.Errorf("the upstream got the body %q", got.body)
	}

	// Nor by announcing them as trailers (a GET sends none): fasthttp
	// refuses X-Forwarded-* as trailer names.
	rc = dialRaw(t, e)
	res = rc.do("GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\n" +
		"Trailer: X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto\r\n\r\n")
	if res.status != 400 {
		t.Errorf("Trailer naming the Edge's headers: answer %d %q, want 400", res.status, res.body)
	}
	if all := rec.received(); len(all) != 1 {
		t.Errorf("the upstream received %d requests, want 1: %q", len(all), all)
	}
}

func TestHopByHopResponseHeadersAreRemoved(t *testing.T) {
	e, rec := startRecorded(t)
	hop := "Connection: X-Secret, keep-alive\r\n" +
		"X-Kept: first\r\n" +
		"connection: x-other\r\n" +
		"X-Secret: 1\r\n" +
		"X-Other: 2\r\n" +
		"Keep-Alive: timeout=5, max=100\r\n" +
		"Proxy-Authenticate: Basic realm=\"pbx\"\r\n" +
		"Proxy-Connection: keep-alive\r\n" +
		"Upgrade: h2c\r\n" +
		"TE: trailers\r\n" +
		"X-Kept: second\r\n"
	hopNames := []string{"X-Secret", "X-Other", "Keep-Alive", "Proxy-Authenticate", "Proxy-Connection", "Upgrade", "TE", "Trailer"}
	// Read whole, then sent on.
	rec.answer("/small", rawAnswer{raw: "HTTP/1.1 200 OK\r\n" + hop + "Content-Length: 5\r\n\r\nsmall"})
	// No length: streamed.
	rec.answer("/stream", rawAnswer{raw: "HTTP/1.1 200 OK\r\n" + hop + "Trailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"6\r\nstream\r\n0\r\nX-Checksum: 1\r\n\r\n"})
	// An event stream, tunnelled, up to the close or chunked.
	rec.answer("/events", rawAnswer{raw: "HTTP/1.1 200 OK\r\n" + hop + "Content-Type: text/event-stream\r\n\r\n" +
		"data: one\n\n", close: true})
	rec.answer("/events-chunked", rawAnswer{raw: "HTTP/1.1 200 OK\r\n" + hop + "Content-Type: text/event-stream\r\n" +
		"Trailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"b\r\ndata: one\n\n\r\n0\r\nX-Checksum: 1\r\n\r\n"})

	rc := dialRaw(t, e)
	res := rc.do("GET /small HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n")
	if res.status != 200 || res.body != "small" {
		t.Fatalf("GET /small: %d %q", res.status, res.body)
	}
	assertAbsent(t, "the client (/small)", res.head, append(hopNames, "Connection")...)
	if vs := values(res.head, "X-Kept"); strings.Join(vs, "|") != "first|second" {
		t.Errorf("the client got X-Kept %q, want first then second", vs)
	}
	// The upstream's keep-alive is not the client's business: its
	// connection stays open.
	res = rc.do("GET /stream HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n")
	if res.status != 200 || res.body != "stream" {
		t.Fatalf("GET /stream: %d %q", res.status, res.body)
	}
	// Trailer goes; the trailer fields are fasthttp's to relay (see
	// README.md, Headers).
	assertAbsent(t, "the client (/stream)", res.head, hopNames...)
	// A streamed answer closes the client's connection: Connection says
	// only that.
	if vs := values(res.head, "Connection"); len(vs) != 1 || vs[0] != "close" {
		t.Errorf("the client (/stream) got Connection %q, want close", vs)
	}
	if vs := values(res.head, "X-Kept"); strings.Join(vs, "|") != "first|second" {
		t.Errorf("the client (/stream) got X-Kept %q", vs)
	}

	rc = dialRaw(t, e)
	res = rc.do("GET /events HTTP/1.1\r\nHost: pbx.example.org\r\nAccept: text/event-stream\r\n\r\n")
	if res.status != 200 || res.body != "data: one\n\n" {
		t.Fatalf("GET /events: %d %q", res.status, res.body)
	}
	assertAbsent(t, "the client (/events)", res.head, hopNames...)
	if vs := values(res.head, "Connection"); len(vs) != 1 || vs[0] != "close" {
		t.Errorf("the client (/events) got Connection %q, want close", vs)
	}
	if vs := values(res.head, "X-Kept"); strings.Join(vs, "|") != "first|second" {
		t.Errorf("the client (/events) got X-Kept %q", vs)
	}

	rc = dialRaw(t, e)
	res = rc.do("GET /events-chunked HTTP/1.1\r\nHost: pbx.example.org\r\nAccept: text/event-stream\r\n\r\n")
	if res.status != 200 || res.body != "data: one\n\n" {
		t.Fatalf("GET /events-chunked: %d %q", res.status, res.body)
	}
	assertAbsent(t, "the client (/events-chunked)", res.head, hopNames...)
	if vs := values(res.head, "Transfer-Encoding"); len(vs) != 1 || vs[0] != "chunked" {
		t.Errorf("the client (/events-chunked) got Transfer-Encoding %q", vs)
	}
	if res.trailer != "\r\n" {
		t.Errorf("the client (/events-chunked) got the trailer section %q, want none", res.trailer)
	}
	// The tunnel ends with the answer.
	if !rc.closed() {
		t.Error("the tunnel stayed open after a chunked answer")
	}
}

// A header line that fills the tunnel's read buffer up to its CRLF is
// not the end of the head.
func TestReadRawHeadLongLine(t *testing.T) {
	long := "X-Long: " + strings.Repeat("a", 16-len("X-Long: "))
	head := "HTTP/1.1 200 OK\r\n" + long + "\r\nX-After: 1\r\n\r\n"
	got, err := readRawHead(nil, bufio.NewReaderSize(strings.NewReader(head+"body"), 16))
	if err != nil || string(got) != head {
		t.Fatalf("readRawHead = %q, %v; want %q", got, err, head)
	}
}

// A WebSocket upgrade keeps its Upgrade and Connection: Upgrade, and only
// them, in both directions, however the client splits its Connection
// header; bytes then go both ways.
func TestWebSocketUpgradeHopHeaders(t *testing.T) {
	e, rec := startRecorded(t)
	rec.answer("/ws", rawAnswer{raw: "HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade, X-Secret\r\n" +
		"X-Secret: 1\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
		"\r\n", echo: true})
	for i, conn := range []string{
		"Connection: keep-alive, Upgrade, X-Secret\r\n",
		"Connection: keep-alive\r\nConnection: X-Secret, upgrade\r\n",
	} {
		rc := dialRaw(t, e)
		res := rc.do("GET /ws HTTP/1.1\r\n" +
			"Host: pbx.example.org\r\n" +
			conn +
			"Upgrade: websocket\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
			"Sec-WebSocket-Version: 13\r\n" +
			"Keep-Alive: 300\r\n" +
			"X-Secret: 1\r\n" +
			"\r\n")
		if res.status != http.StatusSwitchingProtocols {
			t.Fatalf("%q: answer %d", conn, res.status)
		}
		got := rec.received()
		if len(got) != i+1 {
			t.Fatalf("the upstream received %d requests", len(got))
		}
		up := got[i].head
		if vs := values(up, "Connection"); len(vs) != 1 || !strings.EqualFold(vs[0], "upgrade") {
			t.Errorf("%q: the upstream got Connection %q, want Upgrade", conn, vs)
		}
		if vs := values(up, "Upgrade"); len(vs) != 1 || vs[0] != "websocket" {
			t.Errorf("%q: the upstream got Upgrade %q", conn, vs)
		}
		if vs := values(up, "Sec-WebSocket-Key"); len(vs) != 1 {
			t.Errorf("%q: the upstream got Sec-WebSocket-Key %q", conn, vs)
		}
		if vs := values(up, "X-Forwarded-For"); len(vs) != 1 || vs[0] != "127.0.0.1" {
			t.Errorf("%q: the upstream got X-Forwarded-For %q", conn, vs)
		}
		assertAbsent(t, "the upstream", up, "Keep-Alive", "X-Secret")
		if vs := values(res.head, "Connection"); len(vs) != 1 || !strings.EqualFold(vs[0], "upgrade") {
			t.Errorf("the client got Connection %q, want Upgrade", vs)
		}
		if vs := values(res.head, "Upgrade"); len(vs) != 1 || vs[0] != "websocket" {
			t.Errorf("the client got Upgrade %q", vs)
		}
		if vs := values(res.head, "Sec-WebSocket-Accept"); len(vs) != 1 {
			t.Errorf("the client got Sec-WebSocket-Accept %q", vs)
		}
		assertAbsent(t, "the client", res.head, "Keep-Alive", "X-Secret")
		// The tunnel carries bytes both ways.
		if _, err := io.WriteString(rc.c, "ping"); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4)
		if _, err := io.ReadFull(rc.br, b); err != nil || string(b) != "ping" {
			t.Fatalf("echo through the tunnel: %q, %v", b, err)
		}
	}
}

// An upstream that refuses an upgrade answers it; the client's connection
// then closes: what the client sends after is never copied, unchecked, to
// the upstream.
func TestRefusedUpgradeClosesTheConnection(t *testing.T) {
	e, rec := startRecorded(t)
	rec.answer("/ws", rawAnswer{raw: "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nX-Secret: 1\r\nConnection: X-Secret\r\n\r\nno"})
	rc := dialRaw(t, e)
	res := rc.do("GET /ws HTTP/1.1\r\nHost: pbx.example.org\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if res.status != http.StatusForbidden || res.body != "no" {
		t.Fatalf("answer %d %q", res.status, res.body)
	}
	if vs := values(res.head, "Connection"); len(vs) != 1 || vs[0] != "close" {
		t.Errorf("the client got Connection %q, want close", vs)
	}
	assertAbsent(t, "the client", res.head, "X-Secret")
	// A request the Edge would check, sent raw after the refusal.
	io.WriteString(rc.c, "GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
	if !rc.closed() {
		t.Error("the connection stayed open after the refused upgrade")
	}
	if got := rec.received(); len(got) != 1 {
		t.Errorf("the upstream received %d requests, want the upgrade only: %q", len(got), got)
	}
}

func TestH2CIsRefused(t *testing.T) {
	e, rec := startRecorded(t)
	const settings = "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
	for _, c := range []struct {
		name, req string
		status    int
	}{
		{"upgrade", "GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" + settings + "\r\n", 400},
		{"two Connection headers", "GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nConnection: keep-alive\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" + settings + "\r\n", 400},
		{"h2c in a list, any case", "GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nConnection: Upgrade\r\nUpgrade: websocket, H2C\r\n\r\n", 400},
		{"h2c in a second Upgrade", "GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nupgrade: h2c\r\n\r\n", 400},
		{"Upgrade without Connection", "GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nUpgrade: h2c\r\n\r\n", 400},
		{"HTTP2-Settings alone", "GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\n" + settings + "\r\n", 400},
		{"Connection: Upgrade in another header", "GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nConnection: keep-alive\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", 400},
		{"POST upgrade", "POST /rec HTTP/1.1\r\nHost: pbx.example.org\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" + settings + "Content-Length: 2\r\n\r\nhi", 400},
		// Refused as fasthttp parses it: * is a target for OPTIONS only.
		{"prior knowledge", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00", 400},
		{"HTTP/2.0 request line", "GET /rec HTTP/2.0\r\nHost: pbx.example.org\r\n\r\n", 505},
		{"PRI method", "PRI /rec HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n", 505},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, e)
			res := rc.do(c.req)
			if res.status != c.status {
				t.Errorf("answer %d %q, want %d", res.status, res.body, c.status)
			}
			if vs := values(res.head, "Connection"); len(vs) != 1 || vs[0] != "close" {
				t.Errorf("Connection %q, want close", vs)
			}
			if !rc.closed() {
				t.Error("the connection stayed open")
			}
		})
	}
	if got := rec.received(); len(got) != 0 {
		t.Errorf("the upstream received %q", got)
	}
	if got := testkit.Metric(t, e.reg, "resman_edge_requests_total", map[string]string{"side": "none", "code": "400"}); got < 8 {
		t.Errorf("requests{none,400} = %v, want the 8 refusals of the Edge", got)
	}
}

func TestHostIsRequired(t *testing.T) {
	e, rec := startRecorded(t)
	for _, c := range []struct{ name, req string }{
		{"no Host", "GET /rec HTTP/1.1\r\n\r\n"},
		{"no Host, absolute form", "GET http://pbx.example.org/rec HTTP/1.1\r\n\r\n"},
		{"empty Host", "GET /rec HTTP/1.1\r\nHost:\r\n\r\n"},
		{"two Host headers", "GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nHost: pbx.example.org\r\n\r\n"},
		{"two Host headers, other case", "GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nhost: evil.example\r\n\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, e)
			if res := rc.do(c.req); res.status != 400 {
				t.Errorf("answer %d %q, want 400", res.status, res.body)
			}
		})
	}
	if got := rec.received(); len(got) != 0 {
		t.Errorf("the upstream received %q", got)
	}
	// HTTP/1.0 has no Host to require; no X-Forwarded-Host is made up
	// either.
	rc := dialRaw(t, e)
	if res := rc.do("GET /rec HTTP/1.0\r\nX-Forwarded-Host: evil.example\r\n\r\n"); res.status != 200 {
		t.Fatalf("HTTP/1.0 without Host: %d %q", res.status, res.body)
	}
	got := onlyOne(t, rec)
	assertAbsent(t, "the upstream", got.head, "X-Forwarded-Host")
	if vs := values(got.head, "Host"); len(vs) != 1 || vs[0] != strings.TrimPrefix(rec.url(), "http://") {
		t.Errorf("the upstream got Host %q", vs)
	}
}

// A request not read from a client has no header block as received: every
// name is looked up.
func TestStripRequestWithoutRawHeaders(t *testing.T) {
	var req fasthttp.Request
	h := &req.Header
	h.Set("X-Kept", "first")
	h.Set("Keep-Alive", "300")
	h.Add("Connection", "X-Secret")
	h.Set("X-Secret", "1")
	h.Set("Proxy-Authorization", "Basic dXNlcjpwYXNz")
	h.Add("X-Kept", "second")
	if len(h.RawHeaders()) != 0 {
		t.Fatal("the request has a raw header block")
	}
	stripRequest(h, seenIn(h), false)
	h.Set(sentinel, "http")
	for _, name := range []string{"Keep-Alive", "Connection", "X-Secret", "Proxy-Authorization"} {
		if vs := h.PeekAll(name); len(vs) > 0 {
			t.Errorf("%s stayed: %q", name, vs)
		}
	}
	if vs := h.PeekAll("X-Kept"); len(vs) != 2 || string(vs[0]) != "first" || string(vs[1]) != "second" {
		t.Errorf("X-Kept = %q, want first then second", vs)
	}
	if vs := h.PeekAll(sentinel); len(vs) != 1 {
		t.Errorf("%s = %q, want one", sentinel, vs)
	}
}
