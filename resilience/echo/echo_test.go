package echo

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/resman-pbx/resman/resilience/testkit"
)

var (
	keyA = bytes.Repeat([]byte{1}, 32)
	keyB = bytes.Repeat([]byte{2}, 32)
)

// pair starts two echoes on loopback that probe each other.
type side struct {
	e      *Echo
	status atomic.Value
	cancel context.CancelFunc
	done   chan struct{}
}

func start(t *testing.T, name, peerName, listen, peer string, ks Keys) *side {
	t.Helper()
	return startVouching(t, name, peerName, listen, peer, ks, nil)
}

// startVouching is start with a vouch key.
func startVouching(t *testing.T, name, peerName, listen, peer string, ks Keys, vouch []byte) *side {
	t.Helper()
	s := &side{done: make(chan struct{})}
	s.status.Store("active")
	e, err := New(Options{Name: name, PeerName: peerName, Listen: listen, Peer: peer, Keys: ks, Vouch: vouch,
		Every: 10 * time.Millisecond, Window: 2 * time.Second,
		Self: func() Meta { return Meta{Status: s.status.Load().(string), Epoch: 7, Healthy: true} }})
	if err != nil {
		t.Fatal(err)
	}
	s.e = e
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { e.Run(ctx); close(s.done) }()
	t.Cleanup(s.stop)
	return s
}

func (s *side) stop() {
	s.cancel()
	<-s.done
}

func waitVerdict(t *testing.T, s *side, want Verdict) State {
	t.Helper()
	return testkit.Until(t, s.e.State, func(st State) bool { return st.Verdict(time.Now(), s.e.Window()) == want },
		"verdict %v", want)
}

// A live peer answers with its status and epoch; when its process ends,
// its host refuses at once; that is told from a silent peer.
func TestAliveThenRefused(t *testing.T) {
	ks := NewKeys(keyA, nil)
	mainAddr, standbyAddr := testkit.Addr(t), testkit.Addr(t)
	main := start(t, "main", "standby", mainAddr, standbyAddr, ks)
	standby := start(t, "standby", "main", standbyAddr, mainAddr, ks)

	st := waitVerdict(t, standby, Alive)
	if st.Meta.Name != "main" || st.Meta.Status != "active" || st.Meta.Epoch != 7 || !st.Meta.Healthy {
		t.Fatalf("the main's answer: %+v", st.Meta)
	}
	main.status.Store("inactive")
	testkit.Eventually(t, func() bool { return standby.e.State().Meta.Status == "inactive" },
		"the answers to follow the main's status")

	main.stop() // nothing listens on the main's port any more
	waitVerdict(t, standby, Refused)
	if got := standby.e.State().Describe(time.Now(), time.Second, mainAddr); !bytes.Contains([]byte(got), []byte("resman is not running")) {
		t.Errorf("a refusal described as %q", got)
	}
}

// A peer that never answers (a frozen process: its socket is bound but
// nobody reads) is silent, never alive.
func TestFrozenPeerIsSilent(t *testing.T) {
	frozen, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer frozen.Close()
	s := start(t, "standby", "main", testkit.Addr(t), frozen.LocalAddr().String(), NewKeys(keyA, nil))
	waitCount(t, "probes", s.e.m.probes, 10)
	st := s.e.State()
	if v := st.Verdict(time.Now(), s.e.Window()); v != Silent {
		t.Fatalf("verdict %v against a peer that reads nothing", v)
	}
	if got := st.Describe(time.Now(), time.Second, "x"); got != "no answer over the second path (x) since this node started" {
		t.Errorf("described as %q", got)
	}
}

// A peer with another key gets no answer and gives none that counts:
// the path never says alive for a stranger, and answers no stranger.
func TestWrongKeyNeverAlive(t *testing.T) {
	a, b := testkit.Addr(t), testkit.Addr(t)
	good := start(t, "standby", "main", a, b, NewKeys(keyA, nil))
	stranger := start(t, "main", "standby", b, a, NewKeys(keyB, nil))
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if good.e.Verdict() == Alive || stranger.e.Verdict() == Alive {
			t.Fatal("a peer with another key counts as alive")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if testkit.Value(t, good.e.m.bad) == 0 || testkit.Value(t, good.e.m.answered) != 0 {
		t.Errorf("against another key: %v packets dropped (want some), %v probes answered (want none)",
			testkit.Value(t, good.e.m.bad), testkit.Value(t, good.e.m.answered))
	}
}

// A key rotation without a gap, as gossip's: the new key goes in as an
// extra key everywhere, then becomes primary on each node in turn, then
// the old one goes. The path stays alive at every step.
func TestKeyRotation(t *testing.T) {
	a, b := testkit.Addr(t), testkit.Addr(t)
	x := start(t, "standby", "main", a, b, NewKeys(keyA, nil))
	y := start(t, "main", "standby", b, a, NewKeys(keyA, [][]byte{keyB}))
	for i, step := range []struct{ x, y Keys }{
		{NewKeys(keyA, nil), NewKeys(keyA, [][]byte{keyB})},
		{NewKeys(keyB, [][]byte{keyA}), NewKeys(keyA, [][]byte{keyB})},
		{NewKeys(keyB, [][]byte{keyA}), NewKeys(keyB, [][]byte{keyA})},
		{NewKeys(keyB, nil), NewKeys(keyB, nil)},
	} {
		x.e.SetKeys(step.x)
		y.e.SetKeys(step.y)
		x.e.mu.Lock()
		x.e.state = State{}
		x.e.mu.Unlock()
		t.Logf("step %d", i+1)
		waitVerdict(t, x, Alive)
	}
}

// An answer carrying another name (a third node with the key answering in
// the peer's place) does not count.
func TestAnswerFromAnotherName(t *testing.T) {
	a, b := testkit.Addr(t), testkit.Addr(t)
	ks := NewKeys(keyA, nil)
	s := start(t, "standby", "main", a, b, ks)
	start(t, "witness", "standby", b, a, ks)
	waitCount(t, "dropped answers", s.e.m.bad, 3)
	if v := s.e.Verdict(); v == Alive {
		t.Fatal("an answer from witness counted as the main's")
	}
}

func waitCount(t *testing.T, what string, c prometheus.Counter, n float64) {
	t.Helper()
	testkit.Until(t, func() float64 { return testkit.Value(t, c) }, func(v float64) bool { return v >= n }, "%s at %v", what, n)
}

func TestVerdict(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := 300 * time.Millisecond
	for _, c := range []struct {
		name string
		s    State
		now  time.Time
		want Verdict
	}{
		{"never answered", State{}, t0, Silent},
		{"answered just now", State{LastAnswer: t0}, t0.Add(10 * time.Millisecond), Alive},
		{"answered a window ago", State{LastAnswer: t0, Unanswered: 3, Needed: 3}, t0.Add(w), Silent},
		{"refused after the answer", State{LastAnswer: t0, RefusedAt: t0.Add(time.Millisecond)}, t0.Add(2 * time.Millisecond), Refused},
		{"refused, never answered", State{RefusedAt: t0}, t0.Add(time.Hour), Refused},
		{"a window without an answer, enough probes sent", State{LastAnswer: t0, Unanswered: 15, Needed: 15}, t0.Add(w), Silent},
		{"a window without an answer, too few probes sent (this node was held up)", State{LastAnswer: t0, Unanswered: 2, Needed: 15}, t0.Add(w), Alive},
	} {
		if got := c.s.Verdict(c.now, w); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// Every probe and answer decodes to what was encoded; any change of a
// byte makes it invalid.
func TestCodec(t *testing.T) {
	ks := NewKeys(keyA, nil)
	nonce := newNonce()
	m := Meta{Name: "main", Status: "active", Epoch: 1<<40 + 3, Healthy: true, Holding: true}
	vouch := NewVouchKey("the pair's api token")
	for _, pkt := range [][]byte{encodeAnswer(ks, nil, nonce, m), encodeAnswer(ks, vouch, nonce, m), encodeProbe(ks, nonce, "standby")} {
		p, err := decode(ks, pkt)
		if err != nil || p.nonce != nonce {
			t.Fatalf("decode: %v", err)
		}
		if p.kind == kindAnswer && p.meta != m {
			t.Fatalf("answer decoded as %+v", p.meta)
		}
		for i := range pkt {
			bad := bytes.Clone(pkt)
			bad[i] ^= 0x40
			if _, err := decode(ks, bad); err == nil {
				t.Fatalf("byte %d changed: still valid", i)
			}
		}
		if _, err := decode(ks, pkt[:len(pkt)-1]); err == nil {
			t.Fatal("truncated: still valid")
		}
	}
}

// A vouch holds under the key it was made with only; an answer without
// one, or one re-sealed by a holder of the gossip key alone, is not
// vouched for.
func TestVouch(t *testing.T) {
	ks, nonce := NewKeys(keyA, nil), newNonce()
	m := Meta{Name: "main", Status: "active", Epoch: 4}
	vouch, other := NewVouchKey("the pair's api token"), NewVouchKey("another token")
	p, err := decode(ks, encodeAnswer(ks, vouch, nonce, m))
	if err != nil || !p.vouchedBy(vouch) || p.vouchedBy(other) || p.vouchedBy(nil) {
		t.Fatalf("a vouched answer: err %v, vouched by its key %v, by another %v, by none %v",
			err, p.vouchedBy(vouch), p.vouchedBy(other), p.vouchedBy(nil))
	}
	if p, _ := decode(ks, encodeAnswer(ks, nil, nonce, m)); p.vouchedBy(vouch) {
		t.Fatal("an answer without a vouch counts as vouched")
	}
	// A gossip key holder copies a real vouch onto its own claim.
	real := encodeAnswer(ks, vouch, nonce, m)
	forged := encodeAnswer(ks, nil, nonce, Meta{Name: "main", Status: "active", Epoch: 1000})
	forged = ks.seal(append(forged[:len(forged)-macLen:len(forged)-macLen], real[len(real)-2*macLen:len(real)-macLen]...))
	if p, err := decode(ks, forged); err != nil || p.vouchedBy(vouch) {
		t.Fatalf("a copied vouch on another claim: err %v, vouched %v", err, p.vouchedBy(vouch))
	}
	if NewVouchKey("") != nil {
		t.Fatal("an empty secret gives a vouch key")
	}
}

// Between two nodes with the same vouch key, answers are vouched for;
// with another key, or none, the path is alive but nothing is vouched.
func TestVouchedAnswers(t *testing.T) {
	ks := NewKeys(keyA, nil)
	for _, tc := range []struct {
		name        string
		mine, peers []byte
		want        bool
	}{
		{"same key", NewVouchKey("token"), NewVouchKey("token"), true},
		{"another key", NewVouchKey("token"), NewVouchKey("other"), false},
		{"the peer has none", NewVouchKey("token"), nil, false},
		{"this node has none", nil, NewVouchKey("token"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := testkit.Addr(t), testkit.Addr(t)
			s := startVouching(t, "standby", "main", a, b, ks, tc.mine)
			startVouching(t, "main", "standby", b, a, ks, tc.peers)
			if st := waitVerdict(t, s, Alive); st.Vouched != tc.want {
				t.Fatalf("vouched %v, want %v", st.Vouched, tc.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	ks := NewKeys(keyA, nil)
	f.Add(encodeAnswer(ks, nil, newNonce(), Meta{Name: "main", Status: "active"}))
	f.Add(encodeAnswer(ks, NewVouchKey("token"), newNonce(), Meta{Name: "main", Status: "active"}))
	f.Add(encodeProbe(ks, newNonce(), "standby"))
	f.Fuzz(func(t *testing.T, b []byte) {
		decode(ks, b) // must not panic
	})
}
