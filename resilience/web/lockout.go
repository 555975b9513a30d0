package web

import (
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Lock-out limits of the web login. README.md ("Lock-out") states the
// policy and what an attacker can and cannot do with it.
const (
	// LoginFreeFailures is the number of failed logins for one user name
	// from one client address before each further attempt of that pair
	// must wait: LoginBaseDelay, doubling with each further failure, up to
	// LoginMaxDelay.
	LoginFreeFailures = 5
	// LoginAddrFreeFailures is the number of failed logins from one client
	// address, whatever the user names, before each further attempt from
	// it must wait (same delays): it stops an address spraying names.
	LoginAddrFreeFailures = 20
	LoginBaseDelay        = time.Second
	LoginMaxDelay         = 15 * time.Minute

	// LoginUserSlowAfter is the number of failed logins for one user name,
	// from all addresses together (counted while failures keep coming, at
	// most LoginUserWindow apart), after which the attempts for that name
	// from addresses it has not logged in from are slowed, not refused:
	// they share one password check per LoginUserSlowInterval, each
	// waiting for its turn, up to LoginUserMaxWait (beyond, 429).
	LoginUserSlowAfter    = 50
	LoginUserSlowInterval = time.Second
	LoginUserMaxWait      = 10 * time.Second
	LoginUserWindow       = time.Hour
	// LoginKnownFor is how long an address a user logged in from stays
	// known (exempt from the slow lane of that user), in memory.
	LoginKnownFor = 30 * 24 * time.Hour

	// loginPendingWait is the Retry-After of an attempt refused because
	// others of the same key are being checked and may use up its
	// allowance.
	loginPendingWait = time.Second
	// loginForget drops the failure count of a pair or an address unused
	// this long.
	loginForget = 24 * time.Hour
	// maxLoginKeys bounds the failure counts kept in memory.
	maxLoginKeys = 10000
	// maxKnownPerUser bounds the known addresses of a user; the least
	// recently used is forgotten first.
	maxKnownPerUser = 8
)

// loginScope is what a failure count is kept for.
type loginScope uint8

const (
	scopePair loginScope = iota // one user name from one address
	scopeAddr                   // one address, every user name
	scopeUser                   // one user name, every address
)

func (sc loginScope) String() string {
	switch sc {
	case scopePair:
		return "user+address"
	case scopeAddr:
		return "address"
	}
	return "user"
}

type loginKey struct {
	scope      loginScope
	user, addr string
}

// loginCount is the state of one key.
type loginCount struct {
	failures int
	// pending counts the attempts allowed and not yet settled (their
	// password is being checked): they count against the allowance, so
	// that parallel attempts cannot all pass before the first failure is
	// recorded.
	pending int
	last    time.Time // of the last failure
	until   time.Time // no attempt before (pair, address)
	next    time.Time // the next free check of the slow lane (user)
}

// loginLimiter decides, atomically, whether a login attempt may check its
// password, and records the outcome. It keeps failure counts per user name
// and address, per address, and per user name, and the addresses each
// user has logged in from.
type loginLimiter struct {
	mu    sync.Mutex
	m     map[loginKey]*loginCount
	known map[string]map[string]time.Time // user -> address -> last login
	now   func() time.Time
}

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{m: map[loginKey]*loginCount{}, known: map[string]map[string]time.Time{}, now: now}
}

// loginAttempt is an attempt allowed by reserve: it must be settled with
// fail or succeed, or given back with release (which does nothing once
// settled).
type loginAttempt struct {
	l    *loginLimiter
	keys [3]loginKey
	user string
	addr string
	// delay is how long the attempt must wait before its check (the slow
	// lane of its user), 0 mostly.
	delay   time.Duration
	settled bool
}

// loginRefusal says why an attempt may not check its password, and for how
// long.
type loginRefusal struct {
	wait  time.Duration
	scope loginScope
}

// clientIP is the client's address: the TCP peer of the connection, or,
// when that peer is one of Options.TrustedProxies, the address that proxy
// recorded: the rightmost X-Forwarded-For entry that is not itself a
// trusted proxy. A header is never read from anyone else: X-Forwarded-For,
// X-Real-IP and Forwarded are the client's to choose.
func (s *Server) clientIP(c *fiber.Ctx) net.IP {
	peer := c.Context().RemoteIP()
	if !s.trusted(peer) {
		return peer
	}
	var hops []string
	for k, v := range c.Request().Header.All() {
		if strings.EqualFold(string(k), fiber.HeaderXForwardedFor) {
			hops = append(hops, strings.Split(string(v), ",")...)
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		ip := net.ParseIP(strings.TrimSpace(hops[i]))
		if ip == nil {
			break // a hop the proxy did not write: stop at the proxy
		}
		if !s.trusted(ip) {
			return ip
		}
		peer = ip
	}
	return peer
}

// trusted says whether ip is one of Options.TrustedProxies.
func (s *Server) trusted(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// sourceOf is the client address the lock-out and the stream limits count
// against (see clientIP). An IPv6 address stands for its /64, which one
// client usually holds whole.
func (s *Server) sourceOf(c *fiber.Ctx) string {
	return sourceKey(s.clientIP(c))
}

func sourceKey(ip net.IP) string {
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// reserve allows an attempt for user from addr, or refuses it. An allowed
// attempt counts as pending at once, under the lock: N attempts at the
// same time get no more checks than the allowance.
func (l *loginLimiter) reserve(user, addr string) (*loginAttempt, *loginRefusal) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	a := &loginAttempt{l: l, user: user, addr: addr, keys: [3]loginKey{
		{scope: scopePair, user: user, addr: addr},
		{scope: scopeAddr, addr: addr},
		{scope: scopeUser, user: user},
	}}
	var refusal *loginRefusal
	for _, k := range a.keys[:2] {
		if w := l.lockWait(l.current(k, now), lockFree(k.scope), now); w > 0 && (refusal == nil || w > refusal.wait) {
			refusal = &loginRefusal{wait: w, scope: k.scope}
		}
	}
	if refusal != nil {
		return nil, refusal
	}
	if uc := l.current(a.keys[2], now); uc != nil && uc.failures+uc.pending >= LoginUserSlowAfter && !l.knownLocked(user, addr, now) {
		slot := now
		if uc.next.After(now) {
			slot = uc.next
		}
		wait := slot.Sub(now)
		if wait > LoginUserMaxWait {
			return nil, &loginRefusal{wait: max(wait-LoginUserMaxWait, loginPendingWait), scope: scopeUser}
		}
		uc.next = slot.Add(LoginUserSlowInterval)
		a.delay = wait
	}
	if len(l.m) >= maxLoginKeys {
		l.pruneLocked(now)
	}
	for _, k := range a.keys {
		l.get(k).pending++
	}
	return a, nil
}

// lockFree is the allowance of failures of a pair or an address.
func lockFree(sc loginScope) int {
	if sc == scopeAddr {
		return LoginAddrFreeFailures
	}
	return LoginFreeFailures
}

// lockWait is how long an attempt of c must still wait, 0 when it may go:
// within the allowance (failures and pending attempts together), or past
// it once the lock-out delay has passed, for one attempt at a time.
func (l *loginLimiter) lockWait(c *loginCount, free int, now time.Time) time.Duration {
	switch {
	case c == nil || c.failures+c.pending < free:
		return 0
	case c.until.After(now):
		return c.until.Sub(now)
	case c.pending > 0:
		return loginPendingWait
	}
	return 0
}

// current is the count of k, nil when there is none or it has lapsed.
func (l *loginLimiter) current(k loginKey, now time.Time) *loginCount {
	c := l.m[k]
	if c == nil {
		return nil
	}
	if c.pending == 0 && now.Sub(c.last) >= forgetAfter(k.scope) && !c.until.After(now) && !c.next.After(now) {
		delete(l.m, k)
		return nil
	}
	return c
}

func forgetAfter(sc loginScope) time.Duration {
	if sc == scopeUser {
		return LoginUserWindow
	}
	return loginForget
}

func (l *loginLimiter) get(k loginKey) *loginCount {
	c := l.m[k]
	if c == nil {
		c = &loginCount{}
		l.m[k] = c
	}
	return c
}

// knownLocked reports whether user logged in from addr within
// LoginKnownFor.
func (l *loginLimiter) knownLocked(user, addr string, now time.Time) bool {
	t, ok := l.known[user][addr]
	return ok && now.Sub(t) < LoginKnownFor
}

// fail records the attempt's failure against its three keys.
func (a *loginAttempt) fail() {
	if a.settled {
		return
	}
	a.settled = true
	l := a.l
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range a.keys {
		c := l.get(k)
		if c.pending > 0 {
			c.pending--
		}
		if now.Sub(c.last) >= forgetAfter(k.scope) {
			c.failures = 0
		}
		c.failures++
		c.last = now
		if k.scope != scopeUser && c.failures >= lockFree(k.scope) {
			c.until = now.Add(lockDelay(c.failures - lockFree(k.scope)))
		}
	}
}

// lockDelay is the wait after n failures beyond the allowance.
func lockDelay(n int) time.Duration {
	if n >= 20 {
		return LoginMaxDelay
	}
	return min(LoginBaseDelay<<n, LoginMaxDelay)
}

// succeed clears the counts of the attempt's pair and address (someone
// there knows a password) and makes the address known for the user. The
// user's count from all addresses stays: a login here says nothing of the
// failures elsewhere.
func (a *loginAttempt) succeed() {
	if a.settled {
		return
	}
	a.settled = true
	l := a.l
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range a.keys {
		c := l.get(k)
		if c.pending > 0 {
			c.pending--
		}
		if k.scope != scopeUser {
			c.failures, c.until = 0, time.Time{}
		}
		l.dropIfIdleLocked(k, c)
	}
	known := l.known[a.user]
	if known == nil {
		known = map[string]time.Time{}
		l.known[a.user] = known
	}
	known[a.addr] = now
	for len(known) > maxKnownPerUser {
		oldest, first := "", true
		for addr, t := range known {
			if first || t.Before(known[oldest]) {
				oldest, first = addr, false
			}
		}
		delete(known, oldest)
	}
}

// release gives back an attempt that was neither a failure nor a success
// (the server shut down during its wait, a panic).
func (a *loginAttempt) release() {
	if a.settled {
		return
	}
	a.settled = true
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range a.keys {
		if c := l.m[k]; c != nil {
			if c.pending > 0 {
				c.pending--
			}
			l.dropIfIdleLocked(k, c)
		}
	}
}

func (l *loginLimiter) dropIfIdleLocked(k loginKey, c *loginCount) {
	if c.pending == 0 && c.failures == 0 && c.next.IsZero() {
		delete(l.m, k)
	}
}

// pruneLocked drops lapsed counts, then the least recent ones until the map
// is half full. Counts with attempts pending stay.
func (l *loginLimiter) pruneLocked(now time.Time) {
	keys := make([]loginKey, 0, len(l.m))
	for k := range l.m {
		if l.current(k, now) != nil && l.m[k].pending == 0 {
			keys = append(keys, k)
		}
	}
	if len(l.m) < maxLoginKeys {
		return
	}
	sort.Slice(keys, func(i, j int) bool { return l.m[keys[i]].last.Before(l.m[keys[j]].last) })
	for _, k := range keys {
		if len(l.m) <= maxLoginKeys/2 {
			break
		}
		delete(l.m, k)
	}
}

// pendingOf is the number of attempts pending on k (for tests).
func (l *loginLimiter) pendingOf(k loginKey) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.m[k]; c != nil {
		return c.pending
	}
	return 0
}
