package web

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// countChecks makes s count its password checks (bcrypt comparisons). Each
// check also takes a few milliseconds more, so that parallel attempts
// overlap as an attacker's do, whatever the speed of the machine.
func countChecks(s *Server) *atomic.Int64 {
	var n atomic.Int64
	compare := s.auth.compare
	s.auth.compare = func(hash, password []byte) error {
		n.Add(1)
		time.Sleep(5 * time.Millisecond)
		return compare(hash, password)
	}
	return &n
}

// clientFrom is an HTTP client whose connections come from the loopback
// address ip (127.0.0.2, 127.0.0.3...: the server sees distinct clients).
// It does not follow redirects: a login's 303 is the answer. Systems that
// only answer on 127.0.0.1 skip the test.
func clientFrom(t *testing.T, base, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: waitFor}
	conn, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			t.Skipf("this system cannot use %s as a source address (only Linux routes all of 127/8 to loopback): %v", ip, err)
		}
		t.Fatal(err)
	}
	conn.Close()
	return &http.Client{
		Transport:     &http.Transport{DialContext: d.DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
}

// loginOver posts the login form with hc; hdr adds headers.
func loginOver(t *testing.T, hc *http.Client, base, user, password string, hdr map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest("POST", base+pathLogin, strings.NewReader(loginForm(user, password)))
	if err != nil {
		t.Error(err)
		return answer{}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Error(err)
		return answer{}
	}
	defer resp.Body.Close()
	return answer{code: resp.StatusCode, header: resp.Header}
}

// parallelLogins sends n wrong logins for user at once and counts the
// answers by status code.
func parallelLogins(t *testing.T, hc *http.Client, base, user string, n int) map[int]int {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[int]int{}
		start = make(chan struct{})
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a := loginOver(t, hc, base, user, "wrong", nil)
			if a.code == 429 && a.header.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
			mu.Lock()
			codes[a.code]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return codes
}

// TestLoginParallelChecksBounded: attempts reserve their place before the
// password check, under one lock, so a burst of parallel wrong logins from
// one address gets exactly LoginFreeFailures checks, not one per request
// that passed the count before the first failure was recorded.
func TestLoginParallelChecksBounded(t *testing.T) {
	s, _, _, _ := newWebServer(t) // the clock stands still: no lock-out expires
	checks := countChecks(s)
	base, _ := serve(t, s)
	hc := clientFrom(t, base, "127.0.0.1")

	const n = 60
	codes := parallelLogins(t, hc, base, testUser, n)
	if got := checks.Load(); got != LoginFreeFailures {
		t.Errorf("%d parallel wrong logins made %d password checks, want exactly %d", n, got, LoginFreeFailures)
	}
	if codes[401] != LoginFreeFailures || codes[429] != n-LoginFreeFailures {
		t.Errorf("answers %v, want %d × 401 and %d × 429", codes, LoginFreeFailures, n-LoginFreeFailures)
	}

	// The same for a user name that does not exist (another key, the same
	// rule): nothing tells the two apart.
	checks.Store(0)
	s2, _, _, _ := newWebServer(t)
	checks = countChecks(s2)
	base2, _ := serve(t, s2)
	codes = parallelLogins(t, clientFrom(t, base2, "127.0.0.1"), base2, "mallory", n)
	if got := checks.Load(); got != LoginFreeFailures || codes[401] != LoginFreeFailures {
		t.Errorf("unknown user: %d checks, answers %v, want %d checks", got, codes, LoginFreeFailures)
	}
}

// TestLoginOtherAddressCannotLockOut: an attacker at address B who fails
// the admin's logins (in bursts, and over many names) never locks the
// admin out at address A.
func TestLoginOtherAddressCannotLockOut(t *testing.T) {
	s, _, logs, _ := newWebServer(t)
	checks := countChecks(s)
	base, _ := serve(t, s)
	a := clientFrom(t, base, "127.0.0.2")
	b := clientFrom(t, base, "127.0.0.3")

	parallelLogins(t, b, base, testUser, 60)
	for range 10 {
		loginOver(t, b, base, testUser, "wrong", nil)
	}
	for i := range 30 {
		loginOver(t, b, base, "guess"+string(rune('a'+i)), "x", nil)
	}
	if got := loginOver(t, b, base, testUser, testPassword, nil); got.code != 429 {
		t.Fatalf("B's own right password: %d, want 429 (B is locked out)", got.code)
	}
	before := checks.Load()

	// A: a typo first, then the right password.
	if got := loginOver(t, a, base, testUser, "typo", nil); got.code != 401 {
		t.Fatalf("A's typo after B's failures: %d, want 401 (checked, not refused)", got.code)
	}
	got := loginOver(t, a, base, testUser, testPassword, nil)
	if got.code != 303 {
		t.Fatalf("A's login after B's failures: %d, want 303", got.code)
	}
	if checks.Load()-before != 2 {
		t.Errorf("A's 2 attempts made %d checks", checks.Load()-before)
	}
	if !strings.Contains(logs.String(), "ip=127.0.0.3") || !strings.Contains(logs.String(), "msg=login component=web user=alice ip=127.0.0.2") {
		t.Errorf("the log does not name the addresses:\n%s", logs)
	}
}

// TestLoginForwardedHeadersIgnored: the address counted is the TCP peer's;
// headers a client writes itself cannot move its failures elsewhere.
func TestLoginForwardedHeadersIgnored(t *testing.T) {
	s, _, logs, _ := newWebServer(t)
	base, _ := serve(t, s)
	a := clientFrom(t, base, "127.0.0.2")
	for i := range LoginFreeFailures {
		fake := "10.9.9." + string(rune('1'+i))
		hdr := map[string]string{"X-Forwarded-For": fake, "X-Real-IP": fake, "Forwarded": "for=" + fake}
		if got := loginOver(t, a, base, testUser, "wrong", hdr); got.code != 401 {
			t.Fatalf("failure %d: %d", i+1, got.code)
		}
	}
	hdr := map[string]string{"X-Forwarded-For": "10.8.8.8", "X-Real-IP": "10.8.8.8"}
	if got := loginOver(t, a, base, testUser, testPassword, hdr); got.code != 429 {
		t.Fatalf("after %d failures with forged headers: %d, want 429", LoginFreeFailures, got.code)
	}
	if out := logs.String(); strings.Contains(out, "10.9.9.") || strings.Contains(out, "10.8.8.8") || !strings.Contains(out, "ip=127.0.0.2") {
		t.Errorf("the log names a forged address, or not the real one:\n%s", out)
	}
}

// recordSleeps replaces the wait of slowed logins: it records the delays
// and returns at once.
func recordSleeps(s *Server) func() []time.Duration {
	var (
		mu     sync.Mutex
		delays []time.Duration
	)
	s.auth.sleep = func(d time.Duration, _ <-chan struct{}) bool {
		mu.Lock()
		defer mu.Unlock()
		delays = append(delays, d)
		return true
	}
	return func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		out := delays
		delays = nil
		return out
	}
}

// TestLoginUserSlowLane: failures for one user from many addresses slow the
// logins of that user from unknown addresses (one check per second, each
// waiting its turn, 429 beyond LoginUserMaxWait), never those from an
// address the user logged in from.
func TestLoginUserSlowLane(t *testing.T) {
	s, _, logs, _ := newWebServer(t) // the clock stands still
	sleeps := recordSleeps(s)
	base, _ := serve(t, s)
	admin := clientFrom(t, base, "127.0.0.2")
	if got := loginOver(t, admin, base, testUser, testPassword, nil); got.code != 303 {
		t.Fatalf("first login from A: %d", got.code)
	}

	// A botnet: LoginFreeFailures wrong logins from each of 11 addresses.
	addrs := 0
	for failures := 0; failures < LoginUserSlowAfter+LoginFreeFailures; addrs++ {
		bot := clientFrom(t, base, "127.0.1."+strconv.Itoa(addrs+1))
		for range LoginFreeFailures {
			if got := loginOver(t, bot, base, testUser, "wrong", nil); got.code != 401 {
				t.Fatalf("bot %d: %d, want 401 (slowed, not refused)", addrs+1, got.code)
			}
			failures++
		}
	}
	// Past LoginUserSlowAfter, the bots' attempts took turns 1 s apart.
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second}
	if got := sleeps(); len(got) != len(want) || got[0] != want[0] || got[3] != want[3] {
		t.Errorf("the bots' waits = %v, want %v (the first check in the lane has no wait)", got, want)
	}

	// The admin at a known address is not slowed.
	if got := loginOver(t, admin, base, testUser, testPassword, nil); got.code != 303 {
		t.Fatalf("A during the attack: %d, want 303", got.code)
	}
	if got := sleeps(); len(got) != 0 {
		t.Errorf("A waited %v", got)
	}
	// From a new address: slowed, then let in.
	c := clientFrom(t, base, "127.0.0.4")
	if got := loginOver(t, c, base, testUser, testPassword, nil); got.code != 303 {
		t.Fatalf("C during the attack: %d, want 303", got.code)
	}
	if got := sleeps(); len(got) != 1 || got[0] != 5*time.Second {
		t.Errorf("C waited %v, want [5s]", got)
	}
	// C is known now.
	if got := loginOver(t, c, base, testUser, testPassword, nil); got.code != 303 || len(sleeps()) != 0 {
		t.Errorf("C again: %d, want 303 without a wait", got.code)
	}

	// The lane fills up to LoginUserMaxWait; beyond, new addresses get 429.
	for i := range int(LoginUserMaxWait/LoginUserSlowInterval) - 5 {
		bot := clientFrom(t, base, "127.0.2."+strconv.Itoa(i+1))
		if got := loginOver(t, bot, base, testUser, "wrong", nil); got.code != 401 {
			t.Fatalf("filling the lane, %d: %d", i, got.code)
		}
	}
	d := clientFrom(t, base, "127.0.0.5")
	got := loginOver(t, d, base, testUser, testPassword, nil)
	if got.code != 429 || got.header.Get("Retry-After") != "1" {
		t.Fatalf("D with the lane full: %d Retry-After %q, want 429 and 1", got.code, got.header.Get("Retry-After"))
	}
	// Other user names and the known addresses are not affected.
	if got := loginOver(t, d, base, "bob", testPassword, nil); got.code != 303 {
		t.Errorf("bob from D: %d, want 303", got.code)
	}
	if got := loginOver(t, admin, base, testUser, testPassword, nil); got.code != 303 {
		t.Errorf("A with the lane full: %d, want 303", got.code)
	}
	if !strings.Contains(logs.String(), "scope=user") || !strings.Contains(logs.String(), "login slowed") {
		t.Errorf("the slow lane is not logged:\n%s", logs)
	}
}

// TestLoginSlowedEndsOnShutdown: a login waiting its turn answers 503 when
// the server shuts down, and gives its place back.
func TestLoginSlowedEndsOnShutdown(t *testing.T) {
	s, _, _, clk := newWebServer(t)
	waiting := make(chan struct{})
	s.auth.sleep = func(d time.Duration, stop <-chan struct{}) bool {
		close(waiting)
		return sleepUnless(d, stop)
	}
	l := s.auth.limiter
	user := l.get(loginKey{scope: scopeUser, user: testUser})
	user.failures, user.last, user.next = LoginUserSlowAfter, clk.Now(), clk.Now().Add(5*time.Second)
	base, _ := serve(t, s)
	hc := clientFrom(t, base, "127.0.0.1")

	done := make(chan answer, 1)
	go func() { done <- loginOver(t, hc, base, testUser, testPassword, nil) }()
	select {
	case <-waiting:
	case <-time.After(waitFor):
		t.Fatal("the login did not wait")
	}
	go func() { _ = s.Shutdown(t.Context()) }()
	select {
	case got := <-done:
		if got.code != 503 {
			t.Errorf("slowed login at shutdown: %d, want 503", got.code)
		}
	case <-time.After(waitFor):
		t.Fatal("the slowed login outlived the shutdown")
	}
	for _, k := range []loginKey{{scope: scopePair, user: testUser, addr: "127.0.0.1"}, {scope: scopeAddr, addr: "127.0.0.1"}, {scope: scopeUser, user: testUser}} {
		if n := l.pendingOf(k); n != 0 {
			t.Errorf("%v: %d attempts still pending", k, n)
		}
	}
}

// TestLoginLimiterOneAtATimePastTheAllowance: once a lock-out delay has
// passed, one attempt goes; others at the same time wait for its outcome.
func TestLoginLimiterOneAtATimePastTheAllowance(t *testing.T) {
	clk := testkit.NewFakeClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	l := newLoginLimiter(clk.Now)
	for i := range LoginFreeFailures {
		a, r := l.reserve("alice", "10.0.0.1")
		if r != nil {
			t.Fatalf("attempt %d refused: %+v", i+1, r)
		}
		a.fail()
	}
	if _, r := l.reserve("alice", "10.0.0.1"); r == nil || r.wait != LoginBaseDelay || r.scope != scopePair {
		t.Fatalf("after the allowance: %+v, want a %s wait for the pair", r, LoginBaseDelay)
	}
	clk.Advance(LoginBaseDelay)
	first, r := l.reserve("alice", "10.0.0.1")
	if r != nil {
		t.Fatalf("after the delay: %+v", r)
	}
	if _, r := l.reserve("alice", "10.0.0.1"); r == nil || r.wait != loginPendingWait {
		t.Fatalf("a second attempt while the first is checked: %+v, want a refusal", r)
	}
	first.fail()
	first.fail() // settled once only
	if _, r := l.reserve("alice", "10.0.0.1"); r == nil || r.wait != 2*LoginBaseDelay {
		t.Fatalf("after one more failure: %+v, want a wait of %s", r, 2*LoginBaseDelay)
	}
	// Another address is not concerned; a given-back attempt leaves no trace.
	other, r := l.reserve("alice", "10.0.0.2")
	if r != nil {
		t.Fatalf("another address: %+v", r)
	}
	other.release()
	if n := l.pendingOf(loginKey{scope: scopePair, user: "alice", addr: "10.0.0.2"}); n != 0 {
		t.Errorf("%d pending after release", n)
	}
}

func TestSourceKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":                "192.0.2.7",
		"::ffff:192.0.2.7":         "192.0.2.7",
		"2001:db8:1:2:3:4:5:6":     "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":     "2001:db8:1:2::/64",
		"2001:db8:1:3::1":          "2001:db8:1:3::/64",
		"fe80::1234:5678:9abc:def": "fe80::/64",
	} {
		if got := sourceKey(net.ParseIP(in)); got != want {
			t.Errorf("sourceKey(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestLoginBehindATrustedProxy: behind the TLS proxy the operations guide
// recommends, every client comes from the proxy's address. With the proxy
// in TrustedProxies, its X-Forwarded-For names the client, so B's failures
// still do not lock A out; a peer that is not trusted cannot use the
// header to move its failures elsewhere.
func TestLoginBehindATrustedProxy(t *testing.T) {
	s, _, logs := newTestServer(t, Options{Users: testUsers(t), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.4/32")}})
	checks := countChecks(s)
	base, _ := serve(t, s)
	proxy := clientFrom(t, base, "127.0.0.4")
	for range LoginFreeFailures + 2 {
		loginOver(t, proxy, base, testUser, "wrong", map[string]string{"X-Forwarded-For": "10.0.0.66"})
	}
	if got := loginOver(t, proxy, base, testUser, testPassword, map[string]string{"X-Forwarded-For": "10.0.0.66"}); got.code != 429 {
		t.Fatalf("B (10.0.0.66) through the proxy after its failures: %d, want 429", got.code)
	}
	// A through the same proxy: a forged first hop is ignored, the one the
	// proxy appended counts.
	if got := loginOver(t, proxy, base, testUser, testPassword, map[string]string{"X-Forwarded-For": "10.0.0.66, 10.0.0.7"}); got.code != 303 {
		t.Fatalf("A (10.0.0.7) through the proxy: %d, want 303", got.code)
	}
	if !strings.Contains(logs.String(), "ip=10.0.0.66") || !strings.Contains(logs.String(), "ip=10.0.0.7") {
		t.Errorf("the log does not name the clients behind the proxy:\n%s", logs)
	}
	// Not a trusted peer: its header is ignored, its failures are its own.
	other := clientFrom(t, base, "127.0.0.5")
	before := checks.Load()
	for range LoginFreeFailures {
		loginOver(t, other, base, testUser, "wrong", map[string]string{"X-Forwarded-For": "10.0.0.7"})
	}
	if got := loginOver(t, other, base, testUser, testPassword, nil); got.code != 429 {
		t.Fatalf("127.0.0.5 after its failures: %d, want 429", got.code)
	}
	if got := loginOver(t, proxy, base, testUser, testPassword, map[string]string{"X-Forwarded-For": "10.0.0.7"}); got.code != 303 {
		t.Fatalf("A through the proxy after 127.0.0.5's forged failures: %d, want 303", got.code)
	}
	if n := checks.Load() - before; n != LoginFreeFailures+1 {
		t.Errorf("%d password checks, want %d", n, LoginFreeFailures+1)
	}
}
