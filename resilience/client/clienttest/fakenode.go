// Package clienttest is a fake node API for tests of what follows a node
// (the CC follower, the Edge, resilience/client/watch): FakeNode serves GET
// /api/v1/status, GET /active and the event stream GET /api/v1/events over
// loopback, from answers the test sets, pushes events, and can hold the
// polls, cut connections or go down.
package clienttest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
)

// Answer is what the node answers to a poll: a status and an epoch, or no
// answer at all (Cut: the connection breaks mid-answer).
type Answer struct {
	Status string
	Epoch  uint64
	Cut    bool
}

// Active, Inactive and Cut are the usual answers.
func Active(epoch uint64) Answer   { return Answer{Status: api.StatusActive, Epoch: epoch} }
func Inactive(epoch uint64) Answer { return Answer{Status: api.StatusInactive, Epoch: epoch} }
func Cut() Answer                  { return Answer{Cut: true} }

// Option configures a FakeNode.
type Option func(*FakeNode)

// WithToken makes GET /api/v1/status and the event stream require the
// bearer token (401 otherwise); GET /active never does. Without it, no
// token is checked.
func WithToken(token string) Option { return func(f *FakeNode) { f.token = token } }

// NoFirstEvent: an event stream does not begin with the node's status (a
// real node's does); it carries only what the test pushes.
func NoFirstEvent() Option { return func(f *FakeNode) { f.noFirst = true } }

// WithStart starts the server with start (StartTLS, another listener...)
// instead of Start.
func WithStart(start func(*httptest.Server)) Option { return func(f *FakeNode) { f.start = start } }

// FakeNode serves a node's API over loopback. Its methods are safe for
// concurrent use.
type FakeNode struct {
	srv     *httptest.Server
	token   string
	noFirst bool
	start   func(*httptest.Server)

	mu       sync.Mutex
	st       api.Status
	cut      bool // polls are cut
	down     bool // every request is cut
	noEvents bool // the event stream is refused
	subs     map[chan api.Status]struct{}
	streams  int // event streams served so far
	polls    int // polls (status and active) received so far
	// gate, when set, receives the answer of each poll; arrived hears
	// each poll arrive.
	gate    chan Answer
	arrived chan struct{}
}

// New serves a node whose status is st (Since now if zero) until the test
// ends.
func New(t testing.TB, st api.Status, opts ...Option) *FakeNode {
	t.Helper()
	if st.Since.IsZero() {
		st.Since = time.Now().UTC()
	}
	f := &FakeNode{st: st, subs: map[chan api.Status]struct{}{}, start: (*httptest.Server).Start}
	for _, o := range opts {
		o(f)
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	// Event streams end when the test ends (Close waits for them).
	ctx, cancel := context.WithCancel(context.Background())
	f.srv.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	f.start(f.srv)
	t.Cleanup(func() { cancel(); f.srv.Close() })
	return f
}

// URL is the node's base URL.
func (f *FakeNode) URL() string { return f.srv.URL }

func (f *FakeNode) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		cut(w)
		return
	}
	if r.URL.Path != "/active" && f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
		writeJSON(w, http.StatusUnauthorized, api.Error{Error: "invalid bearer token"})
		return
	}
	switch r.URL.Path {
	case "/active", "/api/v1/status":
		f.poll(w, r)
	case "/api/v1/events":
		f.events(w, r)
	default:
		http.NotFound(w, r)
	}
}

// poll answers GET /active or /api/v1/status: the node's status, or what
// the gate says.
func (f *FakeNode) poll(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.polls++
	st, isCut, gate, arrived := f.st, f.cut, f.gate, f.arrived
	f.mu.Unlock()
	if gate != nil {
		select {
		case arrived <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		select {
		case a := <-gate:
			st.Status, st.Epoch, isCut = a.Status, a.Epoch, a.Cut
		case <-r.Context().Done():
			return
		}
	}
	if isCut {
		cut(w)
		return
	}
	if r.URL.Path == "/api/v1/status" {
		writeJSON(w, http.StatusOK, st)
		return
	}
	code := http.StatusServiceUnavailable
	if st.Status == api.StatusActive {
		code = http.StatusOK
	}
	writeJSON(w, code, api.Active{Status: st.Status, Epoch: st.Epoch})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// cut answers nothing: the connection breaks mid-answer, which the client
// sees as the node being unreachable (a bare close would make the client's
// transport retry the GET on a new connection).
func cut(w http.ResponseWriter) {
	if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
		c.Close()
	}
}

// events serves the event stream: the node's status first (unless
// NoFirstEvent), then one status event per change or push, until the
// node ends it, goes down or the client leaves.
func (f *FakeNode) events(w http.ResponseWriter, r *http.Request) {
	ch := make(chan api.Status, 16)
	f.mu.Lock()
	if f.noEvents {
		f.mu.Unlock()
		writeJSON(w, http.StatusNotFound, api.Error{Error: "not found"})
		return
	}
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
	if f.noFirst {
		if rc.Flush() != nil {
			return
		}
	} else if !send(first) {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case st, ok := <-ch:
			if !ok || !send(st) {
				return
			}
		}
	}
}

// Set changes the node's status (Since now), as a node does: the answers
// change and every open event stream gets an event.
func (f *FakeNode) Set(status string, epoch uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Status, f.st.Epoch, f.st.Since = status, epoch, time.Now().UTC()
	f.pushLocked(f.st)
}

// SetAnswer changes what the polls answer, without an event: a status and
// an epoch, or cut connections (a.Cut, the status unchanged).
func (f *FakeNode) SetAnswer(a Answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = a.Cut
	if a.Cut {
		return
	}
	if a.Status != f.st.Status || a.Epoch != f.st.Epoch {
		f.st.Since = time.Now().UTC()
	}
	f.st.Status, f.st.Epoch = a.Status, a.Epoch
}

// Push sends a status event (the node's name, status and epoch) to the
// open event streams, the answers unchanged, and says how many got it.
func (f *FakeNode) Push(status string, epoch uint64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	st.Status, st.Epoch = status, epoch
	return f.pushLocked(st)
}

func (f *FakeNode) pushLocked(st api.Status) int {
	n := 0
	for ch := range f.subs {
		select {
		case ch <- st:
			n++
		default:
		}
	}
	return n
}

// EndStreams ends the open event streams, as a node that shuts down
// does; new ones are served.
func (f *FakeNode) EndStreams() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.endLocked()
}

func (f *FakeNode) endLocked() {
	for ch := range f.subs {
		close(ch)
		delete(f.subs, ch)
	}
}

// SetDown makes the node unreachable (every connection cut, its event
// streams end) or reachable again.
func (f *FakeNode) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
	if down {
		f.endLocked()
	}
}

// RefuseEvents makes the event stream answer 404 (an older node) or
// served again.
func (f *FakeNode) RefuseEvents(refuse bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noEvents = refuse
}

// Counts says how many event streams were served and how many polls
// received so far.
func (f *FakeNode) Counts() (streams, polls int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams, f.polls
}

// OpenStreams is how many event streams are open.
func (f *FakeNode) OpenStreams() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// Gate makes every poll wait for the test: the returned function answers
// the next poll with a and returns once the following poll has arrived
// (for a poller that polls one at a time: once the answer to a has been
// dealt with). Its first call first waits for a poll to arrive.
func (f *FakeNode) Gate(t testing.TB) (answerNext func(a Answer)) {
	f.mu.Lock()
	f.gate = make(chan Answer)
	f.arrived = make(chan struct{}, 1)
	gate, arrived := f.gate, f.arrived
	f.mu.Unlock()
	wait := func() {
		t.Helper()
		select {
		case <-arrived:
		case <-time.After(waitLimit):
			t.Fatal("no poll arrived")
		}
	}
	first := true
	return func(a Answer) {
		t.Helper()
		if first {
			wait()
			first = false
		}
		select {
		case gate <- a:
		case <-time.After(waitLimit):
			t.Fatal("no poll took the answer")
		}
		wait()
	}
}

// waitLimit bounds the waits of Gate.
const waitLimit = 15 * time.Second
