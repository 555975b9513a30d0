package edge

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// sock is the writer under the bufio.Writer of a fast-path connection,
// client or upstream. It saves a system call per hop: when the Edge has
// written a request to an upstream, or an answer to a client, it reads
// next, and Go tries the read at once, before it waits: the read finds
// nothing (the peer has yet to answer) and fails with EAGAIN. Armed, the
// next Write writes, then waits until the connection is readable without
// reading (a RawConn's Read whose function returns false), so that the
// read after it finds the bytes there. These reads were about one system
// call in six of a request on small answers.
//
// The wait is prepared (the poller's readiness forgotten) before the
// write, so whatever the peer sends after the write wakes it. Bytes or an
// end the peer sent before, and the Edge has not read, can be missed:
// requests a client pipelined in another segment, a client's or an
// upstream's close. The watchdog rescues such a wait: one that lasts over
// a second is cut by a read deadline in the past (poke), and the
// connection goes on with a plain read, which finds them. A connection
// idle between two requests is poked once, then waits in a plain read.
type sock struct {
	c  net.Conn
	rc syscall.RawConn // nil: not TCP (TLS), writes are plain

	// The armed write: the hook runs once the bytes are written, and says
	// whether to wait (false: a shutdown, go on at once).
	hook  func() bool
	clock *atomic.Int64
	p     []byte
	err   error
	wrote bool
	step  func(fd uintptr) bool

	// parkedAt is when the wait started (coarse clock), 0 when none; mu
	// orders a poke and its undoing.
	parkedAt atomic.Int64
	mu       sync.Mutex
	poked    bool
}

func newSock(c net.Conn) *sock {
	s := &sock{c: c}
	if tc, ok := c.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			s.rc = rc
		}
	}
	s.step = s.writeThenWait
	return s
}

// arm makes the next Write wait for the peer (see sock); clock is the
// coarse clock the watchdog reads.
func (s *sock) arm(hook func() bool, clock *atomic.Int64) {
	if s.rc != nil {
		s.hook, s.clock = hook, clock
	}
}

// disarm undoes arm when no Write came (nothing was buffered).
func (s *sock) disarm() { s.hook = nil }

func (s *sock) Write(p []byte) (int, error) {
	if s.hook == nil {
		return s.c.Write(p)
	}
	s.p, s.err, s.wrote = p, nil, false
	err := s.rc.Read(s.step)
	s.parkedAt.Store(0)
	s.mu.Lock()
	if s.poked {
		s.poked = false
		_ = s.c.SetReadDeadline(time.Time{})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = nil
		}
	}
	s.mu.Unlock()
	rest := s.p
	s.p, s.hook, s.clock = nil, nil, nil
	switch {
	case s.err != nil:
		return len(p) - len(rest), s.err
	case len(rest) > 0:
		// The send buffer filled, or the connection is closed: the rest
		// the usual way, then no wait.
		n, err := s.c.Write(rest)
		return len(p) - len(rest) + n, err
	}
	// Written; err is why the wait ended early (a close): the next read
	// says it again.
	return len(p), nil
}

// writeThenWait is the RawConn's function: it writes on its first call,
// then returns false to wait for the peer, and true once woken.
func (s *sock) writeThenWait(fd uintptr) bool {
	if s.wrote {
		return true
	}
	for len(s.p) > 0 {
		n, err := syscall.Write(int(fd), s.p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return true
		case err != nil:
			s.err = &net.OpError{Op: "write", Net: "tcp", Source: s.c.LocalAddr(), Addr: s.c.RemoteAddr(), Err: os.NewSyscallError("write", err)}
			return true
		}
		s.p = s.p[n:]
	}
	s.wrote = true
	if !s.hook() {
		return true
	}
	s.parkedAt.Store(s.clock.Load())
	return false
}

// poke cuts a wait that started before since (see sock).
func (s *sock) poke(since int64) {
	if p := s.parkedAt.Load(); p == 0 || p > since {
		return
	}
	s.mu.Lock()
	if s.parkedAt.Load() != 0 && !s.poked {
		s.poked = true
		_ = s.c.SetReadDeadline(time.Unix(1, 0))
	}
	s.mu.Unlock()
}
