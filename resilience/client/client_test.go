package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/resilience/web"
)

const (
	token   = "client-test-token"
	waitFor = 5 * time.Second
)

// fakeNode records the calls of the server and returns set answers.
type fakeNode struct {
	mu       sync.Mutex
	status   api.Status
	active   api.Active
	startErr error
	entries  []api.AuditEntry
	calls    []string
	subs     []chan api.Event

	subscribed chan struct{}
	cancelled  chan struct{}
}

func newFakeNode() *fakeNode {
	return &fakeNode{
		status:     api.Status{Node: "xivo-main", Role: "main", Mode: "manual", Status: api.StatusActive, Epoch: 3, Since: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)},
		active:     api.Active{Status: api.StatusActive, Epoch: 3},
		subscribed: make(chan struct{}, 16),
		cancelled:  make(chan struct{}, 16),
	}
}

func (f *fakeNode) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeNode) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeNode) Status() api.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeNode) Active() api.Active {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active
}

func (f *fakeNode) StartServices(_ context.Context, who string, req api.StartRequest) (api.Status, error) {
	f.record("start who=%s reason=%s force=%v", who, req.Reason, req.Force)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status, f.startErr
}

func (f *fakeNode) StopServices(_ context.Context, who string, req api.StopRequest) (api.Status, error) {
	f.record("stop who=%s reason=%s", who, req.Reason)
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status
	st.Status = api.StatusInactive
	return st, nil
}

func (f *fakeNode) Audit(_ context.Context, limit int, before uint64) ([]api.AuditEntry, error) {
	f.record("audit limit=%d before=%d", limit, before)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.entries, nil
}

func (f *fakeNode) Subscribe() (<-chan api.Event, func()) {
	f.mu.Lock()
	ch := make(chan api.Event, 16)
	ch <- api.Event{Name: api.EventStatus, Data: f.status}
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	f.subscribed <- struct{}{}
	var once sync.Once
	return ch, func() { once.Do(func() { f.cancelled <- struct{}{} }) }
}

func (f *fakeNode) publish(ev api.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// start serves a web.Server over the fake node on 127.0.0.1:0.
func start(t *testing.T) (*fakeNode, *web.Server, string) {
	t.Helper()
	node := newFakeNode()
	srv := web.New(node, web.Options{Token: token})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return node, srv, "http://" + ln.Addr().String()
}

// closedPort is a local address nothing listens on: reserved for the test,
// below the kernel's ephemeral range (testkit.Port), so that nothing
// listens there meanwhile.
func closedPort(t *testing.T) string {
	t.Helper()
	return "http://" + testkit.Addr(t)
}

func TestMethods(t *testing.T) {
	node, _, base := start(t)
	node.entries = []api.AuditEntry{{ID: 5, Who: "api", Action: "start", Outcome: api.OutcomeOK}}
	c := client.New(base+"/", token, client.WithActor("alice@host"), client.WithTimeout(waitFor))
	ctx := context.Background()

	st, err := c.Status(ctx)
	if err != nil || st.Node != "xivo-main" || st.Epoch != 3 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	a, err := c.Active(ctx)
	if err != nil || a != (api.Active{Status: api.StatusActive, Epoch: 3}) {
		t.Fatalf("Active = %+v, %v", a, err)
	}
	st, err = c.StartServices(ctx, api.StartRequest{Reason: "go", Force: true})
	if err != nil || st.Status != api.StatusActive {
		t.Fatalf("StartServices = %+v, %v", st, err)
	}
	st, err = c.StopServices(ctx, api.StopRequest{Reason: "maintenance"})
	if err != nil || st.Status != api.StatusInactive {
		t.Fatalf("StopServices = %+v, %v", st, err)
	}
	entries, err := c.Audit(ctx, 0, 0)
	if err != nil || len(entries) != 1 || entries[0].ID != 5 {
		t.Fatalf("Audit = %+v, %v", entries, err)
	}
	if _, err := c.Audit(ctx, 10, 99); err != nil {
		t.Fatalf("Audit: %v", err)
	}
	want := []string{
		"start who=api:alice@host reason=go force=true",
		"stop who=api:alice@host reason=maintenance",
		"audit limit=100 before=0",
		"audit limit=10 before=99",
	}
	if got := node.Calls(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Without an actor, the audit log says "api".
	if _, err := client.New(base, token).StopServices(ctx, api.StopRequest{Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	if calls := node.Calls(); calls[len(calls)-1] != "stop who=api reason=r" {
		t.Errorf("last call %q", calls[len(calls)-1])
	}
}

func TestActiveInactive(t *testing.T) {
	node, _, base := start(t)
	node.active = api.Active{Status: api.StatusInactive, Epoch: 4}
	// /active needs no token.
	a, err := client.New(base, "").Active(context.Background())
	if err != nil {
		t.Fatalf("Active on 503: %v", err)
	}
	if a != (api.Active{Status: api.StatusInactive, Epoch: 4}) {
		t.Errorf("Active = %+v", a)
	}
}

// A decision the node could not persist is an answer (503 with the node's
// message), not an unreachable node.
func TestNotDurableIsAnAnswer(t *testing.T) {
	node, _, base := start(t)
	node.startErr = fmt.Errorf("%w: the decision could not be persisted, so nothing was started or stopped: no space left on device",
		resilience.ErrNotDurable)
	_, err := client.New(base, token).StartServices(context.Background(), api.StartRequest{Reason: "r"})
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != 503 || errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("err = %v, want a 503 *client.Error", err)
	}
	if want := "decision not persisted: the decision could not be persisted, so nothing was started or stopped: no space left on device"; e.Message != want {
		t.Errorf("message = %q, want %q", e.Message, want)
	}
}

func TestErrors(t *testing.T) {
	node, _, base := start(t)
	node.startErr = fmt.Errorf("the peer xivo-standby is Active (epoch 3): %w", resilience.ErrConflict)
	ctx := context.Background()

	_, err := client.New(base, token).StartServices(ctx, api.StartRequest{Reason: "r"})
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want *client.Error", err)
	}
	if e.StatusCode != 409 || e.Message != "the peer xivo-standby is Active (epoch 3): conflict" {
		t.Errorf("Error = %+v", e)
	}
	if e.Error() != "409: the peer xivo-standby is Active (epoch 3): conflict" {
		t.Errorf("Error() = %q", e.Error())
	}
	if errors.Is(err, client.ErrUnreachable) {
		t.Error("a refusal is not ErrUnreachable")
	}

	for name, call := range map[string]func() error{
		"wrong token": func() error { _, err := client.New(base, "nope").Status(ctx); return err },
		"no reason":   func() error { _, err := client.New(base, token).StopServices(ctx, api.StopRequest{}); return err },
		"bad limit":   func() error { _, err := client.New(base, token).Audit(ctx, 5000, 0); return err },
		"bad actor": func() error {
			_, err := client.New(base, token, client.WithActor(strings.Repeat("x", 65))).Status(ctx)
			return err
		},
		"events wrong token": func() error {
			return client.New(base, "nope").Events(ctx, func(api.Event) error { return nil })
		},
	} {
		err := call()
		if !errors.As(err, &e) {
			t.Errorf("%s: err = %v, want *client.Error", name, err)
			continue
		}
		if e.StatusCode/100 != 4 || e.Message == "" || strings.Contains(e.Message, token) {
			t.Errorf("%s: Error = %+v", name, e)
		}
	}
}

func TestUnreachable(t *testing.T) {
	c := client.New(closedPort(t), token, client.WithTimeout(waitFor))
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"Status":        func() error { _, err := c.Status(ctx); return err },
		"Active":        func() error { _, err := c.Active(ctx); return err },
		"StartServices": func() error { _, err := c.StartServices(ctx, api.StartRequest{Reason: "r"}); return err },
		"StopServices":  func() error { _, err := c.StopServices(ctx, api.StopRequest{Reason: "r"}); return err },
		"Audit":         func() error { _, err := c.Audit(ctx, 1, 0); return err },
		"Events":        func() error { return c.Events(ctx, func(api.Event) error { return nil }) },
	} {
		err := call()
		if !errors.Is(err, client.ErrUnreachable) {
			t.Errorf("%s: err = %v, want ErrUnreachable", name, err)
		}
		var e *client.Error
		if errors.As(err, &e) {
			t.Errorf("%s: a transport failure is not an answer: %v", name, err)
		}
	}
}

// TestTimeout: a node that accepts but never answers is unreachable once
// the client's timeout passes, for the calls and for the events request.
func TestTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns sync.WaitGroup
	conns.Go(func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	})
	defer conns.Wait()
	defer ln.Close()

	c := client.New("http://"+ln.Addr().String(), token, client.WithTimeout(50*time.Millisecond))
	if _, err := c.Status(context.Background()); !errors.Is(err, client.ErrUnreachable) {
		t.Errorf("Status: %v, want ErrUnreachable", err)
	}
	if err := c.Events(context.Background(), func(api.Event) error { return nil }); !errors.Is(err, client.ErrUnreachable) {
		t.Errorf("Events: %v, want ErrUnreachable", err)
	}
}

func TestCallerCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := client.New(closedPort(t), token).Status(ctx)
	if !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrUnreachable) {
		t.Errorf("err = %v, want context.Canceled and not ErrUnreachable", err)
	}
}

func TestEvents(t *testing.T) {
	node, _, base := start(t)
	// The HTTP client's overall timeout, which would fail any request at
	// once, must not apply to the stream.
	c := client.New(base, token, client.WithTimeout(time.Second), client.WithHTTPClient(&http.Client{Timeout: time.Nanosecond}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	got := make(chan api.Event, 16)
	done := make(chan error, 1)
	go func() {
		done <- c.Events(ctx, func(ev api.Event) error {
			got <- ev
			return nil
		})
	}()
	recv := func() api.Event {
		t.Helper()
		select {
		case ev := <-got:
			return ev
		case err := <-done:
			t.Fatalf("Events returned %v", err)
		case <-time.After(waitFor):
			t.Fatal("no event in time")
		}
		return api.Event{}
	}

	ev := recv()
	st, ok := ev.Data.(api.Status)
	if ev.Name != api.EventStatus || !ok || st.Node != "xivo-main" {
		t.Fatalf("first event = %+v", ev)
	}
	node.publish(api.Event{Name: api.EventAudit, Data: api.AuditEntry{ID: 12, Who: "resman", Action: "stop", Outcome: api.OutcomeOK}})
	ev = recv()
	entry, ok := ev.Data.(api.AuditEntry)
	if ev.Name != api.EventAudit || !ok || entry.ID != 12 {
		t.Fatalf("audit event = %+v", ev)
	}
	updated := st
	updated.Status = api.StatusDeactivating
	node.publish(api.Event{Name: api.EventStatus, Data: updated})
	if ev = recv(); ev.Data.(api.Status).Status != api.StatusDeactivating {
		t.Fatalf("status event = %+v", ev)
	}

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Events after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Events did not return on cancel")
	}
}

func TestEventsHandlerError(t *testing.T) {
	_, _, base := start(t)
	stop := errors.New("enough")
	err := client.New(base, token).Events(context.Background(), func(api.Event) error { return stop })
	if err != stop {
		t.Errorf("err = %v, want the handler's error", err)
	}
}

func TestEventsEndOnShutdown(t *testing.T) {
	node, srv, base := start(t)
	done := make(chan error, 1)
	go func() {
		done <- client.New(base, token).Events(context.Background(), func(api.Event) error { return nil })
	}()
	select {
	case <-node.subscribed:
	case <-time.After(waitFor):
		t.Fatal("no subscription")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Events at the stream's end: %v, want nil", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Events did not return at shutdown")
	}
}

// One event made of many data: lines, each under the line limit, must not
// grow without bound: the whole event is held to the same 16 MiB.
func TestEventsBoundsAnEventOfManyLines(t *testing.T) {
	line := "data: " + strings.Repeat("x", 1<<20) + "\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: status\n")
		for range 40 { // 40 MiB, never a blank line
			if _, err := io.WriteString(w, line); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	err := client.New(srv.URL, token).Events(context.Background(), func(api.Event) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "an event is larger than") {
		t.Fatalf("Events = %v, want the event refused as too large", err)
	}
}
