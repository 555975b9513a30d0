package clustertest

import (
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"
)

func recv(t *testing.T, tr *Transport) (string, bool) {
	t.Helper()
	select {
	case p := <-tr.PacketCh():
		return string(p.Buf) + " from " + p.From.String(), true
	case <-time.After(time.Second):
		return "", false
	}
}

func TestNetworkLinks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork(1)
		defer n.Close()
		a, b, c := n.Transport("a"), n.Transport("b"), n.Transport("c")

		if _, err := a.WriteTo([]byte("hi"), b.Addr()); err != nil {
			t.Fatal(err)
		}
		if got, ok := recv(t, b); !ok || got != "hi from "+a.Addr() {
			t.Errorf("b got %q, %t", got, ok)
		}

		n.Partition("a", "b")
		_, _ = b.WriteTo([]byte("cut"), a.Addr())
		if got, ok := recv(t, a); ok {
			t.Errorf("a got %q through a partition", got)
		}
		start := time.Now()
		if _, err := a.DialTimeout(b.Addr(), 2*time.Second); !errors.Is(err, errLink) || time.Since(start) != 2*time.Second {
			t.Errorf("dial through a partition: %v after %s", err, time.Since(start))
		}
		_, _ = a.WriteTo([]byte("to c"), c.Addr())
		if _, ok := recv(t, c); !ok {
			t.Error("a partition a-b cut a-c")
		}

		n.Heal()
		conn, err := a.DialTimeout(b.Addr(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		server := <-b.StreamCh()
		if server.RemoteAddr().String() != a.Addr() || conn.RemoteAddr().String() != b.Addr() {
			t.Errorf("stream addresses: %s, %s", server.RemoteAddr(), conn.RemoteAddr())
		}
		go func() { _, _ = conn.Write([]byte("x")); _ = conn.Close() }()
		if got, _ := io.ReadAll(server); string(got) != "x" {
			t.Errorf("stream carried %q", got)
		}

		n.Isolate("c")
		_, _ = a.WriteTo([]byte("to c"), c.Addr())
		if _, ok := recv(t, c); ok {
			t.Error("an isolated member got a packet")
		}

		n.Heal()
		n.Loss("a", "b", 0.5)
		got := 0
		for range 200 {
			_, _ = a.WriteTo([]byte("p"), b.Addr())
			if _, ok := recv(t, b); ok {
				got++
			}
		}
		if got < 70 || got > 130 {
			t.Errorf("%d of 200 packets through 50%% loss", got)
		}

		_ = b.Shutdown()
		_, _ = a.WriteTo([]byte("dead"), b.Addr())
		if _, err := a.DialTimeout(b.Addr(), time.Second); err == nil {
			t.Error("dial to a shut-down member succeeded")
		}
	})
}
