package web

// The read-only viewer (api.users[].role: viewer): a wall screen sees the
// whole page and can do nothing; its session lives while its page is
// open. An admin's session is unchanged.

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/resilience/testkit"
)

const testViewer = "wall"

// viewerUsers are testUsers plus a viewer with the same password.
func viewerUsers(t testing.TB) []config.User {
	t.Helper()
	users := testUsers(t)
	users[0].Role = config.UserRoleAdmin // written out, as a loaded config has it
	return append(users, config.User{Name: testViewer, PasswordHash: testHash, Role: config.UserRoleViewer})
}

func newViewerServer(t *testing.T) (*Server, *fakeNode, *testkit.Buffer, *testkit.FakeClock) {
	t.Helper()
	s, node, logs := newTestServer(t, Options{Users: viewerUsers(t)})
	clk := testkit.NewFakeClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	s.auth.sessions.now = clk.Now
	s.auth.limiter.now = clk.Now
	return s, node, logs, clk
}

// loginAs logs user in and returns the cookie, the page's CSRF token and
// the page.
func loginAs(t *testing.T, s *Server, user string) (*http.Cookie, string, string) {
	t.Helper()
	a := postLogin(t, s, user, testPassword, nil)
	if a.code != 303 {
		t.Fatalf("login %s: %d %s", user, a.code, a.body)
	}
	c := sessionCookie(t, s, a)
	page := send(t, s, "GET", "/", "", "", c, nil)
	m := regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`).FindSubmatch(page.body)
	if page.code != 200 || m == nil {
		t.Fatalf("the page of %s: %d %s", user, page.code, page.body)
	}
	return c, string(m[1]), string(page.body)
}

// writeRoutes are every write of the API: each route under /api/v1 with
// each method it allows but GET and HEAD, plus methods no route allows.
// The table is checked against the server's routes, so that a new write
// route cannot be left out.
var writeRoutes = []struct{ method, path, body string }{
	{"POST", pathStart, `{"reason":"r"}`},
	{"POST", pathStop, `{"reason":"r"}`},
	{"POST", pathPeerStart, `{"reason":"r"}`},
	{"POST", pathPeerStop, `{"reason":"r"}`},
	{"POST", "/api/v1/replication/run", `{"reason":"r"}`},
	{"POST", "/api/v1/failover", `{"reason":"r","for":"10m"}`},
	{"DELETE", "/api/v1/failover", `{"reason":"r"}`},
	{"POST", "/api/v1/switchover", `{"reason":"r"}`},
	// Methods the routes do not allow are refused as writes too.
	{"PUT", pathStatus, `{"reason":"r"}`},
	{"PATCH", "/api/v1/switchover", `{"reason":"r"}`},
	{"DELETE", pathAudit, ""},
}

func TestViewerWriteRoutesCoverTheAPI(t *testing.T) {
	s, _, _ := newTestServer(t, Options{})
	covered := map[string]bool{}
	for _, w := range writeRoutes {
		covered[w.method+" "+w.path] = true
	}
	for path, allow := range s.allow {
		if !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		for m := range strings.SplitSeq(allow, ", ") {
			if m != "GET" && m != "HEAD" && !covered[m+" "+path] {
				t.Errorf("%s %s is a write the viewer table does not test", m, path)
			}
		}
	}
}

// TestViewerRefusedEveryWrite: each write made with a viewer's session,
// with its CSRF token, is answered 403 naming the read-only viewer,
// reaches no node and is logged (not audited); its reads answer.
func TestViewerRefusedEveryWrite(t *testing.T) {
	s, node, logs, _ := newViewerServer(t)
	c, csrf, page := loginAs(t, s, testViewer)
	if !strings.Contains(page, `<meta name="resman-role" content="viewer">`) || !strings.Contains(page, "read-only viewer") {
		t.Errorf("the viewer's page does not say it is read-only")
	}
	for _, w := range writeRoutes {
		t.Run(w.method+" "+w.path, func(t *testing.T) {
			ctype := ""
			if w.body != "" {
				ctype = "application/json"
			}
			a := send(t, s, w.method, w.path, ctype, w.body, c, map[string]string{HeaderCSRF: csrf})
			if a.code != http.StatusForbidden {
				t.Fatalf("code = %d, want 403; body %s", a.code, a.body)
			}
			if msg := apiError(t, a); !strings.Contains(msg, "wall is a read-only viewer") || !strings.Contains(msg, "never act") {
				t.Errorf("message %q, want it to say the user is a read-only viewer", msg)
			}
		})
	}
	for _, cl := range node.Calls() {
		if cl.Method != "subscribe" && cl.Method != "audit" && cl.Method != "peer-status" {
			t.Errorf("a viewer's write reached the node: %+v", cl)
		}
	}
	if out := logs.String(); !strings.Contains(out, "write refused: read-only viewer") || !strings.Contains(out, "user=wall") ||
		!strings.Contains(out, "route=/api/v1/replication/run") {
		t.Errorf("the refusals are not logged with the user and route:\n%s", out)
	}
	for _, path := range []string{pathStatus, pathAudit, pathPeerStatus} {
		if a := send(t, s, "GET", path, "", "", c, nil); a.code != http.StatusOK {
			t.Errorf("GET %s as a viewer: %d, want 200; %s", path, a.code, a.body)
		}
	}
	// It may still log out.
	if a := send(t, s, "POST", pathLogout, "", "", c, map[string]string{HeaderCSRF: csrf}); a.code != 303 {
		t.Errorf("viewer logout: %d, want 303", a.code)
	}
	if a := send(t, s, "GET", pathStatus, "", "", c, nil); a.code != 401 {
		t.Errorf("after the viewer's logout: %d, want 401", a.code)
	}
}

// TestAdminUnchangedBesideViewer: with a viewer configured, an admin's
// session writes as before (CSRF still required) and its page has no
// read-only mark.
func TestAdminUnchangedBesideViewer(t *testing.T) {
	s, node, _, _ := newViewerServer(t)
	c, csrf, page := loginAs(t, s, testUser)
	if !strings.Contains(page, `<meta name="resman-role" content="admin">`) || strings.Contains(page, "read-only viewer") {
		t.Errorf("the admin's page is marked read-only")
	}
	if a := send(t, s, "POST", pathStop, "application/json", `{"reason":"r"}`, c, nil); a.code != http.StatusForbidden ||
		!strings.Contains(apiError(t, a), "CSRF") {
		t.Errorf("admin write without CSRF: %d %s, want 403 for the CSRF token", a.code, a.body)
	}
	for _, w := range []struct{ method, path, method2 string }{
		{"POST", pathStop, "stop"},
		{"POST", "/api/v1/replication/run", "replication-run"},
		{"POST", pathPeerStart, "peer-start"},
	} {
		a := send(t, s, w.method, w.path, "application/json", `{"reason":"r"}`, c, map[string]string{HeaderCSRF: csrf})
		if a.code == http.StatusForbidden {
			t.Errorf("admin %s %s: 403 %s", w.method, w.path, a.body)
		}
		calls := node.Calls()
		if i := slices.IndexFunc(calls, func(cl call) bool { return cl.Method == w.method2 }); i < 0 || calls[i].Who != "web:"+testUser {
			t.Errorf("admin %s %s did not reach the node as web:%s: %+v", w.method, w.path, testUser, calls)
		}
	}
}

// TestViewerSessionLivesWithItsPage: the page's background reads and its
// event stream keep a viewer's session alive past the idle timeout and
// the admin's lifetime; closed, it ends after the idle timeout. An
// admin's session keeps its expiry: background reads do not renew it.
func TestViewerSessionLivesWithItsPage(t *testing.T) {
	s, _, logs, clk := newViewerServer(t)
	bg := map[string]string{HeaderBackground: "1"}
	viewer, _, _ := loginAs(t, s, testViewer)
	admin, _, _ := loginAs(t, s, testUser)

	// The page's status reads (every 5 s; here every 20 min) for longer
	// than the admin's lifetime.
	for elapsed := time.Duration(0); elapsed < SessionLifetime+time.Hour; elapsed += 20 * time.Minute {
		clk.Advance(20 * time.Minute)
		if a := send(t, s, "GET", pathStatus, "", "", viewer, bg); a.code != 200 {
			t.Fatalf("the viewer's background read after %s: %d, want 200", elapsed+20*time.Minute, a.code)
		}
	}
	// The admin's session, read in the background as often, ended at its
	// idle timeout.
	if a := send(t, s, "GET", pathStatus, "", "", admin, bg); a.code != 401 {
		t.Errorf("the admin's session after %s of background reads only: %d, want 401", SessionLifetime+time.Hour, a.code)
	}

	// The event stream alone keeps it too (its keep-alive asks alive).
	sess := s.auth.sessions.get(viewer.Value, false)
	if sess == nil {
		t.Fatal("no viewer session")
	}
	for range 4 {
		clk.Advance(SessionIdleTimeout - time.Minute)
		if !s.auth.sessions.alive(sess) {
			t.Fatal("the viewer's session ended while its event stream was open")
		}
	}
	// The screen is closed: nothing comes, the session ends.
	clk.Advance(SessionIdleTimeout)
	if a := send(t, s, "GET", pathStatus, "", "", viewer, bg); a.code != 401 {
		t.Errorf("the viewer's session %s after its page closed: %d, want 401", SessionIdleTimeout, a.code)
	}

	// An admin's event stream does not renew it.
	admin, _, _ = loginAs(t, s, testUser)
	asess := s.auth.sessions.get(admin.Value, false)
	clk.Advance(SessionIdleTimeout - time.Minute)
	if !s.auth.sessions.alive(asess) {
		t.Fatal("the admin's session ended before its idle timeout")
	}
	clk.Advance(2 * time.Minute)
	if s.auth.sessions.alive(asess) {
		t.Error("an admin's event stream renewed its session")
	}
	if out := logs.String(); !strings.Contains(out, "viewer=true") {
		t.Errorf("the viewer's login is not logged as one:\n%s", out)
	}
}
