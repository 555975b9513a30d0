// Package clustertest builds in-memory gossip clusters for tests, in the
// style of hashicorp/raft's testing.go and serf's partition helpers.
//
// A Network wraps a memberlist.MockNetwork and hands out Transports that
// can be cut from each other (Partition, Isolate), made lossy (Loss, with a
// seeded RNG) and healed (Heal). A Harness starts cluster.Cluster members on
// it; each member's Events are read by an Observer, and tests wait for what
// they expect (Observer.Wait, WaitEvent, WaitUntil) instead of sleeping.
//
// Everything runs in testing/synctest bubbles: memberlist's timers and
// time.Now are the bubble's fake clock, and the network is channels and
// net.Pipe, so the tests use the production timers and run in a fraction
// of their fake duration. The helpers also work in real time.
package clustertest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// inboxSize is how many packets (streams) wait for a member before more are
// dropped, as a full UDP socket buffer (TCP backlog) would.
const inboxSize = 1024

// errLink is returned for a dial over a cut or lossy link, after the
// timeout, as a dial to an unreachable host would.
var errLink = errors.New("clustertest: i/o timeout (link cut)")

// Network is an in-memory network of Transports with controllable links.
// Packets go through memberlist.MockNetwork; streams are net.Pipe pairs
// addressed with the members' mock addresses (MockNetwork's pipes have no
// addresses, and log lines need them).
type Network struct {
	// mu guards the maps and MockNetwork's (unsynchronised) maps: senders
	// hold it shared while they hand a packet to MockNetwork, which is
	// quick because every inbox is drained by a pump goroutine.
	mu       sync.RWMutex
	mock     memberlist.MockNetwork
	byAddr   map[string]*Transport
	byName   map[string]*Transport
	cut      map[link]bool
	isolated map[string]bool
	loss     map[link]float64
	conns    map[*conn]struct{}
	closed   bool
	done     chan struct{}
	pumps    sync.WaitGroup

	rngMu sync.Mutex
	rng   *rand.Rand

	dropped atomic.Int64
}

// link is an unordered pair of member names.
type link struct{ a, b string }

func newLink(a, b string) link {
	if b < a {
		a, b = b, a
	}
	return link{a, b}
}

// NewNetwork returns an empty network; seed drives the packet loss.
func NewNetwork(seed uint64) *Network {
	return &Network{
		byAddr:   map[string]*Transport{},
		byName:   map[string]*Transport{},
		cut:      map[link]bool{},
		isolated: map[string]bool{},
		loss:     map[link]float64{},
		conns:    map[*conn]struct{}{},
		done:     make(chan struct{}),
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
}

// Transport returns a new transport for the member name, with a fresh
// address. A name used before (a restarted member) gets a new address.
func (n *Network) Transport(name string) *Transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		panic("clustertest: Transport on a closed Network")
	}
	inner := n.mock.NewTransport(name)
	ip, port, err := inner.FinalAdvertiseAddr("", 0)
	if err != nil {
		panic(fmt.Sprintf("clustertest: mock address: %v", err))
	}
	t := &Transport{
		net:     n,
		name:    name,
		inner:   inner,
		addr:    net.JoinHostPort(ip.String(), fmt.Sprint(port)),
		packets: make(chan *memberlist.Packet, inboxSize),
		streams: make(chan net.Conn, inboxSize),
	}
	if old := n.byName[name]; old != nil {
		old.dead.Store(true)
	}
	n.byAddr[t.addr] = t
	n.byName[name] = t
	n.pumps.Add(1)
	go t.pump()
	return t
}

// Partition cuts the link between a and b both ways: packets are dropped,
// dials time out, open streams fail.
func (n *Network) Partition(a, b string) {
	n.mu.Lock()
	n.cut[newLink(a, b)] = true
	n.mu.Unlock()
}

// Isolate cuts a from every other member.
func (n *Network) Isolate(a string) {
	n.mu.Lock()
	n.isolated[a] = true
	n.mu.Unlock()
}

// Loss drops the fraction (0 to 1) of the packets between a and b, both
// ways, and fails that fraction of the dials between them.
func (n *Network) Loss(a, b string, fraction float64) {
	n.mu.Lock()
	n.loss[newLink(a, b)] = fraction
	n.mu.Unlock()
}

// Heal removes every partition, isolation and loss.
func (n *Network) Heal() {
	n.mu.Lock()
	clear(n.cut)
	clear(n.isolated)
	clear(n.loss)
	n.mu.Unlock()
}

// Dropped counts the packets dropped so far by cuts, loss and full inboxes.
func (n *Network) Dropped() int64 { return n.dropped.Load() }

// Close tears the network down: every later send fails and every open
// stream is closed. Shut the members down first.
func (n *Network) Close() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	close(n.done)
	for c := range n.conns {
		_ = c.Conn.Close()
	}
	clear(n.conns)
	n.mu.Unlock()
	n.pumps.Wait()
}

// blockedLocked reports whether the link a-b is cut. Called with n.mu held.
func (n *Network) blockedLocked(a, b string) bool {
	return n.isolated[a] || n.isolated[b] || n.cut[newLink(a, b)]
}

// lostLocked draws whether one packet (or dial) on a-b is lost. Called with
// n.mu held.
func (n *Network) lostLocked(a, b string) bool {
	p := n.loss[newLink(a, b)]
	if p <= 0 {
		return false
	}
	n.rngMu.Lock()
	defer n.rngMu.Unlock()
	return n.rng.Float64() < p
}

// Transport is a member's memberlist.Transport on a Network.
type Transport struct {
	net     *Network
	name    string
	inner   *memberlist.MockTransport
	addr    string
	packets chan *memberlist.Packet
	streams chan net.Conn
	dead    atomic.Bool // shut down: nothing in, nothing out
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// Name is the member name the transport was made for.
func (t *Transport) Name() string { return t.name }

// Addr is the transport's ip:port.
func (t *Transport) Addr() string { return t.addr }

// pump drains MockNetwork's unbuffered inbox into the transport's, so that
// a sender never waits on a busy or shut-down receiver.
func (t *Transport) pump() {
	defer t.net.pumps.Done()
	for {
		select {
		case p := <-t.inner.PacketCh():
			if t.dead.Load() {
				t.net.dropped.Add(1)
				continue
			}
			select {
			case t.packets <- p:
			default:
				t.net.dropped.Add(1)
			}
		case <-t.net.done:
			return
		}
	}
}

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *Transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr("", 0)
}

// WriteTo implements memberlist.Transport.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport: a packet to a
// cut, lossy or dead destination is dropped silently, as UDP would.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	n := t.net
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed || t.dead.Load() {
		return time.Time{}, errors.New("clustertest: transport shut down")
	}
	dest := n.lookupLocked(a)
	if dest == nil {
		return time.Time{}, fmt.Errorf("clustertest: no route to %s", a.Addr)
	}
	if dest.dead.Load() || n.blockedLocked(t.name, dest.name) || n.lostLocked(t.name, dest.name) {
		n.dropped.Add(1)
		return time.Now(), nil
	}
	buf := make([]byte, len(b))
	copy(buf, b)
	return t.inner.WriteToAddress(buf, memberlist.Address{Addr: dest.addr})
}

func (n *Network) lookupLocked(a memberlist.Address) *Transport {
	if t := n.byAddr[a.Addr]; t != nil {
		return t
	}
	if a.Name != "" {
		return n.byName[a.Name]
	}
	return nil
}

// PacketCh implements memberlist.Transport.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// DialTimeout implements memberlist.Transport.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport. A dial over
// a cut link (or one lost to Loss) fails after timeout; a dial to a dead
// member is refused at once.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	n := t.net
	n.mu.Lock()
	if n.closed || t.dead.Load() {
		n.mu.Unlock()
		return nil, errors.New("clustertest: transport shut down")
	}
	dest := n.lookupLocked(a)
	switch {
	case dest == nil:
		n.mu.Unlock()
		return nil, fmt.Errorf("clustertest: no route to %s", a.Addr)
	case dest.dead.Load():
		n.mu.Unlock()
		return nil, fmt.Errorf("clustertest: dial %s: connection refused", dest.addr)
	case n.blockedLocked(t.name, dest.name) || n.lostLocked(t.name, dest.name):
		n.mu.Unlock()
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-n.done:
		}
		return nil, fmt.Errorf("clustertest: dial %s: %w", dest.addr, errLink)
	}
	p1, p2 := net.Pipe()
	server := &conn{Conn: p1, net: n, local: dest, remote: t}
	client := &conn{Conn: p2, net: n, local: t, remote: dest}
	select {
	case dest.streams <- server:
	default:
		n.mu.Unlock()
		_ = p1.Close()
		return nil, fmt.Errorf("clustertest: dial %s: connection refused (backlog full)", dest.addr)
	}
	n.conns[server] = struct{}{}
	n.conns[client] = struct{}{}
	n.mu.Unlock()
	return client, nil
}

// StreamCh implements memberlist.Transport.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown implements memberlist.Transport: the member is dead from now on
// (what others send to it is dropped).
func (t *Transport) Shutdown() error {
	t.dead.Store(true)
	return nil
}

// conn is one end of a stream, with the members' addresses, failing once
// its link is cut or either end is dead.
type conn struct {
	net.Conn
	net           *Network
	local, remote *Transport
}

func (c *conn) LocalAddr() net.Addr  { return mockAddr(c.local.addr) }
func (c *conn) RemoteAddr() net.Addr { return mockAddr(c.remote.addr) }

func (c *conn) broken() bool {
	c.net.mu.RLock()
	defer c.net.mu.RUnlock()
	return c.local.dead.Load() || c.remote.dead.Load() || c.net.blockedLocked(c.local.name, c.remote.name)
}

func (c *conn) Read(b []byte) (int, error) {
	if c.broken() {
		_ = c.Conn.Close()
		return 0, &net.OpError{Op: "read", Net: "mock", Err: os.ErrDeadlineExceeded}
	}
	return c.Conn.Read(b)
}

func (c *conn) Write(b []byte) (int, error) {
	if c.broken() {
		_ = c.Conn.Close()
		return 0, &net.OpError{Op: "write", Net: "mock", Err: os.ErrDeadlineExceeded}
	}
	return c.Conn.Write(b)
}

func (c *conn) Close() error {
	c.net.mu.Lock()
	delete(c.net.conns, c)
	c.net.mu.Unlock()
	return c.Conn.Close()
}

type mockAddr string

func (a mockAddr) Network() string { return "mock" }
func (a mockAddr) String() string  { return string(a) }
