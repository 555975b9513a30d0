package edge

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// sock is the reader and writer under the bufio.Reader and bufio.Writer
// of a fast-path connection, client or upstream. Its reads and writes
// are raw system calls (see rawIO). It saves a system call per hop: when
// the Edge has written a request to an upstream, or an answer to a
// client, it reads next, and a read is tried at once, before it waits:
// it finds nothing (the peer has yet to answer) and fails with EAGAIN.
// Armed, the next Write writes, then waits until the connection is
// readable without reading (a RawConn's Read whose function returns
// false), so that the read after it finds the bytes there. These reads were about one system
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
	rc syscall.RawConn // nil: not TCP (TLS), reads and writes are plain

	// clock is the coarse clock the watchdog keeps.
	clock *atomic.Int64
	// writing is when the write under way started (clock), 0 when none:
	// the watchdog closes a connection whose write has not ended within
	// writeTimeout (a peer that does not read).
	writing atomic.Int64

	// The armed write: the hook runs once the bytes are written, and says
	// whether to wait (false: a shutdown, go on at once).
	hook  func() bool
	p     []byte
	err   error
	wrote bool
	step  func(fd uintptr) bool

	// The plain read and write through rc (see rawIO): their buffer,
	// count and error, and the RawConn's functions.
	rp, wp     []byte
	rn, wn     int
	rerr, werr error
	readStep   func(fd uintptr) bool
	writeStep  func(fd uintptr) bool

	// parkedAt is when the wait started (coarse clock), 0 when none; mu
	// orders a poke and its undoing.
	parkedAt atomic.Int64
	mu       sync.Mutex
	poked    bool
}

func newSock(c net.Conn, clock *atomic.Int64) *sock {
	s := &sock{c: c, clock: clock}
	if tc, ok := c.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			s.rc = rc
		}
	}
	s.step, s.readStep, s.writeStep = s.writeThenWait, s.readOnce, s.writeAll
	return s
}

// arm makes the next Write wait for the peer (see sock).
func (s *sock) arm(hook func() bool) {
	if s.rc != nil {
		s.hook = hook
	}
}

// writeStuck says whether a write under way started before since.
func (s *sock) writeStuck(since int64) bool {
	w := s.writing.Load()
	return w != 0 && w < since
}

// disarm undoes arm when no Write came (nothing was buffered).
func (s *sock) disarm() { s.hook = nil }

func (s *sock) Write(p []byte) (int, error) {
	if s.hook == nil {
		return s.plainWrite(p)
	}
	s.p, s.err, s.wrote = p, nil, false
	s.writing.Store(s.clock.Load())
	err := s.rc.Read(s.step)
	s.writing.Store(0)
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
	s.p, s.hook = nil, nil
	switch {
	case s.err != nil:
		return len(p) - len(rest), s.err
	case len(rest) > 0:
		// The send buffer filled, or the connection is closed: the rest
		// the usual way, then no wait.
		n, err := s.plainWrite(rest)
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
		n, err := rawIO(syscall.SYS_WRITE, fd, s.p)
		switch {
		case err == syscall.EAGAIN:
			return true
		case err != nil:
			s.err = s.opError("write", err)
			return true
		}
		s.p = s.p[n:]
	}
	s.wrote = true
	s.writing.Store(0)
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

// quiet says whether an idle connection is open and has nothing to read,
// by a peek that does not wait; true when it cannot tell (TLS).
func (s *sock) quiet() bool {
	if s.rc == nil {
		return true
	}
	ok := true
	_ = s.rc.Control(func(fd uintptr) {
		var b [1]byte
		for {
			_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
				syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
			if e != syscall.EINTR {
				ok = e == syscall.EAGAIN
				return
			}
		}
	})
	return ok
}

// rawIO is a read or write on a non-blocking socket without telling the
// runtime a system call is under way (syscall.RawSyscall): such a call
// never blocks, and its bookkeeping (entersyscall and exitsyscall, and
// the monitor thread that takes back the processor of a thread in a
// system call) cost more than the call on small requests.
func rawIO(trap, fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e == syscall.EINTR:
			continue
		case e != 0:
			return 0, e
		}
		return int(n), nil
	}
}

// Read reads through rawIO, waiting in the poller as net.Conn's Read does.
func (s *sock) Read(p []byte) (int, error) {
	if s.rc == nil || len(p) == 0 {
		return s.c.Read(p)
	}
	s.rp, s.rn, s.rerr = p, 0, nil
	err := s.rc.Read(s.readStep)
	n, rerr := s.rn, s.rerr
	s.rp, s.rerr = nil, nil
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, s.opError("read", rerr)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// opError is a failed system call as net.Conn reports it.
func (s *sock) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: s.c.LocalAddr(), Addr: s.c.RemoteAddr(), Err: os.NewSyscallError(op, err)}
}

func (s *sock) readOnce(fd uintptr) bool {
	n, err := rawIO(syscall.SYS_READ, fd, s.rp)
	if err == syscall.EAGAIN {
		return false
	}
	s.rn, s.rerr = n, err
	return true
}

// plainWrite writes all of p through rawIO, waiting in the poller while
// the send buffer is full.
func (s *sock) plainWrite(p []byte) (int, error) {
	s.writing.Store(s.clock.Load())
	defer s.writing.Store(0)
	if s.rc == nil {
		return s.c.Write(p)
	}
	s.wp, s.wn, s.werr = p, 0, nil
	err := s.rc.Write(s.writeStep)
	n, werr := s.wn, s.werr
	s.wp, s.werr = nil, nil
	switch {
	case err != nil:
		return n, err
	case werr != nil:
		return n, s.opError("write", werr)
	}
	return n, nil
}

func (s *sock) writeAll(fd uintptr) bool {
	for s.wn < len(s.wp) {
		n, err := rawIO(syscall.SYS_WRITE, fd, s.wp[s.wn:])
		switch {
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			s.werr = err
			return true
		}
		s.wn += n
	}
	return true
}
