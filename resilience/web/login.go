package web

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/resman-pbx/resman/config"
)

// Header names of the web session scheme.
const (
	// HeaderCSRF carries the session's CSRF token on every write made with
	// a session cookie.
	HeaderCSRF = "X-CSRF-Token"
	// HeaderBackground marks a request the page makes on its own (polls,
	// refreshes): it does not count as the admin's activity, so an
	// unattended page still reaches the session's idle timeout.
	HeaderBackground = "X-Resman-Background"

	// formCSRF is the form field of the CSRF token (logout form).
	formCSRF = "csrf"
	// cookiePrefix starts the session cookie's name; the node's name
	// follows, so that two nodes on one host (the demo) keep their own
	// sessions (cookies do not tell ports apart).
	cookiePrefix = "resman_session"
	// maxLoggedName bounds a user name as written to the log.
	maxLoggedName = 64
	// bcryptParallel bounds the bcrypt comparisons running at once, so a
	// flood of logins cannot take every core.
	bcryptParallel = 2
)

// localSession is the fiber Locals key of the request's *session.
const localSession = "resman.session"

// webAuth holds the web login's users, sessions and lock-out counts.
type webAuth struct {
	// users are the users who may log in, swapped whole by setUsers (a
	// reload): read with current, without a lock.
	users atomic.Pointer[userSet]
	// swap is held for writing while setUsers swaps the users and ends
	// the sessions of those removed or changed, and for reading while a
	// login creates its session: a session is never created for a user
	// as they were before a swap that ended their sessions.
	swap       sync.RWMutex
	sessions   *sessionStore
	limiter    *loginLimiter
	cookieName string
	log        *slog.Logger
	sem        chan struct{}
	// compare checks a password against a bcrypt hash (a seam: tests
	// count the checks).
	compare func(hash, password []byte) error
	// sleep waits d, or until stop is closed (it then reports false): the
	// wait of a slowed login (a seam: tests record it).
	sleep func(d time.Duration, stop <-chan struct{}) bool
}

// userSet is the users of one config (api.users): never changed once
// built, replaced whole by a reload.
type userSet struct {
	hashes map[string][]byte
	// viewers are the users who may only read (api.users[].role: viewer).
	viewers map[string]bool

	// dummy is compared against for unknown users, so that they cost the
	// same bcrypt work as known ones (made at the first need, at the
	// highest cost of the set).
	dummyOnce sync.Once
	dummy     []byte
	dummyCost int
}

// newUserSet keeps the users whose hash is a bcrypt hash (the others are
// logged: they cannot log in).
func newUserSet(users []config.User, log *slog.Logger) *userSet {
	us := &userSet{hashes: map[string][]byte{}, viewers: map[string]bool{}}
	for _, u := range users {
		cost, err := bcrypt.Cost([]byte(u.PasswordHash))
		if err != nil {
			log.Warn("user's password_hash is not a bcrypt hash: this user cannot log in", "user", u.Name)
			continue
		}
		us.hashes[u.Name] = []byte(u.PasswordHash)
		if u.Viewer() {
			us.viewers[u.Name] = true
		}
		us.dummyCost = max(us.dummyCost, cost)
	}
	if us.dummyCost == 0 {
		us.dummyCost = bcrypt.DefaultCost
	}
	return us
}

// same reports whether user is in both sets with the same hash and role
// (a session made with one is right for the other).
func (us *userSet) same(o *userSet, user string) bool {
	h1, ok1 := us.hashes[user]
	h2, ok2 := o.hashes[user]
	return ok1 && ok2 && bytes.Equal(h1, h2) && us.viewers[user] == o.viewers[user]
}

func newWebAuth(users []config.User, nodeName string, log *slog.Logger, now func() time.Time) *webAuth {
	a := &webAuth{
		sessions:   newSessionStore(now),
		limiter:    newLoginLimiter(now),
		cookieName: cookieName(nodeName),
		log:        log,
		sem:        make(chan struct{}, bcryptParallel),
		compare:    bcrypt.CompareHashAndPassword,
		sleep:      sleepUnless,
	}
	a.sessions.log = log
	a.users.Store(newUserSet(users, log))
	return a
}

// current is the users in force.
func (a *webAuth) current() *userSet { return a.users.Load() }

// UsersChange is what a swap of the web users did (see
// [Server.SetAccess]): user names only, never a hash.
type UsersChange struct {
	// Added may log in now; Removed no longer may, and their sessions
	// ended; Changed had their password hash or role changed, and their
	// sessions ended. Each is sorted.
	Added, Removed, Changed []string
	// SessionsEnded counts the sessions ended.
	SessionsEnded int
}

// Empty reports whether no user was added, removed or changed.
func (c UsersChange) Empty() bool {
	return len(c.Added)+len(c.Removed)+len(c.Changed) == 0
}

// setUsers puts users in force: a removed user, and one whose hash or role
// changed (a credential change), can no longer use the sessions they had;
// the other users keep theirs.
func (a *webAuth) setUsers(users []config.User) UsersChange {
	next := newUserSet(users, a.log)
	a.swap.Lock()
	defer a.swap.Unlock()
	prev := a.current()
	a.users.Store(next)
	var ch UsersChange
	for name := range prev.hashes {
		switch {
		case next.hashes[name] == nil:
			ch.Removed = append(ch.Removed, name)
			ch.SessionsEnded += a.sessions.endUser(name, "user removed by a config reload")
		case !prev.same(next, name):
			ch.Changed = append(ch.Changed, name)
			ch.SessionsEnded += a.sessions.endUser(name, "user's password or role changed by a config reload")
		}
	}
	for name := range next.hashes {
		if prev.hashes[name] == nil {
			ch.Added = append(ch.Added, name)
		}
	}
	slices.Sort(ch.Added)
	slices.Sort(ch.Removed)
	slices.Sort(ch.Changed)
	return ch
}

// startSession creates a session for user, whose password was checked
// against the users us: none when a swap since then removed or changed
// the user (the password may no longer be theirs).
func (a *webAuth) startSession(us *userSet, user string) (id string, viewer, ok bool) {
	a.swap.RLock()
	defer a.swap.RUnlock()
	now := a.current()
	if now != us && !now.same(us, user) {
		return "", false, false
	}
	viewer = now.viewers[user]
	id, _ = a.sessions.create(user, viewer)
	return id, viewer, true
}

// sleepUnless waits d, or until stop is closed: it then reports false.
func sleepUnless(d time.Duration, stop <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}

// cookieName is the session cookie's name for a node: the node name's
// letters, digits, '-' and '_' (others become '_').
func cookieName(node string) string {
	var b strings.Builder
	b.WriteString(cookiePrefix)
	if node != "" {
		b.WriteByte('_')
	}
	for _, r := range node {
		if r < 0x80 && (r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// verify compares password with user's hash in the users in force, which
// it returns; an unknown user costs the same work and fails.
func (a *webAuth) verify(user, password string) (ok, known bool, us *userSet) {
	a.sem <- struct{}{}
	defer func() { <-a.sem }()
	us = a.current()
	hash, known := us.hashes[user]
	if !known {
		us.dummyOnce.Do(func() {
			us.dummy, _ = bcrypt.GenerateFromPassword([]byte("resman: no such user"), us.dummyCost)
		})
		hash = us.dummy
	}
	err := a.compare(hash, []byte(password))
	return known && err == nil, known, us
}

// logName is a user name as it may be written to the log: not too long (a
// password typed in the wrong field stays mostly out of it).
func logName(u string) string {
	if len(u) > maxLoggedName {
		return u[:maxLoggedName] + "…"
	}
	return u
}

// secure reports whether the request came over TLS, directly or through a
// proxy that says so: the session cookie is then Secure.
func secure(c *fiber.Ctx) bool {
	return c.Context().IsTLS() || strings.EqualFold(strings.TrimSpace(c.Get(fiber.HeaderXForwardedProto)), "https")
}

// crossSite reports a request a browser made for another site's page
// (Sec-Fetch-Site): refused on login and on writes with a session. Browsers
// that do not send the header rely on SameSite=Strict and the CSRF token.
func crossSite(c *fiber.Ctx) bool {
	switch strings.ToLower(c.Get("Sec-Fetch-Site")) {
	case "", "same-origin", "none":
		return false
	}
	return true
}

func safeMethod(m string) bool {
	return m == fiber.MethodGet || m == fiber.MethodHead || m == fiber.MethodOptions
}

// sessionOf is the live session of the request's cookie, or nil.
func (s *Server) sessionOf(c *fiber.Ctx, touch bool) *session {
	if s.auth == nil {
		return nil
	}
	return s.auth.sessions.get(c.Cookies(s.auth.cookieName), touch)
}

// restartedNotice tells an admin whose session a restart of the node
// ended what happened.
func (s *Server) restartedNotice() string {
	return fmt.Sprintf("This node restarted at %s since you logged in, which ends every session. Log in again.",
		s.auth.sessions.started.UTC().Format("2006-01-02 15:04:05 UTC"))
}

// sessionAuth authenticates a request that carries no Authorization header
// with its session cookie: it reports false when there is no cookie (the
// bearer scheme then answers), an error when the session is gone or a
// write lacks its CSRF token.
func (s *Server) sessionAuth(c *fiber.Ctx) (bool, error) {
	if s.auth == nil || c.Get(fiber.HeaderAuthorization) != "" {
		return false, nil
	}
	id := c.Cookies(s.auth.cookieName)
	if id == "" {
		return false, nil
	}
	// Event streams and the page's own refreshes do not renew an admin's
	// session (a viewer's is renewed by any request: see session.viewer).
	touch := c.Path() != pathEvents && c.Get(HeaderBackground) == ""
	sess := s.auth.sessions.get(id, touch)
	if sess == nil {
		if s.auth.sessions.fromEarlierRun(id) {
			return true, errorf(fiber.StatusUnauthorized, "%s", s.restartedNotice())
		}
		return true, errorf(fiber.StatusUnauthorized, "your session has ended: log in again")
	}
	if !safeMethod(c.Method()) {
		if sess.viewer {
			// Refused before anything else: the node sees nothing, and
			// nothing is audited (the audit log records commands).
			s.auth.log.Warn("write refused: read-only viewer", "user", sess.user, "route", s.routeLabel(c.Path()),
				"method", methodLabel(c.Method()), "ip", s.clientIP(c).String())
			return true, errorf(fiber.StatusForbidden, "%s is a read-only viewer (api.users[].role: viewer): it may see the page, never act; log in as an admin to do this", sess.user)
		}
		if err := s.checkCSRF(c, sess, c.Get(HeaderCSRF)); err != nil {
			return true, err
		}
	}
	c.Locals(localWho, "web:"+sess.user)
	c.Locals(localSession, sess)
	return true, nil
}

// checkCSRF accepts a write of sess only with its CSRF token, compared in
// constant time, and not from another site.
func (s *Server) checkCSRF(c *fiber.Ctx, sess *session, token string) error {
	if crossSite(c) {
		s.auth.log.Warn("cross-site write refused", "user", sess.user, "route", s.routeLabel(c.Path()), "ip", s.clientIP(c).String())
		return errorf(fiber.StatusForbidden, "cross-site request refused")
	}
	if token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(sess.csrf)) != 1 {
		s.auth.log.Warn("CSRF token missing or wrong", "user", sess.user, "route", s.routeLabel(c.Path()), "ip", s.clientIP(c).String())
		return errorf(fiber.StatusForbidden, "missing or wrong CSRF token: reload the page")
	}
	return nil
}

// login handles POST /login, a form with user and password.
func (s *Server) login(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	// The TCP peer, or what a trusted proxy says (see clientIP).
	ip := s.clientIP(c).String()
	if crossSite(c) {
		s.auth.log.Warn("login refused: cross-site form", "ip", ip)
		return s.renderLogin(c, fiber.StatusForbidden, loginPage{Error: "Cross-site login refused."})
	}
	mt, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err != nil || mt != fiber.MIMEApplicationForm {
		return s.renderLogin(c, fiber.StatusUnsupportedMediaType, loginPage{Error: "The login form must be sent as a form."})
	}
	form, err := url.ParseQuery(string(c.Request().Body()))
	if err != nil {
		return s.renderLogin(c, fiber.StatusBadRequest, loginPage{Error: "The login form could not be read."})
	}
	user, password := form.Get("user"), form.Get("password")
	if user == "" || password == "" {
		return s.renderLogin(c, fiber.StatusBadRequest, loginPage{User: user, Error: "Enter your user name and password."})
	}
	// The attempt takes its place before the password check, under one
	// lock: parallel attempts get no more checks than the allowance.
	attempt, refused := s.auth.limiter.reserve(user, s.sourceOf(c))
	if refused != nil {
		secs := int(math.Ceil(refused.wait.Seconds()))
		s.auth.log.Warn("login refused: too many failures", "user", logName(user), "ip", ip, "scope", refused.scope.String(), "retry_after", secs)
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
		return s.renderLogin(c, fiber.StatusTooManyRequests, loginPage{User: user,
			Error: "Too many failed logins. Try again in " + humanSeconds(secs) + "."})
	}
	defer attempt.release()
	if attempt.delay > 0 {
		s.auth.log.Warn("login slowed: many failures for this user from other addresses", "user", logName(user), "ip", ip, "delay", attempt.delay)
		if !s.auth.sleep(attempt.delay, s.closing) {
			return s.renderLogin(c, fiber.StatusServiceUnavailable, loginPage{User: user, Error: "The node is shutting down. Try again shortly."})
		}
	}
	ok, known, users := s.auth.verify(user, password)
	if !ok {
		attempt.fail()
		why := "wrong password"
		if !known {
			why = "unknown user"
		}
		s.auth.log.Warn("login failed", "user", logName(user), "ip", ip, "why", why)
		return s.renderLogin(c, fiber.StatusUnauthorized, loginPage{User: user, Error: "Wrong user name or password."})
	}
	id, viewer, ok := s.auth.startSession(users, user)
	if !ok {
		// A reload removed or changed the user during the check: neither
		// a success nor a failure of the password.
		s.auth.log.Warn("login refused: the user changed during the login (config reload)", "user", logName(user), "ip", ip)
		return s.renderLogin(c, fiber.StatusUnauthorized, loginPage{User: user, Error: "Wrong user name or password."})
	}
	attempt.succeed()
	c.Cookie(&fiber.Cookie{
		Name:     s.auth.cookieName,
		Value:    id,
		Path:     "/",
		HTTPOnly: true,
		Secure:   secure(c),
		SameSite: fiber.CookieSameSiteStrictMode,
	})
	s.auth.log.Info("login", "user", user, "ip", ip, "who", "web:"+user, "viewer", viewer)
	return c.Redirect("/", fiber.StatusSeeOther)
}

// logout handles POST /logout: it ends the session (with its CSRF token, as
// a form field or header) and clears the cookie.
func (s *Server) logout(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	id := c.Cookies(s.auth.cookieName)
	sess := s.auth.sessions.get(id, false)
	if sess != nil {
		token := c.Get(HeaderCSRF)
		if token == "" {
			if mt, _, _ := mime.ParseMediaType(c.Get(fiber.HeaderContentType)); mt == fiber.MIMEApplicationForm {
				if form, err := url.ParseQuery(string(c.Request().Body())); err == nil {
					token = form.Get(formCSRF)
				}
			}
		}
		if err := s.checkCSRF(c, sess, token); err != nil {
			return err
		}
		s.auth.sessions.remove(id)
		s.auth.log.Info("logout", "user", sess.user, "ip", s.clientIP(c).String(), "who", "web:"+sess.user)
	}
	s.clearCookie(c)
	return c.Redirect("/?m=out", fiber.StatusSeeOther)
}

func (s *Server) clearCookie(c *fiber.Ctx) {
	c.Cookie(&fiber.Cookie{
		Name:     s.auth.cookieName,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		Expires:  time.Unix(0, 0),
		HTTPOnly: true,
		Secure:   secure(c),
		SameSite: fiber.CookieSameSiteStrictMode,
	})
}

// humanSeconds says n seconds as a person would.
func humanSeconds(n int) string {
	switch {
	case n <= 1:
		return "1 second"
	case n < 120:
		return strconv.Itoa(n) + " seconds"
	default:
		return strconv.Itoa((n+59)/60) + " minutes"
	}
}
