package web

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// stream is one event stream opened by a test; close ends it from the
// client's side.
type stream struct {
	resp  *http.Response
	close context.CancelFunc
}

// tryStream opens GET /api/v1/events over a real connection of hc, with the
// session cookie when c is not nil, else the bearer token. A 200 stream is
// read up to its first event (it is then counted by the server); any other
// answer is returned with its body read.
func tryStream(t *testing.T, hc *http.Client, base string, c *http.Cookie) (stream, answer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", base+pathEvents, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c != nil {
		req.AddCookie(c)
	} else {
		req.Header.Set("Authorization", "Bearer "+testToken)
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	a := answer{code: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != 200 {
		a.body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return stream{}, a
	}
	st := stream{resp: resp, close: func() { cancel(); resp.Body.Close() }}
	t.Cleanup(st.close)
	if ev := next(t, readEvents(bufio.NewReader(resp.Body)), true); ev.name != api.EventStatus {
		t.Fatalf("first event = %+v", ev)
	}
	return st, a
}

// refused checks a is the 429 of a refused stream, with a Retry-After and
// a message that says which limit.
func refused(t *testing.T, what string, a answer, msg string) {
	t.Helper()
	if a.code != 429 {
		t.Fatalf("%s: %d, want 429", what, a.code)
	}
	if ra := a.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("%s: Retry-After %q", what, ra)
	}
	if got := apiError(t, a); !strings.Contains(got, msg) {
		t.Errorf("%s: message %q, want it to say %q", what, got, msg)
	}
}

// waitStreams waits until reg counts n open streams.
func waitStreams(t *testing.T, reg *prometheus.Registry, n float64) {
	t.Helper()
	testkit.Until(t, func() float64 { return testkit.Metric(t, reg, "resman_http_event_streams", nil) },
		func(v float64) bool { return v == n }, "%v open streams", n)
}

// TestEventStreamsPerClient: one client (the bearer token from one
// address) gets DefaultEventStreamsPerClient streams; the next is refused
// with 429 until one ends.
func TestEventStreamsPerClient(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, node, _ := newTestServer(t, Options{Registerer: reg})
	s.keepAlive = 20 * time.Millisecond // a client gone is noticed soon
	base, _ := serve(t, s)
	hc := &http.Client{}

	open := make([]stream, 0, DefaultEventStreamsPerClient)
	for i := range DefaultEventStreamsPerClient {
		st, a := tryStream(t, hc, base, nil)
		if a.code != 200 {
			t.Fatalf("stream %d: %d %s", i+1, a.code, a.body)
		}
		waitID(t, node.subscribed, "subscribe")
		open = append(open, st)
	}
	_, a := tryStream(t, hc, base, nil)
	refused(t, "one stream over the limit", a, "too many event streams open for this client (8)")
	if a.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q, want 1 (the keep-alive period of this server, rounded up)", a.header.Get("Retry-After"))
	}
	if got := testkit.Metric(t, reg, "resman_http_event_streams_refused_total", map[string]string{"limit": "client"}); got != 1 {
		t.Errorf("refused streams metric = %v, want 1", got)
	}
	if got := testkit.Metric(t, reg, "resman_http_event_streams", nil); got != DefaultEventStreamsPerClient {
		t.Errorf("open streams metric = %v, want %d", got, DefaultEventStreamsPerClient)
	}

	// The client closes one: its place is free once the server notices.
	open[0].close()
	waitID(t, node.cancelled, "cancel")
	waitStreams(t, reg, DefaultEventStreamsPerClient-1)
	if _, a := tryStream(t, hc, base, nil); a.code != 200 {
		t.Fatalf("after closing one: %d %s", a.code, a.body)
	}
	waitID(t, node.subscribed, "subscribe")

	// Another client address is another client.
	other := clientFrom(t, base, "127.0.0.2")
	if _, a := tryStream(t, other, base, nil); a.code != 200 {
		t.Fatalf("the token from another address: %d %s", a.code, a.body)
	}
	waitID(t, node.subscribed, "subscribe")
}

// TestEventStreamsPerSessionAndInAll: a web session is a client of its
// own; past the cap on all streams, every client is refused until one
// ends.
func TestEventStreamsPerSessionAndInAll(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, node, _ := newTestServer(t, Options{Users: testUsers(t), Registerer: reg,
		MaxEventStreamsPerClient: 2, MaxEventStreams: 3})
	s.keepAlive = 20 * time.Millisecond
	base, _ := serve(t, s)
	hc := &http.Client{}
	c1, _ := loginOK(t, s)
	c2, _ := loginOK(t, s)

	first, a := tryStream(t, hc, base, c1)
	if a.code != 200 {
		t.Fatalf("session 1, stream 1: %d", a.code)
	}
	if _, a := tryStream(t, hc, base, c1); a.code != 200 {
		t.Fatalf("session 1, stream 2: %d", a.code)
	}
	_, a = tryStream(t, hc, base, c1)
	refused(t, "session 1, stream 3", a, "too many event streams open for this client (2)")
	if _, a := tryStream(t, hc, base, c2); a.code != 200 {
		t.Fatalf("session 2, stream 1: %d", a.code)
	}
	_, a = tryStream(t, hc, base, c2)
	refused(t, "session 2, stream 2 (4th in all)", a, "too many event streams open on this node (3)")
	_, a = tryStream(t, hc, base, nil)
	refused(t, "bearer (4th in all)", a, "too many event streams open on this node (3)")
	for range 3 {
		waitID(t, node.subscribed, "subscribe")
	}
	if got := testkit.Metric(t, reg, "resman_http_event_streams_refused_total", map[string]string{"limit": "node"}); got != 2 {
		t.Errorf("refused streams metric (node) = %v, want 2", got)
	}

	first.close()
	waitID(t, node.cancelled, "cancel")
	waitStreams(t, reg, 2)
	if _, a := tryStream(t, hc, base, c2); a.code != 200 {
		t.Fatalf("session 2 after one stream ended: %d %s", a.code, a.body)
	}
	waitID(t, node.subscribed, "subscribe")
}
