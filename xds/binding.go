package xds

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/services/hysteresis"
)

// maxRounds bounds the requests of one REGISTER exchange: challenge,
// answer, 423, challenge, answer, and one stale nonce.
const maxRounds = 6

// binding is this node's registration at one MDS.
type binding struct {
	r         *Registrar
	idx       int
	name      string
	user      string
	password  string  // secret: never in logs, errors, events or status
	target    sip.Uri // Request-URI: the MDS registrar
	transport string  // UDP, TCP or TLS
	client    *sipgo.Client
	aor       sip.Uri // To and From: sip:user@registrar-host
	callID    string  // constant for the binding's life
	timerF    time.Duration
	fromTag   string
	log       *slog.Logger

	// opMu serializes the REGISTER exchanges so CSeq only grows.
	opMu sync.Mutex
	cseq uint32

	mu          sync.Mutex
	gen         uint64             // bumped by every start
	cancel      context.CancelFunc // of the running loop, nil when stopped
	done        chan struct{}      // closed when that loop has returned
	asked       int                // Expires asked; raised by 423
	registered  bool
	expiresAt   time.Time
	nextRefresh time.Time
	code        int           // last final status to REGISTER
	errText     string        // last failure, "" after a success
	kick        chan struct{} // asks the loop for a REGISTER now
	pending     bool          // an unregistration is being retried
	notBefore   time.Time     // no REGISTER before (Retry-After)
	attempt     int           // REGISTERs failed in a row, for the backoff
	noQueries   sync.Once     // logs that the MDS refuses binding queries

	// reach says whether the MDS answers OPTIONS (under mu). It is
	// FirstDecides: the very first probe decides, then rise and fall apply.
	reach hysteresis.Hysteresis
}

func newBinding(r *Registrar, i int, m MDS) (*binding, error) {
	name := m.Name
	if name == "" {
		name = fmt.Sprintf("mds%d", i+1)
	}
	target, err := parseRegistrar(m.Registrar)
	if err != nil {
		return nil, fmt.Errorf("xds.mds[%d].registrar: %w", i, err)
	}
	var transport string
	switch strings.ToLower(m.Transport) {
	case "", "udp":
		transport = "UDP"
	case "tcp":
		transport = "TCP"
	case "tls":
		transport = "TLS"
		if target.Port == 0 {
			target.Port = 5061
		}
	default:
		return nil, fmt.Errorf("xds.mds[%d].transport: %q is not udp, tcp or tls", i, m.Transport)
	}
	expires := m.Expires
	if expires <= 0 {
		expires = DefaultExpires
	}
	// The address of record: the digest user at the registrar's domain,
	// or the contact's user when the registrar needs no authentication.
	aorUser := m.User
	if aorUser == "" {
		aorUser = r.contact.User
	}
	return &binding{
		r:         r,
		idx:       i,
		name:      name,
		user:      m.User,
		password:  m.Password,
		target:    target,
		transport: transport,
		aor:       sip.Uri{Scheme: "sip", User: aorUser, Host: target.Host},
		callID:    randHex(16) + "@" + r.opts.Hostname,
		fromTag:   randHex(8),
		log:       r.log.With("mds", name),
		asked:     expires,
		kick:      make(chan struct{}, 1),
		timerF:    timerF(r.opts, name),
		reach:     hysteresis.New(r.opts.Rise, r.opts.Fall, hysteresis.FirstDecides),
	}, nil
}

// timerF is the Timer F of the MDS named name: from Options.MDSTimers,
// else Options.Timers, else RFC 3261's 64*T1 with T1 500ms; never more
// than sipgo's own Timer F, which ends its transactions.
func timerF(o Options, name string) time.Duration {
	for _, t := range []Timers{o.MDSTimers[name], o.Timers} {
		switch {
		case t.TimerF > 0:
			return min(t.TimerF, 64*sip.T1)
		case t.T1 > 0:
			return min(64*t.T1, 64*sip.T1)
		}
	}
	return min(64*DefaultT1, 64*sip.T1)
}

// start launches the registration loop.
func (b *binding) start(base context.Context, wg *sync.WaitGroup) {
	ctx, cancel := context.WithCancel(base)
	done := make(chan struct{})
	b.mu.Lock()
	b.gen++ // ends any unregistration retries
	b.cancel, b.done = cancel, done
	b.pending = false
	b.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		b.loop(ctx)
	}()
}

// stop ends the registration loop now and returns the unregistration, to
// run once the loop has returned; without send (a shared contact) that
// only forgets the binding.
func (b *binding) stop(send bool) func(context.Context) error {
	b.mu.Lock()
	cancel, done, gen := b.cancel, b.done, b.gen
	b.cancel, b.done = nil, nil
	b.nextRefresh = time.Time{}
	if cancel != nil {
		cancel()
	}
	b.mu.Unlock()
	forget := func() {
		b.mu.Lock()
		b.registered, b.expiresAt = false, time.Time{}
		b.mu.Unlock()
	}
	return func(ctx context.Context) error {
		if done != nil {
			select {
			case <-done:
			case <-ctx.Done():
				// The loop, cancelled, ends at once: the unregistration
				// follows it in the background, retried as any.
				b.r.wg.Add(1)
				go func() {
					defer b.r.wg.Done()
					<-done
					if !send {
						forget()
						return
					}
					_ = b.unregister(b.r.base, gen)
				}()
				return fmt.Errorf("%s: unregister: %w", b.name, ctx.Err())
			}
		}
		if !send {
			forget()
			return nil
		}
		return b.unregister(ctx, gen)
	}
}

// loop registers, then refreshes at 3/4 of the granted Expires, retrying
// failures with backoff, until ctx is done. Between REGISTERs it verifies
// the binding (idle).
func (b *binding) loop(ctx context.Context) {
	select { // a kick from before this loop is stale: it registers now anyway
	case <-b.kick:
	default:
	}
	if b.held() > 0 && !b.idle(ctx, time.Now(), false) { // Retry-After first
		return
	}
	b.mu.Lock()
	b.attempt = 0
	b.mu.Unlock()
	for {
		_, err := b.register(ctx) // sets nextRefresh before it reports
		b.mu.Lock()
		if ctx.Err() != nil {
			b.mu.Unlock()
			return
		}
		due := b.nextRefresh
		b.mu.Unlock()

		if !b.idle(ctx, due, err == nil) {
			return
		}
	}
}

// schedule sets the next REGISTER after one that ended with err: the
// refresh (in) after a success, else the retry after backoff, or after
// Retry-After. It is set before the outcome is reported, so that whoever
// hears of it sees when the next one comes.
func (b *binding) schedule(ctx context.Context, err error, in time.Duration) {
	hold := b.holdFor(err)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		b.attempt = 0
	} else {
		b.attempt++
		in = max(backoff(b.attempt, b.r.opts.BackoffMin, b.r.opts.BackoffMax, mrand.Float64()), hold)
	}
	if ctx.Err() == nil {
		b.nextRefresh = time.Now().Add(in)
	}
}

// idle waits until the next REGISTER is due, a kick asks for one at once
// (the MDS is reachable again), or, while held, a binding query every
// VerifyInterval finds our contact missing (or the MDS refuses queries:
// the REGISTER then verifies). Retry-After delays all of it. It returns
// false when ctx ends.
func (b *binding) idle(ctx context.Context, due time.Time, held bool) bool {
	for {
		next, verify := due, false
		if held {
			if v := time.Now().Add(b.r.opts.VerifyInterval); v.Before(due) {
				next, verify = v, true
			}
		}
		if d := b.held(); d > 0 && time.Until(next) < d {
			next = time.Now().Add(d)
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-b.kick:
			t.Stop()
			if b.held() > 0 {
				continue // Retry-After first: the timer is due no sooner
			}
			return true
		case <-t.C:
		}
		if b.held() > 0 {
			continue
		}
		if !verify {
			return true
		}
		switch b.verify(ctx) {
		case verified:
			held = true
		case verifyFailed:
			held = b.isRegistered()
		default: // lost, or queries refused: register now
			return ctx.Err() == nil
		}
		if ctx.Err() != nil {
			return false
		}
	}
}

// kickLoop asks the running registration loop, or the unregistration
// retries, if any, for a REGISTER now.
func (b *binding) kickLoop() {
	b.mu.Lock()
	running := b.cancel != nil || b.pending
	b.mu.Unlock()
	if !running {
		return
	}
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// register performs one REGISTER exchange and records its outcome. It
// returns the delay until the refresh.
func (b *binding) register(ctx context.Context) (time.Duration, error) {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	b.mu.Lock()
	asked := b.asked
	b.mu.Unlock()

	start := time.Now()
	res, asked, err := b.exchange(ctx, b.r.contact.Clone(), asked)
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	granted := 0
	if err == nil {
		granted, err = b.granted(res, asked)
	}
	code := statusCode(res)
	if err != nil {
		b.schedule(ctx, err, 0)
		b.failed(ctx, err, code)
		return 0, err
	}
	refresh := time.Duration(granted) * time.Second * 3 / 4
	b.schedule(ctx, nil, refresh)
	b.succeeded(ctx, start, granted, code)
	b.removePeer(ctx, res)
	return refresh, nil
}

// removePeer removes the peer's contact when RemovePeer applies and res,
// a 200 OK, lists it. Under opMu.
func (b *binding) removePeer(ctx context.Context, res *sip.Response) {
	peer := b.r.peerToRemove()
	if peer == nil || !lists(res, *peer) {
		return
	}
	rm, _, err := b.exchange(ctx, peer.Clone(), 0)
	if ctx.Err() != nil {
		return
	}
	if err == nil && !isSuccess(rm) {
		err = b.responseError(rm, "removal of the peer's contact", "")
	}
	if err == nil && lists(rm, *peer) {
		err = fmt.Errorf("%s: the peer's contact %s is still listed after its removal", b.name, peer)
	}
	if err != nil {
		b.log.Warn("removing the peer's contact failed", "peer_contact", peer.String(), "error", err)
	} else {
		b.log.Info("removed the peer's contact", "peer_contact", peer.String())
	}
	b.r.emit(Event{MDS: b.name, Kind: EventPeerRemoved, Err: err, StatusCode: statusCode(rm)})
}

// lists reports whether res names contact among its Contact headers.
func lists(res *sip.Response, contact sip.Uri) bool {
	for _, h := range res.GetHeaders("Contact") {
		if c, ok := h.(*sip.ContactHeader); ok && sameURI(c.Address, contact) {
			return true
		}
	}
	return false
}

// Outcomes of a binding query.
const (
	verified       = iota // our contact is listed
	lost                  // a 200 OK without it
	queriesRefused        // the MDS refuses queries: verify by REGISTER
	verifyFailed          // no answer, or a refusal to report
)

// verify sends a binding query (REGISTER without Contact, RFC 3261
// 10.2.3): the 200 OK lists the contacts the MDS holds. A binding found
// missing is recorded as not registered; a failure is recorded as for a
// refresh (the binding then stands until it lapses), except a plain
// refusal of the query (not about credentials, no Retry-After), which
// only asks for a REGISTER instead.
func (b *binding) verify(ctx context.Context) int {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	start := time.Now()
	res, _, err := b.exchange(ctx, nil, 0)
	if ctx.Err() != nil {
		return verifyFailed
	}
	left := 0
	if err == nil {
		left, err = b.listedExpires(res, "binding query")
	}
	var re *ResponseError
	switch {
	case err == nil:
		b.confirmed(ctx, start, left)
		b.removePeer(ctx, res)
		return verified
	case errors.As(err, &re) && re.Kind == KindNotHeld:
		b.failed(ctx, err, statusCode(res))
		return lost
	case errors.As(err, &re) && re.Kind == KindRefused && re.RetryAfter == 0 && re.Hint == "":
		b.noQueries.Do(func() {
			b.log.Info("the MDS refuses binding queries: verifying by REGISTER instead", "error", err)
		})
		return queriesRefused
	}
	b.holdFor(err)
	b.failed(ctx, err, statusCode(res))
	return verifyFailed
}

func (b *binding) isRegistered() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.registeredAt(time.Now())
}

// confirmed records a binding query that found our contact, with left
// seconds to run.
func (b *binding) confirmed(ctx context.Context, start time.Time, left int) {
	b.mu.Lock()
	if ctx.Err() != nil {
		b.mu.Unlock()
		return
	}
	recovered := b.errText != ""
	if left > 0 {
		b.expiresAt = start.Add(time.Duration(left) * time.Second)
	}
	b.errText = ""
	b.mu.Unlock()
	if recovered {
		b.log.Info("binding confirmed by a query")
		b.r.emit(Event{MDS: b.name, Kind: EventRegistered, StatusCode: 200})
		return
	}
	b.log.Debug("binding confirmed", "expires", left)
}

func (b *binding) succeeded(ctx context.Context, start time.Time, granted, code int) {
	now := time.Now()
	b.mu.Lock()
	if ctx.Err() != nil {
		b.mu.Unlock()
		return
	}
	recovered := !b.registeredAt(now) || b.errText != ""
	b.registered = true
	b.expiresAt = start.Add(time.Duration(granted) * time.Second)
	b.code = code
	b.errText = ""
	b.mu.Unlock()

	b.r.metrics.seconds.Observe(now.Sub(start).Seconds())
	if recovered {
		b.log.Info("registered", "expires", granted, "status", code)
		b.r.emit(Event{MDS: b.name, Kind: EventRegistered, StatusCode: code})
		return
	}
	b.log.Debug("registration refreshed", "expires", granted)
}

func (b *binding) failed(ctx context.Context, err error, code int) {
	now := time.Now()
	b.mu.Lock()
	if ctx.Err() != nil {
		b.mu.Unlock()
		return
	}
	changed := err.Error() != b.errText
	b.errText = err.Error()
	if code != 0 {
		b.code = code
	}
	var re *ResponseError
	if !b.registeredAt(now) || (errors.As(err, &re) && re.Kind == KindNotHeld) {
		// the MDS said it does not hold our contact: believe it
		b.registered, b.expiresAt = false, time.Time{}
	}
	b.mu.Unlock()

	b.r.metrics.failures.WithLabelValues(b.name, failureCode(err)).Inc()
	if !changed {
		b.log.Debug("registration still failing", "error", err)
		return
	}
	b.log.Warn("registration failed", "error", err)
	b.r.emit(Event{MDS: b.name, Kind: EventFailed, Err: err, StatusCode: code})
}

// errSuperseded: the binding was started again since the unregistration
// was asked for.
var errSuperseded = errors.New("registering again")

// unregister removes our contact (Expires: 0) unless the binding was
// started again since stop (gen changed). The first attempt is bounded by
// ctx; a failed one is retried in the background (retryUnregister) until
// the MDS confirms, the binding would have lapsed anyway, the binding is
// started again, or the Registrar stops.
func (b *binding) unregister(ctx context.Context, gen uint64) error {
	b.mu.Lock()
	deadline := b.expiresAt
	if !b.registeredAt(time.Now()) {
		// a binding from a previous run lasts at most what it asked
		deadline = time.Now().Add(time.Duration(b.asked) * time.Second)
	}
	b.mu.Unlock()
	var err error
	if d := b.held(); d > 0 {
		err = fmt.Errorf("%s: unregistration deferred by %s: the MDS asked for no REGISTER before then (Retry-After)", b.name, d.Round(time.Second))
		b.log.Warn("unregistration deferred", "error", err)
		b.r.emit(Event{MDS: b.name, Kind: EventUnregistered, Err: err})
	} else {
		err = b.unregisterOnce(ctx, gen)
	}
	switch {
	case err == nil, errors.Is(err, errSuperseded):
		return nil
	case b.r.base.Err() != nil:
		return err // stopping: no retries
	}
	b.r.wg.Add(1)
	go func() {
		defer b.r.wg.Done()
		b.retryUnregister(gen, deadline)
	}()
	return err
}

// retryUnregister retries the unregistration with backoff until deadline.
func (b *binding) retryUnregister(gen uint64, deadline time.Time) {
	ctx := b.r.base
	for attempt := 1; ; attempt++ {
		wait := max(backoff(attempt, b.r.opts.BackoffMin, b.r.opts.BackoffMax, mrand.Float64()), b.held())
		next := time.Now().Add(wait)
		b.mu.Lock()
		if b.gen != gen {
			b.mu.Unlock()
			return
		}
		if !next.Before(deadline) {
			err := fmt.Errorf("%s: unregistration abandoned after %d attempts: the binding lapses by %s (last error: %s)",
				b.name, attempt, deadline.UTC().Format(time.RFC3339), b.errText)
			b.pending, b.nextRefresh = false, time.Time{}
			b.errText = err.Error()
			b.mu.Unlock()
			b.log.Warn("unregistration abandoned", "error", err)
			b.r.emit(Event{MDS: b.name, Kind: EventUnregistered, Err: err})
			return
		}
		b.pending, b.nextRefresh = true, next
		b.mu.Unlock()

		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-b.kick: // reachable again: at once, unless Retry-After holds
			t.Stop()
			if d := b.held(); d > 0 {
				attempt--
				continue
			}
		case <-t.C:
		}
		err := b.unregisterOnce(ctx, gen)
		if err == nil || errors.Is(err, errSuperseded) || ctx.Err() != nil {
			return
		}
		b.holdFor(err)
	}
}

// unregisterOnce sends one unregistration and records its outcome: on
// success the binding is gone; on failure it stands as it was (until it
// lapses), with the error, reported once per distinct error.
func (b *binding) unregisterOnce(ctx context.Context, gen uint64) error {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	b.mu.Lock()
	again := b.gen != gen
	b.mu.Unlock()
	if again {
		return errSuperseded
	}

	res, _, err := b.exchange(ctx, b.r.contact.Clone(), 0)
	if err == nil && !isSuccess(res) {
		err = b.responseError(res, "unregistration", "")
	}
	code := statusCode(res)
	b.mu.Lock()
	if b.gen != gen {
		b.mu.Unlock()
		return errSuperseded
	}
	if code != 0 {
		b.code = code
	}
	changed := true
	if err != nil {
		changed = err.Error() != b.errText
		b.errText = err.Error()
	} else {
		b.registered, b.expiresAt = false, time.Time{}
		b.errText, b.pending, b.nextRefresh = "", false, time.Time{}
	}
	b.mu.Unlock()

	switch {
	case err == nil:
		b.log.Info("unregistered", "status", code)
	case changed:
		b.log.Warn("unregister failed", "error", err)
	default:
		b.log.Debug("unregister still failing", "error", err)
		return err
	}
	b.r.emit(Event{MDS: b.name, Kind: EventUnregistered, Err: err, StatusCode: code})
	return err
}

// exchange sends REGISTER binding contact for expires seconds (0 removes
// that contact, and only it: never Contact: *), or, with a nil contact, a
// binding query. It answers digest challenges and 423 Interval Too Brief,
// and returns the final response with the Expires finally asked.
func (b *binding) exchange(ctx context.Context, contact *sip.Uri, expires int) (*sip.Response, int, error) {
	creds := map[string]sip.Header{} // Authorization, Proxy-Authorization
	stale, brief := 0, false
	what := "registration"
	switch {
	case contact == nil:
		what = "binding query"
	case expires == 0 && !sameURI(*contact, b.r.contact):
		what = "removal of " + contact.String()
	case expires == 0:
		what = "unregistration"
	}
	for range maxRounds {
		req := b.newRequest(ctx, sip.REGISTER)
		if contact != nil {
			c := &sip.ContactHeader{Address: *contact.Clone(), Params: sip.NewParams()}
			if expires == 0 {
				c.Params.Add("expires", "0")
			} else if sameURI(*contact, b.r.contact) {
				for _, p := range b.r.contactParams() {
					c.Params.Add(p[0], p[1])
				}
			}
			req.AppendHeader(c)
			e := sip.ExpiresHeader(expires)
			req.AppendHeader(&e)
		}
		for _, name := range []string{"Proxy-Authorization", "Authorization"} {
			if h, ok := creds[name]; ok {
				req.AppendHeader(h)
			}
		}
		req.SetBody(nil)
		res, err := b.do(ctx, req)
		if err != nil {
			return nil, expires, err
		}
		switch res.StatusCode {
		case 401, 407:
			chalName, credName := "WWW-Authenticate", "Authorization"
			if res.StatusCode == 407 {
				chalName, credName = "Proxy-Authenticate", "Proxy-Authorization"
			}
			chal, err := b.pickChallenge(res, chalName)
			if err != nil {
				return res, expires, err
			}
			if b.user == "" {
				e := b.responseError(res, what, "")
				e.Hint = fmt.Sprintf("the registrar asks for authentication: set xds.mds[%d].user and password", b.idx)
				return res, expires, e
			}
			if _, answered := creds[credName]; answered {
				if !chal.Stale || stale > 0 {
					return res, expires, b.responseError(res, what, "after authentication")
				}
				stale++
			}
			cred, err := answerChallenge(chal, string(sip.REGISTER), req.Recipient.String(), b.user, b.password)
			if err != nil {
				// digest errors name the algorithm or qop, never the secret.
				return res, expires, fmt.Errorf("%s: cannot answer the challenge in %s: %w", b.name, res.StartLine(), err)
			}
			creds[credName] = sip.NewHeader(credName, cred.String())
		case 423:
			h := res.GetHeader("Min-Expires")
			if h == nil || brief || expires == 0 || contact == nil {
				return res, expires, b.responseError(res, what, "")
			}
			n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
			if err != nil || n <= expires {
				return res, expires, b.malformed(res, fmt.Sprintf("invalid Min-Expires %q", h.Value()))
			}
			b.log.Info("registrar asks a longer Expires", "asked", expires, "min_expires", n)
			expires, brief = n, true
			b.mu.Lock()
			b.asked = n
			b.mu.Unlock()
			clear(creds) // a fresh challenge: the nonce may be single use
		default:
			return res, expires, nil
		}
	}
	return nil, expires, fmt.Errorf("%s: REGISTER to %s: gave up after %d challenges", b.name, b.where(), maxRounds)
}

// digestRank orders the digest algorithms we answer, by strength, without
// their -sess suffix; "" is MD5 (RFC 2617).
var digestRank = map[string]int{"": 1, "MD5": 1, "SHA-256": 2, "SHA-512-256": 3}

// maxChallengeSize bounds the realm, nonce and opaque of a challenge we
// answer: they go back in the Authorization header, and a REGISTER over
// UDP must stay under 1,300 bytes (RFC 3261 18.1.1). Real registrars send
// a few dozen bytes.
const maxChallengeSize = 512

func challengeSize(c *digest.Challenge) int { return len(c.Realm) + len(c.Nonce) + len(c.Opaque) }

// pickChallenge reads every challenge (header name) of res and returns the
// one we answer: the strongest algorithm among those we support with qop
// auth or none. None readable is malformed; none supported is
// KindUnsupported, saying why each was not.
func (b *binding) pickChallenge(res *sip.Response, name string) (*digest.Challenge, error) {
	hs := res.GetHeaders(name)
	if len(hs) == 0 {
		return nil, b.malformed(res, "no "+name+" header")
	}
	var (
		best     *digest.Challenge
		bestRank int
		why      []string
		readable bool
	)
	for _, h := range hs {
		chal, err := digest.ParseChallenge(h.Value())
		if err != nil {
			continue
		}
		readable = true
		alg := strings.ToUpper(chal.Algorithm)
		base, sess := strings.CutSuffix(alg, "-SESS")
		rank, known := digestRank[base]
		known = known && !(sess && base == "") // "-sess" names no hash
		var no string
		switch {
		case challengeSize(chal) > maxChallengeSize:
			no = fmt.Sprintf("a challenge of %d bytes (realm, nonce, opaque) is not supported: the REGISTER answering it would pass the 1,300 bytes RFC 3261 allows over UDP", challengeSize(chal))
		case !known:
			no = "algorithm " + chal.Algorithm + " is not supported"
		case len(chal.QOP) > 0 && !chal.SupportsQOP("auth"):
			no = "qop " + strings.Join(chal.QOP, ",") + " is not supported"
		case sess && len(chal.QOP) == 0:
			no = "algorithm " + chal.Algorithm + " without qop is not supported"
		}
		if no != "" {
			if !slices.Contains(why, no) {
				why = append(why, no)
			}
			continue
		}
		if rank > bestRank {
			best, bestRank = chal, rank
		}
	}
	switch {
	case best != nil:
		return best, nil
	case !readable:
		return nil, b.malformed(res, "unreadable "+name+" header")
	}
	return nil, &ResponseError{MDS: b.name, Kind: KindUnsupported, StatusCode: res.StatusCode, Reason: res.Reason,
		Detail: strings.Join(why, "; ")}
}

// answerChallenge computes the digest credentials for chal (RFC 7616,
// RFC 2617): qop auth when offered, else none; for a -sess algorithm A1
// is H(H(user:realm:password):nonce:cnonce).
func answerChallenge(chal *digest.Challenge, method, uri, user, password string) (*digest.Credentials, error) {
	alg := strings.ToUpper(chal.Algorithm)
	base, sess := strings.CutSuffix(alg, "-SESS")
	c := *chal
	c.Algorithm = base
	c.QOP = nil
	if chal.SupportsQOP("auth") {
		c.QOP = []string{"auth"}
	}
	o := digest.Options{Method: method, URI: uri, Username: user, Password: password, Cnonce: randHex(8), Count: 1}
	if sess {
		newHash := sha256.New
		switch base {
		case "MD5":
			newHash = md5.New
		case "SHA-512-256":
			newHash = sha512.New512_256
		}
		o.A1 = hexHash(newHash, hexHash(newHash, user+":"+chal.Realm+":"+password)+":"+chal.Nonce+":"+o.Cnonce)
	}
	cred, err := digest.Digest(&c, o)
	if err != nil {
		return nil, err
	}
	if chal.Algorithm != "" {
		cred.Algorithm = chal.Algorithm // as offered, -sess included
	}
	return cred, nil
}

func hexHash(newHash func() hash.Hash, s string) string {
	h := newHash()
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

// granted reads the Expires granted by a final answer to REGISTER: the
// expires parameter of our Contact, else the Expires header, else what was
// asked; never more than asked. A success that does not list our contact
// is an error: the MDS does not hold it.
func (b *binding) granted(res *sip.Response, asked int) (int, error) {
	left, err := b.listedExpires(res, "registration")
	if err != nil {
		return 0, err
	}
	granted := asked
	if left >= 0 {
		granted = left
	}
	if granted == 0 {
		return 0, b.malformed(res, "binding granted for 0 seconds")
	}
	return min(granted, asked), nil
}

// listedExpires checks a final answer to a REGISTER that binds or queries
// (what): it must be a success listing our contact (RFC 3261 10.3 step 8:
// a 200 OK lists every binding of the address of record). It returns the
// seconds our binding has left, from its expires parameter or else the
// Expires header; -1 when the answer tells neither.
func (b *binding) listedExpires(res *sip.Response, what string) (int, error) {
	switch {
	case isSuccess(res):
	case res.StatusCode >= 300 && res.StatusCode < 400, res.StatusCode < 200:
		return 0, &ResponseError{MDS: b.name, Kind: KindUnexpected, StatusCode: res.StatusCode, Reason: res.Reason}
	default:
		return 0, b.responseError(res, what, "")
	}
	left := -1
	if h := res.GetHeader("Expires"); h != nil {
		n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
		if err != nil || n < 0 {
			return 0, b.malformed(res, fmt.Sprintf("invalid Expires header %q", h.Value()))
		}
		left = n
	}
	found, listed := false, 0
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			continue
		}
		listed++
		if !sameURI(c.Address, b.r.contact) {
			continue
		}
		found = true
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 {
				return 0, b.malformed(res, fmt.Sprintf("invalid expires parameter %q in our Contact", v))
			}
			left = n
		}
	}
	if !found {
		return 0, b.notHeld(res, listed)
	}
	return left, nil
}

func (b *binding) notHeld(res *sip.Response, listed int) error {
	n := "no contact"
	switch {
	case listed == 1:
		n = "1 contact"
	case listed > 1:
		n = strconv.Itoa(listed) + " contacts"
	}
	return &ResponseError{MDS: b.name, Kind: KindNotHeld, StatusCode: res.StatusCode, Reason: res.Reason,
		Detail: "lists " + n + ", not ours (" + b.r.contact.String() + ")"}
}

// do runs one transaction: it waits RequestTimeout for an answer, and
// once a provisional one came (100 Trying), up to Timer F from the start
// for the final one (RFC 3261 17.1.2.2). ctx bounds it all.
func (b *binding) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	first := min(b.r.opts.RequestTimeout, b.timerF)
	tctx, cancel := context.WithTimeout(ctx, b.timerF)
	defer cancel()
	tx, err := b.client.TransactionRequest(tctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %s: %w", b.name, req.Method, ctx.Err())
		}
		return nil, fmt.Errorf("%s: %s to %s: %w", b.name, req.Method, b.where(), err)
	}
	defer tx.Terminate()
	answer := time.NewTimer(first)
	defer answer.Stop()
	var prov *sip.Response
	for {
		select {
		case res := <-tx.Responses():
			if !res.IsProvisional() {
				return res, nil
			}
			if prov == nil {
				prov = res
				answer.Stop() // from now on Timer F (tctx) bounds the wait
			}
			continue
		case <-answer.C:
		case <-tx.Done():
			err = tx.Err()
		case <-tctx.Done():
		}
		if f, ok := b.r.parsed.take(branchOf(req)); ok && prov == nil {
			return nil, unreadableError(fmt.Sprintf("%s: unreadable response to %s from %s: %s (in %q)",
				b.name, req.Method, b.where(), f.err, f.firstLine))
		}
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%s: %s: %w", b.name, req.Method, ctx.Err())
		case prov != nil && (err == nil || tctx.Err() != nil || errors.Is(err, sip.ErrTransactionTimeout)):
			return nil, fmt.Errorf("%s: no final response to %s from %s: %d %s, then nothing within %s: %w",
				b.name, req.Method, b.where(), prov.StatusCode, prov.Reason, b.timerF, context.DeadlineExceeded)
		case err == nil, tctx.Err() != nil, errors.Is(err, sip.ErrTransactionTimeout):
			return nil, fmt.Errorf("%s: no response to %s from %s within %s: %w", b.name, req.Method, b.where(), first, context.DeadlineExceeded)
		default:
			return nil, fmt.Errorf("%s: %s to %s: %w", b.name, req.Method, b.where(), err)
		}
	}
}

// branchOf is the branch of the request's top Via, "" if none.
func branchOf(req *sip.Request) string {
	if v := req.Via(); v != nil {
		b, _ := v.Params.Get("branch")
		return b
	}
	return ""
}

// newRequest builds a request of this binding's dialog-less session:
// constant Call-ID and From tag, next CSeq for REGISTER.
func (b *binding) newRequest(ctx context.Context, method sip.RequestMethod) *sip.Request {
	req := sip.NewRequest(method, *b.target.Clone())
	req.SetTransport(b.transport)
	if b.r.source != nil {
		req.Laddr = sip.Addr{IP: b.r.source}
	}
	if p := b.r.proxy; p != nil {
		// loose routing (RFC 3261 16.12): sent to the proxy, which
		// forwards to the Request-URI
		route := sip.Uri{Scheme: "sip", Host: p.Host, Port: p.Port, UriParams: sip.NewParams()}
		route.UriParams.Add("lr", "")
		req.AppendHeader(&sip.RouteHeader{Address: route})
	}
	req.AppendHeader(b.newVia(ctx))
	from := &sip.FromHeader{Address: *b.aor.Clone(), Params: sip.NewParams()}
	to := &sip.ToHeader{Address: *b.aor.Clone(), Params: sip.NewParams()}
	callID := sip.CallIDHeader(b.callID)
	var seq uint32 = 1
	if method == sip.REGISTER {
		b.cseq++ // under opMu
		seq = b.cseq
	} else {
		// probes are separate transactions of their own, outside the
		// registration's Call-ID
		from.Address = sip.Uri{Scheme: "sip", User: "resman", Host: b.r.opts.Hostname}
		to.Address = *b.target.Clone()
		callID = sip.CallIDHeader(randHex(16) + "@" + b.r.opts.Hostname)
	}
	tag := b.fromTag
	if method != sip.REGISTER {
		tag = randHex(8)
	}
	from.Params.Add("tag", tag)
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	req.AppendHeader(&mf)
	req.AppendHeader(sip.NewHeader("User-Agent", "resman"))
	return req
}

// newVia is the Via of a new transaction, with rport (RFC 3581). Over UDP
// the host is the source address, or without one (sipgo's socket is then
// bound to the unspecified address, which must not be the sent-by) the
// local address routing to the MDS. Over TCP the connection's own address
// fills it in.
func (b *binding) newVia(ctx context.Context) *sip.ViaHeader {
	v := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: b.transport, Params: sip.NewParams()}
	v.Params.Add("branch", sip.GenerateBranchN(16))
	v.Params.Add("rport", "")
	switch {
	case b.transport != "UDP":
	case b.r.source != nil:
		v.Host = b.r.source.String()
	default:
		v.Host = b.localHost(ctx)
	}
	return v
}

// localHost is the local IP the system routes to the MDS from, "" if that
// cannot be told. Connecting a UDP socket sends nothing; it is asked anew
// every time, as routes change.
func (b *binding) localHost(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, b.r.opts.RequestTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", b.nextHop())
	if err != nil {
		return ""
	}
	defer c.Close()
	a, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok || a.IP.IsUnspecified() {
		return ""
	}
	return a.IP.String()
}

// probeLoop sends OPTIONS every ProbeInterval until ctx is done.
func (b *binding) probeLoop(ctx context.Context) {
	t := time.NewTicker(b.r.opts.ProbeInterval)
	defer t.Stop()
	for {
		b.probe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe sends one OPTIONS; any final answer, whatever its status, means the
// MDS is alive.
func (b *binding) probe(ctx context.Context) {
	timeout := min(b.r.opts.RequestTimeout, b.r.opts.ProbeInterval)
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req := b.newRequest(tctx, sip.OPTIONS)
	req.SetBody(nil)
	res, err := b.client.Do(tctx, req)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		f, unreadable := b.r.parsed.take(branchOf(req))
		switch {
		case unreadable:
			err = unreadableError(fmt.Sprintf("%s: unreadable response to OPTIONS from %s: %s (in %q)", b.name, b.where(), f.err, f.firstLine))
		case tctx.Err() != nil || errors.Is(err, sip.ErrTransactionTimeout):
			err = fmt.Errorf("%s: no response to OPTIONS from %s within %s: %w", b.name, b.where(), timeout, context.DeadlineExceeded)
		default:
			err = fmt.Errorf("%s: OPTIONS to %s: %w", b.name, b.where(), err)
		}
	}

	b.mu.Lock()
	var ev *Event
	before := b.reach.State()
	back := false // reachable after being unreachable (not after the first probe)
	switch {
	case !b.reach.Observe(err == nil):
	case err == nil:
		back = before == hysteresis.Down
		ev = &Event{MDS: b.name, Kind: EventReachable, StatusCode: res.StatusCode}
	default:
		ev = &Event{MDS: b.name, Kind: EventUnreachable, Err: err}
	}
	b.mu.Unlock()

	if ev == nil {
		return
	}
	if ev.Kind == EventReachable {
		b.log.Info("MDS reachable", "status", res.StatusCode)
		if back {
			// it may have lost our binding while away, and a retry
			// may be far off: register at once
			b.kickLoop()
		}
	} else {
		b.log.Warn("MDS unreachable", "error", err)
	}
	b.r.emit(*ev)
}

// status is the snapshot of this binding; registeredAt needs b.mu.
func (b *binding) status(now time.Time) api.Registration {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := api.Registration{
		MDS:        b.name,
		Registered: b.registeredAt(now),
		Error:      b.errText,
		Reachable:  b.reach.State() == hysteresis.Up,
		StatusCode: b.code,
	}
	if st.Registered {
		st.ExpiresAt = b.expiresAt
	}
	if b.cancel != nil || b.pending {
		st.NextRefresh = b.nextRefresh
	}
	return st
}

// registeredAt: the last REGISTER was accepted and has not lapsed.
func (b *binding) registeredAt(now time.Time) bool {
	return b.registered && now.Before(b.expiresAt)
}

// where is the transport and address of the MDS, for messages, and of the
// outbound proxy if any.
func (b *binding) where() string {
	w := strings.ToLower(b.transport) + " " + hostPort(b.target)
	if b.r.proxy != nil {
		w += " through the outbound proxy " + hostPort(*b.r.proxy)
	}
	return w
}

// nextHop is the host:port requests are sent to: the outbound proxy, or
// the MDS.
func (b *binding) nextHop() string {
	if b.r.proxy != nil {
		return hostPort(*b.r.proxy)
	}
	return hostPort(b.target)
}

func hostPort(u sip.Uri) string {
	port := u.Port
	if port == 0 {
		port = 5060
	}
	return net.JoinHostPort(strings.Trim(u.Host, "[]"), strconv.Itoa(port))
}

func (b *binding) responseError(res *sip.Response, what, detail string) *ResponseError {
	e := &ResponseError{MDS: b.name, Kind: KindRefused, What: what, StatusCode: res.StatusCode, Reason: res.Reason, Detail: detail}
	switch res.StatusCode {
	case 401, 403, 407:
		e.Hint = fmt.Sprintf("check xds.mds[%d].user/password", b.idx)
	case 500, 503, 480, 486:
		if d := retryAfter(res); d > 0 {
			e.RetryAfter = d
			e.Hint = fmt.Sprintf("the MDS asks to retry after %ds", int(d/time.Second))
		}
	}
	return e
}

// maxRetryAfter caps what an MDS may ask: a mistaken Retry-After of days
// must not keep the PBX off it that long.
const maxRetryAfter = time.Hour

// retryAfter reads the Retry-After header (RFC 3261 20.33: seconds, then
// an optional comment and parameters); 0 if absent or unreadable.
func retryAfter(res *sip.Response) time.Duration {
	h := res.GetHeader("Retry-After")
	if h == nil {
		return 0
	}
	v := strings.TrimSpace(h.Value())
	end := 0
	for end < len(v) && v[end] >= '0' && v[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(v[:end])
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, maxRetryAfter)
}

// holdFor records the Retry-After carried by err, if any: no REGISTER to
// this MDS before it has passed. It returns the delay left.
func (b *binding) holdFor(err error) time.Duration {
	var re *ResponseError
	if errors.As(err, &re) && re.RetryAfter > 0 {
		b.mu.Lock()
		b.notBefore = time.Now().Add(re.RetryAfter)
		b.mu.Unlock()
	}
	return b.held()
}

// held is how long Retry-After still forbids a REGISTER, 0 if not.
func (b *binding) held() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(0, time.Until(b.notBefore))
}

func (b *binding) malformed(res *sip.Response, detail string) error {
	return &ResponseError{MDS: b.name, Kind: KindMalformed, StatusCode: res.StatusCode, Reason: res.Reason, Detail: detail}
}

func isSuccess(res *sip.Response) bool {
	return res != nil && res.StatusCode >= 200 && res.StatusCode < 300
}

func statusCode(res *sip.Response) int {
	if res == nil {
		return 0
	}
	return res.StatusCode
}

// sameURI compares the parts of a contact a registrar must keep.
func sameURI(a, b sip.Uri) bool {
	port := func(u sip.Uri) int {
		if u.Port == 0 {
			return 5060
		}
		return u.Port
	}
	scheme := func(u sip.Uri) string {
		if u.Scheme == "" {
			return "sip"
		}
		return strings.ToLower(u.Scheme)
	}
	return scheme(a) == scheme(b) && a.User == b.User &&
		strings.EqualFold(a.Host, b.Host) && port(a) == port(b)
}

// parseContact reads xds.contact: a SIP URI, with or without <>.
func parseContact(s string) (sip.Uri, error) {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		j := strings.IndexByte(s, '>')
		if j < i {
			return sip.Uri{}, fmt.Errorf("%q: unbalanced <>", s)
		}
		s = s[i+1 : j]
	}
	return parseSIPURI(s)
}

// parseRegistrar reads xds.mds[].registrar: host, host:port or a SIP URI.
func parseRegistrar(s string) (sip.Uri, error) {
	u, err := parseSIPURI(strings.TrimSpace(s))
	if err != nil {
		return u, err
	}
	u.User, u.Password = "", ""
	return u, nil
}

func parseSIPURI(s string) (sip.Uri, error) {
	var u sip.Uri
	if s == "" {
		return u, errors.New("required")
	}
	lower := strings.ToLower(s)
	if strings.HasPrefix(lower, "sips:") {
		return u, fmt.Errorf("%q: sips (TLS) is not supported", s)
	}
	if !strings.HasPrefix(lower, "sip:") {
		s = "sip:" + s
	}
	if err := sip.ParseUri(s, &u); err != nil {
		return u, fmt.Errorf("%q: %w", s, err)
	}
	if u.Host == "" {
		return u, fmt.Errorf("%q: no host", s)
	}
	return u, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
