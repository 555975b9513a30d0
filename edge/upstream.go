package edge

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// upPool keeps the fast path's kept-alive connections to one upstream
// (the general path keeps its own, in fasthttp's HostClient): the most
// recently used is used first, so that the others age out after
// upstreamIdle. It opens at most maxUpstreamConns connections; a request
// that finds them all in use waits upstreamWait for one.
type upPool struct {
	dial func() (net.Conn, error)

	mu     sync.Mutex
	idle   []*upConn // oldest first
	open   int       // idle and in use
	closed bool
	// freed is closed when a connection goes idle or closes, waking the
	// requests waiting at the bound; nil when none waits.
	freed chan struct{}
}

// upConn is a connection to an upstream with its buffers.
type upConn struct {
	c  net.Conn
	s  *sock // under bw
	br *bufio.Reader
	bw *bufio.Writer
	// reused: it served a request before this one, so the upstream may
	// have closed it meanwhile.
	reused bool
	// idleSince is when it went back to the pool (coarse clock).
	idleSince int64
}

// buffers gives the connection its buffers, from the pools the client
// connections' come from: an idle connection holds none, so that after a
// load the memory of a thousand idle upstream connections is not kept
// until they time out.
func (uc *upConn) buffers() {
	uc.br = readers.Get().(*bufio.Reader)
	uc.br.Reset(uc.s)
	uc.bw = writers.Get().(*bufio.Writer)
	uc.bw.Reset(uc.s)
}

// release gives the buffers back (the reader is empty, the writer
// flushed, or the connection closed).
func (uc *upConn) release() {
	if uc.br != nil {
		uc.br.Reset(nil)
		readers.Put(uc.br)
		uc.bw.Reset(nil)
		writers.Put(uc.bw)
		uc.br, uc.bw = nil, nil
	}
}

// The pool's bound and its wait: maxUpstreamConns and upstreamWait
// (variables for the tests).
var poolMaxConns, poolWait = maxUpstreamConns, upstreamWait

// idleProbeAfter: a connection idle for this long is probed before it
// is used (see get); one reused at once, under load, is not (a variable
// for the tests).
var idleProbeAfter = watchdogInterval

var errNoUpstreamConn = errors.New("no free connection to the upstream in time")

func newUpPool(dial func() (net.Conn, error)) *upPool {
	return &upPool{dial: dial}
}

// get returns an idle connection, or a new one whose writes are timed by
// clock (the fast path's coarse clock, see sock).
func (p *upPool) get(clock *atomic.Int64) (*upConn, error) {
	var deadline *time.Timer
	for {
		p.mu.Lock()
		if n := len(p.idle); n > 0 {
			uc := p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			p.mu.Unlock()
			if clock.Load()-uc.idleSince >= int64(idleProbeAfter) && !uc.s.quiet() {
				// Idle for a tick or more, the upstream closed it (its
				// idle timeout, or a restart; the older ones too), or
				// sent bytes no request asked for: a request on it would
				// fail, and one that cannot go again would get a 502.
				p.discard(uc)
				p.closeIdle(uc.idleSince+1, false)
				continue
			}
			uc.reused = true
			uc.buffers()
			return uc, nil
		}
		if p.open < poolMaxConns {
			p.open++
			p.mu.Unlock()
			c, err := p.dial()
			if err != nil {
				p.forget()
				return nil, err
			}
			uc := &upConn{c: c, s: newSock(c, clock)}
			uc.buffers()
			return uc, nil
		}
		if p.freed == nil {
			p.freed = make(chan struct{})
		}
		freed := p.freed
		p.mu.Unlock()
		if deadline == nil {
			deadline = time.NewTimer(poolWait)
			defer deadline.Stop()
		}
		select {
		case <-freed:
		case <-deadline.C:
			return nil, errNoUpstreamConn
		}
	}
}

// put gives back a connection whose last answer was read to its end.
func (p *upPool) put(uc *upConn, now int64) {
	uc.idleSince = now
	uc.release()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.discard(uc)
		return
	}
	p.idle = append(p.idle, uc)
	p.wakeLocked()
	p.mu.Unlock()
}

// discard closes a connection that cannot serve another request.
func (p *upPool) discard(uc *upConn) {
	uc.c.Close()
	uc.release()
	p.forget()
}

func (p *upPool) forget() {
	p.mu.Lock()
	p.open--
	p.wakeLocked()
	p.mu.Unlock()
}

// wakeLocked wakes every request waiting at the bound: each tries again
// (a wake-up per freed connection could be lost between two waits).
func (p *upPool) wakeLocked() {
	if p.freed != nil {
		close(p.freed)
		p.freed = nil
	}
}

// closeIdle closes the connections idle since before, all of them when
// before is 0; with closing, the pool keeps no connection from then on.
func (p *upPool) closeIdle(before int64, closing bool) {
	p.mu.Lock()
	k := len(p.idle)
	if before != 0 {
		k = 0
		for k < len(p.idle) && p.idle[k].idleSince < before {
			k++
		}
	}
	old := make([]*upConn, k)
	copy(old, p.idle[:k])
	n := copy(p.idle, p.idle[k:])
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	p.open -= k
	if closing {
		p.closed = true
	}
	if k > 0 {
		p.wakeLocked()
	}
	p.mu.Unlock()
	for _, uc := range old {
		uc.c.Close()
	}
}
