package edge

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// tcpPair is a connected pair of TCP connections on loopback.
func tcpPair(t *testing.T) (edge, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	edge, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer = <-accepted
	if peer == nil {
		t.Fatal("no connection accepted")
	}
	t.Cleanup(func() { edge.Close(); peer.Close() })
	return edge, peer
}

// armedWrite writes p on s armed with a hook that waits, in a goroutine,
// and returns the channel of its result.
func armedWrite(s *sock, p []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		s.arm(func() bool { return true })
		_, err := s.Write(p)
		done <- err
	}()
	return done
}

// eightMiB is a write larger than any socket buffer.
func eightMiB() []byte { return bytes.Repeat([]byte("0123456789abcdef"), 1<<19) }

// readAllOf reads n bytes from c in a goroutine, then writes answer (if
// any), and returns the channel of what it read.
func readAllOf(c net.Conn, n int, answer string) <-chan []byte {
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, n)
		_, _ = io.ReadFull(c, buf)
		got <- buf
		if answer != "" {
			c.Write([]byte(answer))
		}
	}()
	return got
}

func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return string(b)
}

// An armed write returns once the peer has answered, and the answer is
// then read as usual.
func TestSockWaitsForThePeerAfterTheWrite(t *testing.T) {
	a, b := tcpPair(t)
	var clock atomic.Int64
	s := newSock(a, &clock)
	if s.rc == nil {
		t.Fatal("a TCP connection gave no RawConn: the sock would never wait")
	}
	clock.Store(1)
	var answered atomic.Bool
	done := armedWrite(s, []byte("ping"))
	if got := readN(t, b, 4); got != "ping" {
		t.Fatalf("the peer got %q", got)
	}
	select {
	case err := <-done:
		t.Fatalf("the write returned (%v) before the peer answered", err)
	case <-time.After(200 * time.Millisecond):
	}
	answered.Store(true)
	if _, err := b.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the armed write did not return after the peer answered")
	}
	if got := readN(t, a, 4); got != "pong" {
		t.Fatalf("read %q after the wait", got)
	}
}

// Bytes the peer sent before the write, unread, may wake nothing: the
// watchdog's poke ends the wait, the bytes are read, and the poke's
// deadline is gone (a later read waits as long as it must).
func TestSockPokeEndsAWaitThatMissedTheBytes(t *testing.T) {
	a, b := tcpPair(t)
	var clock atomic.Int64
	s := newSock(a, &clock)
	clock.Store(1)
	if _, err := b.Write([]byte("early")); err != nil {
		t.Fatal(err)
	}
	// Let the bytes arrive and the poller see them before the write.
	time.Sleep(100 * time.Millisecond)
	done := armedWrite(s, []byte("answer"))
	if got := readN(t, b, 6); got != "answer" {
		t.Fatalf("the peer got %q", got)
	}
	var err error
	giveUp := time.Now().Add(10 * time.Second)
	for ended := false; !ended; {
		if time.Now().After(giveUp) {
			t.Fatal("the poked write did not end")
		}
		clock.Add(int64(watchdogInterval))
		s.poke(clock.Load() - int64(watchdogInterval))
		select {
		case err = <-done:
			ended = true
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		t.Fatalf("a poked write: %v", err)
	}
	if got := readN(t, a, 5); got != "early" {
		t.Fatalf("read %q, want the early bytes", got)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		b.Write([]byte("later"))
	}()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "later" {
		t.Fatalf("a read after the poke: %q, %v (its deadline stayed?)", buf, err)
	}
}

// A poke does not touch a connection that is not waiting.
func TestSockPokeOutsideAWaitDoesNothing(t *testing.T) {
	a, b := tcpPair(t)
	s := newSock(a, new(atomic.Int64))
	s.poke(1 << 62)
	go func() {
		time.Sleep(200 * time.Millisecond)
		b.Write([]byte("x"))
	}()
	if got := readN(t, a, 1); got != "x" {
		t.Fatalf("read %q", got)
	}
}

// A hook that says not to wait (a shutdown) makes the write return at
// once; a write larger than the send buffer is written whole.
func TestSockWritesWholeWithoutWaiting(t *testing.T) {
	a, b := tcpPair(t)
	var clock atomic.Int64
	s := newSock(a, &clock)
	s.arm(func() bool { return false })
	if _, err := s.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, b, 3); got != "bye" {
		t.Fatalf("the peer got %q", got)
	}

	big := eightMiB()
	got := readAllOf(b, len(big), "k")
	done := armedWrite(s, big)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the large write did not end")
	}
	if !bytes.Equal(<-got, big) {
		t.Fatal("the peer did not get the large write whole")
	}
}

// A connection closed while its write waits (the watchdog's expiry) ends
// the wait; a write to a closed connection fails.
func TestSockCloseEndsTheWait(t *testing.T) {
	a, b := tcpPair(t)
	var clock atomic.Int64
	s := newSock(a, &clock)
	done := armedWrite(s, []byte("ping"))
	readN(t, b, 4)
	a.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("closing the connection did not end the wait")
	}
	s.arm(func() bool { return true })
	if _, err := s.Write([]byte("again")); err == nil {
		t.Fatal("a write to a closed connection succeeded")
	}
}

// delayedUpstream answers every request with okAnswer after delay.
func delayedUpstream(t *testing.T, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go func() {
				br := bufio.NewReader(c)
				for {
					if _, err := readHead(br); err != nil {
						return
					}
					time.Sleep(delay)
					if _, err := io.WriteString(c, okAnswer); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// A request a client pipelines in a segment of its own, there before the
// answer to the one before is written, may wake no wait (see sock): it is
// served all the same, on the fast path.
func TestPipelinedRequestInASegmentOfItsOwn(t *testing.T) {
	node := newFakeNode(t, active(1))
	e := startEdge(t, fast(), []sideSpec{{name: "main", node: node,
		routes: []Route{{Path: "/", Upstream: delayedUpstream(t, 300*time.Millisecond)}}}})
	e.waitRouted(t, "main")
	rc := dialRaw(t, e)
	if _, err := io.WriteString(rc.c, "GET /one HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := io.WriteString(rc.c, "GET /two HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/one", "/two"} {
		if res := rc.read(); res.status != 200 || res.body != "ok" {
			t.Fatalf("%s: %d %q", path, res.status, res.body)
		}
	}
	if n := testkit.Metric(t, e.reg, "resman_edge_general_path_connections_total", nil); n != 0 {
		t.Errorf("%v connections went to the general path, want the fast path's", n)
	}
}

// A client that closes its side after its request gets the answer, then
// the Edge's close.
func TestHalfClosedClientGetsItsAnswerThenTheClose(t *testing.T) {
	e, _ := startRecorded(t)
	rc := dialRaw(t, e)
	if _, err := io.WriteString(rc.c, "GET /rec HTTP/1.1\r\nHost: pbx.example.org\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := rc.c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if res := rc.read(); res.status != 200 || res.body != "ok" {
		t.Fatalf("answer %d %q", res.status, res.body)
	}
	if !rc.closed() {
		t.Error("the Edge kept the connection of a client that had closed its side")
	}
}

// Unarmed, the sock reads and writes as net.Conn does: a read waits for
// bytes, says io.EOF at the peer's close and honours a read deadline; a
// write larger than the send buffer is written whole; a write after the
// peer's reset and a read after the Edge's close fail.
func TestSockReadsAndWritesAsAConnDoes(t *testing.T) {
	a, b := tcpPair(t)
	s := newSock(a, new(atomic.Int64))
	if s.rc == nil {
		t.Fatal("a TCP connection's sock has no RawConn")
	}
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 5)
		n, err := s.Read(buf)
		if err != nil {
			t.Errorf("read: %v", err)
		}
		got <- buf[:n]
	}()
	time.Sleep(50 * time.Millisecond) // the read waits in the poller
	b.Write([]byte("hello"))
	if g := <-got; string(g) != "hello" {
		t.Fatalf("read %q", g)
	}

	_ = a.SetReadDeadline(time.Unix(1, 0))
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v", err)
	}
	_ = a.SetReadDeadline(time.Time{})

	big := eightMiB()
	peerGot := readAllOf(b, len(big), "")
	if n, err := s.Write(big); n != len(big) || err != nil {
		t.Fatalf("large write: %d, %v", n, err)
	}
	if !bytes.Equal(<-peerGot, big) {
		t.Fatal("the peer did not get the large write whole")
	}

	b.(*net.TCPConn).CloseWrite()
	if n, err := s.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read at the peer's close: %d, %v", n, err)
	}
	b.(*net.TCPConn).SetLinger(0)
	b.Close()
	// The reset may reach the socket after a first write: write until
	// one fails.
	var werr error
	for giveUp := time.Now().Add(testkit.Patience); werr == nil && time.Now().Before(giveUp); {
		_, werr = s.Write([]byte("x"))
		time.Sleep(10 * time.Millisecond)
	}
	var op *net.OpError
	if !errors.As(werr, &op) || op.Op != "write" {
		t.Fatalf("writes after the peer's reset: %v", werr)
	}
	a.Close()
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after the close: %v", err)
	}
}
