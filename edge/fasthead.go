package edge

import (
	"bytes"
	"encoding/binary"
	"net/netip"
)

// The fast path's request heads (see fast.go). scanHead takes a head only
// when it is plain HTTP/1.1 in its strictest form, one reading of which
// every server agrees on; anything else goes to the general path, which
// applies the Edge's checks and answers its refusals (hop.go, proxy.go).
// So the fast path never decides what a strange request means: it has no
// error answers of its own, and no request can be read one way by it and
// another way by the upstream.

// maxNamed bounds the headers the Connection headers of a fast request may
// name; a request that names more goes to the general path.
const maxNamed = 8

// fastRequest is what the fast path knows of a request head it took.
type fastRequest struct {
	method []byte
	target []byte // origin-form, as written
	path   []byte // target up to its query: the route's key
	host   []byte // the one Host header's value
	// length is the body's Content-Length, 0 without one.
	length int64
	// close: the client's Connection header says close.
	close bool
	// headOnly: a HEAD, whose answer has no body.
	headOnly bool
	// retryable: the request has no body and its method is idempotent
	// (RFC 9110 §9.2.2): sent again on another upstream connection when a
	// kept-alive one turns out to be closed.
	retryable bool
	// named are the headers the Connection headers name (less the options
	// and those no client may remove): removed on the way.
	named  [maxNamed][]byte
	nnamed int
	// xff: the client sent X-Forwarded-For.
	xff bool
}

// Header names the fast path looks at, as classify returns them.
const (
	hdrOther = iota
	hdrHost
	hdrContentLength
	hdrConnection
	hdrHop    // removed: Keep-Alive, Proxy-*, TE
	hdrGoSlow // the general path's: Transfer-Encoding, Expect, Upgrade, HTTP2-Settings, Trailer
	hdrXFF
	hdrXForwarded // X-Forwarded-Host and -Proto: set by the Edge
	hdrAccept
	// hdrSingle: User-Agent and Content-Type, of which fasthttp keeps one
	// value (the last User-Agent; refuses two different Content-Types)
	// and drops an empty one.
	hdrSingle
)

// classify says what a header name is to the fast path, in any case.
func classify(name []byte) int {
	switch len(name) {
	case 2:
		if tokenIs(name, "TE") {
			return hdrHop
		}
	case 4:
		if tokenIs(name, "Host") {
			return hdrHost
		}
	case 6:
		switch {
		case tokenIs(name, "Accept"):
			return hdrAccept
		case tokenIs(name, "Expect"):
			return hdrGoSlow
		}
	case 7:
		if tokenIs(name, "Upgrade") || tokenIs(name, "Trailer") {
			return hdrGoSlow
		}
	case 10:
		switch {
		case tokenIs(name, "Connection"):
			return hdrConnection
		case tokenIs(name, "Keep-Alive"):
			return hdrHop
		case tokenIs(name, "User-Agent"):
			return hdrSingle
		}
	case 12:
		if tokenIs(name, "Content-Type") {
			return hdrSingle
		}
	case 14:
		switch {
		case tokenIs(name, "Content-Length"):
			return hdrContentLength
		case tokenIs(name, "HTTP2-Settings"):
			return hdrGoSlow
		}
	case 15:
		if tokenIs(name, "X-Forwarded-For") {
			return hdrXFF
		}
	case 16:
		switch {
		case tokenIs(name, "Proxy-Connection"):
			return hdrHop
		case tokenIs(name, "X-Forwarded-Host"):
			return hdrXForwarded
		}
	case 17:
		switch {
		case tokenIs(name, "Transfer-Encoding"):
			return hdrGoSlow
		case tokenIs(name, "X-Forwarded-Proto"):
			return hdrXForwarded
		}
	case 18, 19:
		if tokenIs(name, "Proxy-Authenticate") || tokenIs(name, "Proxy-Authorization") {
			return hdrHop
		}
	}
	return hdrOther
}

// isTchar: the characters of a token (RFC 9110 §5.6.2).
var isTchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// headEnd returns the length of the head at the start of b (up to and
// including its empty line), 0 when b holds no whole head yet, or -1 when
// b is not plain HTTP/1.1 up to there: a line ends without CR, or b starts
// with an empty line. It never reads past the head.
func headEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0
		}
		j += i
		if j == 0 || b[j-1] != '\r' {
			return -1
		}
		if j == i+1 {
			// "\r\n": the empty line, but not as the first.
			if i == 0 {
				return -1
			}
			return j + 1
		}
		i = j + 1
	}
}

// scanHead reads a whole head (see headEnd) into r, and says whether the
// fast path takes it: a request line "METHOD /path?query HTTP/1.1" of an
// upper-case method but CONNECT and PRI, a target without percent
// escapes, dot segments, double or back slashes or fragment (so that the
// path the route is chosen by is the path as written) and no empty query
// (a "?" that ends it), then header lines "name: value" of token names and
// visible ASCII values, exactly one Host, a host and maybe a port (see
// hostChars), at most one Content-Length of digits up to maxRequestBody,
// at most one User-Agent and one Content-Type, neither empty (fasthttp
// would send the upstream another head: see hdrSingle), and none of the
// headers of the general path (hdrGoSlow; an Accept of event streams on a
// GET, which is tunnelled).
func scanHead(head []byte, r *fastRequest) bool {
	*r = fastRequest{}
	line, rest := cutCRLF(head)
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || sp > 20 {
		return false
	}
	r.method = line[:sp]
	for _, c := range r.method {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	switch string(r.method) {
	case "CONNECT", "PRI":
		return false
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		r.retryable = true
	}
	r.headOnly = string(r.method) == "HEAD"
	line = line[sp+1:]
	if !bytes.HasSuffix(line, []byte(" HTTP/1.1")) {
		return false
	}
	r.target = line[:len(line)-len(" HTTP/1.1")]
	if !cleanTarget(r.target) {
		return false
	}
	r.path = r.target
	if q := bytes.IndexByte(r.target, '?'); q >= 0 {
		r.path = r.target[:q]
	}
	hosts, lengths, userAgents, contentTypes := 0, 0, 0, 0
	for len(rest) > 2 {
		line, rest = cutCRLF(rest)
		c := bytes.IndexByte(line, ':')
		if c <= 0 {
			return false
		}
		name, value := line[:c], trimOWS(line[c+1:])
		for _, ch := range name {
			if !isTchar[ch] {
				return false
			}
		}
		if !fieldValue(value) {
			return false
		}
		switch classify(name) {
		case hdrHost:
			hosts++
			r.host = value
			if !hostChars(value) {
				return false
			}
		case hdrContentLength:
			lengths++
			n, ok := digits(value)
			if !ok || n > maxRequestBody {
				return false
			}
			r.length = n
		case hdrConnection:
			if !r.connection(value) {
				return false
			}
		case hdrXFF:
			r.xff = true
		case hdrGoSlow:
			return false
		case hdrAccept:
			if string(r.method) == "GET" && bytes.Contains(value, []byte("text/event-stream")) {
				return false
			}
		case hdrSingle:
			if len(value) == 0 {
				return false
			}
			if len(name) == len("User-Agent") {
				userAgents++
			} else {
				contentTypes++
			}
		}
	}
	if hosts != 1 || len(r.host) == 0 || lengths > 1 || userAgents > 1 || contentTypes > 1 {
		return false
	}
	if r.length > 0 {
		r.retryable = false
	}
	return true
}

// connection reads a Connection value into r: close, and the names to
// remove. False when it names more than maxNamed.
func (r *fastRequest) connection(list []byte) bool {
	for len(list) > 0 {
		var t []byte
		t, list = nextToken(list)
		switch {
		case len(t) == 0 || tokenIs(t, "keep-alive") || isHop(t) || kept(t):
		case tokenIs(t, "close"):
			r.close = true
		case r.nnamed == maxNamed:
			return false
		default:
			r.named[r.nnamed] = t
			r.nnamed++
		}
	}
	return true
}

// dropped reports whether a header the client sent does not go upstream:
// hop-by-hop, one a Connection header names, or one the Edge sets.
func (r *fastRequest) dropped(kind int, name []byte) bool {
	switch kind {
	case hdrHost, hdrConnection, hdrHop, hdrXFF, hdrXForwarded:
		return true
	case hdrContentLength:
		return false
	}
	for _, n := range r.named[:r.nnamed] {
		if len(n) == len(name) && bytes.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// appendUpstreamHead appends the head the upstream gets for a head that
// scanHead took: what prepare does on the general path. The request line
// with the route's path prefix, Host the upstream's, the client's headers
// in their order and as written but those dropped, then one
// X-Forwarded-For (the client's list, then clientIP), X-Forwarded-Host
// (the Host asked for) and X-Forwarded-Proto (proto).
func appendUpstreamHead(dst, head []byte, r *fastRequest, rt *route, clientIP []byte, proto string) []byte {
	dst = append(dst, r.method...)
	dst = append(dst, ' ')
	dst = append(dst, rt.prefix...)
	dst = append(dst, r.target...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, rt.host...)
	dst = append(dst, "\r\n"...)
	_, rest := cutCRLF(head)
	for len(rest) > 2 {
		var line []byte
		line, rest = cutCRLF(rest)
		c := bytes.IndexByte(line, ':')
		if name := line[:c]; r.dropped(classify(name), name) {
			continue
		}
		dst = append(append(dst, line...), "\r\n"...)
	}
	dst = append(dst, "X-Forwarded-For: "...)
	if r.xff {
		for _, rest := cutCRLF(head); len(rest) > 2; {
			var line []byte
			line, rest = cutCRLF(rest)
			c := bytes.IndexByte(line, ':')
			if v := trimOWS(line[c+1:]); classify(line[:c]) == hdrXFF && len(v) > 0 {
				dst = append(append(dst, v...), ", "...)
			}
		}
	}
	dst = append(dst, clientIP...)
	dst = append(dst, "\r\nX-Forwarded-Host: "...)
	dst = append(dst, r.host...)
	dst = append(dst, "\r\nX-Forwarded-Proto: "...)
	dst = append(dst, proto...)
	return append(dst, "\r\n\r\n"...)
}

// fieldValue reports whether a header value is made of visible ASCII,
// spaces and tabs, 8 bytes at a time: a word of bytes from 0x20 to 0x7e
// (most) passes with a few operations, one with any other byte is looked
// at byte by byte.
func fieldValue(v []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; len(v) >= 8; v = v[8:] {
		x := binary.LittleEndian.Uint64(v)
		del := x ^ 0x7f*ones
		if x&highs == 0 && (x-0x20*ones)&^x&highs == 0 && (del-ones)&^del&highs == 0 {
			continue
		}
		if !fieldBytes(v[:8]) {
			return false
		}
	}
	return fieldBytes(v)
}

func fieldBytes(v []byte) bool {
	for _, c := range v {
		if (c < 0x20 && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

// cleanTarget reports whether an origin-form target is one the fast path
// takes (see scanHead).
func cleanTarget(t []byte) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	inPath := true
	for i, c := range t {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
		if !inPath {
			continue
		}
		switch c {
		case '?':
			// An empty query: fasthttp sends the path alone.
			if i == len(t)-1 {
				return false
			}
			inPath = false
		case '%', '\\':
			return false
		case '/':
			// No empty, "." or ".." segment after it.
			seg := t[i+1:]
			if j := bytes.IndexAny(seg, "/?"); j >= 0 {
				seg = seg[:j]
			}
			if string(seg) == "." || string(seg) == ".." || (len(t) > i+1 && t[i+1] == '/') {
				return false
			}
		}
	}
	return true
}

// hostChars reports whether a Host value is a host name or IPv4 address
// (letters, digits, '.', '-', '_'), or a bracketed IPv6 address without a
// zone, then maybe a port of 1 to 5 digits: what fasthttp's server reads
// (it refuses a port that is not digits, a second colon, a bracket out of
// place, and would then send the upstream another path).
func hostChars(v []byte) bool {
	if len(v) > 0 && v[0] == '[' {
		end := bytes.IndexByte(v, ']')
		if end < 0 {
			return false
		}
		ip, err := netip.ParseAddr(string(v[1:end]))
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return false
		}
		v = v[end+1:]
	} else {
		n := 0
		for n < len(v) && v[n] != ':' {
			switch c := v[n]; {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			case c == '.', c == '-', c == '_':
			default:
				return false
			}
			n++
		}
		if n == 0 {
			return false
		}
		v = v[n:]
	}
	if len(v) == 0 {
		return true
	}
	// ":port"
	if v[0] != ':' || len(v) < 2 || len(v) > 6 {
		return false
	}
	for _, c := range v[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// digits reads a Content-Length: 1 to 18 decimal digits, without a
// leading zero (fasthttp would send the upstream the number, not the
// digits).
func digits(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 || (v[0] == '0' && len(v) > 1) {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// cutCRLF cuts the first line of b and its CRLF off (headEnd vouched for
// the CRs).
func cutCRLF(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	return b[:i-1], b[i+1:]
}

// trimOWS trims the spaces and tabs around a header value.
func trimOWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}
