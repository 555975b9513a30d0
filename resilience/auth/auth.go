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
