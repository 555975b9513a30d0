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
