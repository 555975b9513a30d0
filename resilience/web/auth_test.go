package web

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
)

const (
	testUser     = "alice"
	testPassword = "correct horse battery staple"
)

var (
	hashOnce sync.Once
	testHash string
)

// testUsers are the web users of the tests (a cheap bcrypt cost).
func testUsers(t testing.TB) []config.User {
	t.Helper()
	hashOnce.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		testHash = string(h)
	})
	return []config.User{{Name: testUser, PasswordHash: testHash}, {Name: "bob", PasswordHash: testHash}}
}

// newWebServer is a test server with users and a settable clock.
func newWebServer(t *testing.T) (*Server, *fakeNode, *testkit.Buffer, *testkit.FakeClock) {
	t.Helper()
	s, node, logs := newTestServer(t, Options{Users: testUsers(t)})
	clk := testkit.NewFakeClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	s.auth.sessions.now = clk.Now
	s.auth.limiter.now = clk.Now
	return s, node, logs, clk
}

// send sends a request with no Authorization header unless hdr sets one,
// the session cookie when cookie is not nil.
func send(t *testing.T, s *Server, method, target, ctype, body string, cookie *http.Cookie, hdr map[string]string) answer {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	// A generous bound: a login's bcrypt under -race on a loaded
	// machine takes seconds.
	resp, err := s.App().Test(req, 120000)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, header: resp.Header, body: b}
}

func loginForm(user, password string) string {
	return url.Values{"user": {user}, "password": {password}}.Encode()
}

func postLogin(t *testing.T, s *Server, user, password string, hdr map[string]string) answer {
	t.Helper()
	return send(t, s, "POST", pathLogin, "application/x-www-form-urlencoded", loginForm(user, password), nil, hdr)
}

// sessionCookie is the session cookie a login answer sets.
func sessionCookie(t *testing.T, s *Server, a answer) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: a.header}).Cookies() {
		if c.Name == s.auth.cookieName {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", s.auth.cookieName, a.header.Values("Set-Cookie"))
	return nil
}

// loginOK logs in and returns the cookie and the page's CSRF token.
func loginOK(t *testing.T, s *Server) (*http.Cookie, string) {
	t.Helper()
	a := postLogin(t, s, testUser, testPassword, nil)
	if a.code != 303 || a.header.Get("Location") != "/" {
		t.Fatalf("login: %d Location %q; body %s", a.code, a.header.Get("Location"), a.body)
	}
	c := sessionCookie(t, s, a)
	page := send(t, s, "GET", "/", "", "", c, nil)
	m := regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`).FindSubmatch(page.body)
	if page.code != 200 || m == nil {
		t.Fatalf("the page after login has no CSRF token: %d %s", page.code, page.body)
	}
	return c, string(m[1])
}

func TestLoginAndPage(t *testing.T) {
	s, _, logs, _ := newWebServer(t)

	a := send(t, s, "GET", "/", "", "", nil, nil)
	if a.code != 200 || !strings.Contains(string(a.body), `action="/login"`) {
		t.Fatalf("GET / without a session: %d, want the login form:\n%s", a.code, a.body)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("login form Content-Type = %q", ct)
	}

	a = postLogin(t, s, testUser, testPassword, nil)
	if a.code != 303 {
		t.Fatalf("login: %d %s", a.code, a.body)
	}
	c := sessionCookie(t, s, a)
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure {
		t.Errorf("cookie flags: HttpOnly %v SameSite %v Path %q Secure %v", c.HttpOnly, c.SameSite, c.Path, c.Secure)
	}
	if c.Name != "resman_session_xivo-main" {
		t.Errorf("cookie name %q, want the node's name in it", c.Name)
	}
	// The run's tag (64 bits), a dot, and the secret (256 bits), both
	// base64url without padding.
	if run, secret, ok := strings.Cut(c.Value, "."); !ok || len(run) != 11 || len(secret) != 43 {
		t.Errorf("session ID %q: want 11 characters, a dot and 43", c.Value)
	}

	page := send(t, s, "GET", "/", "", "", c, nil)
	body := string(page.body)
	if page.code != 200 || !strings.Contains(body, `id="node-local"`) || !strings.Contains(body, ">alice<") {
		t.Fatalf("GET / with a session: %d, want the page:\n%s", page.code, body)
	}
	if page.header.Get("Cache-Control") != "no-store" {
		t.Errorf("page Cache-Control = %q", page.header.Get("Cache-Control"))
	}

	// Two logins, two sessions, two CSRF tokens.
	c2, csrf2 := loginOK(t, s)
	_, csrf1 := loginOK(t, s)
	if c2.Value == c.Value || csrf1 == csrf2 {
		t.Error("sessions or CSRF tokens repeat")
	}

	// Over TLS (through a proxy that says so), the cookie is Secure.
	a = postLogin(t, s, testUser, testPassword, map[string]string{"X-Forwarded-Proto": "https"})
	if c := sessionCookie(t, s, a); !c.Secure {
		t.Error("cookie set over https is not Secure")
	}

	out := logs.String()
	if !strings.Contains(out, "msg=login") || !strings.Contains(out, "component=web") || !strings.Contains(out, "user=alice") {
		t.Errorf("no login in the log:\n%s", out)
	}
	if strings.Contains(out, testPassword) || strings.Contains(out, c.Value) {
		t.Errorf("the log holds the password or a session ID:\n%s", out)
	}
}

func TestLoginFailures(t *testing.T) {
	s, _, logs, _ := newWebServer(t)
	cases := []struct {
		name, ctype, body string
		hdr               map[string]string
		code              int
		msg               string
	}{
		{"wrong password", "application/x-www-form-urlencoded", loginForm(testUser, "nope"), nil, 401, "Wrong user name or password."},
		{"unknown user", "application/x-www-form-urlencoded", loginForm("mallory", testPassword), nil, 401, "Wrong user name or password."},
		{"empty password", "application/x-www-form-urlencoded", loginForm(testUser, ""), nil, 400, "Enter your user name and password."},
		{"JSON body", "application/json", `{"user":"alice"}`, nil, 415, "sent as a form"},
		{"cross-site", "application/x-www-form-urlencoded", loginForm(testUser, testPassword), map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "Cross-site"},
	}
	for _, tc := range cases {
		a := send(t, s, "POST", pathLogin, tc.ctype, tc.body, nil, tc.hdr)
		if a.code != tc.code || !strings.Contains(string(a.body), tc.msg) {
			t.Errorf("%s: %d, want %d with %q:\n%s", tc.name, a.code, tc.code, tc.msg, a.body)
		}
		if len(a.header.Values("Set-Cookie")) != 0 {
			t.Errorf("%s: sets a cookie: %v", tc.name, a.header.Values("Set-Cookie"))
		}
	}
	if s.auth.sessions.count() != 0 {
		t.Errorf("%d sessions after failed logins", s.auth.sessions.count())
	}
	out := logs.String()
	if !strings.Contains(out, `msg="login failed" component=web user=alice`) || !strings.Contains(out, "why=\"unknown user\"") {
		t.Errorf("failed logins are not logged:\n%s", out)
	}
	if strings.Contains(out, testPassword) || strings.Contains(out, "nope") {
		t.Errorf("the log holds a password:\n%s", out)
	}
	if a := send(t, s, "GET", pathLogin, "", "", nil, nil); a.code != 405 {
		t.Errorf("GET /login: %d, want 405", a.code)
	}
}

func TestLoginLockout(t *testing.T) {
	s, _, logs, clk := newWebServer(t)
	for i := range LoginFreeFailures {
		if a := postLogin(t, s, testUser, "wrong", nil); a.code != 401 {
			t.Fatalf("failure %d: %d, want 401", i+1, a.code)
		}
	}
	// Locked: even the right password waits, and is not checked.
	a := postLogin(t, s, testUser, testPassword, nil)
	if a.code != 429 || a.header.Get("Retry-After") != "1" {
		t.Fatalf("after %d failures: %d Retry-After %q, want 429 and 1", LoginFreeFailures, a.code, a.header.Get("Retry-After"))
	}
	if !strings.Contains(string(a.body), "Too many failed logins") {
		t.Errorf("429 page does not say why:\n%s", a.body)
	}
	// The delay doubles with each further failure.
	clk.Advance(time.Second)
	if a := postLogin(t, s, testUser, "wrong", nil); a.code != 401 {
		t.Fatalf("failure after the wait: %d", a.code)
	}
	if a := postLogin(t, s, testUser, testPassword, nil); a.code != 429 || a.header.Get("Retry-After") != "2" {
		t.Fatalf("after one more failure: %d Retry-After %q, want 429 and 2", a.code, a.header.Get("Retry-After"))
	}
	clk.Advance(2 * time.Second)
	if a := postLogin(t, s, testUser, testPassword, nil); a.code != 303 {
		t.Fatalf("right password after the wait: %d, want 303", a.code)
	}
	// A success forgets the failures.
	if a := postLogin(t, s, testUser, "wrong", nil); a.code != 401 {
		t.Fatalf("after a success: %d, want 401", a.code)
	}
	if !strings.Contains(logs.String(), "login refused: too many failures") {
		t.Errorf("the lock-out is not logged:\n%s", logs)
	}

	// Per client address: failures over many names (a few each, under the
	// allowance of each name) lock the address out.
	s2, _, _, _ := newWebServer(t)
	for i := range LoginAddrFreeFailures {
		if a := postLogin(t, s2, fmt.Sprintf("guess%d", i/2), "x", nil); a.code != 401 {
			t.Fatalf("guess %d: %d", i, a.code)
		}
	}
	a = postLogin(t, s2, "bob", testPassword, nil)
	if a.code != 429 || a.header.Get("Retry-After") != "1" {
		t.Fatalf("address locked out: %d Retry-After %q, want 429 and 1", a.code, a.header.Get("Retry-After"))
	}
}

func TestSessionExpiry(t *testing.T) {
	s, _, logs, clk := newWebServer(t)
	c, _ := loginOK(t, s)
	get := func(background bool) int {
		hdr := map[string]string{}
		if background {
			hdr[HeaderBackground] = "1"
		}
		return send(t, s, "GET", pathStatus, "", "", c, hdr).code
	}
	// Activity renews the idle timeout.
	clk.Advance(SessionIdleTimeout - time.Minute)
	if code := get(false); code != 200 {
		t.Fatalf("before the idle timeout: %d", code)
	}
	// The page's background refreshes do not.
	clk.Advance(SessionIdleTimeout - time.Minute)
	if code := get(true); code != 200 {
		t.Fatalf("background refresh: %d", code)
	}
	clk.Advance(2 * time.Minute)
	if code := get(true); code != 401 {
		t.Fatalf("after the idle timeout: %d, want 401", code)
	}
	if a := send(t, s, "GET", "/", "", "", c, nil); a.code != 200 || !strings.Contains(string(a.body), `action="/login"`) {
		t.Fatalf("GET / after expiry: %d, want the login form", a.code)
	}

	// The absolute lifetime ends even a busy session.
	c, _ = loginOK(t, s)
	for elapsed := time.Duration(0); elapsed < SessionLifetime-20*time.Minute; elapsed += 20 * time.Minute {
		clk.Advance(20 * time.Minute)
		if code := get(false); code != 200 {
			t.Fatalf("busy session at %s: %d", elapsed, code)
		}
	}
	clk.Advance(20 * time.Minute)
	if code := get(false); code != 401 {
		t.Fatalf("after %s: %d, want 401", SessionLifetime, code)
	}
	out := logs.String()
	if !strings.Contains(out, `why="idle timeout"`) || !strings.Contains(out, `why="lifetime reached"`) {
		t.Errorf("session ends are not logged:\n%s", out)
	}
}

func TestLogout(t *testing.T) {
	s, _, logs, _ := newWebServer(t)
	c, csrf := loginOK(t, s)
	// Without the CSRF token, logout is refused and the session lives on.
	if a := send(t, s, "POST", pathLogout, "application/x-www-form-urlencoded", "", c, nil); a.code != 403 {
		t.Fatalf("logout without CSRF: %d, want 403", a.code)
	}
	if a := send(t, s, "GET", pathStatus, "", "", c, nil); a.code != 200 {
		t.Fatalf("session after a refused logout: %d", a.code)
	}
	a := send(t, s, "POST", pathLogout, "application/x-www-form-urlencoded", url.Values{"csrf": {csrf}}.Encode(), c, nil)
	if a.code != 303 || a.header.Get("Location") != "/?m=out" {
		t.Fatalf("logout: %d %q", a.code, a.header.Get("Location"))
	}
	cleared := sessionCookie(t, s, a)
	if cleared.Value != "" || (cleared.MaxAge >= 0 && !cleared.Expires.Before(time.Now())) {
		t.Errorf("logout does not clear the cookie: %+v", cleared)
	}
	if a := send(t, s, "GET", pathStatus, "", "", c, nil); a.code != 401 {
		t.Fatalf("old cookie after logout: %d, want 401", a.code)
	}
	if a := send(t, s, "GET", "/?m=out", "", "", nil, nil); !strings.Contains(string(a.body), "You are logged out.") {
		t.Errorf("the login form does not confirm the logout")
	}
	if !strings.Contains(logs.String(), "msg=logout component=web user=alice") {
		t.Errorf("logout is not logged:\n%s", logs)
	}
}

func TestCSRF(t *testing.T) {
	s, node, logs, _ := newWebServer(t)
	c, csrf := loginOK(t, s)
	writes := []string{pathStart, pathStop, pathPeerStart, pathPeerStop}
	for _, path := range writes {
		for _, tc := range []struct {
			name string
			hdr  map[string]string
		}{
			{"missing", nil},
			{"wrong", map[string]string{HeaderCSRF: strings.Repeat("x", len(csrf))}},
			{"prefix", map[string]string{HeaderCSRF: csrf[:10]}},
			{"cross-site", map[string]string{HeaderCSRF: csrf, "Sec-Fetch-Site": "cross-site"}},
			{"same-site", map[string]string{HeaderCSRF: csrf, "Sec-Fetch-Site": "same-site"}},
		} {
			a := send(t, s, "POST", path, "application/json", `{"reason":"r"}`, c, tc.hdr)
			if a.code != 403 {
				t.Errorf("%s CSRF on %s: %d, want 403", tc.name, path, a.code)
				continue
			}
			apiError(t, a)
		}
	}
	if calls := node.Calls(); len(calls) != 0 {
		t.Fatalf("the node saw calls despite the CSRF refusals: %+v", calls)
	}
	if !strings.Contains(logs.String(), "CSRF token missing or wrong") {
		t.Errorf("CSRF refusals are not logged")
	}

	// With the token, the write goes through as web:<user>, even with an
	// X-Resman-Actor header (that is the bearer path's).
	a := send(t, s, "POST", pathStop, "application/json", `{"reason":"maintenance"}`, c,
		map[string]string{HeaderCSRF: csrf, "Sec-Fetch-Site": "same-origin", HeaderActor: "someone"})
	if a.code != 200 {
		t.Fatalf("stop with the CSRF token: %d %s", a.code, a.body)
	}
	a = send(t, s, "POST", pathPeerStart, "application/json", `{"reason":"failover","force":true}`, c, map[string]string{HeaderCSRF: csrf})
	if a.code != 200 {
		t.Fatalf("peer start with the CSRF token: %d %s", a.code, a.body)
	}
	want := []call{
		{Method: "stop", Who: "web:alice", Stop: api.StopRequest{Reason: "maintenance"}},
		{Method: "peer-start", Who: "web:alice", Start: api.StartRequest{Reason: "failover", Force: true}},
	}
	if got := node.Calls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls = %+v\nwant %+v", got, want)
	}
	// Reads need no CSRF token.
	for _, path := range []string{pathStatus, pathAudit, pathPeerStatus} {
		if a := send(t, s, "GET", path, "", "", c, nil); a.code != 200 {
			t.Errorf("GET %s with a session: %d", path, a.code)
		}
	}
}

func TestBearerUnchangedBesideSessions(t *testing.T) {
	s, node, _, _ := newWebServer(t)
	c, _ := loginOK(t, s)
	// The bearer path needs no CSRF token and keeps its actor.
	a := send(t, s, "POST", pathStop, "application/json", `{"reason":"script"}`, nil,
		map[string]string{"Authorization": "Bearer " + testToken, HeaderActor: "cron@host"})
	if a.code != 200 {
		t.Fatalf("bearer stop: %d %s", a.code, a.body)
	}
	// An Authorization header is judged alone: a wrong token with a valid
	// session cookie is a 401.
	a = send(t, s, "GET", pathStatus, "", "", c, map[string]string{"Authorization": "Bearer wrong"})
	if a.code != 401 || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("wrong bearer with a cookie: %d", a.code)
	}
	// A made-up session cookie is a 401 too.
	bogus := &http.Cookie{Name: s.auth.cookieName, Value: "not-a-session"}
	if a := send(t, s, "GET", pathStatus, "", "", bogus, nil); a.code != 401 {
		t.Fatalf("bogus session: %d", a.code)
	}
	if got := node.Calls(); len(got) != 1 || got[0].Who != "api:cron@host" {
		t.Errorf("calls = %+v", got)
	}
}

func TestSecurityHeadersAndAssets(t *testing.T) {
	s, _, _, _ := newWebServer(t)
	c, _ := loginOK(t, s)
	for _, tc := range []struct {
		path   string
		cookie *http.Cookie
		code   int
		ctype  string
	}{
		{"/", nil, 200, "text/html"},
		{"/", c, 200, "text/html"},
		{"/ui/app.js", nil, 200, "text/javascript"},
		{"/ui/app.css", nil, 200, "text/css"},
		{"/ui/favicon.svg", nil, 200, "image/svg+xml"},
		{"/ui/nope.js", nil, 404, "application/json"},
		{"/ui/index.html.tmpl", nil, 404, "application/json"},
		{pathStatus, c, 200, "application/json"},
		{pathStatus, nil, 401, "application/json"},
	} {
		a := send(t, s, "GET", tc.path, "", "", tc.cookie, nil)
		if a.code != tc.code || !strings.HasPrefix(a.header.Get("Content-Type"), tc.ctype) {
			t.Errorf("%s: %d %q, want %d %s", tc.path, a.code, a.header.Get("Content-Type"), tc.code, tc.ctype)
		}
		if csp := a.header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: Content-Security-Policy = %q", tc.path, csp)
		}
		if a.header.Get("X-Frame-Options") != "DENY" || a.header.Get("Referrer-Policy") != "no-referrer" || a.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: X-Frame-Options %q Referrer-Policy %q X-Content-Type-Options %q", tc.path,
				a.header.Get("X-Frame-Options"), a.header.Get("Referrer-Policy"), a.header.Get("X-Content-Type-Options"))
		}
	}
	// The CSP forbids inline code: the page must have none.
	for _, path := range []string{"/"} {
		for _, ck := range []*http.Cookie{nil, c} {
			body := string(send(t, s, "GET", path, "", "", ck, nil).body)
			if regexp.MustCompile(`(?i)<script>|\son[a-z]+=|style=|javascript:`).MatchString(body) {
				t.Errorf("%s has inline script or style:\n%s", path, body)
			}
		}
	}
}

func TestNoUsersConfigured(t *testing.T) {
	s, _, _ := newTestServer(t, Options{})
	a := send(t, s, "GET", "/", "", "", nil, nil)
	if a.code != 200 || !strings.Contains(string(a.body), "No web user is configured") {
		t.Fatalf("GET / without users: %d\n%s", a.code, a.body)
	}
	if a := postLogin(t, s, "admin", "admin", nil); a.code != 401 {
		t.Fatalf("login without users: %d, want 401", a.code)
	}
}

// openEvents opens the event stream of the session c on s, and waits until
// the node has its subscription; the stream closes with the test.
func openEvents(t *testing.T, s *Server, node *fakeNode, c *http.Cookie) {
	t.Helper()
	base, _ := serve(t, s)
	req, _ := http.NewRequest("GET", base+pathEvents, nil)
	req.AddCookie(c)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("events with the session: %d", resp.StatusCode)
	}
	<-node.subscribed
}

func TestEventsEndWithSession(t *testing.T) {
	s, node, _, _ := newWebServer(t)
	c, csrf := loginOK(t, s)
	openEvents(t, s, node, c)
	if a := send(t, s, "POST", pathLogout, "", "", c, map[string]string{HeaderCSRF: csrf}); a.code != 303 {
		t.Fatalf("logout: %d", a.code)
	}
	select {
	case <-node.cancelled:
	case <-time.After(waitFor):
		t.Fatal("the event stream outlived the session")
	}
}

// Sessions live in the node's memory: after a restart the admin's cookie
// is refused, and the API and the login page say that the node restarted,
// not only that the session ended. A cookie this run never made still
// reads "your session has ended".
func TestSessionEndedByARestartSaysSo(t *testing.T) {
	before, _, _, _ := newWebServer(t)
	cookie, _ := loginOK(t, before)
	after, _, _, clk := newWebServer(t) // the same node, restarted
	after.auth.sessions.started = clk.Now()

	a := send(t, after, "GET", pathStatus, "", "", cookie, nil)
	want := "This node restarted at 2025-03-01 12:00:00 UTC since you logged in, which ends every session. Log in again."
	if a.code != 401 || apiError(t, a) != want {
		t.Errorf("API with an earlier run's cookie: %d %q, want 401 %q", a.code, a.body, want)
	}
	page := send(t, after, "GET", "/?m=expired", "", "", cookie, nil)
	if body := string(page.body); page.code != 200 || !strings.Contains(body, "This node restarted at 2025-03-01 12:00:00 UTC") {
		t.Errorf("login page after a restart: %d, want the restart notice:\n%s", page.code, body)
	}

	forged := *cookie
	forged.Value = after.auth.sessions.run + "." + randomToken()
	a = send(t, after, "GET", pathStatus, "", "", &forged, nil)
	if a.code != 401 || apiError(t, a) != "your session has ended: log in again" {
		t.Errorf("API with an unknown cookie of this run: %d %q", a.code, a.body)
	}
	page = send(t, after, "GET", "/?m=expired", "", "", &forged, nil)
	if body := string(page.body); !strings.Contains(body, "Your session has ended. Log in again.") || strings.Contains(body, "restarted") {
		t.Errorf("login page with an unknown cookie of this run:\n%s", body)
	}
}
