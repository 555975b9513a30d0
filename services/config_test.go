package services

import "testing"

func TestKinds(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		s    Service
		want string
	}{
		{Service{Start: []string{"a"}, Stop: []string{"b"}}, KindCommands},
		{Service{Stop: []string{"b"}}, KindCommands},
		{Service{Unit: "u"}, KindUnit},
		{Service{Run: []string{"r"}}, KindRun},
		{Service{}, ""},
	} {
		if got := tt.s.Kind(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.s, got, tt.want)
		}
	}
	for _, tt := range []struct {
		c    Check
		want string
	}{
		{Check{SIP: "sip:h"}, KindSIP},
		{Check{Exec: []string{"x"}}, KindExec},
		{Check{TCP: "h:1"}, KindTCP},
		{Check{HTTP: "http://h"}, KindHTTP},
		{Check{}, ""},
	} {
		if got := tt.c.Kind(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.c, got, tt.want)
		}
	}
}
