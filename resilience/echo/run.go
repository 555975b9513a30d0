package echo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure an Echo.
type Options struct {
	// Name is this node's name, in its probes and answers; PeerName the
	// name answers must carry.
	Name, PeerName string
	// Listen is the UDP host:port this node answers probes on.
	Listen string
	// Peer is the peer's echo UDP host:port; empty: answer only.
	Peer string
	// Every is the time between two probes; Window how long the last
	// answer counts. Defaults: 20ms and 300ms.
	Every, Window time.Duration
	Keys          Keys
	// Vouch is the key this node vouches for its answers with and checks
	// the peer's with (NewVouchKey of api.token); nil: none.
	Vouch []byte
	// Self is what this node's answers say. Called for every answer:
	// it must be cheap and safe for concurrent use.
	Self       func() Meta
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Echo answers the peer's probes and probes the peer. Its methods are safe
// for concurrent use.
type Echo struct {
	o      Options
	log    *slog.Logger
	m      *metrics
	server *net.UDPConn
	client *net.UDPConn // connected to the peer; nil without Peer

	mu    sync.Mutex
	keys  Keys
	state State
	sent  map[[nonceLen]byte]time.Time
}

// New binds o.Listen and, with o.Peer, a socket connected to the peer.
func New(o Options) (*Echo, error) {
	if o.Every <= 0 {
		o.Every = 20 * time.Millisecond
	}
	if o.Window <= 0 {
		o.Window = 300 * time.Millisecond
	}
	if len(o.Keys) == 0 {
		return nil, errors.New("echo: no key")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	laddr, err := net.ResolveUDPAddr("udp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("echo: listen address %q: %w", o.Listen, err)
	}
	e := &Echo{o: o, log: o.Logger.With("component", "echo"), keys: o.Keys, sent: map[[nonceLen]byte]time.Time{}}
	e.state.Needed = max(3, int(o.Window/o.Every))
	if e.m, err = newMetrics(o.Registerer); err != nil {
		return nil, err
	}
	if e.server, err = net.ListenUDP("udp", laddr); err != nil {
		return nil, fmt.Errorf("echo: %w", err)
	}
	if o.Peer != "" {
		raddr, err := net.ResolveUDPAddr("udp", o.Peer)
		if err != nil {
			e.server.Close()
			return nil, fmt.Errorf("echo: peer address %q: %w", o.Peer, err)
		}
		if e.client, err = net.DialUDP("udp", nil, raddr); err != nil {
			e.server.Close()
			return nil, fmt.Errorf("echo: %w", err)
		}
	}
	return e, nil
}

// Addr is the address this node answers on.
func (e *Echo) Addr() net.Addr { return e.server.LocalAddr() }

// Peer is the peer's echo address ("" without one).
func (e *Echo) Peer() string { return e.o.Peer }

// Window is how long an answer counts.
func (e *Echo) Window() time.Duration { return e.o.Window }

// State is what the probes have seen so far.
func (e *Echo) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state
}

// Verdict is what the second path says now.
func (e *Echo) Verdict() Verdict { return e.State().Verdict(time.Now(), e.o.Window) }

// SetKeys replaces the keyring (a gossip key rotation).
func (e *Echo) SetKeys(ks Keys) {
	if len(ks) == 0 {
		return
	}
	e.mu.Lock()
	e.keys = ks
	e.mu.Unlock()
}

// nonceLife is how long a probe's answer is awaited: long past Window, so
// that a late answer still proves the peer alive.
func (e *Echo) nonceLife() time.Duration { return max(10*e.o.Window, 2*time.Second) }

func (e *Echo) keyring() Keys {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.keys
}

// Run answers and probes until ctx ends, then closes the sockets.
func (e *Echo) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.serve() }()
	if e.client != nil {
		wg.Add(2)
		go func() { defer wg.Done(); e.readAnswers() }()
		go func() { defer wg.Done(); e.probe(ctx) }()
	}
	<-ctx.Done()
	e.server.Close()
	if e.client != nil {
		e.client.Close()
	}
	wg.Wait()
	return nil
}

// serve answers valid probes; anything else is dropped and counted.
func (e *Echo) serve() {
	buf := make([]byte, maxPacket)
	for {
		n, from, err := e.server.ReadFromUDP(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue // e.g. a refusal reported on this socket: nothing to do
		}
		ks := e.keyring()
		p, err := decode(ks, buf[:n])
		if err != nil || p.kind != kindProbe {
			e.m.bad.Inc()
			continue
		}
		m := e.o.Self()
		m.Name = e.o.Name
		if _, err := e.server.WriteToUDP(encodeAnswer(ks, e.o.Vouch, p.nonce, m), from); err == nil {
			e.m.answered.Inc()
		}
	}
}

// probe sends a probe every Every.
func (e *Echo) probe(ctx context.Context) {
	t := time.NewTicker(e.o.Every)
	defer t.Stop()
	for {
		nonce := newNonce()
		now := time.Now()
		e.mu.Lock()
		for k, at := range e.sent {
			if now.Sub(at) >= e.nonceLife() {
				delete(e.sent, k)
			}
		}
		e.sent[nonce] = now
		e.state.Unanswered++
		ks := e.keys
		e.mu.Unlock()
		_, err := e.client.Write(encodeProbe(ks, nonce, e.o.Name))
		e.m.probes.Inc()
		if errors.Is(err, syscall.ECONNREFUSED) {
			e.refused()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// readAnswers takes the peer's answers and the host's refusals.
func (e *Echo) readAnswers() {
	buf := make([]byte, maxPacket)
	for {
		n, err := e.client.Read(buf)
		switch {
		case errors.Is(err, net.ErrClosed):
			return
		case errors.Is(err, syscall.ECONNREFUSED):
			e.refused()
			continue
		case err != nil:
			continue
		}
		p, err := decode(e.keyring(), buf[:n])
		if err != nil || p.kind != kindAnswer || p.meta.Name != e.o.PeerName {
			e.m.bad.Inc()
			continue
		}
		now := time.Now()
		e.mu.Lock()
		// A late answer counts too: it was made after our probe and is
		// received now, so the peer lives now (a busy host answers late,
		// a frozen one not at all). Each nonce counts once.
		_, ok := e.sent[p.nonce]
		if ok {
			delete(e.sent, p.nonce)
			e.state = State{LastAnswer: now, Meta: p.meta, Vouched: p.vouchedBy(e.o.Vouch), Needed: e.state.Needed}
		}
		e.mu.Unlock()
		if ok {
			e.m.answers.Inc()
		} else {
			e.m.bad.Inc() // a replay, or an answer to a probe long forgotten
		}
	}
}

func (e *Echo) refused() {
	e.m.refusals.Inc()
	e.mu.Lock()
	e.state.RefusedAt = time.Now()
	e.mu.Unlock()
}

type metrics struct {
	probes, answers, refusals, answered, bad prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &metrics{
		probes:   c("resman_echo_probes_total", "Probes this node sent to the peer over the second path."),
		answers:  c("resman_echo_answers_total", "Valid answers of the peer to this node's probes over the second path."),
		refusals: c("resman_echo_refusals_total", "Probes the peer's host refused (ICMP port unreachable: its resman does not run)."),
		answered: c("resman_echo_answered_total", "Probes of the peer this node answered over the second path."),
		bad:      c("resman_echo_bad_packets_total", "Packets dropped on the second path: a wrong key, foreign or truncated data, a replayed or late answer."),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []*prometheus.Counter{&m.probes, &m.answers, &m.refusals, &m.answered, &m.bad} {
		err := reg.Register(*c)
		var are prometheus.AlreadyRegisteredError
		switch {
		case errors.As(err, &are):
			// The echo of a previous auto mode (a reload switched the
			// mode): its counters go on.
			*c = are.ExistingCollector.(prometheus.Counter)
		case err != nil:
			return nil, fmt.Errorf("echo metrics: %w", err)
		}
	}
	return m, nil
}
