// Package confcheck is what the components' config sections share to
// check themselves: a list of problems keyed by their full key path
// ("edge.sides[1].node: must be ..."), the usual field checks (required,
// one of, host:port, http(s) URL, sip: URI, duration above 0, token) and
// the helper that fills a default only for a key the file did not give.
//
// It is a leaf: no viper, no YAML, no other package of resman. The file's
// Config (package config) composes the sections, orders the problems by
// the schema and adds the rules that span sections.
package confcheck

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// MinTokenLen is the shortest accepted bearer token.
const MinTokenLen = 16

// Problem is one thing wrong with a config: Key is the full key path
// (node.role, services[0].check.sip), Msg says what is wrong and what is
// expected. File, set only by the checks of several files, names the file
// Key is in.
type Problem struct {
	File string
	Key  string
	Msg  string
}

func (p Problem) String() string {
	s := p.Msg
	if p.Key != "" {
		s = p.Key + ": " + s
	}
	if p.File != "" {
		s = p.File + ": " + s
	}
	return s
}

// Problems collects the problems of a section, in the order they were
// found. Package config orders them by the schema.
type Problems []Problem

// Error prints one problem a line, in the order held: the problems of a
// section checked on its own (the fleet aggregator's pairs, read from the
// files of fleet.pairs_dir) are an error as they stand. The file's
// problems (package config) print in the schema's order.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Add records a problem of key.
func (ps *Problems) Add(key, format string, args ...any) {
	*ps = append(*ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Given reports whether the file (or the environment) gave a key: a
// default never replaces a key that was written, even as 0.
type Given func(key string) bool

// NothingGiven is the Given of a section built in Go rather than read
// from a file: every key left at zero takes its default.
func NothingGiven(string) bool { return false }

// Default sets *dst to val when key was not given and *dst is still zero.
func Default[T comparable](given Given, key string, dst *T, val T) {
	var zero T
	if *dst == zero && !given(key) {
		*dst = val
	}
}

// Field checks.

// OneOf checks that got is one of allowed ("" is reported as required).
func (ps *Problems) OneOf(key, got string, allowed ...string) {
	if slices.Contains(allowed, got) {
		return
	}
	want := allowed[0]
	if n := len(allowed); n > 1 {
		want = strings.Join(allowed[:n-1], ", ") + " or " + allowed[n-1]
	}
	if got == "" {
		ps.Add(key, "required: must be %s", want)
		return
	}
	ps.Add(key, "must be %s, got %q", want, got)
}

// Required checks that got is set; what says what is expected.
func (ps *Problems) Required(key, got, what string) {
	if got == "" {
		ps.Add(key, "required: %s", what)
	}
}

// Name checks a required identifier-like value.
func (ps *Problems) Name(key, got, what string) {
	switch {
	case got == "":
		ps.Add(key, "required: %s", what)
	case strings.ContainsFunc(got, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		ps.Add(key, "must not contain spaces, got %q", got)
	}
}

// NameIn checks the name of item i of the list at key path list (the key
// list[i].name): a name as Name checks it, used by no earlier item. seen
// holds the names so far, one map per list.
func (ps *Problems) NameIn(seen map[string]int, list string, i int, got, what string) {
	key := fmt.Sprintf("%s[%d].name", list, i)
	ps.Name(key, got, what)
	if j, dup := seen[got]; dup && got != "" {
		ps.Add(key, "duplicate of %s[%d].name %q", list, j, got)
	} else {
		seen[got] = i
	}
}

// Token checks a required bearer token, without repeating its value.
func (ps *Problems) Token(key, got, what string) {
	switch {
	case got == "":
		ps.Add(key, "required: %s, at least %d characters (openssl rand -hex 24)", what, MinTokenLen)
	case strings.ContainsFunc(got, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		ps.Add(key, "must not contain spaces or control characters")
	case len(got) < MinTokenLen:
		// The length, not the value: it is a secret.
		ps.Add(key, "must be at least %d characters, got %d", MinTokenLen, len(got))
	}
}

// Positive checks a duration above 0.
func (ps *Problems) Positive(key string, d time.Duration) {
	if d <= 0 {
		ps.Add(key, "must be a duration above 0, like 1s, got %s", d)
	}
}

// AtLeastOne checks a count of at least 1.
func (ps *Problems) AtLeastOne(key string, n int) {
	if n < 1 {
		ps.Add(key, "must be at least 1, got %d", n)
	}
}

// Command checks an argv list: an empty one is accepted (the caller
// decides whether the key is required), an empty program is not.
func (ps *Problems) Command(key string, argv []string) {
	if len(argv) == 0 {
		return
	}
	if strings.TrimSpace(argv[0]) == "" {
		ps.Add(key, "the program (first item) must not be empty")
	}
}

// HostPort checks host:port; an empty value is accepted (the caller
// decides whether the key is required). wantHost rejects ":7946".
func (ps *Problems) HostPort(key, got string, wantHost bool, example string) {
	if got == "" {
		return
	}
	host, port, err := net.SplitHostPort(got)
	n, perr := strconv.Atoi(port)
	switch {
	case err != nil, perr != nil, n < 1, n > 65535,
		strings.ContainsFunc(host, unicode.IsSpace):
		ps.Add(key, "must be host:port with a port from 1 to 65535, like %s, got %q", example, got)
	case wantHost && host == "":
		ps.Add(key, "must name a host, like %s, got %q", example, got)
	}
}

// URL checks an http(s) URL with a host.
func (ps *Problems) URL(key, got string, required bool, example string) {
	if got == "" {
		if required {
			ps.Add(key, "required: an http(s) URL, like %s", example)
		}
		return
	}
	if !ValidHTTPURL(got) {
		ps.Add(key, "must be an http(s) URL with a host, like %s, got %q", example, got)
	}
}

// ValidHTTPURL accepts http and https URLs with a host and no spaces.
func ValidHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() != "" &&
		!strings.ContainsFunc(s, unicode.IsSpace)
}

// ValidSIP accepts sip: and sips: URIs with a host and optional user and
// port: sip:host, sip:user@host:port;transport=tcp.
func ValidSIP(s string) bool {
	rest, ok := strings.CutPrefix(s, "sip:")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "sips:"); !ok {
			return false
		}
	}
	if strings.ContainsFunc(rest, unicode.IsSpace) {
		return false
	}
	if i := strings.IndexAny(rest, ";?"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = rest[i+1:]
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") { // [IPv6]:port
		end := strings.Index(rest, "]")
		if end < 0 {
			return false
		}
		host, port = rest[1:end], strings.TrimPrefix(rest[end+1:], ":")
		if rest[end+1:] != "" && !strings.HasPrefix(rest[end+1:], ":") {
			return false
		}
	} else if h, p, found := strings.Cut(rest, ":"); found {
		host, port = h, p
	}
	if host == "" || strings.ContainsAny(host, "/[]:@") && net.ParseIP(host) == nil {
		return false
	}
	if port != "" || strings.HasSuffix(rest, ":") {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return false
		}
	}
	return true
}
