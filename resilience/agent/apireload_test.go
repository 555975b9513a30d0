package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
)

const (
	oldPassword   = "blue kettle under the stairs"
	newPassword   = "green lamp beside the window"
	oldReadToken  = "rd-Old-7f3a9c21e4b8d05a"
	newReadToken  = "rd-New-2c6e1b9f8a4d7035"
	otherAPIToken = "agent-other-9f8e7d6c5b4a3210"
)

// apiConfig is nodeConfig with users and readTokens in its api section.
func apiConfig(dataDir string, port int, token string, users map[string]string, readTokens []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  token: %s\n", token)
	if len(readTokens) > 0 {
		b.WriteString("  read_tokens:\n")
		for _, t := range readTokens {
			fmt.Fprintf(&b, "    - %s\n", t)
		}
	}
	if len(users) > 0 {
		b.WriteString("  users:\n")
		names := make([]string, 0, len(users))
		for n := range users {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			fmt.Fprintf(&b, "    - {name: %s, password_hash: %q}\n", n, users[n])
		}
	}
	return strings.Replace(nodeConfig(dataDir, port, ""), "  token: "+testToken+"\n", b.String(), 1)
}

// apiClient talks to the agent's API without following redirects.
type apiClient struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func (c apiClient) do(req *http.Request) (int, string) {
	c.t.Helper()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// login posts the login form; it returns the code and the session cookie.
func (c apiClient) login(user, password string) (int, *http.Cookie) {
	c.t.Helper()
	req, _ := http.NewRequest("POST", c.base+"/login", strings.NewReader(url.Values{"user": {user}, "password": {password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if strings.HasPrefix(ck.Name, "resman_session") && ck.Value != "" {
			return resp.StatusCode, ck
		}
	}
	return resp.StatusCode, nil
}

// status reads /api/v1/status with a session cookie or a bearer token.
func (c apiClient) status(cookie *http.Cookie, token string) int {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.base+"/api/v1/status", nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	code, _ := c.do(req)
	return code
}

// audit is the node's audit log, as JSON text, and the causes of its
// entries (where a note of the node says what happened).
func (c apiClient) audit() (string, []string) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.base+"/api/v1/audit?limit=1000", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	code, body := c.do(req)
	if code != 200 {
		c.t.Fatalf("audit: %d %s", code, body)
	}
	var entries []api.AuditEntry
	if err := json.Unmarshal([]byte(body), &entries); err != nil {
		c.t.Fatalf("audit: %v in %s", err, body)
	}
	var causes []string
	for _, e := range entries {
		causes = append(causes, e.Cause)
	}
	return body, causes
}

// A reload applies api.users and api.read_tokens live and audits them: a
// removed user's session and a changed user's end, the unchanged user's
// stays, an added user logs in, a removed read token is refused and an
// added one reads; no secret reaches the audit log. A reload that also
// changes api.listen and api.token names them as needing a restart and
// applies the users all the same (the token in force stays the old one).
func TestAgentReloadsAPIAccess(t *testing.T) {
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	oldHash, newHash := hash(oldPassword), hash(newPassword)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	path := filepath.Join(dir, "node.yaml")
	port := testkit.Port(t)
	writeFile(t, path, apiConfig(data, port, testToken,
		map[string]string{"alice": oldHash, "bob": oldHash, "eve": oldHash}, []string{oldReadToken}))
	ready := make(chan struct{})
	a, evs, stop := runAgent(t, path, Options{Logger: slog.New(slog.DiscardHandler), Ready: func() { close(ready) }})
	defer stop()
	evs.next(t, Started)
	<-ready
	c := apiClient{t: t, base: "http://" + a.Addr().String(), hc: &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}

	sessions := map[string]*http.Cookie{}
	for _, u := range []string{"alice", "bob", "eve"} {
		code, ck := c.login(u, oldPassword)
		if code != http.StatusSeeOther || ck == nil {
			t.Fatalf("login of %s before the reload: %d", u, code)
		}
		if got := c.status(ck, ""); got != 200 {
			t.Fatalf("%s's session before the reload: %d", u, got)
		}
		sessions[u] = ck
	}
	if got := c.status(nil, oldReadToken); got != 200 {
		t.Fatalf("the read token before the reload: %d", got)
	}

	// eve leaves, bob's password changes, dave arrives; the read token is
	// swapped.
	writeFile(t, path, apiConfig(data, port, testToken,
		map[string]string{"alice": oldHash, "bob": newHash, "dave": newHash}, []string{newReadToken}))
	if err := a.Reload(path); err != nil {
		t.Fatalf("reload of the users and read tokens: %v", err)
	}
	if ev := evs.next(t, Reloaded); !slices.Equal(ev.Applied, []string{"api.users", "api.read_tokens"}) || len(ev.NeedRestart) != 0 {
		t.Errorf("reload of the users and read tokens reported %+v", ev)
	}
	if got := c.status(sessions["alice"], ""); got != 200 {
		t.Errorf("alice (unchanged) after the reload: %d, want her session kept", got)
	}
	for _, u := range []string{"bob", "eve"} {
		if got := c.status(sessions[u], ""); got != 401 {
			t.Errorf("%s's old session after the reload: %d, want 401", u, got)
		}
	}
	for _, tc := range []struct {
		user, password string
		want           int
	}{{"eve", oldPassword, 401}, {"bob", oldPassword, 401}, {"bob", newPassword, 303}, {"dave", newPassword, 303}} {
		if code, _ := c.login(tc.user, tc.password); code != tc.want {
			t.Errorf("login of %s after the reload: %d, want %d", tc.user, code, tc.want)
		}
	}
	for _, tc := range []struct {
		name, token string
		want        int
	}{{"the removed read token", oldReadToken, 401}, {"the new read token", newReadToken, 200}, {"the token", testToken, 200}} {
		if got := c.status(nil, tc.token); got != tc.want {
			t.Errorf("%s after the reload: %d, want %d", tc.name, got, tc.want)
		}
	}
	body, reasons := c.audit()
	for _, want := range []string{
		"web users applied live: added dave; removed eve; password or role changed bob; 2 sessions ended",
		"read tokens applied live: 1 in force (1 added, 1 removed)",
	} {
		if !slices.Contains(reasons, want) {
			t.Errorf("the audit log has no %q: %q", want, reasons)
		}
	}
	for _, secret := range []string{oldHash, newHash, oldPassword, newPassword, oldReadToken, newReadToken, testToken} {
		if strings.Contains(body, secret) {
			t.Errorf("the audit log holds a secret (%.6s...)", secret)
		}
	}

	// api.listen and api.token need a restart: named, not applied; the
	// removal of dave (logged in above) is applied all the same.
	// (failover.confirm.listen defaults to api.listen: the second path's
	// socket would move too.)
	writeFile(t, path, apiConfig(data, port+1, otherAPIToken,
		map[string]string{"alice": oldHash, "bob": newHash}, []string{newReadToken}))
	if err := a.Reload(path); err != nil {
		t.Fatalf("reload with api.listen and api.token: %v", err)
	}
	if ev := evs.next(t, Reloaded); !slices.Equal(ev.Applied, []string{"api.users"}) || !slices.Equal(ev.NeedRestart, []string{"failover.confirm", "api.listen", "api.token"}) {
		t.Errorf("reload with api.listen and api.token reported %+v, want api.users applied, api.listen and api.token needing a restart", ev)
	}
	if code, _ := c.login("dave", newPassword); code != 401 {
		t.Errorf("login of dave, removed with the restart-only changes: %d, want 401", code)
	}
	if got := c.status(nil, testToken); got != 200 {
		t.Errorf("the token in force after a reload that changes it: %d, want 200 (restart-only)", got)
	}
	if got := c.status(nil, otherAPIToken); got != 401 {
		t.Errorf("the file's new token before a restart: %d, want 401", got)
	}
	body, reasons = c.audit()
	for _, want := range []string{
		"these changes need a restart and were not applied: failover.confirm, api.listen, api.token",
		"web users applied live: removed dave; 1 session ended",
	} {
		if !slices.Contains(reasons, want) {
			t.Errorf("the audit log has no %q: %q", want, reasons)
		}
	}
	if strings.Contains(body, otherAPIToken) {
		t.Error("the audit log holds the file's new token")
	}
}
