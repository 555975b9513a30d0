package edge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/valyala/fasthttp"
)

// Hop-by-hop headers (RFC 9110 §7.6.1): they concern one connection, so a
// proxy removes them, and every header a Connection header names, in both
// directions. Transfer-Encoding is hop-by-hop too; fasthttp frames each
// hop's body itself.
//
// hopHeaders is the list removed from requests and answers, with Trailer;
// Upgrade is kept for a WebSocket upgrade (Connection: Upgrade is then set
// again). HTTP2-Settings goes with an h2c upgrade, which the Edge refuses
// anyway.
var hopHeaders = [nHop]string{
	hopConnection:         "Connection",
	hopProxyConnection:    "Proxy-Connection",
	hopKeepAlive:          "Keep-Alive",
	hopProxyAuthenticate:  "Proxy-Authenticate",
	hopProxyAuthorization: "Proxy-Authorization",
	hopTE:                 "Te",
	hopUpgrade:            "Upgrade",
	hopHTTP2Settings:      "Http2-Settings",
}

const (
	hopConnection = iota
	hopProxyConnection
	hopKeepAlive
	hopProxyAuthenticate
	hopProxyAuthorization
	hopTE
	hopUpgrade
	hopHTTP2Settings
	nHop
)

// seen says which of the headers the Edge looks at a request's header
// block holds: bit i for hopHeaders[i], then the others below. It comes
// from one scan of the block as received (see seenIn), so that the
// lookups of absent names, each of which normalizes its name, are
// skipped: most requests hold one of them (Connection: keep-alive) or
// none.
type seen uint16

const (
	seenTrailer seen = 1 << (nHop + iota)
	seenXForwardedFor
	// seenBadName: a header name that is not a token (RFC 9110 §5.1),
	// which fasthttp takes: "Content Length" could be read as the body's
	// length by an upstream. checkRequest refuses it.
	seenBadName
	seenAll = seen(1<<16-1) &^ seenBadName
)

func (s seen) has(i int) bool { return s&(1<<i) != 0 }

// seenIn scans the header block of a request as fasthttp received it.
// Without one (a request not read from a client), it says that every name
// may be there.
func seenIn(h *fasthttp.RequestHeader) seen {
	raw := h.RawHeaders()
	if len(raw) == 0 {
		return seenAll
	}
	var s seen
	for len(raw) > 0 {
		var line []byte
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			line, raw = raw, nil
		}
		c := bytes.IndexByte(line, ':')
		if c < 0 || line[0] == ' ' || line[0] == '\t' {
			// No name: a line folded onto the one before (fasthttp
			// refuses a line without colon).
			continue
		}
		for _, ch := range line[:c] {
			if !isTchar[ch] {
				s |= seenBadName
			}
		}
		// Most names have none of the lengths looked for.
		if c >= 32 || seenLengths&(1<<c) == 0 {
			continue
		}
		switch name := line[:c]; {
		case tokenIs(name, "Trailer"):
			s |= seenTrailer
		case tokenIs(name, "X-Forwarded-For"):
			s |= seenXForwardedFor
		default:
			for i, hop := range hopHeaders {
				if tokenIs(name, hop) {
					s |= 1 << i
					break
				}
			}
		}
	}
	return s
}

// seenLengths has bit n set for the names of n bytes that seenIn looks
// for.
var seenLengths = func() uint32 {
	l := uint32(1)<<len("Trailer") | 1<<len("X-Forwarded-For")
	for _, h := range hopHeaders {
		l |= 1 << len(h)
	}
	return l
}()

// kept reports whether a client or an upstream may not remove a header by
// naming it in Connection: the framing of the body (fasthttp's business
// on each hop), Host, and the headers the Edge sets itself.
func kept(name []byte) bool {
	for _, k := range [...]string{"Host", "Content-Length", "Transfer-Encoding",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		if tokenIs(name, k) {
			return true
		}
	}
	return false
}

// isHop reports whether name is in hopHeaders or is Trailer (any case).
func isHop(name []byte) bool {
	if len(name) >= 32 || seenLengths&(1<<len(name)) == 0 {
		return false
	}
	if tokenIs(name, "Trailer") {
		return true
	}
	for _, h := range hopHeaders {
		if tokenIs(name, h) {
			return true
		}
	}
	return false
}

// nextToken cuts the first element of a comma-separated list: the token,
// trimmed of its spaces and tabs, and the rest.
func nextToken(list []byte) (token, rest []byte) {
	if i := bytes.IndexByte(list, ','); i >= 0 {
		token, rest = list[:i], list[i+1:]
	} else {
		token = list
	}
	for len(token) > 0 && (token[0] == ' ' || token[0] == '\t') {
		token = token[1:]
	}
	for len(token) > 0 && (token[len(token)-1] == ' ' || token[len(token)-1] == '\t') {
		token = token[:len(token)-1]
	}
	return token, rest
}

// tokenIs reports whether token is s, in any case.
func tokenIs(token []byte, s string) bool {
	return len(token) == len(s) && bytes.EqualFold(token, []byte(s))
}

// checkRequest says whether the Edge refuses a request before it is
// routed, with the status to answer (0 when it goes on), and whether it is
// a WebSocket upgrade; s is seenIn(h).
//
//   - HTTP/2 in any form: a request line of a version but 1.x, or of the
//     method PRI (of HTTP/2's preface) gets 505 (RFC 9110 §15.6.6); the
//     preface itself, PRI * HTTP/2.0, does not get this far (see
//     parseError). An upgrade to h2c (any Upgrade header listing h2c, in
//     any case and place, whatever the Connection headers say, or an
//     HTTP2-Settings header) gets 400: RFC 9113 §3.1 deprecated that
//     upgrade and the Edge speaks HTTP/1.1 only; refused rather than
//     dropped, no form of it reaches an upstream that would honour it.
//   - An HTTP/1.1 request without Host, or with an empty one, gets 400
//     (RFC 9112 §3.2); fasthttp also refuses it and several Host headers
//     as it parses. So does a header name that is not a token.
//
// A WebSocket upgrade is a Connection header (any of them) naming upgrade
// and Upgrade: websocket, alone.
func checkRequest(h *fasthttp.RequestHeader, s seen) (status int, websocket bool) {
	if string(h.Method()) == "PRI" {
		return http.StatusHTTPVersionNotSupported, false
	}
	if p := h.Protocol(); len(p) != len("HTTP/1.1") || !bytes.HasPrefix(p, []byte("HTTP/1.")) {
		return http.StatusHTTPVersionNotSupported, false
	}
	if h.IsHTTP11() && len(h.Host()) == 0 {
		return http.StatusBadRequest, false
	}
	if s.has(hopHTTP2Settings) || s&seenBadName != 0 {
		return http.StatusBadRequest, false
	}
	if !s.has(hopUpgrade) {
		return 0, false
	}
	ws, other := 0, 0
	for _, v := range h.PeekAll("Upgrade") {
		for len(v) > 0 {
			var t []byte
			t, v = nextToken(v)
			// protocol-name ["/" protocol-version] (RFC 9110 §7.8)
			name, _, _ := bytes.Cut(t, []byte{'/'})
			switch {
			case tokenIs(name, "h2c"):
				return http.StatusBadRequest, false
			case tokenIs(t, "websocket"):
				ws++
			case len(t) > 0:
				other++
			}
		}
	}
	if ws != 1 || other != 0 || !s.has(hopConnection) {
		return 0, false
	}
	for _, v := range h.PeekAll("Connection") {
		if listed(v, []byte("upgrade")) {
			return 0, true
		}
	}
	return 0, false
}

// sentinel fills the places of removed request headers: see stripRequest.
// It is a header the Edge sets after stripping, so that setting it keeps
// one of them, given the right value, and removes the others.
const sentinel = "X-Forwarded-Proto"

// The names of the headers the Edge sets, as fasthttp normalizes them
// (set with SetCanonical: no normalizing, no conversion).
var (
	keyXForwardedFor  = []byte("X-Forwarded-For")
	keyXForwardedHost = []byte("X-Forwarded-Host")
	keySentinel       = []byte(sentinel)
)

// stripRequest removes the hop-by-hop headers of a client's request and
// those its Connection headers name, except the kept ones; with
// websocket, Upgrade stays (the caller sets Connection: Upgrade). s is
// seenIn(h). The caller then sets the sentinel header.
//
// fasthttp's Del moves the last header into the place of the one it
// removes, which would reorder what remains, and RFC 9110 §5.3 forbids a
// proxy to change the order of the lines of one field. So before removing
// n headers, n sentinels are added at the end: Del moves sentinels, never
// another header, and setting the sentinel at the end keeps the first one
// and removes the others in order. Nothing allocates.
func stripRequest(h *fasthttp.RequestHeader, s seen, websocket bool) {
	// Trailer first: a header set under a name it announces goes to the
	// trailer section, which a GET does not have (fasthttp refuses the
	// names of the Edge's headers there already).
	if s&seenTrailer != 0 {
		h.Del("Trailer")
	}
	if s.has(hopConnection) {
		// The names Connection lists, copied: the removals below move
		// the headers that hold them.
		var buf [256]byte
		names := buf[:0]
		values := h.PeekAll("Connection")
		n := len(values)
		for _, v := range values {
			names = append(append(names, v...), ',')
		}
		for rest := names; len(rest) > 0; {
			var t []byte
			t, rest = nextToken(rest)
			// close is an option, not a header.
			if len(t) == 0 || kept(t) || isHop(t) || tokenIs(t, "close") {
				continue
			}
			delRequest(h, string(t))
		}
		// For Connection, fasthttp also counts a close it keeps apart:
		// one sentinel too many goes with the others.
		delCounted(h, "Connection", n)
	}
	for i, name := range hopHeaders {
		if s.has(i) && i != hopConnection && (!websocket || i != hopUpgrade) {
			delRequest(h, name)
		}
	}
	// The client's close (an HTTP/1.0 request's, without Connection) is
	// not the upstream connection's.
	h.ResetConnectionClose()
}

// delRequest removes every name header of h, in place (see stripRequest).
func delRequest(h *fasthttp.RequestHeader, name string) {
	delCounted(h, name, len(h.PeekAll(name)))
}

// delCounted is delRequest of the n name headers of h.
func delCounted(h *fasthttp.RequestHeader, name string, n int) {
	if n == 0 {
		return
	}
	for range n {
		h.Add(sentinel, "")
	}
	h.Del(name)
}

// stripResponse removes the hop-by-hop headers of an upstream's answer and
// those its Connection headers name, but the kept ones (framing). The
// upstream client does not normalize the names of an answer's headers
// (they go to the client as the upstream wrote them), so names compare in
// any case and headers are removed by the names they were written with.
// An upstream rarely sends one field on several lines: only then, the
// lines of such a field that Del could reorder are put back in order.
func stripResponse(h *fasthttp.ResponseHeader) {
	// The headers the Connection headers name (most name none: only
	// keep-alive or close), and every name. The names are the header's
	// own buffers (or fasthttp's constants): they stay as they are until
	// the removals below.
	var namedBuf [8][]byte
	var keysBuf [32][]byte
	named, keys := namedBuf[:0], keysBuf[:0]
	for k, v := range h.All() {
		if tokenIs(k, "Connection") {
			named = connectionNames(named, v)
		}
		keys = append(keys, k)
	}
	// The headers to remove, by the names they were written with, and
	// whether a field that stays has several lines.
	var delBuf, keptBuf [32][]byte
	del, keep := delBuf[:0], keptBuf[:0]
	repeated := false
	for _, k := range keys {
		if isHop(k) || (len(named) > 0 && contains(named, k) && !kept(k)) {
			// Removed by the exact name: two cases of a name are two.
			if !slices.ContainsFunc(del, func(d []byte) bool { return bytes.Equal(d, k) }) {
				del = append(del, k)
			}
			continue
		}
		if contains(keep, k) && !tokenIs(k, "Set-Cookie") {
			repeated = true
		}
		keep = append(keep, k)
	}
	if len(del) == 0 {
		return
	}
	if repeated {
		stripResponseInOrder(h, del, keep)
	} else {
		for _, k := range del {
			h.DelBytes(k)
		}
	}
	// Del forgets a close only under the name Connection, and the
	// upstream's close is not the client's.
	h.ResetConnectionClose()
}

// connectionNames appends to dst the header names a Connection value
// lists, but the options close and keep-alive and the hop-by-hop headers
// (removed anyway).
func connectionNames(dst [][]byte, list []byte) [][]byte {
	for len(list) > 0 {
		var t []byte
		t, list = nextToken(list)
		if len(t) > 0 && !isHop(t) && !tokenIs(t, "close") && !tokenIs(t, "keep-alive") {
			dst = append(dst, t)
		}
	}
	return dst
}

// stripResponseInOrder is stripResponse when a field that stays has
// several lines: their values are copied before the removals and set
// again after, in their order. It allocates; it is rare.
func stripResponseInOrder(h *fasthttp.ResponseHeader, del, keep [][]byte) {
	type line struct{ k, v []byte }
	var again []line
	for i, k := range keep {
		if !contains(keep[:i], k) && contains(keep[i+1:], k) && !special(k) {
			for _, v := range h.PeekAll(string(k)) {
				again = append(again, line{bytes.Clone(k), bytes.Clone(v)})
			}
		}
	}
	for _, k := range del {
		h.DelBytes(k)
	}
	for i, l := range again {
		if i == 0 || !bytes.Equal(again[i-1].k, l.k) {
			h.DelBytes(l.k)
		}
		h.AddBytesKV(l.k, l.v)
	}
}

// special reports whether fasthttp keeps the header of an answer apart
// from the others (stripResponseInOrder leaves those as they are).
func special(k []byte) bool {
	for _, s := range [...]string{"Content-Type", "Content-Length", "Content-Encoding",
		"Server", "Set-Cookie", "Transfer-Encoding", "Date", "Trailer", "Connection"} {
		if tokenIs(k, s) {
			return true
		}
	}
	return false
}

// listed reports whether the comma-separated list names holds name, in
// any case.
func listed(names, name []byte) bool {
	for len(names) > 0 {
		var t []byte
		t, names = nextToken(names)
		if len(t) == len(name) && bytes.EqualFold(t, name) {
			return true
		}
	}
	return false
}

func contains(list [][]byte, k []byte) bool {
	for _, l := range list {
		if len(l) == len(k) && bytes.EqualFold(l, k) {
			return true
		}
	}
	return false
}

// maxHead bounds the head of an answer on a tunnel, as a request's.
const maxHead = bufferSize

// answerHead is what the head of an upstream's answer on a tunnel says of
// its body.
type answerHead struct {
	status  int
	length  int64 // -1: none given
	chunked bool
	// close: the upstream closes the connection after the answer (it
	// says so, or it speaks HTTP/1.0).
	close bool
	// dated: the answer has a Date.
	dated bool
}

// readAnswer reads the head of the upstream's answer on a tunnel and
// returns it as the client gets it (see relayHead), interim answers (1xx
// but 101) first. A 101 is an answer to a WebSocket upgrade only.
func readAnswer(br *bufio.Reader, websocket bool) ([]byte, answerHead, error) {
	var out []byte
	for {
		head, err := readRawHead(nil, br)
		if err != nil {
			return nil, answerHead{}, err
		}
		ans, err := parseAnswer(head)
		if err != nil {
			return nil, answerHead{}, err
		}
		// A proxy sends its own version (RFC 9110 §6.2), as the fast path
		// does.
		head[len("HTTP/1.")] = '1'
		switch {
		case ans.status == http.StatusSwitchingProtocols && !websocket:
			return nil, answerHead{}, errors.New("101 Switching Protocols to a request that asked for no upgrade")
		case ans.status < 200 && ans.status != http.StatusSwitchingProtocols:
			out = relayHead(out, head, headInterim)
			continue
		case ans.status == http.StatusSwitchingProtocols:
			return relayHead(out, head, headSwitching), ans, nil
		}
		return relayHead(out, head, headFinal), ans, nil
	}
}

// readRawHead reads a status line and header lines up to the empty line,
// into head's memory when it has room.
func readRawHead(head []byte, br *bufio.Reader) ([]byte, error) {
	head = head[:0]
	// Most often the whole head is buffered, its lines ending in CRLF.
	if b, _ := br.Peek(br.Buffered()); len(b) > 0 {
		if n := headEnd(b); n > 0 {
			head = append(head, b[:n]...)
			_, _ = br.Discard(n)
			return head, nil
		}
	}
	// A line longer than the buffer comes in parts: only a whole line
	// can be the empty one.
	whole := true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("reading the head of the answer: %w", err)
		}
		head = append(head, line...)
		if len(head) > maxHead {
			return nil, errors.New("the head of the answer is larger than 16 KiB")
		}
		if whole && err == nil && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) {
			return head, nil
		}
		whole = err == nil
	}
}

// parseAnswer reads the status and the framing of a head.
func parseAnswer(head []byte) (answerHead, error) {
	ans := answerHead{length: -1}
	first, rest := cutLine(head)
	// HTTP/1.1 200 OK
	if len(first) < 12 || !bytes.HasPrefix(first, []byte("HTTP/1.")) || first[8] != ' ' {
		return ans, fmt.Errorf("not an HTTP/1.x answer: %.40q", first)
	}
	code, err := strconv.Atoi(string(first[9:12]))
	if err != nil || code < 100 || code > 999 {
		return ans, fmt.Errorf("not an HTTP/1.x status: %.40q", first)
	}
	ans.status = code
	ans.close = first[7] == '0'
	for len(rest) > 0 {
		var line []byte
		line, rest = cutLine(rest)
		k, v, _ := cutColon(line)
		v = trimOWS(v)
		switch {
		case tokenIs(k, "Transfer-Encoding"):
			// chunked is the last coding when there is one (RFC 9112 §6.1).
			ans.chunked = len(v) >= len("chunked") && bytes.EqualFold(v[len(v)-len("chunked"):], []byte("chunked"))
		case tokenIs(k, "Content-Length"):
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || n < 0 || (ans.length >= 0 && n != ans.length) {
				return ans, fmt.Errorf("invalid Content-Length %.40q", v)
			}
			ans.length = n
		case tokenIs(k, "Connection"):
			ans.close = ans.close || listed(v, []byte("close"))
		case tokenIs(k, "Date"):
			ans.dated = true
		}
	}
	if ans.chunked {
		ans.length = -1
	}
	return ans, nil
}

// cutLine cuts the first line of b, its CRLF (or LF) off.
func cutLine(b []byte) (line, rest []byte) {
	line = b
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		line, rest = b[:i], b[i+1:]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// cutColon cuts a header line at its first colon.
func cutColon(line []byte) (name, value []byte, ok bool) {
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		return line[:i], line[i+1:], true
	}
	return line, nil, false
}

// What relayHead relays: an interim answer (1xx), a 101 to a WebSocket
// upgrade, a final answer after which the client connection closes, a
// final answer after which it stays open.
const (
	headInterim = iota
	headSwitching
	headFinal
	headKept
)

// relayHead appends to dst the head of an answer on a tunnel as the
// client gets it: without the hop-by-hop headers and those its Connection
// headers name (but Content-Length and Transfer-Encoding, which frame the
// body the tunnel copies as is), in order. A 101 keeps its Upgrade and
// says Connection: Upgrade; a final answer says Connection: close (the
// tunnel closes after it).
func relayHead(dst, head []byte, kind int) []byte {
	first, rest := cutLine(head)
	dst = append(append(dst, first...), "\r\n"...)
	var buf [256]byte
	names := buf[:0]
	for r := rest; len(r) > 0; {
		var line []byte
		line, r = cutLine(r)
		if k, v, ok := cutColon(line); ok && tokenIs(k, "Connection") {
			names = append(append(names, v...), ',')
		}
	}
	drop := false
	for len(rest) > 0 {
		var line []byte
		line, rest = cutLine(rest)
		if len(line) == 0 {
			break
		}
		// A line folded onto the previous one (obsolete) goes with it.
		if line[0] != ' ' && line[0] != '\t' {
			k, _, _ := cutColon(line)
			drop = isHop(k) || (!kept(k) && listed(names, k))
			if kind == headSwitching && tokenIs(k, "Upgrade") {
				drop = false
			}
		}
		if !drop {
			dst = append(append(dst, line...), "\r\n"...)
		}
	}
	switch kind {
	case headSwitching:
		dst = append(dst, "Connection: Upgrade\r\n"...)
	case headFinal:
		dst = append(dst, "Connection: close\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// copyBody copies to bw the body of an answer, as framed: its length, its
// chunks (their trailer fields left out: Trailer is hop-by-hop), or all up
// to the upstream's close. bw is flushed before each wait for the
// upstream: the client gets each part as it comes.
func copyBody(bw *bufio.Writer, br *bufio.Reader, ans answerHead) error {
	switch {
	case ans.status == http.StatusNoContent || ans.status == http.StatusNotModified:
		return nil
	case ans.chunked:
		for {
			if err := flushBeforeWait(bw, br); err != nil {
				return err
			}
			line, err := br.ReadSlice('\n')
			if err != nil {
				return err
			}
			sizeHex, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte{';'})
			size, err := strconv.ParseInt(string(bytes.Trim(sizeHex, " \t")), 16, 64)
			if err != nil || size < 0 {
				return fmt.Errorf("invalid chunk size %.20q", line)
			}
			if size == 0 {
				// The trailer section, up to its empty line.
				for {
					if err := flushBeforeWait(bw, br); err != nil {
						return err
					}
					l, err := br.ReadSlice('\n')
					if err != nil {
						return err
					}
					if len(bytes.TrimRight(l, "\r\n")) == 0 {
						break
					}
				}
				_, err = bw.WriteString("0\r\n\r\n")
				return err
			}
			if _, err := bw.Write(line); err != nil {
				return err
			}
			if err := relayN(bw, br, size+2); err != nil {
				return err
			}
		}
	case ans.length >= 0:
		return relayN(bw, br, ans.length)
	}
	return relayN(bw, br, -1)
}

// flushBeforeWait flushes bw when reading br would wait.
func flushBeforeWait(bw *bufio.Writer, br *bufio.Reader) error {
	if br.Buffered() == 0 {
		return bw.Flush()
	}
	return nil
}
