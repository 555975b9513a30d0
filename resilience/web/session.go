package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Session and lock-out limits of the web login.
const (
	// SessionIdleTimeout ends a session after this long without a request
	// made by the admin (background refreshes of the page do not count).
	SessionIdleTimeout = 30 * time.Minute
	// SessionLifetime ends a session this long after the login, whatever
	// its use.
	SessionLifetime = 12 * time.Hour
	// MaxSessions bounds the sessions kept in memory; past it the oldest
	// is ended.
	MaxSessions = 1000

	// LoginFreeFailures is the number of failed logins, per user name and
	// per client address, before each further attempt must wait.
	LoginFreeFailures = 5
	// LoginBaseDelay is the first wait after LoginFreeFailures failures;
	// it doubles with each further failure, up to LoginMaxDelay.
	LoginBaseDelay = time.Second
	LoginMaxDelay  = 15 * time.Minute

	// loginForget drops the failure count of a key unused this long.
	loginForget = 24 * time.Hour
	// maxLoginKeys bounds the failure counts kept in memory.
	maxLoginKeys = 10000
)

// session is one logged-in browser.
type session struct {
	user     string
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
}

func newSessionStore(now func() time.Time) *sessionStore {
	return &sessionStore{
		byID:     map[[sha256.Size]byte]*session{},
		idle:     SessionIdleTimeout,
		lifetime: SessionLifetime,
		now:      now,
		log:      slog.New(slog.DiscardHandler),
	}
}

// randomToken is 256 random bits, base64url without padding.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session for user and returns its ID, the secret the
// cookie carries.
func (st *sessionStore) create(user string) (string, *session) {
	id := randomToken()
	now := st.now()
	s := &session{user: user, csrf: randomToken(), created: now, lastSeen: now, done: make(chan struct{})}
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
// the admin's activity (it renews the idle timeout).
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
	if touch {
		s.lastSeen = now
	}
	return s
}

// alive reports whether s has not ended or expired (for event streams,
// which do not renew it).
func (st *sessionStore) alive(s *session) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	select {
	case <-s.done:
		return false
	default:
	}
	return !st.expired(s, st.now())
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

func (st *sessionStore) expired(s *session, now time.Time) bool {
	return st.expiry(s, now) != ""
}

// expiry says why s has expired at now, or "".
func (st *sessionStore) expiry(s *session, now time.Time) string {
	switch {
	case now.Sub(s.created) >= st.lifetime:
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

// loginLimiter counts failed logins per key (a user name, a client
// address) and makes each attempt after LoginFreeFailures failures wait an
// exponentially growing delay.
type loginLimiter struct {
	mu  sync.Mutex
	m   map[string]*failures
	now func() time.Time
}

type failures struct {
	n     int
	last  time.Time
	until time.Time
}

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{m: map[string]*failures{}, now: now}
}

// wait is how long an attempt for keys must still wait, 0 when it may go.
func (l *loginLimiter) wait(keys ...string) time.Duration {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var w time.Duration
	for _, k := range keys {
		if f := l.m[k]; f != nil && f.until.After(now) {
			w = max(w, f.until.Sub(now))
		}
	}
	return w
}

// fail counts a failure for each key.
func (l *loginLimiter) fail(keys ...string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) >= maxLoginKeys {
		l.pruneLocked(now)
	}
	for _, k := range keys {
		f := l.m[k]
		if f == nil || now.Sub(f.last) >= loginForget {
			f = &failures{}
			l.m[k] = f
		}
		f.n++
		f.last = now
		if f.n >= LoginFreeFailures {
			d := LoginMaxDelay
			if shift := f.n - LoginFreeFailures; shift < 20 {
				d = min(LoginBaseDelay<<shift, LoginMaxDelay)
			}
			f.until = now.Add(d)
		}
	}
}

// succeed forgets the failures of keys.
func (l *loginLimiter) succeed(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		delete(l.m, k)
	}
}

// pruneLocked drops stale counts, then the least recent ones until the
// map has room.
func (l *loginLimiter) pruneLocked(now time.Time) {
	for k, f := range l.m {
		if now.Sub(f.last) >= loginForget || (f.n < LoginFreeFailures && now.Sub(f.last) >= time.Hour) {
			delete(l.m, k)
		}
	}
	if len(l.m) < maxLoginKeys {
		return
	}
	keys := make([]string, 0, len(l.m))
	for k := range l.m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return l.m[keys[i]].last.Before(l.m[keys[j]].last) })
	for _, k := range keys[:len(keys)-maxLoginKeys/2] {
		delete(l.m, k)
	}
}
