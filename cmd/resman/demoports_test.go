package main

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
)

// A demo whose ports are taken says so in one line, with what to do,
// instead of six "address already in use" lines.
func TestDemoRefusesBusyPorts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	if busy+50 > 65535 {
		t.Skipf("the kernel gave port %d, too close to the top for a demo layout", busy)
	}
	p := newDemoPorts(busy) // the Main's API on the busy port
	err = p.checkFree(busy)
	if !errors.Is(err, errPortsBusy) {
		t.Fatalf("checkFree with port %d taken: %v", busy, err)
	}
	msg := err.Error()
	for _, want := range []string{"port " + strconv.Itoa(busy) + " (the Main's API and page) is taken", "pkill -f 'resman demo'",
		"--base-port " + strconv.Itoa(busy+1000)} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error %q does not say %q", msg, want)
		}
	}
	if strings.Count(msg, "\n") != 0 {
		t.Errorf("not one line: %q", msg)
	}
	// The UDP ports are checked too: a stand-in's or the MDS's.
	u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p.MDS))
	if err != nil {
		t.Skipf("cannot take UDP port %d for the check: %v", p.MDS, err)
	}
	defer u.Close()
	if err := p.checkFree(busy); err == nil || !strings.Contains(err.Error(), "(and 1 more)") {
		t.Errorf("with the MDS's UDP port taken too: %v", err)
	}
}
