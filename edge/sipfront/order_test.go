package sipfront

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// The messages of one call from one flow are handled in the order they
// came, even when the first is slow to handle: a callee's 180 and 200 sent
// back to back reach the caller in that order. Another call, or the same
// call from another flow, is not held up meanwhile.
func TestDispatchKeepsACallsOrder(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var got []string
	handled := make(chan string, 16)
	tr := newTransport(discardConn{}, nil, func(m sip.Message, from flow) {
		res := m.(*sip.Response)
		if res.StatusCode == 180 && from.addr.Port() == 5060 {
			<-release // the 180 is slow to handle
		}
		what := res.CallID().Value() + " " + res.Reason + " from " + from.addr.String()
		mu.Lock()
		got = append(got, what)
		mu.Unlock()
		handled <- what
	}, func(flow, string) {})
	pbx := flow{net: "udp", addr: netip.MustParseAddrPort("10.0.0.1:5060")}
	other := flow{net: "udp", addr: netip.MustParseAddrPort("10.0.0.2:5060")}
	res := func(callID string, code int, reason string) *sip.Response {
		r := sip.NewResponse(code, reason)
		id := sip.CallIDHeader(callID)
		r.AppendHeader(&id)
		return r
	}
	tr.dispatch(res("call-1", 180, "Ringing"), pbx, false)
	tr.dispatch(res("call-1", 200, "OK"), pbx, false)
	tr.dispatch(res("call-2", 200, "OK"), pbx, false)
	tr.dispatch(res("call-1", 200, "OK"), other, false)
	// The other call and the other flow go on while call-1's 180 is held.
	notHeld := []string{"call-2 OK from 10.0.0.1:5060", "call-1 OK from 10.0.0.2:5060"}
	for range notHeld {
		select {
		case h := <-handled:
			if !slices.Contains(notHeld, h) {
				t.Fatalf("handled %q while call-1's 180 was held", h)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("held up behind another call's message: %v", got)
		}
	}
	close(release)
	for range 2 {
		select {
		case <-handled:
		case <-time.After(10 * time.Second):
			t.Fatalf("call-1 not handled: %v", got)
		}
	}
	mu.Lock()
	order := slices.Clone(got)
	mu.Unlock()
	i180 := slices.Index(order, "call-1 Ringing from 10.0.0.1:5060")
	i200 := slices.Index(order, "call-1 OK from 10.0.0.1:5060")
	if i180 < 0 || i200 < 0 || i180 > i200 {
		t.Fatalf("call-1 from the PBX handled in the order %v: the 200 overtook the 180", order)
	}
	// The last handler frees its slot, then its key, under tr.mu.
	testkit.Eventually(t, func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.order) == 0 && len(tr.slots) == 0
	}, "every key and slot freed after the calls")
}
