package xds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/xds/registrar"
)

func TestRegisterWithDigestThenUnregister(t *testing.T) {
	for _, tc := range []struct {
		name, network string
		proxyAuth     bool
	}{
		{"udp-401", "udp", false},
		{"tcp-407", "tcp", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const password = "s3cret-Pa55"
			srv := startRegistrar(t, tc.network, registrar.Options{User: "pbx", Password: password, ProxyAuth: tc.proxyAuth})
			rec := newRecorder()
			r := startXDS(t, Config{Contact: testContact, MDS: []MDS{
				mds("mds1", srv.Addr(), tc.network, "pbx", password),
			}}, fastOptions(nil, rec))

			r.Activate(1)
			rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
			b, ok := bindingOf(srv, testContact)
			if !ok {
				t.Fatalf("no binding of %s at the registrar: %+v", testContact, srv.Bindings())
			}
			if b.AOR != "sip:pbx@127.0.0.1" || b.Transport != strings.ToUpper(tc.network) {
				t.Errorf("binding = %+v", b)
			}
			st := r.Status()[0]
			if !st.Registered || st.StatusCode != 200 || st.Error != "" || st.ExpiresAt.IsZero() || st.NextRefresh.IsZero() {
				t.Errorf("status = %+v", st)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := r.Deactivate(ctx); err != nil {
				t.Fatalf("Deactivate: %v", err)
			}
			if _, ok := bindingOf(srv, testContact); ok {
				t.Errorf("binding still present after Deactivate: %+v", srv.Bindings())
			}
			ev, _ := rec.wait(t, 0, time.Second, kind("mds1", EventUnregistered))
			if ev.Err != nil || ev.StatusCode != 200 {
				t.Errorf("unregistered event = %+v", ev)
			}
			if st := r.Status()[0]; st.Registered || !st.ExpiresAt.IsZero() || !st.NextRefresh.IsZero() {
				t.Errorf("status after Deactivate = %+v", st)
			}
			// Register and unregister: each challenged, then answered.
			if n := srv.Stats().Registers; n != 4 {
				t.Errorf("registrar saw %d REGISTERs, want 4", n)
			}
		})
	}
}

func TestRefreshBeforeExpiry(t *testing.T) {
	t.Parallel() // mostly waits for a timer
	srv := startRegistrar(t, "udp", registrar.Options{User: "pbx", Password: "pw", Knobs: registrar.Knobs{MaxExpires: 2}})
	rec := newRecorder()
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{
		mds("mds1", srv.Addr(), "udp", "pbx", "pw"),
	}}, fastOptions(nil, rec))

	r.Activate(1)
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	first, ok := bindingOf(srv, testContact)
	if !ok {
		t.Fatal("no binding")
	}
	if st := r.Status()[0]; st.ExpiresAt.After(time.Now().Add(2 * time.Second)) {
		t.Errorf("granted Expires not honoured: expires_at %s", st.ExpiresAt)
	}
	// The binding must never lapse: the refresh comes before expiry, in
	// the same Call-ID with a higher CSeq.
	testkit.EventuallyWithin(t, 6*time.Second, func() bool {
		b, ok := bindingOf(srv, testContact)
		if !ok {
			t.Fatalf("binding lapsed before a refresh (first %+v)", first)
		}
		return b.CSeq > first.CSeq
	}, "a refresh")
	b, _ := bindingOf(srv, testContact)
	if b.CallID != first.CallID {
		t.Errorf("Call-ID changed on refresh: %q then %q", first.CallID, b.CallID)
	}
}

func TestIntervalTooBrief(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{Knobs: registrar.Knobs{MinExpires: 300}})
	rec := newRecorder()
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{
		mds("mds1", srv.Addr(), "udp", "pbx", "pw"),
	}}, fastOptions(nil, rec))

	r.Activate(1)
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	b, ok := bindingOf(srv, testContact)
	if !ok || b.Expires.Before(time.Now().Add(250*time.Second)) {
		t.Fatalf("binding = %+v, %v; want about 300s", b, ok)
	}
	r.bindings[0].mu.Lock()
	asked := r.bindings[0].asked
	r.bindings[0].mu.Unlock()
	if asked != 300 {
		t.Errorf("asked Expires = %d, want the Min-Expires 300", asked)
	}
}

func TestWrongPasswordIsClearAndSecret(t *testing.T) {
	const password = "Wr0ng-Pa55w0rd-XYZ"
	srv := startRegistrar(t, "udp", registrar.Options{User: "pbx", Password: "the-right-one"})
	logs := &testkit.Buffer{}
	rec := newRecorder()
	reg := prometheus.NewRegistry()
	opts := fastOptions(logs, rec)
	opts.Registerer = reg
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{
		mds("mds1", srv.Addr(), "udp", "pbx", password),
	}}, opts)

	r.Activate(1)
	ev, _ := rec.wait(t, 0, 5*time.Second, kind("mds1", EventFailed))
	const want = "mds1: registration refused: 403 Forbidden (check xds.mds[0].user/password)"
	if ev.Err == nil || ev.Err.Error() != want || ev.StatusCode != 403 {
		t.Fatalf("failed event = %+v, want %q", ev, want)
	}
	var re *ResponseError
	if !errors.As(ev.Err, &re) || re.StatusCode != 403 || re.Kind != KindRefused {
		t.Errorf("error %v is not a refused ResponseError", ev.Err)
	}
	testkit.EventuallyWithin(t, 5*time.Second, func() bool {
		return testkit.Metric(t, reg, "resman_xds_register_failures_total", map[string]string{"mds": "mds1", "code": "403"}) >= 2
	}, "retries")
	st := r.Status()[0]
	if st.Registered || st.Error != want || st.StatusCode != 403 {
		t.Errorf("status = %+v", st)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.Deactivate(ctx)
	statusJSON, _ := json.Marshal(r.Status())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, ev := range rec.all() {
		events = append(events, fmt.Sprintf("%+v %v", ev, ev.Err))
	}
	if !strings.Contains(logs.String(), "403 Forbidden") {
		t.Errorf("the refusal is not logged: %s", logs.String())
	}
	assertNoSecret(t, password, map[string]string{
		"logs":    logs.String(),
		"events":  strings.Join(events, "\n"),
		"status":  string(statusJSON),
		"metrics": fmt.Sprint(families),
	})
}

func TestDeadPeerDoesNotBlockOthers(t *testing.T) {
	hole, err := net.ListenPacket("udp", "127.0.0.1:0") // never answers
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	srv := startRegistrar(t, "udp", registrar.Options{})
	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.RequestTimeout = 300 * time.Millisecond
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{
		mds("dead", hole.LocalAddr().String(), "udp", "pbx", "pw"),
		mds("live", srv.Addr(), "udp", "pbx", "pw"),
	}}, opts)

	r.Activate(1)
	rec.wait(t, 0, 5*time.Second, kind("live", EventRegistered))
	ev, _ := rec.wait(t, 0, 5*time.Second, kind("dead", EventFailed))
	if !errors.Is(ev.Err, context.DeadlineExceeded) || !strings.Contains(ev.Err.Error(), "dead: no response to REGISTER from udp 127.0.0.1:") {
		t.Errorf("dead MDS error = %v", ev.Err)
	}
	if got := testkit.Metric(t, reg, "resman_xds_register_failures_total", map[string]string{"mds": "dead", "code": "timeout"}); got < 1 {
		t.Errorf("timeout failures = %v", got)
	}
	st := r.Status()
	if st[0].MDS != "dead" || st[0].Registered || st[0].Error == "" || st[1].MDS != "live" || !st[1].Registered {
		t.Errorf("status = %+v", st)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = r.Deactivate(ctx)
	if err == nil || !strings.Contains(err.Error(), "dead:") || strings.Contains(err.Error(), "live:") {
		t.Errorf("Deactivate error = %v, want the dead MDS only", err)
	}
	if _, ok := bindingOf(srv, testContact); ok {
		t.Error("live MDS binding not removed")
	}
}

func TestDeactivateHungRegistrarReturnsWithCtx(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{})
	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.RequestTimeout = time.Minute // only the caller's ctx bounds Deactivate
	opts.ProbeInterval = time.Hour
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{
		mds("mds1", srv.Addr(), "udp", "pbx", "pw"),
	}}, opts)
	r.Activate(1)
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))

	srv.SetKnobs(registrar.Knobs{Drop: true})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Deactivate(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Deactivate = %v, want the ctx deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Deactivate hung past its ctx")
	}

	// The binding is usable again once the registrar answers.
	srv.SetKnobs(registrar.Knobs{})
	_, i := rec.wait(t, 0, 5*time.Second, kind("mds1", EventUnregistered))
	r.Activate(2)
	rec.wait(t, i, 5*time.Second, kind("mds1", EventRegistered))
}

func TestActivateIdempotentDeactivateNoop(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{})
	rec := newRecorder()
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{
		mds("mds1", srv.Addr(), "udp", "pbx", "pw"),
	}}, fastOptions(nil, rec))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The first Deactivate clears what a previous run may have left (one
	// unregistration); the next ones while inactive send nothing.
	if err := r.Deactivate(ctx); err != nil {
		t.Fatalf("first Deactivate while inactive: %v", err)
	}
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventUnregistered))
	before := srv.Stats().Registers
	if err := r.Deactivate(ctx); err != nil {
		t.Fatalf("Deactivate while inactive: %v", err)
	}
	if got := srv.Stats().Registers; got != before {
		t.Errorf("a second Deactivate while inactive sent %d REGISTERs", got-before)
	}
	r.Activate(1)
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	gen := func() uint64 {
		b := r.bindings[0]
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.gen
	}
	g, regs := gen(), srv.Stats().Registers
	r.Activate(2)
	if gen() != g {
		t.Error("Activate while active restarted the registration")
	}
	if err := r.Deactivate(ctx); err != nil {
		t.Fatalf("Deactivate: %v", err)
	}
	if err := r.Deactivate(ctx); err != nil {
		t.Fatalf("second Deactivate: %v", err)
	}
	if got := srv.Stats().Registers; got != regs+1 {
		t.Errorf("REGISTERs after the second Activate: %d, want %d (the unregister only)", got, regs+1)
	}
	n := 0
	for _, ev := range rec.all() {
		if ev.Kind == EventUnregistered {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d unregistered events, want 2 (the leftover clearing, then the deactivation)", n)
	}
}

// A node killed while Active cannot unregister: its binding stays at the
// MDS. The next run of the node removes it at its first Deactivate, which
// the core asks for at every boot that does not end Active.
func TestFirstDeactivateRemovesALeftoverBinding(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{User: "pbx", Password: "pw"})
	cfg := Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "udp", "pbx", "pw")}}

	prevRec := newRecorder()
	prev := startXDS(t, cfg, fastOptions(nil, prevRec))
	prev.Activate(1)
	prevRec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	prev.cancelBase() // its loops end without unregistering, as under kill -9
	if _, ok := bindingOf(srv, testContact); !ok {
		t.Fatalf("no binding of the previous run: %+v", srv.Bindings())
	}

	r := startXDS(t, cfg, fastOptions(nil, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Deactivate(ctx); err != nil {
		t.Fatalf("Deactivate: %v", err)
	}
	if _, ok := bindingOf(srv, testContact); ok {
		t.Errorf("the previous run's binding is still at the MDS: %+v", srv.Bindings())
	}
	if st := r.Status()[0]; st.Registered || st.StatusCode != 200 || st.Error != "" {
		t.Errorf("status after clearing = %+v", st)
	}
}

// With UnregisterOnStop (xds.unregister_on_stop), the end of Run
// unregisters; without it, see stop_test.go.
func TestRunEndUnregisters(t *testing.T) {
	srv := startRegistrar(t, "tcp", registrar.Options{User: "pbx", Password: "pw"})
	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.UnregisterOnStop = true
	r, err := New(Config{Contact: testContact, MDS: []MDS{
		mds("mds1", srv.Addr(), "tcp", "pbx", "pw"),
	}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	r.Activate(1) // before Run: works all the same
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, ok := bindingOf(srv, testContact); ok {
		t.Error("binding not removed when Run ended")
	}
	r.Activate(2) // stopped: ignored
	if st := r.Status()[0]; st.Registered || !st.NextRefresh.IsZero() {
		t.Errorf("status after Run = %+v", st)
	}
	if err := r.Run(context.Background()); err == nil {
		t.Error("second Run accepted")
	}
}

func TestReachability(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{})
	rec := newRecorder()
	reg := prometheus.NewRegistry()
	opts := fastOptions(nil, rec)
	opts.Registerer = reg
	opts.RequestTimeout = 100 * time.Millisecond
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{
		mds("mds1", srv.Addr(), "udp", "pbx", "pw"),
	}}, opts)

	// Probes run while inactive.
	_, i := rec.wait(t, 0, 5*time.Second, kind("mds1", EventReachable))
	if st := r.Status()[0]; !st.Reachable || st.Registered {
		t.Errorf("status = %+v", st)
	}
	if v := testkit.Metric(t, reg, "resman_xds_reachable", map[string]string{"mds": "mds1"}); v != 1 {
		t.Errorf("resman_xds_reachable = %v, want 1", v)
	}
	if v, ok := testkit.Gathered(t, reg, "resman_xds_registered", map[string]string{"mds": "mds1"}); !ok || v != 0 {
		t.Errorf("resman_xds_registered = %v (shown: %v), want 0", v, ok)
	}
	srv.SetKnobs(registrar.Knobs{Drop: true})
	ev, i := rec.wait(t, i, 5*time.Second, kind("mds1", EventUnreachable))
	if !errors.Is(ev.Err, context.DeadlineExceeded) {
		t.Errorf("unreachable event = %+v", ev)
	}
	if r.Status()[0].Reachable {
		t.Error("still reachable")
	}
	srv.SetKnobs(registrar.Knobs{})
	rec.wait(t, i, 5*time.Second, kind("mds1", EventReachable))
}

// scriptedPeer answers each UDP REGISTER with the next of answers (a status
// line and extra header lines), copying the request's transaction headers.
// The last answer repeats; a retransmission gets the same answer again.
func scriptedPeer(t *testing.T, answers ...string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65535)
		next, lastCSeq := -1, ""
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			msg := string(buf[:n])
			if !strings.HasPrefix(msg, "REGISTER ") {
				continue
			}
			var copied []string
			cseq := ""
			for _, line := range strings.Split(msg, "\r\n") {
				name, _, _ := strings.Cut(line, ":")
				switch strings.ToLower(name) {
				case "via", "from", "call-id", "cseq":
					copied = append(copied, line)
				case "to":
					copied = append(copied, line+";tag=peer")
				}
				if strings.EqualFold(name, "cseq") {
					cseq = line
				}
			}
			if cseq != lastCSeq {
				next, lastCSeq = min(next+1, len(answers)-1), cseq
			}
			status, extra, _ := strings.Cut(answers[next], "\r\n")
			res := status + "\r\n" + strings.Join(copied, "\r\n") + "\r\n"
			if extra != "" {
				res += extra + "\r\n"
			}
			res += "Content-Length: 0\r\n\r\n"
			_, _ = pc.WriteTo([]byte(res), from)
		}
	}()
	return pc.LocalAddr().String()
}

func TestMalformedAndUnexpectedResponses(t *testing.T) {
	const challenge = "SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"abc\", algorithm=MD5"
	for _, tc := range []struct {
		name    string
		answers []string
		want    string
	}{
		{"bad Expires", []string{"SIP/2.0 200 OK\r\nExpires: soon"},
			`mds1: malformed response to REGISTER: 200 OK: invalid Expires header "soon"`},
		{"zero expires", []string{"SIP/2.0 200 OK\r\nContact: <" + testContact + ">;expires=0"},
			"mds1: malformed response to REGISTER: 200 OK: binding granted for 0 seconds"},
		{"redirect", []string{"SIP/2.0 302 Moved Temporarily\r\nContact: <sip:elsewhere@127.0.0.1>"},
			"mds1: unexpected response to REGISTER: 302 Moved Temporarily"},
		{"challenge missing", []string{"SIP/2.0 401 Unauthorized"},
			"mds1: malformed response to REGISTER: 401 Unauthorized: no WWW-Authenticate header"},
		{"challenge unreadable", []string{"SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\""},
			"mds1: malformed response to REGISTER: 401 Unauthorized: unreadable WWW-Authenticate header"},
		{"401 after auth", []string{challenge, challenge},
			"mds1: registration refused: 401 Unauthorized after authentication (check xds.mds[0].user/password)"},
		{"423 without Min-Expires", []string{"SIP/2.0 423 Interval Too Brief"},
			"mds1: registration refused: 423 Interval Too Brief"},
		{"server error", []string{"SIP/2.0 503 Service Unavailable"},
			"mds1: registration refused: 503 Service Unavailable"},
		{"unparsable", []string{"SIP/2.0 2x0 Whatever"},
			"mds1: unreadable response to REGISTER from udp 127.0.0.1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := scriptedPeer(t, tc.answers...)
			rec := newRecorder()
			opts := fastOptions(nil, rec)
			opts.RequestTimeout = 200 * time.Millisecond
			opts.ProbeInterval = time.Hour
			r := startXDS(t, Config{Contact: testContact, MDS: []MDS{
				mds("mds1", addr, "udp", "pbx", "pw"),
			}}, opts)
			r.Activate(1)
			ev, _ := rec.wait(t, 0, 5*time.Second, kind("mds1", EventFailed))
			if ev.Err == nil || !strings.HasPrefix(ev.Err.Error(), tc.want) {
				t.Errorf("error = %v, want %q", ev.Err, tc.want)
			}
			if st := r.Status()[0]; st.Registered || st.Error != ev.Err.Error() {
				t.Errorf("status = %+v", st)
			}
		})
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	lo, hi := 500*time.Millisecond, 30*time.Second
	prev := time.Duration(0)
	for attempt := 1; attempt <= 20; attempt++ {
		top := backoff(attempt, lo, hi, 0) // no jitter: the ceiling
		if top < prev {
			t.Errorf("attempt %d: %s < previous %s", attempt, top, prev)
		}
		if top > hi {
			t.Errorf("attempt %d: %s above the cap", attempt, top)
		}
		for _, r := range []float64{0.25, 0.5, 0.999} {
			d := backoff(attempt, lo, hi, r)
			if d > top || d < lo || d < top/2 {
				t.Errorf("attempt %d r=%v: %s outside [max(%s, %s/2), %s]", attempt, r, d, lo, top, top)
			}
		}
		prev = top
	}
	if got := backoff(1, lo, hi, 0); got != lo {
		t.Errorf("first retry after %s, want %s", got, lo)
	}
	if got := backoff(2, lo, hi, 0); got != 2*lo {
		t.Errorf("second retry after %s, want %s", got, 2*lo)
	}
	if got := backoff(20, lo, hi, 0); got != hi {
		t.Errorf("retry 20 after %s, want the cap %s", got, hi)
	}
	if got := backoff(1000, lo, hi, 0.999); got < hi/2 {
		t.Errorf("capped jitter too low: %s", got)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := mds("mds1", "127.0.0.1:5060", "udp", "pbx", "pw")
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no contact", Config{MDS: []MDS{good}}, "xds.contact"},
		{"ws", Config{Contact: testContact, MDS: []MDS{mds("m", "127.0.0.1", "ws", "u", "p")}}, "xds.mds[0].transport"},
		{"sips", Config{Contact: testContact, MDS: []MDS{good, mds("m", "sips:x", "udp", "u", "p")}}, "xds.mds[1].registrar"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	r, err := New(Config{Contact: "<sip:pbx@10.0.0.1:5070;transport=udp>", MDS: []MDS{
		{Name: "m", Registrar: "sip:mds.example.com:5080", User: "u"},
	}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.ua.Close()
	b := r.bindings[0]
	if r.contact.Port != 5070 || b.target.Port != 5080 || b.transport != "UDP" || b.asked != DefaultExpires || r.opts.Hostname != "10.0.0.1" {
		t.Errorf("contact %+v target %+v transport %s asked %d host %s", r.contact, b.target, b.transport, b.asked, r.opts.Hostname)
	}
}

func TestNoUserWhenChallenged(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{User: "pbx", Password: "pw"})
	rec := newRecorder()
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{
		mds("mds1", srv.Addr(), "udp", "", ""),
	}}, fastOptions(nil, rec))
	if got := r.bindings[0].aor.String(); got != "sip:pbx@127.0.0.1" {
		t.Errorf("AOR without user = %s, want the contact's user", got)
	}
	r.Activate(1)
	ev, _ := rec.wait(t, 0, 5*time.Second, kind("mds1", EventFailed))
	const want = "mds1: registration refused: 401 Unauthorized (the registrar asks for authentication: set xds.mds[0].user and password)"
	if ev.Err == nil || ev.Err.Error() != want {
		t.Errorf("error = %v, want %q", ev.Err, want)
	}
}

// Whoever hears of a registration or a failure sees, in the status, when
// the next REGISTER comes: it is set before the event.
func TestNextRefreshSetWhenReported(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{})
	rec := newRecorder()
	opts := fastOptions(nil, nil)
	opts.ProbeInterval = time.Hour
	var r *Registrar
	type seen struct {
		kind string
		next time.Time
	}
	snaps := make(chan seen, 16)
	opts.OnEvent = func(ev Event) {
		if ev.Kind == EventRegistered || ev.Kind == EventFailed {
			select {
			case snaps <- seen{ev.Kind, r.Status()[0].NextRefresh}:
			default:
			}
		}
		rec.add(ev)
	}
	r = startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "udp", "", "")}}, opts)
	r.Activate(1)
	_, i := rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	srv.SetKnobs(registrar.Knobs{FailCode: 503})
	srv.DropBindings()
	r.bindings[0].kickLoop()
	rec.wait(t, i, 5*time.Second, kind("mds1", EventFailed))
	for _, want := range []string{EventRegistered, EventFailed} {
		s := <-snaps
		if s.kind != want || !s.next.After(time.Now().Add(-time.Second)) {
			t.Errorf("%s reported with next_refresh %v, want it set", s.kind, s.next)
		}
	}
}
