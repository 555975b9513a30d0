package confcheck

import "testing"

func TestValidSIP(t *testing.T) {
	t.Parallel()
	for uri, want := range map[string]bool{
		"sip:127.0.0.1:5060": true, "sip:host": true, "sips:xivo@h.example:5061;transport=tls": true,
		"sip:[::1]:5060": true, "sip:u:pw@h": true, "sip:h?subject=x": true,
		"sip:": false, "sip:h:": false, "sip:h:0": false, "sip:h:x": false, "http://h": false,
		"sip:[::1": false, "sip:[::1]x": false, "sip:a b": false, "sip:@": false, "SIP:h": false,
	} {
		if got := ValidSIP(uri); got != want {
			t.Errorf("ValidSIP(%q) = %v, want %v", uri, got, want)
		}
	}
}
