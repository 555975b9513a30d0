package edge

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	node := newFakeNode(t, active(1))
	reg := prometheus.NewRegistry()
	e, err := New(Options{Config: Config{Listen: "127.0.0.1:0", Token: testToken, Check: fast(),
		Sides: []Side{{Name: "main", Node: node.URL(), Routes: routes}}},
		Token: testToken, Registerer: reg, Logger: testkit.FailureLogger(t), CheckTimeout: waitLimit})
	if err != nil {
		t.Fatal(err)
	}
	e.generalOnly = generalOnly
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
	te := &testEdge{Edge: e, url: "http://" + ln.Addr().String(), reg: reg}
	te.waitRouted(t, "main")
	return te
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
