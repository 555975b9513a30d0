// Package registrar is a minimal SIP registrar: REGISTER and OPTIONS over
// UDP and TCP, bindings kept in memory until they expire, and optional digest
// authentication of one user. It stands in for an MDS: it is the peer of the
// xds package's fast tests and the media server of `resman demo`.
//
// Knobs make it misbehave on purpose (grant a shorter Expires, answer 423
// Interval Too Brief, answer late, refuse, or not answer at all); they can be
// changed while it serves.
package registrar

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// nonceLifetime is how long an issued nonce is accepted.
const nonceLifetime = 5 * time.Minute

// Options configure a Server. The zero value is an open registrar (no
// authentication) that grants what it is asked, up to an hour.
type Options struct {
	// Realm of the digest challenge. Default: "resman".
	Realm string
	// User and Password enable digest authentication when User is set.
	User     string
	Password string
	// ProxyAuth challenges with 407 Proxy-Authenticate instead of 401
	// WWW-Authenticate.
	ProxyAuth bool
	// NoQOP leaves qop out of the challenge (RFC 2069 style digest).
	NoQOP bool
	// QOP replaces the qop of the challenge (default "auth"), e.g.
	// "auth-int" to play a registrar that insists on it (answers with
	// auth-int are then refused: this server does not check bodies).
	QOP string
	// Algorithms are the challenges offered, one header each, in this
	// order: MD5, MD5-sess, SHA-256, SHA-256-sess, SHA-512-256,
	// SHA-512-256-sess. Default: MD5 alone.
	Algorithms []string
	// DefaultExpires is granted when a REGISTER names none. Default: 3600.
	DefaultExpires int
	// Knobs are the initial misbehaviours; see SetKnobs.
	Knobs Knobs
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// TLS holds the server certificate for ListenAndServe over "tls".
	TLS *tls.Config
}

// Knobs make the registrar misbehave, for tests and demos.
type Knobs struct {
	// MaxExpires caps what is granted (force a shorter Expires). 0: 3600.
	MaxExpires int
	// MinExpires answers 423 Interval Too Brief with this Min-Expires to a
	// REGISTER asking less (but not 0). 0: no minimum.
	MinExpires int
	// Delay holds every answer this long.
	Delay time.Duration
	// Trying answers every REGISTER with 100 Trying at once, before Delay
	// and the final answer.
	Trying bool
	// FailCode answers every REGISTER with this status (e.g. 503). 0: off.
	FailCode int
	// RetryAfter adds Retry-After: RetryAfter (seconds) to the FailCode
	// and QueryFailCode answers. 0: none.
	RetryAfter int
	// QueryFailCode answers binding queries (REGISTER without Contact)
	// with this status, after authentication. 0: off.
	QueryFailCode int
	// Drop never answers anything (a hung registrar).
	Drop bool
}

// Binding is one registered contact.
type Binding struct {
	AOR       string    // sip:user@domain, from the To header
	Contact   string    // the contact URI
	Expires   time.Time // when the binding lapses
	CallID    string
	CSeq      uint32
	Transport string // UDP or TCP
	Source    string // host:port the last REGISTER came from
	// Params are the Contact header's parameters but expires, as sent
	// (e.g. q=0.007;resman-epoch=7), "" if none.
	Params string
}

// Stats counts the requests received.
type Stats struct {
	Registers int // every REGISTER, challenged or not
	Options   int
	// Algorithm of the last digest answer accepted.
	Algorithm string
}

// Server is a registrar. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	log  *slog.Logger
	srv  *sipgo.Server
	err  error // from building the SIP stack

	done      chan struct{} // closed when the first ListenAndServe ends
	doneOnce  sync.Once
	ready     chan struct{} // closed when the first listener is bound
	readyOnce sync.Once

	mu       sync.Mutex
	knobs    Knobs
	addr     string
	bindings map[string]map[string]Binding // AOR -> contact -> binding
	nonces   map[string]time.Time          // issued nonce -> expiry
	stats    Stats
}

// New builds a registrar; ListenAndServe starts it.
func New(opts Options) *Server {
	if opts.Realm == "" {
		opts.Realm = "resman"
	}
	if opts.DefaultExpires <= 0 {
		opts.DefaultExpires = 3600
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{
		opts:     opts,
		log:      log,
		knobs:    opts.Knobs,
		done:     make(chan struct{}),
		ready:    make(chan struct{}),
		bindings: make(map[string]map[string]Binding),
		nonces:   make(map[string]time.Time),
	}
	sipLog := slog.New(minLevel{log.Handler(), slog.LevelInfo}).With("layer", "sip")
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("resman-registrar"),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(sipLog),
			sip.WithTransactionLayerUnhandledResponseHandler(func(*sip.Response) {}),
		),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(sipLog)),
	)
	if err != nil {
		s.err = fmt.Errorf("registrar: user agent: %w", err)
		return s
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(sipLog))
	if err != nil {
		s.err = fmt.Errorf("registrar: server: %w", err)
		return s
	}
	srv.OnRegister(s.onRegister)
	srv.OnOptions(s.onOptions)
	s.srv = srv
	return s
}

// ListenAndServe listens on network ("udp" or "tcp") at addr (host:port;
// port 0 picks a free one) and serves until ctx is done, then returns nil.
// It may be called once per transport, concurrently, on one Server.
func (s *Server) ListenAndServe(ctx context.Context, network, addr string) error {
	if s.err != nil {
		return s.err
	}
	defer s.doneOnce.Do(func() { close(s.done) })
	var (
		closer io.Closer
		serve  func() error
		bound  string
	)
	switch strings.ToLower(network) {
	case "udp":
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("registrar: listen udp %s: %w", addr, err)
		}
		closer, bound = pc, pc.LocalAddr().String()
		serve = func() error { return s.srv.ServeUDP(pc) }
	case "tcp":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("registrar: listen tcp %s: %w", addr, err)
		}
		closer, bound = ln, ln.Addr().String()
		serve = func() error { return s.srv.ServeTCP(ln) }
	case "tls":
		if s.opts.TLS == nil {
			return errors.New("registrar: tls needs Options.TLS")
		}
		ln, err := tls.Listen("tcp", addr, s.opts.TLS)
		if err != nil {
			return fmt.Errorf("registrar: listen tls %s: %w", addr, err)
		}
		closer, bound = ln, ln.Addr().String()
		serve = func() error { return s.srv.ServeTLS(ln) }
	default:
		return fmt.Errorf("registrar: network %q: want udp, tcp or tls", network)
	}
	s.mu.Lock()
	if s.addr == "" {
		s.addr = bound
	}
	s.mu.Unlock()
	s.readyOnce.Do(func() { close(s.ready) })
	s.log.Info("registrar listening", "network", network, "addr", bound)

	stop := context.AfterFunc(ctx, func() { closer.Close() })
	defer stop()
	err := serve()
	if ctx.Err() != nil {
		return nil
	}
	closer.Close()
	if err != nil {
		return fmt.Errorf("registrar: serve %s %s: %w", network, bound, err)
	}
	return nil
}

// Ready is closed once the first listener is bound; Addr is then set.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the host:port of the first listener, "" before it is bound.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// SetKnobs replaces the misbehaviours; it applies to requests received after.
func (s *Server) SetKnobs(k Knobs) {
	s.mu.Lock()
	s.knobs = k
	s.mu.Unlock()
}

// Knobs returns the current misbehaviours.
func (s *Server) Knobs() Knobs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.knobs
}

// Stats returns the request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Bindings returns the live bindings, sorted by AOR then contact.
func (s *Server) Bindings() []Binding {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Binding
	for _, m := range s.bindings {
		for _, b := range m {
			if b.Expires.After(now) {
				out = append(out, b)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].AOR != out[j].AOR {
			return out[i].AOR < out[j].AOR
		}
		return out[i].Contact < out[j].Contact
	})
	return out
}

// DropBindings forgets every binding, as a registrar restarted without a
// database does.
func (s *Server) DropBindings() {
	s.mu.Lock()
	clear(s.bindings)
	s.mu.Unlock()
}

// hold applies Drop and Delay; it reports false when no answer must be sent.
func (s *Server) hold(k Knobs) bool {
	if k.Drop {
		return false
	}
	if k.Delay > 0 {
		t := time.NewTimer(k.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.done:
			return false
		}
	}
	return true
}

func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	s.mu.Lock()
	s.stats.Options++
	k := s.knobs
	s.mu.Unlock()
	if !s.hold(k) {
		return
	}
	s.respond(tx, sip.NewResponseFromRequest(req, 200, "OK", nil))
}

func (s *Server) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	s.mu.Lock()
	s.stats.Registers++
	k := s.knobs
	s.mu.Unlock()
	if k.Trying && !k.Drop {
		s.respond(tx, sip.NewResponseFromRequest(req, 100, "Trying", nil))
	}
	if !s.hold(k) {
		return
	}
	if k.FailCode != 0 {
		res := sip.NewResponseFromRequest(req, k.FailCode, reason(k.FailCode), nil)
		if k.RetryAfter > 0 {
			res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(k.RetryAfter)))
		}
		s.respond(tx, res)
		return
	}
	if s.opts.User != "" {
		ok, stale := s.authorized(req)
		if !ok && !stale && s.credentials(req) != nil {
			s.log.Info("registration refused: bad credentials", "source", req.Source())
			s.reply(tx, req, 403)
			return
		}
		if !ok {
			s.challenge(tx, req, stale)
			return
		}
	}
	if k.QueryFailCode != 0 && req.GetHeader("Contact") == nil {
		res := sip.NewResponseFromRequest(req, k.QueryFailCode, reason(k.QueryFailCode), nil)
		if k.RetryAfter > 0 {
			res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(k.RetryAfter)))
		}
		s.respond(tx, res)
		return
	}
	res, err := s.update(req, k)
	if err != nil {
		s.log.Info("REGISTER rejected", "source", req.Source(), "error", err)
	}
	s.respond(tx, res)
}

func (s *Server) respond(tx sip.ServerTransaction, res *sip.Response) {
	res.AppendHeader(sip.NewHeader("Server", "resman-registrar"))
	if err := tx.Respond(res); err != nil {
		s.log.Debug("respond failed", "error", err)
	}
}

func (s *Server) reply(tx sip.ServerTransaction, req *sip.Request, code int) {
	s.respond(tx, sip.NewResponseFromRequest(req, code, reason(code), nil))
}

func (s *Server) credentials(req *sip.Request) sip.Header {
	if s.opts.ProxyAuth {
		return req.GetHeader("Proxy-Authorization")
	}
	return req.GetHeader("Authorization")
}

// authorized checks the request's digest credentials. stale reports
// credentials that are well formed but answer an unknown or expired nonce.
func (s *Server) authorized(req *sip.Request) (ok, stale bool) {
	h := s.credentials(req)
	if h == nil {
		return false, false
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil || cred.Username != s.opts.User || cred.Realm != s.opts.Realm {
		return false, false
	}
	now := time.Now()
	s.mu.Lock()
	exp, known := s.nonces[cred.Nonce]
	s.mu.Unlock()
	if !known || now.After(exp) {
		return false, true
	}
	base, sess := strings.CutSuffix(strings.ToUpper(cred.Algorithm), "-SESS")
	newHash := hashOf(base)
	if newHash == nil || (cred.QOP != "" && cred.QOP != "auth") || (sess && cred.QOP == "") {
		return false, false
	}
	chal := &digest.Challenge{
		Realm:     cred.Realm,
		Nonce:     cred.Nonce,
		Opaque:    cred.Opaque,
		Algorithm: base,
	}
	if cred.QOP != "" {
		chal.QOP = []string{cred.QOP}
	}
	o := digest.Options{
		Method:   string(req.Method),
		URI:      cred.URI,
		Username: s.opts.User,
		Password: s.opts.Password,
		Cnonce:   cred.Cnonce,
		Count:    cred.Nc,
	}
	if sess { // RFC 7616 3.4.2: A1 = H(user:realm:password):nonce:cnonce
		o.A1 = hexHash(newHash, hexHash(newHash, s.opts.User+":"+cred.Realm+":"+s.opts.Password)+":"+cred.Nonce+":"+cred.Cnonce)
	}
	want, err := digest.Digest(chal, o)
	if err != nil {
		return false, false
	}
	if subtle.ConstantTimeCompare([]byte(want.Response), []byte(cred.Response)) != 1 {
		return false, false
	}
	s.mu.Lock()
	s.stats.Algorithm = cred.Algorithm
	s.mu.Unlock()
	return true, false
}

// hashOf is the hash of a digest algorithm without its -sess, nil if
// unknown.
func hashOf(alg string) func() hash.Hash {
	switch alg {
	case "", "MD5":
		return md5.New
	case "SHA-256":
		return sha256.New
	case "SHA-512-256":
		return sha512.New512_256
	}
	return nil
}

func hexHash(newHash func() hash.Hash, s string) string {
	h := newHash()
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Server) challenge(tx sip.ServerTransaction, req *sip.Request, stale bool) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	nonce := hex.EncodeToString(b[:])
	now := time.Now()
	s.mu.Lock()
	for n, exp := range s.nonces {
		if now.After(exp) {
			delete(s.nonces, n)
		}
	}
	s.nonces[nonce] = now.Add(nonceLifetime)
	s.mu.Unlock()

	code, hdr := 401, "WWW-Authenticate"
	if s.opts.ProxyAuth {
		code, hdr = 407, "Proxy-Authenticate"
	}
	res := sip.NewResponseFromRequest(req, code, reason(code), nil)
	algs := s.opts.Algorithms
	if len(algs) == 0 {
		algs = []string{"MD5"}
	}
	for _, alg := range algs {
		chal := digest.Challenge{Realm: s.opts.Realm, Nonce: nonce, Algorithm: alg, Stale: stale}
		switch {
		case s.opts.QOP != "":
			chal.QOP = []string{s.opts.QOP}
		case !s.opts.NoQOP:
			chal.QOP = []string{"auth"}
		}
		res.AppendHeader(sip.NewHeader(hdr, chal.String()))
	}
	s.respond(tx, res)
}

// update applies a REGISTER to the bindings (RFC 3261 10.3) and builds the
// answer.
func (s *Server) update(req *sip.Request, k Knobs) (*sip.Response, error) {
	to, callID, cseq := req.To(), req.CallID(), req.CSeq()
	if to == nil || callID == nil || cseq == nil {
		return sip.NewResponseFromRequest(req, 400, reason(400), nil), errors.New("missing To, Call-ID or CSeq")
	}
	aor := "sip:" + to.Address.Host
	if to.Address.User != "" {
		aor = "sip:" + to.Address.User + "@" + to.Address.Host
	}
	dflt := s.opts.DefaultExpires
	if h := req.GetHeader("Expires"); h != nil {
		n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
		if err != nil || n < 0 {
			return sip.NewResponseFromRequest(req, 400, reason(400), nil), fmt.Errorf("bad Expires %q", h.Value())
		}
		dflt = n
	}
	type change struct {
		contact string
		expires int
		params  string
	}
	var changes []change
	wildcard := false
	for _, h := range req.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			return sip.NewResponseFromRequest(req, 400, reason(400), nil), fmt.Errorf("bad Contact %q", h.Value())
		}
		if c.Address.Wildcard {
			wildcard = true
			continue
		}
		e := dflt
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return sip.NewResponseFromRequest(req, 400, reason(400), nil), fmt.Errorf("bad expires %q", v)
			}
			e = n
		}
		if e > 0 && k.MinExpires > 0 && e < k.MinExpires {
			res := sip.NewResponseFromRequest(req, 423, reason(423), nil)
			res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(k.MinExpires)))
			return res, fmt.Errorf("expires %d below %d", e, k.MinExpires)
		}
		maxE := k.MaxExpires
		if maxE <= 0 {
			maxE = 3600
		}
		params := c.Params.Clone()
		params.Remove("expires")
		changes = append(changes, change{contact: c.Address.String(), expires: min(e, maxE), params: params.ToString(';')})
	}
	if wildcard && (len(changes) > 0 || dflt != 0) {
		return sip.NewResponseFromRequest(req, 400, reason(400), nil), errors.New("Contact: * needs Expires: 0 and no other contact")
	}

	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.bindings[aor]
	if m == nil {
		m = make(map[string]Binding)
		s.bindings[aor] = m
	}
	for c, b := range m {
		if !b.Expires.After(now) {
			delete(m, c)
		}
	}
	// Step 7: a request not newer than the binding it updates fails.
	outOfOrder := func(c string) bool {
		b, ok := m[c]
		return ok && b.CallID == string(*callID) && cseq.SeqNo <= b.CSeq
	}
	if wildcard {
		for c := range m {
			if outOfOrder(c) {
				return sip.NewResponseFromRequest(req, 500, "Out of Order", nil), errors.New("CSeq not increasing")
			}
		}
		clear(m)
	}
	for _, ch := range changes {
		if outOfOrder(ch.contact) {
			return sip.NewResponseFromRequest(req, 500, "Out of Order", nil), errors.New("CSeq not increasing")
		}
	}
	for _, ch := range changes {
		if ch.expires == 0 {
			delete(m, ch.contact)
			s.log.Info("unregistered", "aor", aor, "contact", ch.contact)
			continue
		}
		_, existed := m[ch.contact]
		m[ch.contact] = Binding{
			AOR:       aor,
			Contact:   ch.contact,
			Expires:   now.Add(time.Duration(ch.expires) * time.Second),
			CallID:    string(*callID),
			CSeq:      cseq.SeqNo,
			Transport: req.Transport(),
			Source:    req.Source(),
			Params:    ch.params,
		}
		if !existed {
			s.log.Info("registered", "aor", aor, "contact", ch.contact, "expires", ch.expires)
		}
	}

	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	contacts := make([]string, 0, len(m))
	for c := range m {
		contacts = append(contacts, c)
	}
	sort.Strings(contacts)
	for _, c := range contacts {
		left := int((m[c].Expires.Sub(now) + time.Second - 1) / time.Second)
		res.AppendHeader(sip.NewHeader("Contact", "<"+c+">;expires="+strconv.Itoa(left)))
	}
	if len(m) == 0 {
		delete(s.bindings, aor)
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")))
	return res, nil
}

// minLevel drops records below min: at debug level sipgo narrates every
// transaction.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(a), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

// reason is the reason phrase of the status codes this server sends.
func reason(code int) string {
	switch code {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 407:
		return "Proxy Authentication Required"
	case 408:
		return "Request Timeout"
	case 405:
		return "Method Not Allowed"
	case 423:
		return "Interval Too Brief"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 500:
		return "Server Internal Error"
	case 503:
		return "Service Unavailable"
	case 603:
		return "Decline"
	}
	return "Status " + strconv.Itoa(code)
}
