package main

import (
	"errors"
	"math/rand/v2"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// A demo whose ports are taken says so in one line, with what to do,
// instead of six "address already in use" lines.
func TestDemoRefusesBusyPorts(t *testing.T) {
	// A layout below the kernel's ephemeral range, where the outgoing
	// connections of tests running beside this one do not land, and
	// whose other ports are free now.
	var l net.Listener
	var busy int
	for try := 0; try < 50 && l == nil; try++ {
		port := 20000 + rand.IntN(10000)
		// Reserved before it is tried (see reserveDemoPorts).
		release, ok := reserveDemoPorts(t, port)
		if !ok {
			continue
		}
		c, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			release()
			continue
		}
		if err := newDemoPorts(port).checkFree(port); err != nil && strings.Contains(err.Error(), "more)") {
			c.Close() // another of the layout's ports is in use: try another layout
			release()
			continue
		}
		l, busy = c, port
	}
	if l == nil {
		t.Skip("found no demo layout between ports 20000 and 30000 with only its first port taken, in 50 tries")
	}
	defer l.Close()
	p := newDemoPorts(busy) // the Main's API on the busy port
	err := p.checkFree(busy)
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
	err = p.checkFree(busy)
	if err == nil {
		t.Fatal("with the MDS's UDP port taken too: no error")
	}
	// "(and 1 more)", or more when a test beside this one took another of
	// the layout's ports since the first check.
	if !regexp.MustCompile(`\(and \d+ more\)`).MatchString(err.Error()) {
		t.Errorf("with the MDS's UDP port taken too: %v", err)
	}
}
