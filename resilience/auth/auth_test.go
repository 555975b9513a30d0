package auth

import (
	"net/http/httptest"
	"testing"
)

func TestToken(t *testing.T) {
	tok := NewToken("0123456789abcdef")
	tests := []struct {
		header string
		want   bool
	}{
		{"Bearer 0123456789abcdef", true},
		{"bearer 0123456789abcdef", true},
		{"Bearer  0123456789abcdef ", true},
		{"Bearer 0123456789abcdeX", false},
		{"Bearer 0123456789abcdef0", false},
		{"Basic 0123456789abcdef", false},
		{"0123456789abcdef", false},
		{"Bearer", false},
		{"", false},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		if got := tok.Allows(r); got != tc.want {
			t.Errorf("%q: allows = %v, want %v", tc.header, got, tc.want)
		}
	}
	unset := NewToken("")
	if unset.Set() || unset.Matches("") || unset.Matches("anything") {
		t.Fatal("an unset token must allow nothing")
	}
}

func TestTokensAccess(t *testing.T) {
	const full, read1, read2 = "full-0123456789abcdef", "read-0123456789abcdef", "read-fedcba9876543210"
	toks := NewTokens(full, []string{read1, "", read2})
	tests := []struct {
		presented string
		want      Access
	}{
		{full, Full},
		{read1, Read},
		{read2, Read},
		{read1 + "x", None},
		{"full-0123456789abcdeX", None},
		{"", None},
	}
	for _, tc := range tests {
		if got := toks.Check(tc.presented); got != tc.want {
			t.Errorf("Check(%q) = %v, want %v", tc.presented, got, tc.want)
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+tc.presented)
		if got := toks.CheckRequest(r); got != tc.want {
			t.Errorf("CheckRequest(%q) = %v, want %v", tc.presented, got, tc.want)
		}
	}
	// A read token equal to the full token does not lower it.
	if got := NewTokens(full, []string{full}).Check(full); got != Full {
		t.Errorf("the full token also listed as a read token: %v, want Full", got)
	}
	// No full token: the read tokens still read, nothing writes.
	if got := NewTokens("", []string{read1}).Check(read1); got != Read {
		t.Errorf("read token without a full token: %v, want Read", got)
	}
	if got := NewTokens("", nil).Check(""); got != None {
		t.Errorf("nothing configured: %v, want None", got)
	}
	if !NewTokens("", []string{read1}).Set() || NewTokens("", []string{""}).Set() {
		t.Error("Set: want true with any token, false with none")
	}
	for a, s := range map[Access]string{None: "none", Read: "read", Full: "full"} {
		if a.String() != s {
			t.Errorf("%d.String() = %q, want %q", a, a.String(), s)
		}
	}
}

// WithRead swaps the read tokens and keeps the full token; the original
// is left as it was.
func TestTokensWithRead(t *testing.T) {
	const full, old, nw = "full-0123456789abcdef", "read-0123456789abcdef", "read-fedcba9876543210"
	before := NewTokens(full, []string{old})
	after := before.WithRead([]string{nw, ""})
	for _, tc := range []struct {
		toks      Tokens
		presented string
		want      Access
	}{
		{after, full, Full},
		{after, nw, Read},
		{after, old, None},
		{before, old, Read},
		{before, nw, None},
	} {
		if got := tc.toks.Check(tc.presented); got != tc.want {
			t.Errorf("Check(%q) = %v, want %v", tc.presented, got, tc.want)
		}
	}
	if NewTokens("", []string{old}).WithRead(nil).Set() {
		t.Error("no full token and no read tokens left: Set is true")
	}
}
