package sippeers

import (
	"net"
	"strconv"
	"testing"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// UDPBound sees a socket bound on loopback, and no longer once it closes.
func TestUDPBound(t *testing.T) {
	p := testkit.Port(t)
	if UDPBound(p) {
		t.Fatalf("port %d bound before anything bound it", p)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatal(err)
	}
	if !UDPBound(p) {
		t.Errorf("port %d not seen bound", p)
	}
	pc.Close()
	if UDPBound(p) {
		t.Errorf("port %d still seen bound after the close", p)
	}
}
