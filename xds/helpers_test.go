package xds

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/xds/registrar"
)

// testContact is the contact every test registers.
const testContact = "sip:pbx@127.0.0.1:5099"

// recorder keeps the events and lets a test wait for one.
type recorder struct {
	mu     sync.Mutex
	events []Event
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) add(ev Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// wait returns the first event after index from that matches, failing the
// test after timeout.
func (r *recorder) wait(t testing.TB, from int, timeout time.Duration, match func(Event) bool) (Event, int) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		evs := r.all()
		for i := from; i < len(evs); i++ {
			if match(evs[i]) {
				return evs[i], i
			}
		}
		select {
		case <-r.notify:
		case <-deadline.C:
			t.Fatalf("no matching event within %s; events: %+v", timeout, evs)
		}
	}
}

func kind(mds, k string) func(Event) bool {
	return func(ev Event) bool { return ev.MDS == mds && ev.Kind == k }
}

// outcome matches the event that says how a registration went: registered,
// or failed on an answer. A failure by timeout is passed over: fastOptions'
// RequestTimeout is 500 ms, which a loaded machine can exceed (the first
// TLS handshake with the system roots, which it loads, did); the
// registration is retried, and its outcome is that of the answer.
func outcome(ev Event) bool {
	if ev.Kind == EventFailed && ev.Err != nil &&
		(errors.Is(ev.Err, context.DeadlineExceeded) || strings.Contains(ev.Err.Error(), "deadline exceeded")) {
		return false
	}
	return ev.Kind == EventRegistered || ev.Kind == EventFailed
}

// fastOptions are tuned for tests on loopback.
func fastOptions(logs *testkit.Buffer, rec *recorder) Options {
	o := Options{
		RequestTimeout: 500 * time.Millisecond,
		BackoffMin:     20 * time.Millisecond,
		BackoffMax:     200 * time.Millisecond,
		ProbeInterval:  50 * time.Millisecond,
		Rise:           2,
		Fall:           2,
		Hostname:       "pbx.test",
	}
	if logs != nil {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if rec != nil {
		o.OnEvent = rec.add
	}
	return o
}

// startXDS builds a Registrar, runs it and stops it at cleanup.
func startXDS(t testing.TB, cfg Config, opts Options) *Registrar {
	t.Helper()
	r, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return")
		}
	})
	return r
}

// startRegistrar serves a registrar on a free loopback port until cleanup.
func startRegistrar(t testing.TB, network string, opts registrar.Options) *registrar.Server {
	t.Helper()
	s := registrar.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx, network, "127.0.0.1:0") }()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("registrar: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("registrar not listening")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("registrar: %v", err)
		}
	})
	return s
}

// bindingOf returns the binding of contact at s, if any.
func bindingOf(s *registrar.Server, contact string) (registrar.Binding, bool) {
	for _, b := range s.Bindings() {
		if b.Contact == contact {
			return b, true
		}
	}
	return registrar.Binding{}, false
}

func mds(name, addr, transport, user, password string) MDS {
	return MDS{Name: name, Registrar: addr, Transport: transport, User: user, Password: password, Expires: 120}
}

// assertNoSecret fails when secret appears in any of the texts.
func assertNoSecret(t *testing.T, secret string, texts map[string]string) {
	t.Helper()
	for where, s := range texts {
		if strings.Contains(s, secret) {
			t.Errorf("the password appears in %s: %q", where, s)
		}
	}
}
