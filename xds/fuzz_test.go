package xds

// Fuzz targets of the code that reads an MDS's answers to REGISTER: the
// MDS, or anything on the path of its UDP answers, chooses those bytes.
// What they protect:
//
//   - FuzzREGISTERAnswer: any answer the SIP parser accepts (the same
//     parser as the UDP transport) is judged without a panic, the same way
//     twice; a binding is granted only by a 2xx, for 1 to the seconds
//     asked; a refusal is a ResponseError of the right kind (unexpected
//     for 1xx and 3xx, refused for 4xx to 6xx) naming the MDS and the code.
//   - FuzzGrantedExpires: the seconds granted are, as documented, the
//     expires parameter of our Contact, else the Expires header, else what
//     was asked, never more than asked; a value that is not a
//     non-negative integer, or 0, is a malformed answer, never a binding.
//   - FuzzChallenge: a REGISTER exchange over UDP with a fuzzed
//     WWW-Authenticate or Proxy-Authenticate challenge (and a second one,
//     stale or not): an unreadable challenge is malformed, one whose
//     algorithm is not of RFC 7616 or whose qop is not auth is refused as
//     unsupported, never answered wrongly; an answer carries exactly the
//     algorithm, realm, nonce and opaque of the challenge (for the values
//     the digest library can echo: see checkAnswer), the Request-URI
//     actually sent, qop auth when offered, and the username and response
//     the RFC 7616 formulas give for the password; a second challenge is
//     answered once only if stale; and the password is never in a
//     header, an error or the log.
//
// The seed corpus is in testdata/fuzz/<target>/.

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// fuzzPassword is the digest password of the fuzzed bindings: it must never
// show.
const fuzzPassword = "pw-Zq9-never-shown"

// fuzzLog is a log sink a fuzz iteration can empty.
type fuzzLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *fuzzLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *fuzzLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

// fuzzBinding builds a Registrar with one UDP binding to addr, user "pbx",
// and returns the binding; the user agent closes at cleanup.
func fuzzBinding(f *testing.F, addr string, logs *fuzzLog) *binding {
	f.Helper()
	opts := Options{RequestTimeout: time.Second, Hostname: "pbx.test"}
	if logs != nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r, err := New(Config{Contact: testContact, MDS: []MDS{mds("mds1", addr, "udp", "pbx", fuzzPassword)}}, opts)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { r.ua.Close() })
	return r.bindings[0]
}

// fuzzHeaders are the transaction headers of a response built for parsing
// only.
const fuzzHeaders = "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK776asdhds\r\n" +
	"From: <sip:pbx@127.0.0.1>;tag=1928301774\r\nTo: <sip:pbx@127.0.0.1>;tag=peer\r\n" +
	"Call-ID: a84b4c76e66710@pbx.test\r\nCSeq: 1 REGISTER\r\n"

// parseResponse parses a response as the UDP transport does; nil when it
// is not one.
func parseResponse(raw []byte) *sip.Response {
	msg, err := sip.ParseMessage(raw)
	if err != nil {
		return nil
	}
	res, _ := msg.(*sip.Response)
	return res
}

// fuzzAsked maps any int to the seconds a binding may ask: 1 to 86400.
func fuzzAsked(n int) int {
	if n < 0 {
		n = -(n + 1)
	}
	return 1 + n%86400
}

func FuzzREGISTERAnswer(f *testing.F) {
	b := fuzzBinding(f, "127.0.0.1:5060", nil)
	f.Add([]byte("SIP/2.0 200 OK\r\n"+fuzzHeaders+"Contact: <"+testContact+">;expires=60\r\nContent-Length: 0\r\n\r\n"), 120)
	f.Fuzz(func(t *testing.T, raw []byte, n int) {
		res := parseResponse(raw)
		if res == nil {
			return // the transport drops what does not parse as a response
		}
		asked := fuzzAsked(n)
		g, err := b.granted(res, asked)
		g2, err2 := b.granted(res, asked)
		if g != g2 || fmt.Sprint(err) != fmt.Sprint(err2) {
			t.Fatalf("the same answer judged twice: %d, %v then %d, %v", g, err, g2, err2)
		}
		code := res.StatusCode
		if err == nil {
			if code < 200 || code >= 300 {
				t.Fatalf("a %d granted a binding of %d s", code, g)
			}
			if g < 1 || g > asked {
				t.Fatalf("granted %d s, asked %d: want 1 to %d", g, asked, asked)
			}
			return
		}
		var re *ResponseError
		if !errors.As(err, &re) {
			t.Fatalf("refusal %v (%T) is not a ResponseError", err, err)
		}
		if re.MDS != "mds1" || re.StatusCode != code {
			t.Fatalf("refusal %+v does not name the MDS and the code %d", re, code)
		}
		switch {
		case code < 200 || code >= 300 && code < 400:
			if re.Kind != KindUnexpected {
				t.Fatalf("a %d is %q, want %q", code, re.Kind, KindUnexpected)
			}
		case code >= 400:
			if re.Kind != KindRefused {
				t.Fatalf("a %d is %q, want %q", code, re.Kind, KindRefused)
			}
		default:
			if re.Kind == KindRefused || re.Kind == KindUnexpected {
				t.Fatalf("a 2xx refused as %q", re.Kind)
			}
		}
	})
}

// fuzzNumber reports whether s may stand as a header or parameter value in
// a built answer: signs, digits and letters only, so that it cannot change
// the structure of the message.
func fuzzNumber(s string) bool {
	if len(s) > 32 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r == '+', r == '-':
		default:
			return false
		}
	}
	return true
}

// fuzzSeconds reads s as the documented rule does: a non-negative
// integer, in decimal with an optional sign.
func fuzzSeconds(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

func FuzzGrantedExpires(f *testing.F) {
	b := fuzzBinding(f, "127.0.0.1:5060", nil)
	f.Add("60", true, "3600", true, 120)
	f.Fuzz(func(t *testing.T, param string, hasParam bool, header string, hasHeader bool, n int) {
		if !fuzzNumber(param) || !fuzzNumber(header) || (hasParam && param == "") || (hasHeader && header == "") {
			return
		}
		asked := fuzzAsked(n)
		contact := "Contact: <" + testContact + ">"
		if hasParam {
			contact += ";expires=" + param
		}
		raw := "SIP/2.0 200 OK\r\n" + fuzzHeaders + contact + "\r\n"
		if hasHeader {
			raw += "Expires: " + header + "\r\n"
		}
		raw += "Content-Length: 0\r\n\r\n"
		res := parseResponse([]byte(raw))
		if res == nil {
			t.Fatalf("the built answer does not parse:\n%s", raw)
		}
		g, err := b.granted(res, asked)

		// The documented rule.
		pv, pok := fuzzSeconds(param)
		hv, hok := fuzzSeconds(header)
		want, wantErr := asked, ""
		switch {
		case hasParam && !pok && hasHeader && !hok:
			// Both invalid: either may be named.
			if err == nil || !strings.Contains(err.Error(), "invalid expires parameter") && !strings.Contains(err.Error(), "invalid Expires header") {
				t.Fatalf("parameter %q and header %q both invalid: %d, %v; want a malformed answer", param, header, g, err)
			}
			return
		case hasParam && !pok:
			wantErr = "invalid expires parameter"
		case hasParam:
			want = pv
			if hasHeader && !hok {
				// An invalid Expires beside a valid parameter: the
				// parameter decides, or the answer is malformed; both
				// are safe, neither is asserted.
				if err == nil && g != min(pv, asked) || err != nil && !strings.Contains(err.Error(), "invalid Expires header") {
					t.Fatalf("parameter %q, invalid header %q: %d, %v", param, header, g, err)
				}
				return
			}
		case hasHeader && !hok:
			wantErr = "invalid Expires header"
		case hasHeader:
			want = hv
		}
		if wantErr == "" && want == 0 {
			wantErr = "binding granted for 0 seconds"
		}
		if wantErr != "" {
			var re *ResponseError
			if err == nil || !errors.As(err, &re) || re.Kind != KindMalformed || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("parameter %q (%v), header %q (%v): %d, %v; want a malformed answer: %s", param, hasParam, header, hasHeader, g, err, wantErr)
			}
			return
		}
		if err != nil || g != min(want, asked) {
			t.Fatalf("parameter %q (%v), header %q (%v), asked %d: %d, %v; want %d", param, hasParam, header, hasHeader, asked, g, err, min(want, asked))
		}
	})
}

// fuzzRequest is what the fake MDS saw of one REGISTER.
type fuzzRequest struct {
	uri    string // Request-URI
	auth   []string
	pauth  []string
	rawMsg string
}

// fuzzMDS answers REGISTERs over UDP: the i-th REGISTER of a round (one
// CSeq each: a retransmission gets the same answer) gets answers[i], the
// last repeating. It copies the transaction headers.
type fuzzMDS struct {
	pc      net.PacketConn
	mu      sync.Mutex
	answers []string
	seen    []fuzzRequest
	cseq    string
}

func newFuzzMDS(f *testing.F) *fuzzMDS {
	f.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { pc.Close() })
	m := &fuzzMDS{pc: pc}
	go m.serve()
	return m
}

func (m *fuzzMDS) round(answers ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.answers, m.seen, m.cseq = answers, nil, ""
}

func (m *fuzzMDS) requests() []fuzzRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]fuzzRequest(nil), m.seen...)
}

func (m *fuzzMDS) serve() {
	buf := make([]byte, 65535)
	for {
		n, from, err := m.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		msg := string(buf[:n])
		if !strings.HasPrefix(msg, "REGISTER ") {
			continue
		}
		req := fuzzRequest{rawMsg: msg}
		req.uri, _, _ = strings.Cut(strings.TrimPrefix(msg, "REGISTER "), " ")
		var copied []string
		cseq := ""
		for _, line := range strings.Split(msg, "\r\n") {
			name, value, _ := strings.Cut(line, ":")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "via", "from", "call-id":
				copied = append(copied, line)
			case "cseq":
				copied = append(copied, line)
				cseq = line
			case "to":
				copied = append(copied, line+";tag=peer")
			case "authorization":
				req.auth = append(req.auth, strings.TrimSpace(value))
			case "proxy-authorization":
				req.pauth = append(req.pauth, strings.TrimSpace(value))
			}
		}
		m.mu.Lock()
		if cseq != m.cseq {
			m.cseq = cseq
			m.seen = append(m.seen, req)
		}
		i := min(len(m.seen), len(m.answers)) - 1
		if i < 0 {
			m.mu.Unlock()
			continue
		}
		answer := m.answers[i]
		m.mu.Unlock()
		status, extra, _ := strings.Cut(answer, "\r\n")
		res := status + "\r\n" + strings.Join(copied, "\r\n") + "\r\n"
		if extra != "" {
			res += extra + "\r\n"
		}
		res += "Content-Length: 0\r\n\r\n"
		_, _ = m.pc.WriteTo([]byte(res), from)
	}
}

// rfc7616 maps the algorithms RFC 7616 defines (and RFC 2617's absent
// one, MD5), upper case, to their hash and whether they are -sess.
var rfc7616 = map[string]struct {
	hash func() hash.Hash
	sess bool
}{
	"": {md5.New, false}, "MD5": {md5.New, false}, "MD5-SESS": {md5.New, true},
	"SHA-256": {sha256.New, false}, "SHA-256-SESS": {sha256.New, true},
	"SHA-512-256": {sha512.New512_256, false}, "SHA-512-256-SESS": {sha512.New512_256, true},
}

// answerable reports whether chal can and must be answered: an algorithm
// of RFC 7616, with qop auth offered or no qop (a -sess algorithm needs
// the cnonce only qop brings).
func answerable(chal *digest.Challenge) bool {
	a, ok := rfc7616[strings.ToUpper(chal.Algorithm)]
	switch {
	case !ok, challengeSize(chal) > maxChallengeSize:
		return false
	case len(chal.QOP) == 0:
		return !a.sess
	}
	return chal.SupportsQOP("auth")
}

// rfcResponse computes, by RFC 7616 section 3.4, the username and response
// an answer to chal must carry for cred's URI, cnonce and count.
func rfcResponse(chal *digest.Challenge, cred *digest.Credentials, method, user, password string) (username, response string) {
	a := rfc7616[strings.ToUpper(chal.Algorithm)]
	H := func(parts ...string) string {
		d := a.hash()
		d.Write([]byte(strings.Join(parts, ":")))
		return hex.EncodeToString(d.Sum(nil))
	}
	username = user
	if chal.Userhash {
		username = H(user, chal.Realm)
	}
	ha1 := H(user, chal.Realm, password)
	if a.sess {
		ha1 = H(ha1, chal.Nonce, cred.Cnonce)
	}
	ha2 := H(method, cred.URI)
	if len(chal.QOP) == 0 {
		return username, H(ha1, chal.Nonce, ha2)
	}
	return username, H(ha1, chal.Nonce, fmt.Sprintf("%08x", cred.Nc), cred.Cnonce, "auth", ha2)
}

// checkAnswer checks the credentials a REGISTER carried against the
// challenge (as the code read it) they answer.
func checkAnswer(t *testing.T, req fuzzRequest, proxy bool, chal *digest.Challenge) {
	t.Helper()
	mine, other := req.auth, req.pauth
	if proxy {
		mine, other = req.pauth, req.auth
	}
	if len(mine) != 1 || len(other) != 0 {
		t.Fatalf("the answer to a challenge (proxy %v) carries Authorization %q, Proxy-Authorization %q: want exactly one of its kind", proxy, req.auth, req.pauth)
	}
	cred, err := digest.ParseCredentials(mine[0])
	if err != nil {
		t.Fatalf("the credentials sent do not parse: %v\n%s", err, mine[0])
	}
	username, response := rfcResponse(chal, cred, "REGISTER", "pbx", fuzzPassword)
	if cred.Username != username {
		t.Fatalf("username %q, want %q (userhash %v)", cred.Username, username, chal.Userhash)
	}
	wantQOP := ""
	if len(chal.QOP) > 0 {
		wantQOP = "auth"
	}
	if cred.QOP != wantQOP || !strings.EqualFold(cred.Algorithm, chal.Algorithm) {
		t.Fatalf("qop %q algorithm %q, challenge qop %q algorithm %q: want qop %q and the algorithm offered", cred.QOP, cred.Algorithm, chal.QOP, chal.Algorithm, wantQOP)
	}
	// Known limit of github.com/icholy/digest: it writes the quoted values
	// with strconv.Quote, so a value with control characters or invalid
	// UTF-8 (not a valid quoted-string in a challenge anyway, bar obs-text)
	// goes out Go-escaped ("\x00") and reads back different; the MDS
	// then refuses the answer, which is reported as refused after
	// authentication. The echo is asserted for the values it can carry.
	if echoable(chal.Realm) && echoable(chal.Nonce) && echoable(chal.Opaque) &&
		(cred.Realm != chal.Realm || cred.Nonce != chal.Nonce || cred.Opaque != chal.Opaque) {
		t.Fatalf("credentials realm %q nonce %q opaque %q, challenge realm %q nonce %q opaque %q",
			cred.Realm, cred.Nonce, cred.Opaque, chal.Realm, chal.Nonce, chal.Opaque)
	}
	if cred.URI != req.uri {
		t.Fatalf("digest URI %q, but the Request-URI sent is %q", cred.URI, req.uri)
	}
	if cred.Response != response {
		t.Fatalf("digest response %s, want %s by RFC 7616 (challenge %+v)", cred.Response, response, chal)
	}
}

// echoable reports whether the digest library writes s back as an RFC
// quoted-string (strconv.Quote escapes only '"' and '\' in it).
func echoable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// fuzzHeaderValue is the value the code reads from a one-line header of an
// answer, nil when the answer would not parse (the transport would drop
// it, and the exchange would only time out).
func fuzzHeaderValue(name, value string) *string {
	if strings.ContainsAny(value, "\r\n") {
		return nil
	}
	res := parseResponse([]byte("SIP/2.0 401 Unauthorized\r\n" + fuzzHeaders + name + ": " + value + "\r\nContent-Length: 0\r\n\r\n"))
	if res == nil {
		return nil
	}
	hs := res.GetHeaders(name)
	if len(hs) != 1 {
		return nil
	}
	v := hs[0].Value()
	return &v
}

func FuzzChallenge(f *testing.F) {
	peer := newFuzzMDS(f)
	logs := &fuzzLog{}
	b := fuzzBinding(f, peer.pc.LocalAddr().String(), logs)
	f.Add(`Digest realm="resman", nonce="abc", algorithm=MD5, qop="auth"`, false, "")
	f.Fuzz(func(t *testing.T, challenge string, proxy bool, second string) {
		chalName, status := "WWW-Authenticate", "SIP/2.0 401 Unauthorized"
		if proxy {
			chalName, status = "Proxy-Authenticate", "SIP/2.0 407 Proxy Authentication Required"
		}
		first := fuzzHeaderValue(chalName, challenge)
		if first == nil {
			return
		}
		ok := "SIP/2.0 200 OK\r\nContact: <" + testContact + ">;expires=60"
		answers := []string{status + "\r\n" + chalName + ": " + challenge}
		var again *string
		if second != "" {
			if again = fuzzHeaderValue(chalName, second); again == nil {
				return
			}
			answers = append(answers, status+"\r\n"+chalName+": "+second)
		}
		peer.round(append(answers, ok)...)
		logs.take()

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		wait, err := b.register(ctx)
		reqs := peer.requests()
		log := logs.take()
		for _, s := range append([]string{fmt.Sprint(err), log}, func() (raw []string) {
			for _, r := range reqs {
				raw = append(raw, r.rawMsg)
			}
			return
		}()...) {
			if strings.Contains(s, fuzzPassword) {
				t.Fatalf("the password shows:\n%s", s)
			}
		}
		if ctx.Err() != nil || len(reqs) == 0 {
			t.Fatalf("no exchange: %v, %d requests", err, len(reqs))
		}

		// expect checks the outcome of the challenge value read from the
		// i-th answer, whose credentials the (i+1)-th REGISTER carries.
		// It reports whether the exchange goes on.
		expect := func(i int, value string) (*digest.Challenge, bool) {
			var re *ResponseError
			chal, perr := digest.ParseChallenge(value)
			switch {
			case perr != nil:
				if !errors.As(err, &re) || re.Kind != KindMalformed || !strings.Contains(err.Error(), "unreadable "+chalName+" header") || len(reqs) != i+1 {
					t.Fatalf("unreadable challenge %q: %v after %d requests, want a malformed answer after %d", value, err, len(reqs), i+1)
				}
				return nil, false
			case !answerable(chal):
				if !errors.As(err, &re) || re.Kind != KindUnsupported || !strings.Contains(err.Error(), "not supported") || len(reqs) != i+1 {
					t.Fatalf("challenge %q that cannot be answered: %v after %d requests, want %q after %d", value, err, len(reqs), KindUnsupported, i+1)
				}
				return nil, false
			case i > 0 && !chal.Stale:
				if err == nil || !strings.Contains(err.Error(), "after authentication") || len(reqs) != 2 {
					t.Fatalf("a second challenge, not stale: %v after %d requests, want a refusal after 2", err, len(reqs))
				}
				return nil, false
			case len(reqs) < i+2:
				t.Fatalf("challenge %q was not answered: %v", value, err)
			}
			checkAnswer(t, reqs[i+1], proxy, chal)
			return chal, true
		}
		if _, goOn := expect(0, *first); !goOn {
			return
		}
		if again != nil {
			if _, goOn := expect(1, *again); !goOn {
				return
			}
		}
		if err != nil || wait != 45*time.Second {
			t.Fatalf("answered challenge(s), then 200 with expires=60: %v, %v; want a refresh in 45s", wait, err)
		}
	})
}
