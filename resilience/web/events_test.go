package web

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
)

const waitFor = 5 * time.Second

// sseEvent is one parsed SSE message (or comment).
type sseEvent struct {
	name, id, data, comment string
}

// serve runs s on a loopback listener and returns its base URL and a
// channel with Serve's result.
func serve(t *testing.T, s *Server) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String(), done
}

// readEvents parses the stream into a channel, closed at its end.
func readEvents(r *bufio.Reader) <-chan sseEvent {
	out := make(chan sseEvent, 64)
	go func() {
		defer close(out)
		var ev sseEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			switch {
			case line == "":
				if ev != (sseEvent{}) {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.comment = strings.TrimSpace(line[1:])
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "id: "):
				ev.id = line[len("id: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[len("data: "):]
			}
		}
	}()
	return out
}

func next(t *testing.T, events <-chan sseEvent, skipComments bool) sseEvent {
	t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the stream ended")
			}
			if skipComments && ev.comment != "" && ev.name == "" {
				continue
			}
			return ev
		case <-timeout:
			t.Fatal("no event in time")
		}
	}
}

func waitID(t *testing.T, ch <-chan int, what string) int {
	t.Helper()
	select {
	case id := <-ch:
		return id
	case <-time.After(waitFor):
		t.Fatalf("%s: not in time", what)
		return 0
	}
}

func openStream(t *testing.T, ctx context.Context, base string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", base+pathEvents, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("code = %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	return resp
}

func TestEvents(t *testing.T) {
	s, node, _ := newTestServer(t, Options{})
	s.keepAlive = 20 * time.Millisecond
	base, _ := serve(t, s)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := openStream(t, ctx, base)
	defer resp.Body.Close()
	sub := waitID(t, node.subscribed, "subscribe")
	events := readEvents(bufio.NewReader(resp.Body))

	first := next(t, events, true)
	if first.name != api.EventStatus || first.id != "1" {
		t.Fatalf("first event = %+v, want status with id 1", first)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(first.data), &st); err != nil || st.Node != "xivo-main" {
		t.Fatalf("status data %q: %v", first.data, err)
	}

	entry := api.AuditEntry{ID: 9, Who: "api:alice@host", Action: "stop", Reason: "r", Outcome: api.OutcomeOK, Epoch: 3}
	node.publish(api.Event{Name: "unknown", Data: 1}) // dropped
	node.publish(api.Event{Name: api.EventAudit, Data: entry})
	ev := next(t, events, true)
	if ev.name != api.EventAudit || ev.id != "2" {
		t.Fatalf("event = %+v, want audit with id 2", ev)
	}
	var got api.AuditEntry
	if err := json.Unmarshal([]byte(ev.data), &got); err != nil || got.ID != 9 || got.Who != entry.Who {
		t.Fatalf("audit data %q: %v", ev.data, err)
	}

	// Keep-alive comments flow while nothing happens.
	if ev := next(t, events, false); ev.comment != "keep-alive" {
		t.Errorf("want a keep-alive comment, got %+v", ev)
	}

	// The client goes away: the server notices and cancels the subscription.
	cancel()
	if id := waitID(t, node.cancelled, "cancel"); id != sub {
		t.Errorf("cancelled subscription %d, want %d", id, sub)
	}
}

func TestEventsEndOnShutdown(t *testing.T) {
	s, node, _ := newTestServer(t, Options{})
	base, served := serve(t, s)

	resp := openStream(t, context.Background(), base)
	defer resp.Body.Close()
	events := readEvents(bufio.NewReader(resp.Body))
	if ev := next(t, events, true); ev.name != api.EventStatus {
		t.Fatalf("first event = %+v", ev)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	waitID(t, node.cancelled, "cancel")
	select {
	case _, ok := <-events:
		for ok {
			_, ok = <-events
		}
	case <-time.After(waitFor):
		t.Fatal("the stream did not end")
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Serve did not return")
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v, want ErrServerClosed", err)
	}
}

func TestShutdownBeforeServe(t *testing.T) {
	s, _, _ := newTestServer(t, Options{})
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestBodyTooLarge needs a real connection: fasthttp refuses the body
// while reading the request, which app.Test reports as an error. The body
// is announced, not sent: a server closing a connection with unread data
// resets it, and the client may lose the answer.
func TestBodyTooLarge(t *testing.T) {
	s, node, _ := newTestServer(t, Options{})
	base, _ := serve(t, s)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitFor))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", pathStart, testToken, BodyLimit+1)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 413 {
		t.Fatalf("code = %d, want 413; body %s", resp.StatusCode, b)
	}
	msg := apiError(t, answer{code: resp.StatusCode, header: resp.Header, body: b})
	if !strings.Contains(msg, "larger than") {
		t.Errorf("error = %q", msg)
	}
	if calls := node.Calls(); len(calls) != 0 {
		t.Errorf("the node saw %+v", calls)
	}
}
