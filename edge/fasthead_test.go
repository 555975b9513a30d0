package edge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// The fast path's heads against the general path's: FuzzFastHead checks,
// for any bytes, that the fast path takes only heads fasthttp reads too,
// which the Edge would not refuse, and that it sends the upstream what the
// general path would (prepare, then fasthttp's client), field for field.

// fuzzClient is the client address of the fuzzed requests.
var fuzzClient = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 40000}

// fuzzRoutes are a route without a path prefix and one with (the
// upstream URL's path goes before the client's).
func fuzzRoutes(t testing.TB) []*route {
	t.Helper()
	e := &Edge{pages: newPages("1")}
	s := &side{edge: e, name: "main"}
	var rts []*route
	for _, raw := range []string{"http://127.0.0.1:1", "http://127.0.0.1:1/pbx"} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		rts = append(rts, newRoute(s, "/", u, nil))
	}
	return rts
}

// headSeeds are request heads as browsers, phones' apps and scripts send
// them, the heads of headers_test.go, and odd ones.
var headSeeds = []string{
	"GET / HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n",
	browserHead,
	"GET /static/app.js?v=12&x=%41 HTTP/1.1\r\nHost: pbx.example.org:8443\r\nAccept: */*\r\nReferer: https://pbx.example.org/\r\n\r\n",
	"HEAD /rec HTTP/1.1\r\nHost: 10.0.0.21\r\n\r\n",
	"POST /api/calls HTTP/1.1\r\nHost: pbx.example.org\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"to\":\"+3312345\"}",
	"POST /body HTTP/1.1\r\nHost: pbx.example.org\r\nContent-Length: 0\r\n\r\n",
	"PUT /files/a HTTP/1.1\r\nHost: pbx.example.org\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
	"DELETE /api/calls/1 HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n",
	"OPTIONS /api HTTP/1.1\r\nHost: pbx.example.org\r\nOrigin: https://app.example.org\r\nAccess-Control-Request-Method: POST\r\n\r\n",
	"GET /rec HTTP/1.1\r\n" +
		"Host: pbx.example.org\r\n" +
		"Connection: keep-alive, X-Secret\r\n" +
		"X-Kept: first\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"Proxy-Connection: keep-alive\r\n" +
		"Proxy-Authorization: Basic dXNlcjpwYXNz\r\n" +
		"Proxy-Authenticate: Basic\r\n" +
		"TE: trailers\r\n" +
		"connection: X-Other , x-third\r\n" +
		"X-Secret: 1\r\n" +
		"x-secret: 2\r\n" +
		"X-Other: 3\r\n" +
		"X-Third: 4\r\n" +
		"X-Kept: second\r\n" +
		"\r\n",
	"GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nConnection: X-Secret\r\nX-Secret: 1\r\n\r\n",
	"POST /rec HTTP/1.1\r\n" +
		"Host: pbx.example.org\r\n" +
		"Connection: X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto, Host, Content-Length, Transfer-Encoding\r\n" +
		"X-Forwarded-For: 203.0.113.7\r\n" +
		"X-Forwarded-For: 198.51.100.9\r\n" +
		"X-Forwarded-Proto: gopher\r\n" +
		"Content-Length: 5\r\n" +
		"\r\n" +
		"hello",
	"GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nConnection: close\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nConnection: a, b, c, d, e, f, g, h, i\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nConnection: ,, close ,\tX-A\r\nX-A: 1\r\nx-a: 2\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nX-Forwarded-For: \r\nX-Forwarded-For: 203.0.113.7 , 10.0.0.1\r\nX-Forwarded-Host: evil.example\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nx-forwarded-for:203.0.113.7\r\n\r\n",
	"GET /events HTTP/1.1\r\nHost: pbx.example.org\r\nAccept: text/event-stream\r\n\r\n",
	"GET /ws HTTP/1.1\r\nHost: pbx.example.org\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
	"POST /up HTTP/1.1\r\nHost: pbx.example.org\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"POST /up HTTP/1.1\r\nHost: pbx.example.org\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
	"POST /up HTTP/1.1\r\nHost: pbx.example.org\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
	"POST /up HTTP/1.1\r\nHost: pbx.example.org\r\nContent-Length: +5\r\n\r\nhello",
	"POST /up HTTP/1.1\r\nHost: pbx.example.org\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nX-Folded: a\r\n b\r\n\r\n",
	"GET /rec HTTP/1.1\nHost: pbx.example.org\n\n",
	"GET /rec HTTP/1.1\r\nHost : pbx.example.org\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nX-Nul: a\x00b\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n",
	"GET /a/./b/../c HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n",
	"GET /a%2Fb HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n",
	"GET /a?b=/../c HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n",
	"GET /a? HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n",
	"GET http://pbx.example.org/rec HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n",
	"GET /rec HTTP/1.0\r\nHost: pbx.example.org\r\n\r\n",
	"GET /rec HTTP/2.0\r\nHost: pbx.example.org\r\n\r\n",
	"get /rec HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nHost: evil.example\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: [::1]:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nUser-Agent: a\r\nUser-Agent: b\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
	"\r\nGET /rec HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n",
	"POST /up HTTP/1.1\r\nHost: pbx.example.org\r\nContent-Length: 05\r\nContent-Type: text/plain\r\n\r\nhello",
	"POST /up HTTP/1.1\r\nHost: pbx.example.org\r\nContent-Type: text/plain\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx",
	"POST /up HTTP/1.1\r\nHost: pbx.example.org\r\nContent-Type:\r\nContent-Length: 1\r\n\r\nx",
	"GET /rec HTTP/1.1\r\nHost: pbx.example.org:\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: :8080\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: [fe80::1]:8080\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: [::ffff:10.0.0.1]\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: a:1:2\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: 10.0.0.21:65536\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\nUser-Agent:\r\n\r\n",
	"GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\n\r\nGET /second HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n",
}

func FuzzFastHead(f *testing.F) {
	for _, s := range headSeeds {
		f.Add([]byte(s))
	}
	rts := fuzzRoutes(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		n := headEnd(b)
		if n > len(b) {
			t.Fatalf("headEnd = %d past the %d bytes", n, len(b))
		}
		if n <= 0 {
			return
		}
		if b[n-1] != '\n' || b[n-2] != '\r' || !bytes.HasSuffix(b[:n], []byte("\r\n\r\n")) {
			t.Fatalf("headEnd = %d: %q does not end with an empty line", n, b[:n])
		}
		var r fastRequest
		if !scanHead(b[:n], &r) {
			return
		}
		for _, rt := range rts {
			checkFastHead(t, b[:n], &r, rt)
		}
	})
}

// checkFastHead checks a head scanHead took (r) on route rt: fasthttp
// reads it, the Edge lets it through, and the upstream gets the same
// request from both paths.
func checkFastHead(t *testing.T, head []byte, r *fastRequest, rt *route) {
	t.Helper()
	general, err := generalUpstreamHead(head, r, rt)
	if err != nil {
		t.Fatalf("the fast path takes %q, the general path: %v", head, err)
	}
	fast := appendUpstreamHead(nil, head, r, rt, []byte("192.0.2.10"), "http")
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(fast)))
	if err != nil {
		t.Fatalf("net/http does not read the fast path's head %q: %v", fast, err)
	}
	if req.TransferEncoding != nil {
		t.Fatalf("net/http reads the fast path's head %q with Transfer-Encoding %q", fast, req.TransferEncoding)
	}
	if d := headDiff(string(general), string(fast)); d != "" {
		t.Fatalf("route %s%s, head %q:\n%s\ngeneral path: %q\nfast path:    %q", rt.host, rt.prefix, head, d, general, fast)
	}
}

// generalUpstreamHead is the head the general path sends the upstream for
// a request whose head is head and whose body is r.length bytes: read as
// the Edge's server reads it (names normalized, the body streamed),
// checked, prepared, then written as the upstream client writes it.
func generalUpstreamHead(head []byte, r *fastRequest, rt *route) ([]byte, error) {
	length := r.length
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, fuzzClient, nil)
	req := &ctx.Request
	cr := &countingReader{r: io.MultiReader(bytes.NewReader(head), io.LimitReader(zeros{}, length))}
	br := bufio.NewReaderSize(cr, bufferSize)
	if err := req.Header.Read(br); err != nil {
		return nil, fmt.Errorf("fasthttp refuses it: %w", err)
	}
	if read := cr.n - int64(br.Buffered()); read != int64(len(head)) {
		return nil, fmt.Errorf("fasthttp's head is %d bytes long, the fast path's %d", read, len(head))
	}
	// The server parses the target (refused: 400), then reads the body
	// as a stream.
	var uri fasthttp.URI
	if err := uri.Parse(req.Header.Host(), req.Header.RequestURI()); err != nil {
		return nil, fmt.Errorf("fasthttp refuses its target or Host: %w", err)
	}
	_ = req.URI()
	if err := req.ContinueReadBodyStream(br, maxRequestBody, false); err != nil {
		return nil, fmt.Errorf("fasthttp refuses its body: %w", err)
	}
	if err := sameReading(req, r); err != nil {
		return nil, err
	}
	s := seenIn(&req.Header)
	status, websocket := checkRequest(&req.Header, s)
	if status != 0 || websocket {
		return nil, fmt.Errorf("the Edge answers it %d (websocket %v)", status, websocket)
	}
	if string(req.Header.Method()) == "GET" && bytes.Contains(req.Header.Peek("Accept"), []byte("text/event-stream")) {
		return nil, errors.New("the general path tunnels it (an event stream)")
	}
	rt.prepare(&ctx, s, false)
	// What HostClient does before it writes.
	req.URI().DisablePathNormalizing = true
	var w headWriter
	bw := bufio.NewWriterSize(&w, 4<<10)
	if err := req.Write(bw); err != nil && !errors.Is(err, errHeadDone) {
		return nil, fmt.Errorf("fasthttp cannot write it: %w", err)
	}
	if err := bw.Flush(); err != nil && !errors.Is(err, errHeadDone) {
		return nil, err
	}
	end := bytes.Index(w.b, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, fmt.Errorf("no whole head written: %q", w.b)
	}
	return w.b[:end+4], nil
}

// sameReading checks that fasthttp's server reads what scanHead read: the
// path the route is chosen by, the body's length, the close, the Host.
func sameReading(req *fasthttp.Request, r *fastRequest) error {
	h := &req.Header
	var d []string
	if p := req.URI().Path(); string(p) != string(r.path) {
		d = append(d, fmt.Sprintf("path %q, fast path %q", p, r.path))
	}
	if n := max(h.ContentLength(), 0); int64(n) != r.length {
		d = append(d, fmt.Sprintf("length %d, fast path %d", n, r.length))
	}
	if h.ConnectionClose() != r.close {
		d = append(d, fmt.Sprintf("close %v, fast path %v", h.ConnectionClose(), r.close))
	}
	if string(h.Host()) != string(r.host) {
		d = append(d, fmt.Sprintf("Host %q, fast path %q", h.Host(), r.host))
	}
	if string(h.Method()) != string(r.method) || h.IsHead() != r.headOnly {
		d = append(d, fmt.Sprintf("method %q, fast path %q (HEAD %v)", h.Method(), r.method, r.headOnly))
	}
	if len(d) > 0 {
		return fmt.Errorf("fasthttp reads it otherwise: %s", strings.Join(d, "; "))
	}
	return nil
}

// countingReader counts the bytes read from r.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// zeros is an endless body.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// headWriter keeps what is written up to the end of a head, then refuses
// the rest: a body of a gigabyte is not copied.
type headWriter struct{ b []byte }

var errHeadDone = errors.New("head written")

func (w *headWriter) Write(p []byte) (int, error) {
	if bytes.Contains(w.b, []byte("\r\n\r\n")) {
		return 0, errHeadDone
	}
	w.b = append(w.b, p...)
	return len(p), nil
}

// normHead is a request head in a form two paths can be compared in: its
// first line as is, and each field name (lower case) with its values, in
// order, trimmed.
type normHead struct {
	line   string
	fields map[string][]string
}

func normalize(head string) normHead {
	lines := strings.Split(strings.TrimSuffix(head, "\r\n\r\n"), "\r\n")
	h := normHead{line: lines[0], fields: map[string][]string{}}
	for _, l := range lines[1:] {
		name, value, _ := strings.Cut(l, ":")
		name = strings.ToLower(name)
		h.fields[name] = append(h.fields[name], strings.Trim(value, " \t"))
	}
	return h
}

// generalExtras removes from g the fields the general path adds to a
// request and the fast path, rightly, does not (fasthttp's client does,
// Request.Write and RequestHeader.AppendBytes), when f has none:
//
//   - Content-Length: 0 on a request without a body of a method but GET
//     and HEAD (DELETE, OPTIONS, a POST without body): both frame no body;
//     RFC 9110 §8.6 says a client SHOULD NOT send it there.
//   - Content-Type: application/octet-stream on a request with a body and
//     no Content-Type: a type the client never said.
func generalExtras(g, f normHead) {
	if _, ok := f.fields["content-length"]; !ok && slices.Equal(g.fields["content-length"], []string{"0"}) {
		delete(g.fields, "content-length")
	}
	if _, ok := f.fields["content-type"]; !ok && slices.Equal(g.fields["content-type"], []string{"application/octet-stream"}) {
		delete(g.fields, "content-type")
	}
}

// fieldsDiff says how two normalized heads differ, "" for not.
func fieldsDiff(g, f normHead) string {
	var d []string
	if g.line != f.line {
		d = append(d, fmt.Sprintf("first line %q, fast path %q", g.line, f.line))
	}
	names := map[string]bool{}
	for k := range g.fields {
		names[k] = true
	}
	for k := range f.fields {
		names[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(names)) {
		if !slices.Equal(g.fields[k], f.fields[k]) {
			d = append(d, fmt.Sprintf("%s: general %q, fast %q", k, g.fields[k], f.fields[k]))
		}
	}
	return strings.Join(d, "\n")
}

// headDiff says how the general path's upstream head and the fast path's
// differ ("" for not), normalized (see normHead), and checks that
// net/http reads both as the same request, with the same body coding.
func headDiff(general, fast string) string {
	g, f := normalize(general), normalize(fast)
	generalExtras(g, f)
	var d []string
	if fd := fieldsDiff(g, f); fd != "" {
		d = append(d, fd)
	}
	gr, gerr := http.ReadRequest(bufio.NewReader(strings.NewReader(general)))
	fr, ferr := http.ReadRequest(bufio.NewReader(strings.NewReader(fast)))
	switch {
	case gerr != nil || ferr != nil:
		d = append(d, fmt.Sprintf("net/http reads the general path's head: %v, the fast path's: %v", gerr, ferr))
	default:
		if gr.Method != fr.Method || gr.URL.String() != fr.URL.String() || gr.Host != fr.Host || gr.ContentLength != fr.ContentLength {
			d = append(d, fmt.Sprintf("net/http reads %s %s Host %s length %d, fast path %s %s Host %s length %d",
				gr.Method, gr.URL, gr.Host, gr.ContentLength, fr.Method, fr.URL, fr.Host, fr.ContentLength))
		}
		if !slices.Equal(gr.TransferEncoding, fr.TransferEncoding) {
			d = append(d, fmt.Sprintf("Transfer-Encoding: general %q, fast %q", gr.TransferEncoding, fr.TransferEncoding))
		}
	}
	return strings.Join(d, "\n")
}

// TestScanHead: heads the fast path takes, and heads it leaves to the
// general path because fasthttp would read or send them otherwise (each
// one a difference FuzzFastHead found between the paths).
func TestScanHead(t *testing.T) {
	const get = "GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\n"
	for _, c := range []struct {
		name, head string
		take       bool
	}{
		{"plain GET", get + "\r\n", true},
		{"a host and a port", "GET /rec HTTP/1.1\r\nHost: pbx.example.org:8443\r\n\r\n", true},
		{"an IPv6 address and a port", "GET /rec HTTP/1.1\r\nHost: [fe80::1]:8080\r\n\r\n", true},
		{"one User-Agent, one Content-Type", "POST /rec HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n", true},
		{"Content-Length: 0", "POST /rec HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", true},
		{"a query", "GET /rec?a=1 HTTP/1.1\r\nHost: a\r\n\r\n", true},
		// fasthttp refuses a port that is not digits (400), and so on.
		{"a port without a host", "GET /rec HTTP/1.1\r\nHost: :A\r\n\r\n", false},
		{"an empty port", "GET /rec HTTP/1.1\r\nHost: pbx.example.org:\r\n\r\n", false},
		{"two ports", "GET /rec HTTP/1.1\r\nHost: a:1:2\r\n\r\n", false},
		{"a bracket out of place", "GET /rec HTTP/1.1\r\nHost: a]\r\n\r\n", false},
		{"not an IPv6 address in brackets", "GET /rec HTTP/1.1\r\nHost: [10.0.0.1]\r\n\r\n", false},
		// fasthttp keeps the last User-Agent, one of equal Content-Types,
		// and drops an empty one.
		{"two User-Agents", get + "User-Agent: a\r\nUser-Agent: b\r\n\r\n", false},
		{"two Content-Types", "POST /rec HTTP/1.1\r\nHost: a\r\nContent-Type: a/b\r\ncontent-type: a/b\r\nContent-Length: 1\r\n\r\n", false},
		{"an empty User-Agent", get + "User-Agent: \r\n\r\n", false},
		{"an empty Content-Type", "POST /rec HTTP/1.1\r\nHost: a\r\nContent-Type:\r\nContent-Length: 1\r\n\r\n", false},
		// fasthttp sends /rec, and 5.
		{"an empty query", "GET /rec? HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"a length with a leading zero", "POST /rec HTTP/1.1\r\nHost: a\r\nContent-Length: 05\r\n\r\n", false},
	} {
		var r fastRequest
		n := headEnd([]byte(c.head))
		if n != len(c.head) {
			t.Fatalf("%s: headEnd = %d, want %d", c.name, n, len(c.head))
		}
		if got := scanHead([]byte(c.head), &r); got != c.take {
			t.Errorf("%s: scanHead = %v, want %v: %q", c.name, got, c.take, c.head)
		}
	}
}

// TestFastPathAgreesWithTheGeneralPath sends the same raw requests through
// two Edges in front of one recorder, one serving on the fast path what it
// takes and one serving everything on the general path, and compares what
// the upstream received and what the client got (normalized: see
// headDiff and answerDiff). It also checks which path served each.
func TestFastPathAgreesWithTheGeneralPath(t *testing.T) {
	rec := newRecorder(t)
	// A route with a path prefix: /app/x goes to /pbx/app/x.
	routes := []Route{{Path: "/app", Upstream: rec.url() + "/pbx"}}
	fastEdge := startEdgeTo(t, routes, false)
	generalEdge := startEdgeTo(t, routes, true)
	// Every answer has a Date: the general path adds one to an answer
	// without (see the report of the fast path's tests), and the
	// upstreams behind the Edge send one.
	const date = "Date: Mon, 07 Dec 2026 10:00:00 GMT\r\n"
	answers := map[string]string{
		"nolength": "HTTP/1.1 200 OK\r\n" + date + "Content-Type: text/plain\r\nX-A: 1\r\n\r\nstreamed to the close",
		"chunked": "HTTP/1.1 200 OK\r\n" + date + "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
		"204":   "HTTP/1.1 204 No Content\r\n" + date + "X-A: 1\r\n\r\n",
		"304":   "HTTP/1.1 304 Not Modified\r\n" + date + "ETag: \"v1\"\r\nCache-Control: max-age=60\r\n\r\n",
		"103":   "HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n" + date + "Content-Length: 2\r\n\r\nok",
		"head":  "HTTP/1.1 200 OK\r\n" + date + "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n",
		"close": "HTTP/1.1 200 OK\r\n" + date + "Connection: close\r\nContent-Length: 2\r\n\r\nok",
		"hop": "HTTP/1.1 200 OK\r\n" + date + "Connection: X-Secret, keep-alive\r\nKeep-Alive: timeout=5\r\nX-Secret: 1\r\n" +
			"X-Kept: first\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Kept: second\r\nContent-Length: 2\r\n\r\nok",
		"large": "HTTP/1.1 200 OK\r\n" + date + "Content-Type: application/octet-stream\r\nContent-Length: 40000\r\n\r\n" + strings.Repeat("z", 40000),
	}
	for _, path := range []string{"a", "b", "c", "x", "form", "empty", "a b", "x/../a"} {
		answers[path] = "HTTP/1.1 200 OK\r\n" + date + "Content-Length: 2\r\n\r\nok"
	}
	for path, raw := range answers {
		a := rawAnswer{raw: raw}
		a.close = path == "nolength" || path == "close"
		rec.answer("/pbx/app/"+path, a)
	}
	const host = "Host: pbx.example.org\r\n"
	for _, c := range []struct {
		name, req string
		answers   int  // how many answers the client reads
		headOnly  bool // the requests are HEADs
		fast      bool // the fast path serves it all
	}{
		{"GET", "GET /app/a HTTP/1.1\r\n" + host + "Accept: */*\r\nUser-Agent: curl/8.5.0\r\n\r\n", 1, false, true},
		{"HEAD", "HEAD /app/head HTTP/1.1\r\n" + host + "\r\n", 1, true, true},
		{"POST with a body", "POST /app/form HTTP/1.1\r\n" + host + "Content-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world", 1, false, true},
		{"POST without a body", "POST /app/empty HTTP/1.1\r\n" + host + "\r\n", 1, false, true},
		{"POST without a type", "POST /app/form HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nabc", 1, false, true},
		{"DELETE", "DELETE /app/x HTTP/1.1\r\n" + host + "\r\n", 1, false, true},
		{"Connection naming headers", "GET /app/a HTTP/1.1\r\n" + host +
			"Connection: keep-alive, X-Secret\r\nX-Kept: first\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n" +
			"TE: trailers\r\nconnection: x-other\r\nX-Secret: 1\r\nx-other: 2\r\nx-kept: second\r\n\r\n", 1, false, true},
		{"X-Forwarded-* spoofing", "GET /app/a HTTP/1.1\r\n" + host +
			"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: gopher\r\nx-forwarded-for: 7.7.7.7, 8.8.8.8\r\n" +
			"Connection: X-Forwarded-For, Host\r\n\r\n", 1, false, true},
		{"pipelined", "GET /app/a HTTP/1.1\r\n" + host + "\r\nPOST /app/b HTTP/1.1\r\n" + host + "Content-Length: 2\r\n\r\nhiGET /app/c?q=1 HTTP/1.1\r\n" + host + "\r\n", 3, false, true},
		{"Connection: close", "GET /app/a HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n", 1, false, true},
		{"names in any case", "GET /app/a HTTP/1.1\r\nhost: pbx.example.org\r\nx-custom: 1\r\nX-CUSTOM: 2\r\nCookie: a=1; b=2\r\nACCEPT: text/html\r\n\r\n", 1, false, true},
		{"404", "GET /other HTTP/1.1\r\n" + host + "\r\n", 1, false, true},
		{"404 then GET", "GET /other HTTP/1.1\r\n" + host + "\r\nGET /app/a HTTP/1.1\r\n" + host + "\r\n", 2, false, true},
		{"answer without length", "GET /app/nolength HTTP/1.1\r\n" + host + "\r\n", 1, false, true},
		{"chunked answer", "GET /app/chunked HTTP/1.1\r\n" + host + "\r\n", 1, false, true},
		{"204", "GET /app/204 HTTP/1.1\r\n" + host + "\r\n", 1, false, true},
		{"304", "GET /app/304 HTTP/1.1\r\n" + host + "If-None-Match: \"v1\"\r\n\r\n", 1, false, true},
		{"103 then 200", "GET /app/103 HTTP/1.1\r\n" + host + "\r\n", 1, false, true},
		{"upstream Connection: close", "GET /app/close HTTP/1.1\r\n" + host + "\r\nGET /app/a HTTP/1.1\r\n" + host + "\r\n", 2, false, true},
		{"hop-by-hop answer headers", "GET /app/hop HTTP/1.1\r\n" + host + "\r\n", 1, false, true},
		{"large answer", "GET /app/large HTTP/1.1\r\n" + host + "\r\n", 1, false, true},
		// Handed over.
		{"absolute-form target", "GET http://pbx.example.org/app/a HTTP/1.1\r\n" + host + "\r\n", 1, false, false},
		{"percent-encoded path", "GET /app/a%20b HTTP/1.1\r\n" + host + "\r\n", 1, false, false},
		{"dot segments", "GET /app/x/../a HTTP/1.1\r\n" + host + "\r\n", 1, false, false},
		{"HTTP/1.0", "GET /app/a HTTP/1.0\r\n" + host + "\r\n", 1, false, false},
		{"Expect: 100-continue", "POST /app/b HTTP/1.1\r\n" + host + "Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", 1, false, false},
		{"chunked upload", "POST /app/b HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 1, false, false},
		{"two User-Agents", "GET /app/a HTTP/1.1\r\n" + host + "User-Agent: a\r\nUser-Agent: b\r\n\r\n", 1, false, false},
		{"GET then a handed-over request", "GET /app/a HTTP/1.1\r\n" + host + "\r\nGET /app/a%20b HTTP/1.1\r\n" + host + "\r\n", 2, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var ups [2][]recorded
			var xs [2][]exchange
			for i, e := range []*testEdge{generalEdge, fastEdge} {
				before, h0 := len(rec.received()), handOvers(t, e)
				xs[i] = send(t, e, c.req, c.answers, c.headOnly)
				ups[i] = rec.received()[before:]
				switch h := handOvers(t, e) - h0; {
				case e == generalEdge && h != 1:
					t.Errorf("the general-only Edge handed %v connections over, want 1", h)
				case e == fastEdge && c.fast && h != 0:
					t.Errorf("the fast path handed the connection over")
				case e == fastEdge && !c.fast && h != 1:
					t.Errorf("the fast path handed %v connections over, want 1", h)
				}
			}
			if len(ups[0]) != len(ups[1]) {
				t.Fatalf("the upstream received %d requests from the general path, %d from the fast path:\n%q\n%q",
					len(ups[0]), len(ups[1]), ups[0], ups[1])
			}
			for i := range ups[0] {
				g, f := ups[0][i], ups[1][i]
				if d := headDiff(g.head, f.head); d != "" {
					t.Errorf("request %d, the upstream got:\n%s\ngeneral path: %q\nfast path:    %q", i+1, d, g.head, f.head)
				}
				if g.body != f.body || g.trailer != f.trailer {
					t.Errorf("request %d, the upstream got the body %q (trailer %q) from the general path, %q (%q) from the fast path",
						i+1, g.body, g.trailer, f.body, f.trailer)
				}
			}
			for i := range xs[0] {
				if d := answerDiff(xs[0][i], xs[1][i]); d != "" {
					t.Errorf("answer %d, the client got:\n%s\ngeneral path: %+v\nfast path:    %+v", i+1, d, xs[0][i], xs[1][i])
				}
			}
		})
	}
}

// answerDiff says how the answers the client got from each path differ
// ("" for not): status lines, interim answers and fields (normalized, see
// normHead), body and trailer section.
//
// The general path's answer differs, as fasthttp's client and server
// make it, in two ways that the comparison puts aside:
//
//   - it drops the upstream's interim answers (a 103 Early Hints): the
//     fast path relays them, as RFC 9110 §15.2 says a proxy must;
//   - it sends an answer that the upstream delimits by closing chunked
//     (its trailer section empty): the fast path sends it as it came, up
//     to the close. Both say Connection: close.
//   - its Date is the Edge's clock, not the upstream's: fasthttp's server
//     writes its own (the client's Do resets the answer's NoDefaultDate).
//     The fast path relays the upstream's. Both must have one.
func answerDiff(g, f exchange) string {
	var d []string
	gh, fh := normalize(g.head), normalize(f.head)
	if len(gh.fields["date"]) == 1 && len(fh.fields["date"]) == 1 {
		delete(gh.fields, "date")
		delete(fh.fields, "date")
	}
	if _, ok := fh.fields["content-length"]; !ok && fh.fields["transfer-encoding"] == nil &&
		slices.Equal(gh.fields["transfer-encoding"], []string{"chunked"}) && g.trailer == "\r\n" && f.trailer == "" {
		delete(gh.fields, "transfer-encoding")
		g.trailer = ""
	}
	if len(g.interim) == 0 {
		f.interim = nil
	}
	if len(g.interim) != len(f.interim) {
		d = append(d, fmt.Sprintf("interim answers %q, fast path %q", g.interim, f.interim))
	} else {
		for i := range g.interim {
			if fd := fieldsDiff(normalize(g.interim[i]), normalize(f.interim[i])); fd != "" {
				d = append(d, "interim answer: "+fd)
			}
		}
	}
	if fd := fieldsDiff(gh, fh); fd != "" {
		d = append(d, fd)
	}
	if g.body != f.body {
		d = append(d, fmt.Sprintf("body %q, fast path %q", g.body, f.body))
	}
	if g.trailer != f.trailer {
		d = append(d, fmt.Sprintf("trailer section %q, fast path %q", g.trailer, f.trailer))
	}
	return strings.Join(d, "\n")
}

// fieldValue says what a byte-by-byte check says, whatever the bytes and
// their place in a word.
func TestFieldValueAgreesWithTheBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	special := []byte{0, '\t', '\n', '\r', 0x1f, ' ', '~', 0x7f, 0x80, 0xff, 'a'}
	for range 200000 {
		v := make([]byte, rng.IntN(40))
		for i := range v {
			if rng.IntN(4) == 0 {
				v[i] = special[rng.IntN(len(special))]
			} else {
				v[i] = byte(0x20 + rng.IntN(0x5f))
			}
		}
		if got, want := fieldValue(v), fieldBytes(v); got != want {
			t.Fatalf("fieldValue(%q) = %v, byte by byte %v", v, got, want)
		}
	}
}
