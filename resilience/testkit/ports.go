package testkit

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

var (
	portMu sync.Mutex
	given  = map[int]bool{}
)

// Port is a loopback port free for UDP and TCP, below the ephemeral range
// (32768 and up on Linux), never given twice in a process nor to two test
// processes at once: for a process the test starts (kamailio, sipp, resman),
// which binds it later.
func Port(t testing.TB) int {
	t.Helper()
	return PortOn(t, "127.0.0.1")
}

// Addr is 127.0.0.1 with a Port: an address to listen on that no client's
// connection nor other test process takes while the test runs, even after
// the test closes its listener (to play a dead peer) or before a process
// the test starts binds it.
func Addr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(PortOn(t, "127.0.0.1"))
}

// PortOn is a port free for UDP and TCP on host, below the ephemeral
// range: a port of the ephemeral range, free when picked, may be taken by
// any outgoing connection before the process it is meant for binds it.
// It is never given twice in a process, nor to two test processes at once
// (the packages' tests run side by side): the test holds a lock named for
// the port until it ends.
func PortOn(t testing.TB, host string) int {
	t.Helper()
	lo := 32768
	if raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var l, h int
		if _, err := fmt.Sscan(string(raw), &l, &h); err == nil {
			lo = l
		}
	}
	first, last := 20000, min(lo-1, 32767)
	if last <= first {
		first, last = 10000, lo-1
	}
	portMu.Lock()
	defer portMu.Unlock()
	for range 500 {
		p := first + rand.IntN(last-first+1)
		// Reserved before it is tried: trying binds it for a moment, which
		// would make the bind of a process it was given to fail.
		if given[p] {
			continue
		}
		release, ok := ReservePort(t, p)
		if !ok {
			continue
		}
		if !free(host, p) {
			release()
			continue
		}
		given[p] = true
		return p
	}
	t.Fatalf("no free port on %s below the ephemeral range", host)
	return 0
}

// ReservePort takes, for the rest of t (or until release), an advisory
// lock on a file named for p that every test process of the machine uses:
// not ok when another holds it. The kernel drops the lock when the process
// ends, however it ends. Where the lock file cannot be made, a bind's
// check is all there is. A test that tries ports of its own (a layout of
// several) reserves each before it binds it: trying a port another test
// process was given makes that process's bind fail.
func ReservePort(t testing.TB, p int) (release func(), ok bool) {
	none := func() {}
	dir := filepath.Join(os.TempDir(), "resman-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return none, true
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return none, true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return none, false
	}
	var once sync.Once
	release = func() { once.Do(func() { f.Close() }) }
	t.Cleanup(release)
	return release, true
}

func free(host string, p int) bool {
	addr := net.JoinHostPort(host, strconv.Itoa(p))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}
