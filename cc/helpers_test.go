package cc

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/resilience/api"
)

const (
	nodeToken = "node-token-0123456789abcdef"
	ccToken   = "cc-token-0123456789abcdef"
	waitLimit = 15 * time.Second
)

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeNode serves a node's API over loopback: GET /api/v1/status,
// /active and the event stream /api/v1/events, from a status the test
// sets. It can go down (every connection cut) and come back.
type fakeNode struct {
	srv *httptest.Server

	mu      sync.Mutex
	st      api.Status
	down    bool
	noSSE   bool
	subs    map[chan api.Status]struct{}
	streams int // event streams served so far
	polls   int // status and active calls served so far
}

func newFakeNode(t *testing.T, status string, epoch uint64) *fakeNode {
	t.Helper()
	f := &fakeNode{
		st:   api.Status{Node: "xivo-main", Role: "main", Mode: "manual", Status: status, Epoch: epoch, Since: time.Now().UTC()},
		subs: map[chan api.Status]struct{}{},
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	ctx, cancel := context.WithCancel(context.Background())
	f.srv.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	f.srv.Start()
	t.Cleanup(func() { cancel(); f.srv.Close() })
	return f
}

func (f *fakeNode) url() string { return f.srv.URL }

func (f *fakeNode) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	down, noSSE, st := f.down, f.noSSE, f.st
	f.mu.Unlock()
	if down {
		cut(w)
		return
	}
	if r.URL.Path != "/active" && r.Header.Get("Authorization") != "Bearer "+nodeToken {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(api.Error{Error: "invalid bearer token"})
		return
	}
	switch r.URL.Path {
	case "/active":
		f.count()
		code := http.StatusServiceUnavailable
		if st.Status == api.StatusActive {
			code = http.StatusOK
		}
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(api.Active{Status: st.Status, Epoch: st.Epoch})
	case "/api/v1/status":
		f.count()
		json.NewEncoder(w).Encode(st)
	case "/api/v1/events":
		if noSSE {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(api.Error{Error: "not found"})
			return
		}
		f.events(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeNode) count() {
	f.mu.Lock()
	f.polls++
	f.mu.Unlock()
}

// cut answers nothing: the connection is broken mid-answer, which the
// client sees as the node being unreachable.
func cut(w http.ResponseWriter) {
	if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"))
		c.Close()
	}
}

func (f *fakeNode) events(w http.ResponseWriter, r *http.Request) {
	ch := make(chan api.Status, 16)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.streams++
	first := f.st
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(st api.Status) bool {
		b, _ := json.Marshal(st)
		if _, err := fmt.Fprintf(w, "event: status\ndata: %s\n\n", b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(first) {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case st, ok := <-ch:
			if !ok {
				return
			}
			if !send(st) {
				return
			}
		}
	}
}

// set changes the node's status and tells the event streams.
func (f *fakeNode) set(status string, epoch uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Status, f.st.Epoch, f.st.Since = status, epoch, time.Now().UTC()
	for ch := range f.subs {
		select {
		case ch <- f.st:
		default:
		}
	}
}

// setDown makes the node unreachable (its event streams end) or reachable.
func (f *fakeNode) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
	if down {
		for ch := range f.subs {
			close(ch)
			delete(f.subs, ch)
		}
	}
}

func (f *fakeNode) counts() (streams, polls int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams, f.polls
}

type testFollower struct {
	*Follower
	reg *prometheus.Registry
	dir string
}

type optFunc func(*Options)

// startFollower runs a follower of node with services until the test ends.
func startFollower(t *testing.T, node *fakeNode, svcs []config.Service, opts ...optFunc) *testFollower {
	t.Helper()
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	o := Options{
		Config:        config.CC{Name: "cc-main", Follow: node.url(), Token: nodeToken, Services: svcs},
		Token:         ccToken,
		DataDir:       dir,
		CheckInterval: 20 * time.Millisecond,
		Logger:        testLogger(t),
		Registerer:    reg,
	}
	for _, f := range opts {
		f(&o)
	}
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLimit):
			t.Error("Run did not return")
		}
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &testFollower{Follower: f, reg: reg, dir: dir}
}

// sleeper is a run: service that stays up until stopped.
func sleeper(name string) config.Service {
	return config.Service{Name: name, Run: []string{"sleep", "300"}, Timeout: 5 * time.Second}
}

func (f *testFollower) waitStatus(t *testing.T, status string) {
	t.Helper()
	waitUntil(t, "follower "+status, func() bool { return f.Status().Status == status })
}

// causes lists the audit entries, oldest first, as "action: cause".
func (f *testFollower) causes(t *testing.T) []string {
	t.Helper()
	entries, err := f.Audit(1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range slices.Backward(entries) {
		s := e.Action + ": " + e.Cause
		if e.Outcome != api.OutcomeOK {
			s += " [" + e.Outcome + "]"
		}
		out = append(out, s)
	}
	return out
}

func has(list []string, want string) bool {
	for _, s := range list {
		if strings.Contains(s, want) {
			return true
		}
	}
	return false
}

// metric is the value of a gauge or counter with the given labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// logBuffer keeps the logs and prints them if the test fails.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func testLogger(t *testing.T) *slog.Logger {
	lb := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			lb.mu.Lock()
			t.Logf("logs:\n%s", lb.b.String())
			lb.mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
