// Package auth checks the bearer token of resman's HTTP APIs (node, CC,
// Edge, replication) in one place: constant-time, and an unset token
// allows nothing.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Token is a configured bearer token, kept as its hash.
type Token struct {
	hash [sha256.Size]byte
	set  bool
}

// NewToken returns the token secret; an empty secret allows nothing.
func NewToken(secret string) Token {
	return Token{hash: sha256.Sum256([]byte(secret)), set: secret != ""}
}

// Set reports whether a token is configured.
func (t Token) Set() bool { return t.set }

// Matches reports, in constant time, whether presented is the token.
// Comparing hashes keeps the time independent of the lengths too.
func (t Token) Matches(presented string) bool {
	if !t.set || presented == "" {
		return false
	}
	got := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(got[:], t.hash[:]) == 1
}

// Bearer extracts the token of an Authorization header value of the
// "Bearer" scheme (case-insensitive); "" when absent or another scheme.
func Bearer(header string) string {
	scheme, token, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// Allows reports whether r carries the token as a bearer token.
func (t Token) Allows(r *http.Request) bool {
	return t.Matches(Bearer(r.Header.Get("Authorization")))
}

// Access is what a bearer token may do.
type Access int

const (
	// None: no token, or a wrong one.
	None Access = iota
	// Read: a read token, for reads only (GET, HEAD).
	Read
	// Full: the full token, for everything.
	Full
)

func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Full:
		return "full"
	}
	return "none"
}

// Tokens are an API's full token and its read-only tokens.
type Tokens struct {
	full Token
	read []Token
}

// NewTokens returns the full token and the read tokens; empty secrets
// allow nothing.
func NewTokens(full string, read []string) Tokens {
	t := Tokens{full: NewToken(full)}
	for _, r := range read {
		if r != "" {
			t.read = append(t.read, NewToken(r))
		}
	}
	return t
}

// WithRead returns t with read in place of its read tokens (the full token
// is kept): a reload of the read tokens.
func (t Tokens) WithRead(read []string) Tokens {
	n := NewTokens("", read)
	n.full = t.full
	return n
}

// Set reports whether any token is configured.
func (t Tokens) Set() bool { return t.full.Set() || len(t.read) > 0 }

// Check returns what presented may do. Every token is compared, in
// constant time, whichever matches: the time tells nothing of which one
// did, nor how much of it.
func (t Tokens) Check(presented string) Access {
	full := t.full.Matches(presented)
	read := false
	for _, r := range t.read {
		if r.Matches(presented) {
			read = true
		}
	}
	switch {
	case full:
		return Full
	case read:
		return Read
	}
	return None
}

// CheckRequest is Check of r's bearer token.
func (t Tokens) CheckRequest(r *http.Request) Access {
	return t.Check(Bearer(r.Header.Get("Authorization")))
}
