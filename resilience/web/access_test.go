package web

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/resman-pbx/resman/config"
)

const (
	oldReadToken = "old-read-T0ken-0123456789"
	newReadToken = "new-read-T0ken-9876543210"
	newPassword  = "a new password for bob and co"
)

// loginWith logs user in and returns the session cookie and its CSRF token.
func loginWith(t *testing.T, s *Server, user, password string) (*http.Cookie, string) {
	t.Helper()
	a := postLogin(t, s, user, password, nil)
	if a.code != 303 || a.header.Get("Location") != "/" {
		t.Fatalf("login of %s: %d %s", user, a.code, a.body)
	}
	c := sessionCookie(t, s, a)
	page := send(t, s, "GET", "/", "", "", c, nil)
	m := regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`).FindSubmatch(page.body)
	if page.code != 200 || m == nil {
		t.Fatalf("the page after the login of %s has no CSRF token: %d %s", user, page.code, page.body)
	}
	return c, string(m[1])
}

func mustHash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// SetAccess swaps the users and the read tokens of a serving node: the
// sessions of a removed user and of users whose hash or role changed end
// (an event stream too), the unchanged user keeps hers, a removed user or
// an old password no longer logs in, an added user does, the new role
// holds at the next login; a removed read token is refused at the next
// request, an added one reads, and the token is kept. Neither a hash nor
// a token is logged.
func TestSetAccess(t *testing.T) {
	hash := testUsers(t)[0].PasswordHash
	newHash := mustHash(t, newPassword)
	s, node, logs := newTestServer(t, Options{ReadTokens: []string{oldReadToken}, Users: []config.User{
		{Name: "alice", PasswordHash: hash},
		{Name: "bob", PasswordHash: hash},
		{Name: "carol", PasswordHash: hash, Role: config.UserRoleViewer},
		{Name: "eve", PasswordHash: hash},
	}})
	alice, _ := loginWith(t, s, "alice", testPassword)
	bob, _ := loginWith(t, s, "bob", testPassword)
	carol, _ := loginWith(t, s, "carol", testPassword)
	eve, _ := loginWith(t, s, "eve", testPassword)
	eve2, _ := loginWith(t, s, "eve", testPassword)

	// bob's page has its event stream open.
	openEvents(t, s, node, bob)

	ch := s.SetAccess([]string{newReadToken}, []config.User{
		{Name: "alice", PasswordHash: hash},
		{Name: "bob", PasswordHash: newHash},
		{Name: "carol", PasswordHash: hash, Role: config.UserRoleAdmin},
		{Name: "dave", PasswordHash: newHash},
	})
	if !slices.Equal(ch.Added, []string{"dave"}) || !slices.Equal(ch.Removed, []string{"eve"}) ||
		!slices.Equal(ch.Changed, []string{"bob", "carol"}) || ch.SessionsEnded != 4 || ch.Empty() {
		t.Errorf("change = %+v, want dave added, eve removed, bob and carol changed, 4 sessions ended", ch)
	}
	select {
	case <-node.cancelled:
	case <-time.After(waitFor):
		t.Fatal("bob's event stream outlived his session")
	}

	if a := send(t, s, "GET", pathStatus, "", "", alice, nil); a.code != 200 {
		t.Errorf("alice (unchanged) after the swap: %d %s, want her session kept", a.code, a.body)
	}
	for name, c := range map[string]*http.Cookie{"bob": bob, "carol": carol, "eve": eve, "eve's second": eve2} {
		a := send(t, s, "GET", pathStatus, "", "", c, nil)
		if a.code != 401 || apiError(t, a) != "your session has ended: log in again" {
			t.Errorf("%s session after the swap: %d %s, want 401 session ended", name, a.code, a.body)
		}
		if page := send(t, s, "GET", "/", "", "", c, nil); !strings.Contains(string(page.body), `action="/login"`) {
			t.Errorf("%s page after the swap is not the login form: %d", name, page.code)
		}
	}
	for _, tc := range []struct{ user, password string }{{"eve", testPassword}, {"bob", testPassword}} {
		if a := postLogin(t, s, tc.user, tc.password, nil); a.code != 401 {
			t.Errorf("login of %s with the old credentials: %d, want 401", tc.user, a.code)
		}
	}
	loginWith(t, s, "bob", newPassword)
	loginWith(t, s, "dave", newPassword)
	// carol is an admin now: she may act.
	carol, csrf := loginWith(t, s, "carol", testPassword)
	if a := send(t, s, "POST", pathStart, "application/json", `{"reason":"r"}`, carol, map[string]string{HeaderCSRF: csrf}); a.code != 200 {
		t.Errorf("start by carol, now an admin: %d %s", a.code, a.body)
	}

	for _, tc := range []struct {
		token string
		want  int
	}{{oldReadToken, 401}, {newReadToken, 200}, {testToken, 200}} {
		if a := do(t, s, "GET", pathStatus, "", map[string]string{"Authorization": "Bearer " + tc.token}); a.code != tc.want {
			t.Errorf("status with the %s token after the swap: %d, want %d", tc.token[:3], a.code, tc.want)
		}
	}
	if a := do(t, s, "POST", pathStop, `{"reason":"r"}`, nil); a.code != 200 {
		t.Errorf("a write with the token after the swap: %d %s", a.code, a.body)
	}

	out := logs.String()
	for _, secret := range []string{hash, newHash, oldReadToken, newReadToken, testToken, testPassword, newPassword} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds a secret %q:\n%s", secret[:4], out)
		}
	}
	if !strings.Contains(out, "user removed by a config reload") || !strings.Contains(out, "password or role changed by a config reload") {
		t.Errorf("the log does not say why the sessions ended:\n%s", out)
	}
}

// A login whose password was checked against the users before a swap that
// changed the user creates no session: the password may no longer be hers.
func TestLoginDuringSwapCreatesNoSession(t *testing.T) {
	s, _, _, _ := newWebServer(t)
	users := testUsers(t)
	newHash := mustHash(t, newPassword)
	compare := s.auth.compare
	s.auth.compare = func(hash, password []byte) error {
		s.SetAccess(nil, []config.User{users[1], {Name: testUser, PasswordHash: newHash}})
		return compare(hash, password)
	}
	if a := postLogin(t, s, testUser, testPassword, nil); a.code != 401 {
		t.Errorf("login with the password of before the swap: %d, want 401", a.code)
	}
	if n := s.auth.sessions.count(); n != 0 {
		t.Errorf("%d sessions after a login refused", n)
	}
	// A swap that leaves the user as she was does not refuse her.
	s.auth.compare = func(hash, password []byte) error {
		s.SetAccess(nil, []config.User{{Name: testUser, PasswordHash: newHash}})
		return compare(hash, password)
	}
	loginWith(t, s, testUser, newPassword)
}

// Requests in flight while the access is swapped (go test -race): the
// session of a user in every set and a read token in every set always
// pass; the toggled token and user come and go.
func TestSetAccessConcurrent(t *testing.T) {
	hash := testUsers(t)[0].PasswordHash
	stay := config.User{Name: "alice", PasswordHash: hash}
	s, _, _ := newTestServer(t, Options{ReadTokens: []string{oldReadToken}, Users: []config.User{stay}})
	alice, _ := loginWith(t, s, "alice", testPassword)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				s.SetAccess([]string{oldReadToken, newReadToken}, []config.User{stay, {Name: "dave", PasswordHash: hash}})
			} else {
				s.SetAccess([]string{oldReadToken}, []config.User{stay})
			}
		}
	}()
	var clients sync.WaitGroup
	for range 2 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			for range 50 {
				if a := send(t, s, "GET", pathStatus, "", "", alice, nil); a.code != 200 {
					t.Errorf("alice's session during swaps: %d", a.code)
				}
				if a := do(t, s, "GET", pathStatus, "", map[string]string{"Authorization": "Bearer " + oldReadToken}); a.code != 200 {
					t.Errorf("a read token kept by every swap: %d", a.code)
				}
				if a := do(t, s, "GET", pathStatus, "", map[string]string{"Authorization": "Bearer " + newReadToken}); a.code != 200 && a.code != 401 {
					t.Errorf("the toggled read token: %d, want 200 or 401", a.code)
				}
				// Failures lock the name out at length: 429 too.
				if a := postLogin(t, s, "dave", testPassword, nil); a.code != 303 && a.code != 401 && a.code != 429 {
					t.Errorf("the toggled user's login: %d, want 303, 401 or 429", a.code)
				}
			}
		}()
	}
	clients.Wait()
	close(stop)
	wg.Wait()
}
