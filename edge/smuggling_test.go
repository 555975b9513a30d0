package edge

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// Request smuggling through the Edge: a request hidden in another's body,
// or framed one way by the Edge and another by the upstream, must never
// reach the upstream as a request of its own. Each test sends raw bytes
// to a real Edge in front of a recorder, and checks every request the
// upstream saw and every answer the client got.

// handOvers is resman_edge_general_path_connections_total.
func handOvers(t *testing.T, e *testEdge) float64 {
	t.Helper()
	return testkit.Metric(t, e.reg, "resman_edge_general_path_connections_total", nil)
}

// startEdgeTo is an Edge whose one side routes routes (to upstreams the
// test runs), served over loopback until the test ends; with generalOnly,
// every connection goes to the general path.
func startEdgeTo(t *testing.T, routes []Route, generalOnly bool) *testEdge {
	t.Helper()
	e := serveEdge(t, fast(), []sideSpec{{name: "main", node: newFakeNode(t, active(1)), routes: routes}},
		func(e *Edge) { e.generalOnly = generalOnly }).testEdge
	e.waitRouted(t, "main")
	return e
}

// exchange is what the client got for one request: the interim answers'
// heads, then the final answer.
type exchange struct {
	interim []string
	rawResponse
}

// readExchange reads the answer to a request: its interim answers (1xx
// but 101), then the final one and its body (none for a HEAD, a 204 or a
// 304; by length, chunked, or up to the close).
func readExchange(br *bufio.Reader, headOnly bool) (exchange, error) {
	var x exchange
	for {
		head, err := readHead(br)
		if err != nil {
			return x, err
		}
		first, _, _ := strings.Cut(head, "\r\n")
		status := 0
		if f := strings.Fields(first); len(f) >= 2 {
			status, _ = strconv.Atoi(f[1])
		}
		if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
			x.interim = append(x.interim, head)
			continue
		}
		x.head, x.status = head, status
		break
	}
	if headOnly || x.status == http.StatusNoContent || x.status == http.StatusNotModified || x.status == http.StatusSwitchingProtocols {
		return x, nil
	}
	var body io.Reader = br
	chunked := false
	if cl := values(x.head, "Content-Length"); len(cl) == 1 {
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if err != nil {
			return x, err
		}
		body = io.LimitReader(br, n)
	} else if te := values(x.head, "Transfer-Encoding"); len(te) > 0 && strings.EqualFold(te[len(te)-1], "chunked") {
		body, chunked = httputil.NewChunkedReader(br), true
	}
	b, err := io.ReadAll(body)
	x.body = string(b)
	if err != nil {
		return x, err
	}
	if chunked {
		x.trailer, err = readHead(br)
	}
	return x, err
}

// send writes req on a new connection to e and reads n answers.
func send(t *testing.T, e *testEdge, req string, n int, headOnly bool) []exchange {
	t.Helper()
	rc := dialRaw(t, e)
	if _, err := io.WriteString(rc.c, req); err != nil {
		t.Fatal(err)
	}
	var xs []exchange
	for range n {
		x, err := readExchange(rc.br, headOnly)
		if err != nil {
			t.Fatalf("reading answer %d of %d: %v (so far %+v)", len(xs)+1, n, err, xs)
		}
		xs = append(xs, x)
	}
	return xs
}

// startSmuggled is an Edge routing / to a recorder of its own.
func startSmuggled(t *testing.T, generalOnly bool) (*testEdge, *recorder) {
	t.Helper()
	rec := newRecorder(t)
	return startEdgeTo(t, []Route{{Path: "/", Upstream: rec.url()}}, generalOnly), rec
}

// seen is a request as the upstream saw it: "METHOD target body", or
// "unreadable: <its head>" for a head net/http does not read.
func seenBy(rec []recorded) []string {
	var s []string
	for _, r := range rec {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(r.head)))
		if err != nil {
			s = append(s, "unreadable: "+r.head)
			continue
		}
		s = append(s, strings.TrimSpace(req.Method+" "+req.RequestURI+" "+r.body))
	}
	return s
}

// marker is a request sent after the others on a connection that stays
// open: once it is answered, the upstream has seen all the connection
// sent before it.
const marker = "GET /marker HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n"

// smuggleCase is raw bytes a client sends at once, the statuses of the
// answers it gets, the requests the upstream sees ("METHOD target body"),
// whether the Edge then closes the connection, and whether the fast path
// serves it all (else it hands the connection over: it never decides a
// strange request).
type smuggleCase struct {
	name     string
	req      string
	statuses []int
	up       []string
	closes   bool
	fast     bool
	// headAt is the answer (from 1) to a HEAD, without a body; 0: none.
	headAt int
}

// runSmuggling sends each case on a connection of its own, through an
// Edge with the fast path and through one with the general path only, and
// checks the answers, what the upstream saw, and the connection's end:
// when it stays open, a marker request is answered next, and is the
// upstream's last request.
func runSmuggling(t *testing.T, cases []smuggleCase) {
	for _, general := range []bool{false, true} {
		e, rec := startSmuggled(t, general)
		// An answer to a HEAD has no body.
		rec.answer("/head", rawAnswer{raw: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"})
		name := "fast path"
		if general {
			name = "general path"
		}
		t.Run(name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					before, h0 := len(rec.received()), handOvers(t, e)
					rc := dialRaw(t, e)
					if _, err := io.WriteString(rc.c, c.req); err != nil {
						t.Fatal(err)
					}
					var got []int
					for i := range c.statuses {
						x, err := readExchange(rc.br, i+1 == c.headAt)
						if err != nil {
							t.Fatalf("answers %v, then: %v", got, err)
						}
						got = append(got, x.status)
					}
					if !slices.Equal(got, c.statuses) {
						t.Errorf("answers %v, want %v", got, c.statuses)
					}
					want := c.up
					if c.closes {
						if !rc.closed() {
							t.Error("the connection stayed open")
						}
					} else {
						want = append(slices.Clone(want), "GET /marker")
						if x := rc.do(marker); x.status != http.StatusOK {
							t.Errorf("the marker request: answer %d %q", x.status, x.body)
						}
					}
					if up := seenBy(rec.received()[before:]); !slices.Equal(up, want) {
						t.Errorf("the upstream saw %q, want %q", up, want)
					}
					switch h := handOvers(t, e) - h0; {
					case general && h != 1:
						t.Errorf("%v connections handed over, want 1", h)
					case !general && c.fast && h != 0:
						t.Error("the fast path handed the connection over")
					case !general && !c.fast && h != 1:
						t.Errorf("the fast path handed %v connections over, want 1", h)
					}
				})
			}
		})
	}
}

const smuggled = "GET /smuggled HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n"

// TestSmugglingFraming: requests whose body is framed twice, or framed in
// a way servers read differently, are refused (400, and the connection
// closes) before any of their bytes reaches the upstream; those framed
// one clear way are served as framed, and what follows is a request of
// its own. No request hidden in a body ever reaches the upstream.
func TestSmugglingFraming(t *testing.T) {
	const post = "POST /a HTTP/1.1\r\nHost: pbx.example.org\r\n"
	chunks := "5\r\nhello\r\n0\r\n\r\n"
	refused := func(name, req string) smuggleCase {
		return smuggleCase{name: name, req: req, statuses: []int{400}, closes: true}
	}
	runSmuggling(t, []smuggleCase{
		// Transfer-Encoding overrides Content-Length, and the connection
		// closes after the answer (RFC 9112 §6.3): what follows the chunks
		// is never read.
		{name: "Content-Length and Transfer-Encoding", req: post + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
			statuses: []int{200}, up: []string{"POST /a"}, closes: true},
		{name: "Transfer-Encoding and Content-Length", req: post + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + smuggled,
			statuses: []int{200}, up: []string{"POST /a"}, closes: true},
		{name: "Content-Length and Transfer-Encoding, a body", req: post + "Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + smuggled,
			statuses: []int{200}, up: []string{"POST /a hello"}, closes: true},
		refused("two different Content-Lengths", post+"Content-Length: 5\r\nContent-Length: 50\r\n\r\nhello"+smuggled),
		refused("two equal Content-Lengths", post+"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"+smuggled),
		refused("Content-Length: +5", post+"Content-Length: +5\r\n\r\nhello"+smuggled),
		refused("Content-Length: 0x5", post+"Content-Length: 0x5\r\n\r\nhello"+smuggled),
		refused("Content-Length: 5,5", post+"Content-Length: 5,5\r\n\r\nhello"+smuggled),
		refused("Content-Length: -1", post+"Content-Length: -1\r\n\r\n"+smuggled),
		{name: "Content-Length: ' 5 '", req: post + "Content-Length:  5 \r\n\r\nhello" + smuggled,
			statuses: []int{200, 200}, up: []string{"POST /a hello", "GET /smuggled"}, fast: true},
		{name: "Content-Length: 05", req: post + "Content-Length: 05\r\n\r\nhello" + smuggled,
			statuses: []int{200, 200}, up: []string{"POST /a hello", "GET /smuggled"}},
		{name: "chunked", req: post + "Transfer-Encoding: chunked\r\n\r\n" + chunks + smuggled,
			statuses: []int{200, 200}, up: []string{"POST /a hello", "GET /smuggled"}},
		refused("Transfer-Encoding: xchunked", post+"Transfer-Encoding: xchunked\r\n\r\n"+chunks+smuggled),
		refused("Transfer-Encoding: chunked, identity", post+"Transfer-Encoding: chunked, identity\r\n\r\n"+chunks+smuggled),
		refused("Transfer-Encoding: identity, chunked", post+"Transfer-Encoding: identity, chunked\r\n\r\n"+chunks+smuggled),
		refused("two Transfer-Encodings", post+"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"+chunks+smuggled),
		{name: "Transfer-Encoding: ' chunked'", req: post + "Transfer-Encoding:  chunked\r\n\r\n" + chunks + smuggled,
			statuses: []int{200, 200}, up: []string{"POST /a hello", "GET /smuggled"}},
		{name: "Transfer-Encoding: tab chunked", req: post + "Transfer-Encoding:\tchunked\r\n\r\n" + chunks + smuggled,
			statuses: []int{200, 200}, up: []string{"POST /a hello", "GET /smuggled"}},
		// fasthttp unfolds an obsolete line folding (RFC 9112 §5.2 allows
		// it): the body is chunked, and the upstream gets it framed anew.
		{name: "Transfer-Encoding folded", req: post + "Transfer-Encoding:\r\n chunked\r\n\r\n" + chunks + smuggled,
			statuses: []int{200, 200}, up: []string{"POST /a hello", "GET /smuggled"}},
		{name: "a line folded after Transfer-Encoding", req: post + "Transfer-Encoding: chunked\r\nX-A: 1\r\n chunked\r\n\r\n" + chunks + smuggled,
			statuses: []int{200, 200}, up: []string{"POST /a hello", "GET /smuggled"}},
		{name: "Content-Length folded", req: post + "Content-Length:\r\n 5\r\n\r\nhello" + smuggled,
			statuses: []int{200, 200}, up: []string{"POST /a hello", "GET /smuggled"}},
		refused("Transfer-Encoding : chunked", post+"Transfer-Encoding : chunked\r\n\r\n"+chunks+smuggled),
		refused("Content-Length : 5", post+"Content-Length : 5\r\n\r\nhello"+smuggled),
		refused("Transfer-Encoding on HTTP/1.0", "POST /a HTTP/1.0\r\nHost: pbx.example.org\r\nTransfer-Encoding: chunked\r\n\r\n"+chunks+smuggled),
		// The body is streamed: the upstream has the head when the bad
		// chunk comes, and never a whole request; the client gets a 400
		// (its body is bad, the upstream did not fail).
		{name: "a chunk size that is not hex", req: post + "Transfer-Encoding: chunked\r\n\r\nz\r\nhello\r\n0\r\n\r\n" + smuggled,
			statuses: []int{400}, closes: true},
	})
}

// TestSmugglingHeadSyntax: heads that are not plain HTTP/1.1 (bare LF
// line ends, a line without colon, control bytes) go to the general path,
// which reads them as fasthttp does or refuses them; either way the
// upstream gets each request once, as the Edge read it.
func TestSmugglingHeadSyntax(t *testing.T) {
	const host = "Host: pbx.example.org"
	refused := func(name, req string) smuggleCase {
		return smuggleCase{name: name, req: req, statuses: []int{400}, closes: true}
	}
	runSmuggling(t, []smuggleCase{
		{name: "bare LF", req: "GET /a HTTP/1.1\n" + host + "\n\n" + smuggled,
			statuses: []int{200, 200}, up: []string{"GET /a", "GET /smuggled"}},
		{name: "bare LF, a body", req: "POST /a HTTP/1.1\n" + host + "\nContent-Length: 5\n\nhello" + smuggled,
			statuses: []int{200, 200}, up: []string{"POST /a hello", "GET /smuggled"}},
		{name: "bare LF in one line", req: "POST /a HTTP/1.1\r\n" + host + "\nContent-Length: 5\r\n\r\nhello" + smuggled,
			statuses: []int{200, 200}, up: []string{"POST /a hello", "GET /smuggled"}},
		refused("bare CR", "GET /a HTTP/1.1\r"+host+"\r\n\r\n"+smuggled),
		refused("a line without colon", "GET /a HTTP/1.1\r\n"+host+"\r\nNoColon\r\n\r\n"+smuggled),
		refused("a line without colon, then a body", "POST /a HTTP/1.1\r\n"+host+"\r\nContent-Length 5\r\n\r\nhello"+smuggled),
		refused("NUL in a value", "GET /a HTTP/1.1\r\n"+host+"\r\nX-A: a\x00b\r\n\r\n"+smuggled),
		refused("NUL in a name", "GET /a HTTP/1.1\r\n"+host+"\r\nX-\x00A: b\r\n\r\n"+smuggled),
		refused("NUL in Content-Length", "POST /a HTTP/1.1\r\n"+host+"\r\nContent-Length: 5\x00\r\n\r\nhello"+smuggled),
		refused("CR in a value", "GET /a HTTP/1.1\r\n"+host+"\r\nX-A: a\rb\r\n\r\n"+smuggled),
		refused("ESC in a value", "GET /a HTTP/1.1\r\n"+host+"\r\nX-A: a\x1bb\r\n\r\n"+smuggled),
		refused("DEL in a value", "GET /a HTTP/1.1\r\n"+host+"\r\nX-A: a\x7fb\r\n\r\n"+smuggled),
		refused("a space in the target", "GET /a /b HTTP/1.1\r\n"+host+"\r\n\r\n"+smuggled),
		refused("a control byte in the target", "GET /a\x01b HTTP/1.1\r\n"+host+"\r\n\r\n"+smuggled),
		// The Edge's own refusals, after a request the fast path served.
		{name: "a refused request after a served one", req: "GET /a HTTP/1.1\r\n" + host + "\r\n\r\nGET /b HTTP/1.1\r\n" + host + "\r\nX-A: a\x00b\r\n\r\n" + smuggled,
			statuses: []int{200, 400}, up: []string{"GET /a"}, closes: true},
	})
}

// TestSmugglingInBodies: a request written inside a body is body, on both
// paths, whatever the method; what follows the body is the next request.
func TestSmugglingInBodies(t *testing.T) {
	const host = "Host: pbx.example.org\r\n"
	withLength := func(head, body string) string {
		return head + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	runSmuggling(t, []smuggleCase{
		{name: "a request in a POST's body", req: withLength("POST /a HTTP/1.1\r\n"+host, smuggled),
			statuses: []int{200}, up: []string{"POST /a " + strings.TrimSpace(smuggled)}, fast: true},
		{name: "a request with a body in a POST's body",
			req:      withLength("POST /a HTTP/1.1\r\n"+host, withLength("POST /smuggled HTTP/1.1\r\n"+host, "xyz")),
			statuses: []int{200}, up: []string{"POST /a " + strings.TrimSpace(withLength("POST /smuggled HTTP/1.1\r\n"+host, "xyz"))}, fast: true},
		{name: "a GET with a body, then a GET", req: withLength("GET /a HTTP/1.1\r\n"+host, smuggled) + "GET /b HTTP/1.1\r\n" + host + "\r\n",
			statuses: []int{200, 200}, up: []string{"GET /a " + strings.TrimSpace(smuggled), "GET /b"}, fast: true},
		{name: "a HEAD with a body, then a GET", req: withLength("HEAD /head HTTP/1.1\r\n"+host, smuggled) + "GET /b HTTP/1.1\r\n" + host + "\r\n",
			statuses: []int{200, 200}, up: []string{"HEAD /head " + strings.TrimSpace(smuggled), "GET /b"}, fast: true, headAt: 1},
		{name: "a body of Content-Length 0, then a request", req: withLength("POST /a HTTP/1.1\r\n"+host, "") + smuggled,
			statuses: []int{200, 200}, up: []string{"POST /a", "GET /smuggled"}, fast: true},
		{name: "a request in a chunked body", req: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n" +
			strconv.FormatInt(int64(len(smuggled)), 16) + "\r\n" + smuggled + "\r\n0\r\n\r\n",
			statuses: []int{200}, up: []string{"POST /a " + strings.TrimSpace(smuggled)}},
		{name: "a request in a 404's body", req: withLength("POST /none HTTP/1.1\r\n"+host, smuggled) + "GET /b HTTP/1.1\r\n" + host + "\r\n",
			statuses: []int{200, 200}, up: []string{"POST /none " + strings.TrimSpace(smuggled), "GET /b"}, fast: true},
		// A handed-over connection: the general path reads it from its
		// first byte, and then every request after.
		{name: "a request after a handed-over one", req: "GET /a%20b HTTP/1.1\r\n" + host + "\r\n" + withLength("POST /c HTTP/1.1\r\n"+host, smuggled),
			statuses: []int{200, 200}, up: []string{"GET /a%20b", "POST /c " + strings.TrimSpace(smuggled)}},
		{name: "a chunked upload after a served request", req: "GET /a HTTP/1.1\r\n" + host + "\r\nPOST /c HTTP/1.1\r\n" + host +
			"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + smuggled,
			statuses: []int{200, 200, 200}, up: []string{"GET /a", "POST /c hello", "GET /smuggled"}},
	})
}

// A head larger than a TCP segment comes in a few reads: the fast path
// serves it whole. One sent a few bytes at a time is served whole too
// (by the general path once the fast path has made maxHeadReads reads).
func TestLongHeadSplitAcrossReads(t *testing.T) {
	e, rec := startSmuggled(t, false)
	long := strings.Repeat("a", 10000)
	head := "GET /long HTTP/1.1\r\nHost: pbx.example.org\r\nX-Long: " + long + "\r\nX-After: 1\r\n\r\n"
	rc := dialRaw(t, e)
	h0 := handOvers(t, e)
	cut := len(head) / 2
	if _, err := io.WriteString(rc.c, head[:cut]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := io.WriteString(rc.c, head[cut:]+smuggled); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ok", "ok"} {
		if x, err := readExchange(rc.br, false); err != nil || x.status != 200 || x.body != want {
			t.Fatalf("answer %d %q, %v", x.status, x.body, err)
		}
	}
	got := rec.received()
	if up := seenBy(got); !slices.Equal(up, []string{"GET /long", "GET /smuggled"}) {
		t.Fatalf("the upstream saw %q", up)
	}
	if vs := values(got[0].head, "X-Long"); len(vs) != 1 || vs[0] != long {
		t.Errorf("the upstream got X-Long of %d values, want the whole one", len(vs))
	}
	if vs := values(got[0].head, "X-After"); len(vs) != 1 || vs[0] != "1" {
		t.Errorf("the upstream got X-After %q", vs)
	}
	if h := handOvers(t, e); h != h0 {
		t.Errorf("%v connections handed over, want the fast path to serve a head in two reads", h-h0)
	}

	// A few bytes at a time.
	rc = dialRaw(t, e)
	dribbled := "GET /dribbled HTTP/1.1\r\nHost: pbx.example.org\r\nX-After: 1\r\n\r\n"
	for i := 0; i < len(dribbled); i += 8 {
		if _, err := io.WriteString(rc.c, dribbled[i:min(i+8, len(dribbled))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if x, err := readExchange(rc.br, false); err != nil || x.status != 200 || x.body != "ok" {
		t.Fatalf("a dribbled head: answer %d %q, %v", x.status, x.body, err)
	}
	if up := seenBy(rec.received()); !slices.Equal(up, []string{"GET /long", "GET /smuggled", "GET /dribbled"}) {
		t.Fatalf("the upstream saw %q", up)
	}

	// Larger than the buffers, in one write.
	rc = dialRaw(t, e)
	huge := "GET /huge HTTP/1.1\r\nHost: pbx.example.org\r\nX-Long: " + strings.Repeat("a", bufferSize+1000) + "\r\n\r\n"
	if x := rc.do(huge + smuggled); x.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a head of %d bytes: answer %d %q, want 431", len(huge), x.status, x.body)
	}
	if !rc.closed() {
		t.Error("the connection stayed open after a 431")
	}
	if up := seenBy(rec.received()); len(up) != 3 {
		t.Errorf("the upstream saw %q, want the three requests before only", up)
	}
}

// An answer without Date gets one on the way, on both paths (RFC 9110
// §6.6.1: a proxy with a clock adds it).
func TestAnAnswerWithoutDateGetsOne(t *testing.T) {
	for _, general := range []bool{true, false} {
		e, _ := startSmuggled(t, general)
		x := dialRaw(t, e).do("GET /a HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n")
		vs := values(x.head, "Date")
		if len(vs) != 1 {
			t.Fatalf("general path only %v: the client got Date %q, want one", general, vs)
		}
		if d, err := http.ParseTime(vs[0]); err != nil || time.Since(d).Abs() > time.Hour {
			t.Errorf("general path only %v: Date %q (%v), want about now", general, vs[0], err)
		}
	}
}

// Bytes an upstream sends past its answer (more than its Content-Length,
// a body to a HEAD) never answer another client's request.
func TestBytesPastAnAnswerDoNotAnswerTheNextRequest(t *testing.T) {
	for _, general := range []bool{true, false} {
		e, rec := startSmuggled(t, general)
		rec.answer("/long", rawAnswer{raw: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" +
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"})
		if x := dialRaw(t, e).do("GET /long HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n"); x.body != "ok" {
			t.Fatalf("general path only %v: the first client got %d %q", general, x.status, x.body)
		}
		if x := dialRaw(t, e).do("GET /b HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n"); x.status != 200 || x.body != "ok" {
			t.Errorf("general path only %v: another client's GET /b got %d %q, want 200 \"ok\"", general, x.status, x.body)
		}
		rec.answer("/head", rawAnswer{raw: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"})
		rc := dialRaw(t, e)
		if _, err := rc.c.Write([]byte("HEAD /head HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if x, err := readExchange(rc.br, true); err != nil || x.status != 200 {
			t.Fatalf("HEAD: %d %v", x.status, err)
		}
		if x := dialRaw(t, e).do("GET /b HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n"); x.status != 200 || x.body != "ok" {
			t.Errorf("general path only %v: after a HEAD answered with a body, another client's GET /b got %d %q", general, x.status, x.body)
		}
	}
}

// A header name that is not a token (a space in it) is refused: an
// upstream could read "Content Length" as the body's length.
func TestHeaderNameWithASpaceIsRefused(t *testing.T) {
	for _, general := range []bool{true, false} {
		e, rec := startSmuggled(t, general)
		x := dialRaw(t, e).do("POST /a HTTP/1.1\r\nHost: pbx.example.org\r\nContent Length: 5\r\n\r\nhello")
		if x.status != http.StatusBadRequest {
			t.Errorf("general path only %v: answer %d, want 400; the upstream got %q", general, x.status, rec.received())
		}
		if got := rec.received(); len(got) != 0 {
			t.Errorf("general path only %v: the upstream got %q", general, got)
		}
	}
}
