package edge

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
)

// slowUpstream answers every request on a connection with size bytes
// (Content-Length set), its head and the first part bytes at once, the
// rest only once release is closed: a client that gets the first part
// before release got it streamed. A nil release: the connection closes
// after the first part instead (the upstream dies half-way). It counts
// the connections it accepted and the requests it received.
type slowUpstream struct {
	ln       net.Listener
	conns    atomic.Int32
	requests atomic.Int32
}

func newSlowUpstream(t *testing.T, size, part int, release <-chan struct{}) *slowUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &slowUpstream{ln: ln}
	t.Cleanup(func() { ln.Close() })
	chunk := bytes.Repeat([]byte("y"), 64<<10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					if _, err := readHead(br); err != nil {
						return
					}
					u.requests.Add(1)
					if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", size); err != nil {
						return
					}
					for sent := 0; sent < size; {
						if sent == part {
							if release == nil {
								return
							}
							<-release
						}
						n := min(len(chunk), size-sent)
						if sent < part {
							n = min(n, part-sent)
						}
						if _, err := c.Write(chunk[:n]); err != nil {
							return
						}
						sent += n
					}
				}
			}()
		}
	}()
	return u
}

func (u *slowUpstream) url() string { return "http://" + u.ln.Addr().String() }

func startSlow(t *testing.T, u *slowUpstream) *testEdge {
	t.Helper()
	node := newFakeNode(t, active(1))
	e := startEdge(t, fast(), []sideSpec{{name: "main", node: node,
		routes: []Route{{Path: "/", Upstream: u.url()}}}})
	e.waitRouted(t, "main")
	return e
}

// An answer of a known length, small (1 MiB) or large, reaches the client
// as the upstream writes it: the client reads its first bytes while the
// upstream has not written the rest. The client's connection then stays
// open for the next request, and so does the upstream's.
func TestAnswersAreStreamed(t *testing.T) {
	for _, size := range []int{1 << 20, bigSize} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			const part = 100 << 10
			release := make(chan struct{})
			up := newSlowUpstream(t, size, part, release)
			e := startSlow(t, up)
			rc := dialRaw(t, e)
			if _, err := io.WriteString(rc.c, "GET /file HTTP/1.1\r\nHost: pbx\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			head, err := readHead(rc.br)
			if err != nil {
				t.Fatalf("no head before the upstream wrote the whole answer: %v", err)
			}
			if cl := values(head, "Content-Length"); len(cl) != 1 || cl[0] != strconv.Itoa(size) {
				t.Fatalf("Content-Length %q, want %d", cl, size)
			}
			// The upstream cannot write past part before release is
			// closed: the first part arriving first is the proof.
			if _, err := io.ReadFull(rc.br, make([]byte, part)); err != nil {
				t.Fatalf("the first %d bytes did not come before the upstream wrote the rest: %v", part, err)
			}
			close(release)
			n, err := io.Copy(io.Discard, io.LimitReader(rc.br, int64(size-part)))
			if err != nil || n != int64(size-part) {
				t.Fatalf("rest of the answer: %d bytes, %v", n, err)
			}
			if values(head, "Connection") != nil {
				t.Errorf("the answer says Connection %q: the client's connection should stay open", values(head, "Connection"))
			}
			// The same client connection, the same upstream connection.
			if res := rc.do("GET /again HTTP/1.1\r\nHost: pbx\r\n\r\n"); res.status != 200 || len(res.body) != size {
				t.Fatalf("second request on the connection: %d, %d bytes", res.status, len(res.body))
			}
			if c := up.conns.Load(); c != 1 {
				t.Errorf("the upstream accepted %d connections, want 1 (kept alive)", c)
			}
		})
	}
}

// A large answer goes through without the Edge holding it: while a 64 MiB
// answer is half-way, the heap of the process (Edge, upstream and client
// together) has grown by far less than what went through.
func TestStreamedAnswerMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 64 MiB through the Edge")
	}
	const size = 64 << 20
	release := make(chan struct{})
	close(release)
	up := newSlowUpstream(t, size, 0, release)
	e := startSlow(t, up)
	rc := dialRaw(t, e)
	runtime.GC()
	var before, during runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := io.WriteString(rc.c, "GET /big HTTP/1.1\r\nHost: pbx\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := readHead(rc.br); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, rc.br, size/2); err != nil {
		t.Fatal(err)
	}
	// What is still referenced half-way: a buffering proxy would hold at
	// least the half already read.
	runtime.GC()
	runtime.ReadMemStats(&during)
	grown := int64(during.HeapAlloc) - int64(before.HeapAlloc)
	if grown > 8<<20 {
		t.Errorf("the heap grew by %d MiB half-way through a %d MiB answer", grown>>20, size>>20)
	}
	t.Logf("heap growth half-way through a %d MiB answer: %d KiB", size>>20, grown>>10)
	if _, err := io.CopyN(io.Discard, rc.br, size/2); err != nil {
		t.Fatal(err)
	}
}

// An upstream that dies half-way through an answer: the client gets the
// head and what came, then its connection closes (the answer is cut, not
// completed with a 502 page); the request is not sent again, since bytes
// of the answer already reached the client. The next request gets a new
// upstream connection.
func TestUpstreamDyingHalfWayCutsTheAnswer(t *testing.T) {
	const size, part = 1 << 20, 100 << 10
	up := newSlowUpstream(t, size, part, nil)
	e := startSlow(t, up)
	rc := dialRaw(t, e)
	if _, err := io.WriteString(rc.c, "GET /file HTTP/1.1\r\nHost: pbx\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	head, err := readHead(rc.br)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix([]byte(head), []byte("HTTP/1.1 200 ")) {
		t.Fatalf("answer %q", head)
	}
	n, err := io.Copy(io.Discard, rc.br)
	if n != part {
		t.Errorf("the client got %d bytes of the body, want the %d the upstream wrote (err %v)", n, part, err)
	}
	if r := up.requests.Load(); r != 1 {
		t.Errorf("the upstream received the request %d times, want 1", r)
	}
	// The Edge still answers, on a new connection to the upstream.
	rc2 := dialRaw(t, e)
	if _, err := io.WriteString(rc2.c, "GET /again HTTP/1.1\r\nHost: pbx\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if head, err := readHead(rc2.br); err != nil || !bytes.HasPrefix([]byte(head), []byte("HTTP/1.1 200 ")) {
		t.Fatalf("next request: %q, %v", head, err)
	}
	if c := up.conns.Load(); c != 2 {
		t.Errorf("the upstream accepted %d connections, want 2", c)
	}
}
