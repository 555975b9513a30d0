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

// A section checked on its own prints its problems in the order found.
func TestProblemsError(t *testing.T) {
	t.Parallel()
	var ps Problems
	ps.Add("fleet.pairs[0].token", "t")
	ps = append(ps, Problem{File: "/d/a.yaml", Key: "pairs[0].name", Msg: "n"}, Problem{File: "/d/b.yaml", Msg: "f"})
	ps.Add("fleet.interval", "i")
	want := "fleet.pairs[0].token: t\n/d/a.yaml: pairs[0].name: n\n/d/b.yaml: f\nfleet.interval: i"
	if got := ps.Error(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestDefaultNothingGiven(t *testing.T) {
	t.Parallel()
	n, set := 0, 7
	Default(NothingGiven, "k", &n, 3)
	Default(NothingGiven, "k", &set, 3)
	var written int
	Default(func(string) bool { return true }, "k", &written, 3)
	if n != 3 || set != 7 || written != 0 {
		t.Errorf("got %d %d %d, want 3 7 0", n, set, written)
	}
}
