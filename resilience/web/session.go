package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Session limits of the web login (the lock-out's are in lockout.go).
const (
	// SessionIdleTimeout ends a session after this long without a request
	// made by the admin (background refreshes of the page do not count).
	SessionIdleTimeout = 30 * time.Minute
	// SessionLifetime ends an admin's session this long after the login,
	// whatever its use. A viewer's session has no lifetime: its page
	// keeps it alive (see session.viewer).
	SessionLifetime = 12 * time.Hour
	// MaxSessions bounds the sessions kept in memory; past it the oldest
	// is ended.
	MaxSessions = 1000
)

// session is one logged-in browser.
type session struct {
	user string
	// viewer: the user may only read (config api.users[].role: viewer, a
	// wall screen). Every write with the session is refused; every
	// request it makes, the page's background reads and its event stream
	// included, renews it, and it has no lifetime: it lives while its page
	// is open, and ends SessionIdleTimeout after the page is closed.
	viewer   bool
	csrf     string
	created  time.Time
	lastSeen time.Time
	// done is closed when the session ends (logout, expiry): event
	// streams opened with it end too.
	done chan struct{}
}

// sessionStore keeps the sessions in memory, by the SHA-256 of their ID (a
// map lookup by the ID itself would time the comparison of secrets).
type sessionStore struct {
	mu       sync.Mutex
	byID     map[[sha256.Size]byte]*session
	idle     time.Duration
	lifetime time.Duration
	now      func() time.Time
	log      *slog.Logger
	// run is random to this run of the process and prefixes every
	// session ID ("RUN.SECRET"), and started is when the run began: a
	// cookie of an earlier run is known to come from before a restart,
	// and the login page says so instead of "your session has ended".
	// It tells nothing about the secret and lets in no one.
	run     string
	started time.Time
}

func newSessionStore(now func() time.Time) *sessionStore {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return &sessionStore{
		byID:     map[[sha256.Size]byte]*session{},
		idle:     SessionIdleTimeout,
		lifetime: SessionLifetime,
		now:      now,
		log:      slog.New(slog.DiscardHandler),
		run:      base64.RawURLEncoding.EncodeToString(b[:]),
		started:  now(),
	}
}

// fromEarlierRun reports whether id is a session ID this node made before
// it restarted: sessions live in memory, so a restart ends them all.
func (st *sessionStore) fromEarlierRun(id string) bool {
	run, _, ok := strings.Cut(id, ".")
	return ok && len(run) == len(st.run) && run != st.run
}

// randomToken is 256 random bits, base64url without padding.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session for user (a read-only one for a viewer) and
// returns its ID, the secret the cookie carries.
func (st *sessionStore) create(user string, viewer bool) (string, *session) {
	id := st.run + "." + randomToken()
	now := st.now()
	s := &session{user: user, viewer: viewer, csrf: randomToken(), created: now, lastSeen: now, done: make(chan struct{})}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweepLocked(now)
	for len(st.byID) >= MaxSessions {
		st.evictOldestLocked()
	}
	st.byID[sha256.Sum256([]byte(id))] = s
	return id, s
}

// get returns the live session of id, or nil. touch counts the request as
// the admin's activity (it renews the idle timeout); any request of a
// viewer's session renews it.
func (st *sessionStore) get(id string, touch bool) *session {
	if id == "" {
		return nil
	}
	key := sha256.Sum256([]byte(id))
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.byID[key]
	if s == nil {
		return nil
	}
	if why := st.expiry(s, now); why != "" {
		st.endLocked(key, s, why)
		return nil
	}
	if touch || s.viewer {
		s.lastSeen = now
	}
	return s
}

// alive reports whether s has not ended or expired (for event streams,
// which do not renew an admin's session). A viewer's open stream renews
// its session: the wall screen stays logged in while it shows the page.
func (st *sessionStore) alive(s *session) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	select {
	case <-s.done:
		return false
	default:
	}
	now := st.now()
	if st.expired(s, now) {
		return false
	}
	if s.viewer {
		s.lastSeen = now
	}
	return true
}

// remove ends the session of id; it returns the session, or nil.
func (st *sessionStore) remove(id string) *session {
	key := sha256.Sum256([]byte(id))
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.byID[key]
	if s != nil {
		st.endLocked(key, s, "logout")
	}
	return s
}

// endUser ends every session of user (why is logged); it returns how
// many there were.
func (st *sessionStore) endUser(user, why string) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	n := 0
	for k, s := range st.byID {
		if s.user == user {
			st.endLocked(k, s, why)
			n++
		}
	}
	return n
}

func (st *sessionStore) expired(s *session, now time.Time) bool {
	return st.expiry(s, now) != ""
}

// expiry says why s has expired at now, or "".
func (st *sessionStore) expiry(s *session, now time.Time) string {
	switch {
	case !s.viewer && now.Sub(s.created) >= st.lifetime:
		return "lifetime reached"
	case now.Sub(s.lastSeen) >= st.idle:
		return "idle timeout"
	}
	return ""
}

func (st *sessionStore) endLocked(key [sha256.Size]byte, s *session, why string) {
	delete(st.byID, key)
	st.log.Info("session ended", "user", s.user, "why", why)
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

func (st *sessionStore) sweepLocked(now time.Time) {
	for k, s := range st.byID {
		if why := st.expiry(s, now); why != "" {
			st.endLocked(k, s, why)
		}
	}
}

func (st *sessionStore) evictOldestLocked() {
	var (
		oldestKey [sha256.Size]byte
		oldest    *session
	)
	for k, s := range st.byID {
		if oldest == nil || s.created.Before(oldest.created) {
			oldestKey, oldest = k, s
		}
	}
	if oldest != nil {
		st.endLocked(oldestKey, oldest, "too many sessions, oldest ended")
	}
}

// count is the number of sessions kept (for tests).
func (st *sessionStore) count() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.byID)
}
