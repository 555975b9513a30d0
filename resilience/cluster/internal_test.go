package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

func TestKeyRejectionLines(t *testing.T) {
	for _, tc := range []struct {
		line      string
		dir, addr string
	}{
		{"[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.3:7946", "from", "10.0.0.3:7946"},
		{"[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=10.0.0.3:41234", "from", "10.0.0.3:41234"},
		{"[ERR] memberlist: failed to receive: encryption is configured but remote state is not encrypted from=10.0.0.4:5000", "from", "10.0.0.4:5000"},
		{"[DEBUG] memberlist: failed to join 10.0.0.1:7946: no installed keys could decrypt the message", "to", "10.0.0.1:7946"},
		{"[ERR] memberlist: Push/Pull with xivo-main failed: no installed keys could decrypt the message", "to", "xivo-main"},
		{"[ERR] memberlist: failed to receive: EOF from=10.0.0.3:7946", "", ""},
		{"[DEBUG] memberlist: failed to join 10.0.0.1:7946: dial tcp 10.0.0.1:7946: i/o timeout", "", ""},
		{"[DEBUG] memberlist: Stream connection from=10.0.0.3:7946", "", ""},
	} {
		_, text := splitLevel(tc.line)
		dir, addr, ok := keyRejection(text)
		if ok != (tc.dir != "") || dir != tc.dir || addr != tc.addr {
			t.Errorf("%q: got %q %q %t, want %q %q", tc.line, dir, addr, ok, tc.dir, tc.addr)
		}
	}
}

type recordHandler struct {
	mu    sync.Mutex
	lines []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lines = append(h.lines, fmt.Sprintf("%s %s", r.Level, r.Message))
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func TestLogBridgeWarnsOnceAndCounts(t *testing.T) {
	rec := &recordHandler{}
	count := 0
	b := newLogBridge(slog.New(rec), func() { count++ })
	line := "[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.3:7946\n"
	for range 5 {
		if _, err := b.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if count != 5 {
		t.Errorf("counted %d, want 5", count)
	}
	warns := 0
	for _, l := range rec.lines {
		if strings.HasPrefix(l, "WARN gossip from 10.0.0.3:7946 rejected: wrong gossip.key?") {
			warns++
		}
	}
	if warns != 1 {
		t.Errorf("warned %d times, want once: %q", warns, rec.lines)
	}
	if !strings.HasPrefix(rec.lines[len(rec.lines)-1], "DEBUG Decrypt packet failed") {
		t.Errorf("memberlist line not logged at debug: %q", rec.lines)
	}
}

func TestEventQueueCoalesces(t *testing.T) {
	q := newEventQueue()
	ev := func(kind EventKind, name string, epoch uint64) Event {
		return Event{Kind: kind, Member: Member{Name: name, Meta: Meta{Epoch: epoch}}}
	}
	for i := range coalesceAfter {
		q.push(ev(Update, "other", uint64(i)))
	}
	q.push(ev(Up, "main", 1))
	q.push(ev(Update, "main", 2)) // merged into the Up
	q.push(ev(Down, "main", 2))   // merged: Down wins
	q.push(ev(Up, "main", 3))     // merged: latest state
	if n := len(q.items); n != coalesceAfter+1 {
		t.Fatalf("%d events waiting, want %d", n, coalesceAfter+1)
	}
	last := q.items[len(q.items)-1]
	if last.Kind != Up || last.Member.Meta.Epoch != 3 {
		t.Errorf("merged event = %v", last)
	}
	q.push(ev(Update, "main", 4))
	if last := q.items[len(q.items)-1]; last.Kind != Up || last.Member.Meta.Epoch != 4 {
		t.Errorf("an Update hid the Up: %v", last)
	}
}

func TestOptionsDefaultsAndChecks(t *testing.T) {
	key := make([]byte, 32)
	o := Options{Name: "a", Bind: "127.0.0.1:0", Key: key}
	if err := o.fill(); err != nil {
		t.Fatal(err)
	}
	if o.ProbeInterval != DefaultProbeInterval || o.ProbeTimeout != DefaultProbeTimeout ||
		o.SuspicionMult != DefaultSuspicionMult || o.RejoinInterval != DefaultRejoinInterval || o.Logger == nil {
		t.Errorf("defaults not filled: %+v", o)
	}
}

func TestAdmission(t *testing.T) {
	c := &Cluster{opts: Options{Name: "xivo-main"}}
	exp := resolveExpected(context.Background(), []Expected{
		{Name: "xivo-standby", Addr: "10.0.0.2:7946", Roles: []string{"standby"}, Key: "peer.gossip"},
		{Addr: "10.0.0.3:7946", Roles: []string{"witness"}, Key: "failover.witness"},
	})
	c.expected.Store(&exp)
	metaOf := func(role string) []byte {
		b, err := Meta{Name: "x", Role: role, Status: "active", Epoch: 9}.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name, addr, role string
		why              string // "" admitted
	}{
		{"xivo-main", "10.9.9.9:1", "main", ""}, // our own announcement
		{"xivo-standby", "10.0.0.2:7946", "standby", ""},
		{"xivo-standby", "[::ffff:10.0.0.2]:7946", "standby", ""},
		{"witness-a", "10.0.0.3:7946", "witness", ""},
		{"xivo-standby", "10.0.0.9:7946", "standby", "announces address 10.0.0.9:7946, and peer.gossip is 10.0.0.2:7946"},
		{"xivo-standby", "10.0.0.2:7947", "standby", "announces address"},
		{"xivo-standby", "10.0.0.2:7946", "witness", `announces role "witness", but the member at 10.0.0.2:7946 (peer.gossip) may only be standby`},
		{"other", "10.0.0.2:7946", "standby", "is peer.gossip, the address of xivo-standby, but the member there is named other"},
		{"witness-a", "10.0.0.3:7946", "main", `announces role "main"`},
		{"witness-b", "10.0.0.4:7946", "witness", "not a configured member"},
		{"stranger", "10.0.0.5:7946", "", "not a configured member"},
	} {
		err := c.admission(tc.name, netip.MustParseAddrPort(tc.addr), metaOf(tc.role))
		switch {
		case tc.why == "" && err != nil:
			t.Errorf("%s at %s (%s): refused: %v", tc.name, tc.addr, tc.role, err)
		case tc.why != "" && (err == nil || !strings.Contains(err.Error(), tc.why)):
			t.Errorf("%s at %s (%s): got %v, want an error with %q", tc.name, tc.addr, tc.role, err, tc.why)
		}
	}
	// Without a list (tests, the harness), every member is admitted.
	c.expected.Store(nil)
	if err := c.admission("stranger", netip.MustParseAddrPort("10.0.0.5:7946"), nil); err != nil {
		t.Errorf("without a list: %v", err)
	}
}
