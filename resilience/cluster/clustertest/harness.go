package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// Harness starts cluster members on one Network and stops them all when the
// test ends.
type Harness struct {
	t   testing.TB
	Net *Network
	// Key is the gossip key every Spec without its own uses.
	Key []byte
	// Options is applied to every member's options before its Spec's Tune.
	Options func(*cluster.Options)
	// Settle is how long Close waits after shutting the members down, so
	// that memberlist's goroutines still in a timed wait (a probe, a
	// stream deadline, a meta push) end. In a synctest bubble it costs no
	// real time and is needed: once the test function returns, the
	// bubble's clock stops and such a goroutine would never wake. In real
	// time set it to 0. Default 15s.
	Settle time.Duration

	mu    sync.Mutex
	nodes map[string]*Node
	order []*Node
}

// New returns a harness on a fresh Network (seeded for packet loss). Its
// members are shut down, and the network closed, in t.Cleanup.
func New(t testing.TB, seed uint64) *Harness {
	t.Helper()
	h := &Harness{
		t:      t,
		Net:    NewNetwork(seed),
		Key:    []byte("resman-test-key-0123456789abcdef"),
		Settle: 15 * time.Second,
		nodes:  map[string]*Node{},
	}
	t.Cleanup(h.Close)
	return h
}

// Spec describes one member to start.
type Spec struct {
	Name string
	// Meta is the member's initial meta (its Role at least).
	Meta cluster.Meta
	// Key, when set, replaces the harness key (a wrong-key member).
	Key []byte
	// ExtraKeys are the member's other accepted keys (a key rotation).
	ExtraKeys [][]byte
	// Join, when set, replaces the default join list (every other member of
	// the harness, by name).
	Join []string
	// Expected, when set, gives the member's Options.Expected from the
	// addresses of the harness's members (by name, as in Join).
	Expected func(addr func(name string) string) []cluster.Expected
	// Tune adjusts the options last.
	Tune func(*cluster.Options)
}

// Node is a running member.
type Node struct {
	Name      string
	Cluster   *cluster.Cluster
	Transport *Transport
	// Events observes Cluster.Events from the start.
	Events *Observer
	// Logs holds the member's log records at info and above.
	Logs *LogRecorder
	// Metrics is the member's own registry.
	Metrics *prometheus.Registry

	cancel context.CancelFunc
	done   chan struct{}
	runErr error
}

// Start starts the members of specs. Their transports are made first, so
// each member's default join list holds every other member of the harness,
// the earlier ones and the ones started with it, as a configured pair and
// witness would.
func (h *Harness) Start(specs ...Spec) []*Node {
	h.t.Helper()
	trs := make([]*Transport, len(specs))
	for i, s := range specs {
		trs[i] = h.Net.Transport(s.Name)
	}
	addrs := map[string]string{}
	h.mu.Lock()
	for _, n := range h.order {
		addrs[n.Name] = n.Transport.Addr()
	}
	h.mu.Unlock()
	for i, s := range specs {
		addrs[s.Name] = trs[i].Addr()
	}
	out := make([]*Node, len(specs))
	for i, s := range specs {
		var join []string
		if s.Join != nil {
			for _, name := range s.Join {
				join = append(join, addrs[name])
			}
		} else {
			for name, a := range addrs {
				if name != s.Name {
					join = append(join, a)
				}
			}
		}
		if s.Expected != nil {
			exp := s.Expected(func(name string) string { return addrs[name] })
			tune := s.Tune
			s.Tune = func(o *cluster.Options) {
				o.Expected = exp
				if tune != nil {
					tune(o)
				}
			}
		}
		out[i] = h.start(s, trs[i], join)
	}
	return out
}

func (h *Harness) start(s Spec, tr *Transport, join []string) *Node {
	h.t.Helper()
	logs := NewLogRecorder(h.t, s.Name)
	reg := prometheus.NewRegistry()
	key := h.Key
	if s.Key != nil {
		key = s.Key
	}
	opts := cluster.Options{
		Name:       s.Name,
		Key:        key,
		ExtraKeys:  s.ExtraKeys,
		Join:       join,
		Logger:     slog.New(logs),
		Registerer: reg,
		Transport:  tr,
	}
	if h.Options != nil {
		h.Options(&opts)
	}
	if s.Tune != nil {
		s.Tune(&opts)
	}
	c, err := cluster.New(opts, s.Meta)
	if err != nil {
		h.t.Fatalf("clustertest: start %s: %v", s.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		Name: s.Name, Cluster: c, Transport: tr, Events: Observe(c), Logs: logs, Metrics: reg,
		cancel: cancel, done: make(chan struct{}),
	}
	go func() {
		defer close(n.done)
		n.runErr = c.Run(ctx)
	}()
	h.mu.Lock()
	h.nodes[s.Name] = n
	h.order = append(h.order, n)
	h.mu.Unlock()
	return n
}

// Node returns the member last started under name.
func (h *Harness) Node(name string) *Node {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nodes[name]
}

// Close shuts every member down (as a crash: no Leave), then the network.
func (h *Harness) Close() {
	h.mu.Lock()
	nodes := append([]*Node(nil), h.order...)
	h.mu.Unlock()
	for _, n := range nodes {
		n.Kill()
	}
	time.Sleep(h.Settle)
	h.Net.Close()
	for _, n := range nodes {
		n.Events.wait()
		n.Logs.Close()
	}
}

// Kill stops the member at once without telling the others, as a crash or
// a power cut would, and waits for Run to return.
func (n *Node) Kill() {
	n.Cluster.Shutdown()
	<-n.done
	n.cancel()
}

// Stop ends Run gracefully (Leave, then Shutdown) and waits for it.
func (n *Node) Stop() {
	n.cancel()
	<-n.done
}

// Addr is the member's gossip address.
func (n *Node) Addr() string { return n.Transport.Addr() }

// Sees reports whether this member currently sees name alive.
func (n *Node) Sees(name string) bool {
	m, ok := n.Cluster.Member(name)
	return ok && m.Alive
}

// Observer records every Event of one Cluster, in order, and lets a test
// wait for the next one that matches.
type Observer struct {
	mu      sync.Mutex
	events  []cluster.Event
	cursor  int
	changed chan struct{} // closed and replaced at every new event
	closed  bool
	done    chan struct{}
}

// Observe starts reading c.Events until it is closed. Only one reader may
// read a Cluster's events.
func Observe(c *cluster.Cluster) *Observer {
	o := &Observer{changed: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		for ev := range c.Events() {
			o.mu.Lock()
			o.events = append(o.events, ev)
			close(o.changed)
			o.changed = make(chan struct{})
			o.mu.Unlock()
		}
		o.mu.Lock()
		o.closed = true
		close(o.changed)
		o.mu.Unlock()
	}()
	return o
}

func (o *Observer) wait() { <-o.done }

// Wait returns the first event after the cursor that matches pred, and
// moves the cursor past it. It fails the test when none comes within
// timeout (or the events end), listing what came.
func (o *Observer) Wait(t testing.TB, pred func(cluster.Event) bool, timeout time.Duration) cluster.Event {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		o.mu.Lock()
		for i := o.cursor; i < len(o.events); i++ {
			if pred(o.events[i]) {
				o.cursor = i + 1
				ev := o.events[i]
				o.mu.Unlock()
				return ev
			}
		}
		ch, closed := o.changed, o.closed
		seen := o.describeLocked()
		o.mu.Unlock()
		if closed {
			t.Fatalf("clustertest: events ended before the expected one; seen: %s", seen)
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("clustertest: no expected event within %s; seen: %s", timeout, seen)
		}
	}
}

// Skip moves the cursor past every event seen so far.
func (o *Observer) Skip() {
	o.mu.Lock()
	o.cursor = len(o.events)
	o.mu.Unlock()
}

// All returns every event seen so far.
func (o *Observer) All() []cluster.Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]cluster.Event(nil), o.events...)
}

// Count returns how many events seen so far match pred.
func (o *Observer) Count(pred func(cluster.Event) bool) int {
	n := 0
	for _, ev := range o.All() {
		if pred(ev) {
			n++
		}
	}
	return n
}

func (o *Observer) describeLocked() string {
	if len(o.events) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, ev := range o.events {
		if i > 0 {
			b.WriteString("; ")
		}
		if i == o.cursor {
			b.WriteString("| ")
		}
		b.WriteString(ev.String())
	}
	return b.String()
}

// WaitEvent is o.Wait.
func WaitEvent(t testing.TB, o *Observer, pred func(cluster.Event) bool, timeout time.Duration) cluster.Event {
	t.Helper()
	return o.Wait(t, pred, timeout)
}

// IsUp matches an Up event of member name.
func IsUp(name string) func(cluster.Event) bool {
	return func(ev cluster.Event) bool { return ev.Kind == cluster.Up && ev.Member.Name == name }
}

// IsDown matches a Down event of member name.
func IsDown(name string) func(cluster.Event) bool {
	return func(ev cluster.Event) bool { return ev.Kind == cluster.Down && ev.Member.Name == name }
}

// IsKind matches any event of kind.
func IsKind(kind cluster.EventKind) func(cluster.Event) bool {
	return func(ev cluster.Event) bool { return ev.Kind == kind }
}

// HasMeta matches an event (Up or Update) of member name, alive, whose meta
// satisfies pred.
func HasMeta(name string, pred func(cluster.Meta) bool) func(cluster.Event) bool {
	return func(ev cluster.Event) bool {
		return ev.Kind != cluster.Down && ev.Member.Name == name && pred(ev.Member.Meta)
	}
}

// WaitMember waits until n's view of member name satisfies pred, and
// returns it. Unlike Observer.Wait it does not depend on the order of
// events, only on the state reached.
func WaitMember(t testing.TB, n *Node, name string, pred func(cluster.Member) bool, timeout time.Duration) cluster.Member {
	t.Helper()
	var m cluster.Member
	testkit.EventuallyWithin(t, timeout, func() bool {
		var ok bool
		m, ok = n.Cluster.Member(name)
		return ok && pred(m)
	}, "%s's view of %s", n.Name, name)
	return m
}

// LogRecorder is a slog.Handler that keeps the records at info and above
// (for assertions) and mirrors them to the test log under -v.
type LogRecorder struct {
	t      testing.TB
	member string
	attrs  []slog.Attr

	mu     *sync.Mutex
	lines  *[]string
	closed *bool
}

// NewLogRecorder returns a recorder for member's logs.
func NewLogRecorder(t testing.TB, member string) *LogRecorder {
	return &LogRecorder{t: t, member: member, mu: new(sync.Mutex), lines: new([]string), closed: new(bool)}
}

// Enabled implements slog.Handler.
func (r *LogRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

// Handle implements slog.Handler.
func (r *LogRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", r.member, rec.Level, rec.Message)
	for _, a := range r.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	line := b.String()
	r.mu.Lock()
	defer r.mu.Unlock()
	if *r.closed {
		return nil
	}
	*r.lines = append(*r.lines, line)
	if testing.Verbose() {
		r.t.Logf("%s %s", time.Now().Format("15:04:05.000"), line)
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (r *LogRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(append([]slog.Attr(nil), r.attrs...), attrs...)
	return &c
}

// WithGroup implements slog.Handler (groups are flattened).
func (r *LogRecorder) WithGroup(string) slog.Handler { return r }

// Lines returns the recorded lines.
func (r *LogRecorder) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), *r.lines...)
}

// Contains reports whether a recorded line contains s.
func (r *LogRecorder) Contains(s string) bool {
	for _, l := range r.Lines() {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// Close stops recording (and mirroring to a finished test).
func (r *LogRecorder) Close() {
	r.mu.Lock()
	*r.closed = true
	r.mu.Unlock()
}
