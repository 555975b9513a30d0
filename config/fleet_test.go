package config

import (
	"strings"
	"testing"
	"time"
)

// The fleet section, as the file's Config reads, defaults, checks, prints
// and redacts it: its problems in the schema's order among the others'.
func TestFleetSection(t *testing.T) {
	t.Parallel()
	const agg = "fleet-view-token-0a1b2c3d4e5f"
	yaml := `api: {listen: "127.0.0.1:9440", token: ` + agg + `}
log: {level: loud}
fleet:
  pairs_dir: fleet.d
  interval: 0s
  timeout: 3s
  concurrency: 2000
  pairs:
    - name: paris 1
      nodes: ["ftp://10.0.0.1:9440", "http://u:p@10.0.0.2:9440?x=1"]
      token: short
    - name: lyon-1
      nodes: ["http://10.0.0.3:9440", "http://10.0.0.3:9440"]
      token: ` + agg + `
    - name: lyon-1
      nodes: ["http://10.0.0.5:9440"]
    - nodes: ["http://10.0.0.7:9440?q", ""]
      token: 0123456789abcdef0123
`
	_, err := Parse([]byte(yaml), envOf(nil))
	want := strings.Join([]string{
		`log.level: must be debug, info, warn or error, got "loud"`,
		`fleet.pairs[0].name: must be 1 to 128 letters, digits, '.', '_' or '-', got "paris 1"`,
		`fleet.pairs[0].nodes[0]: must be an http(s) URL with a host, like http://10.0.0.1:9440, got "ftp://10.0.0.1:9440"`,
		`fleet.pairs[0].nodes[1]: must not hold a user or password: the token is in fleet.pairs[0].token`,
		`fleet.pairs[0].token: must be at least 16 characters, got 5`,
		`fleet.pairs[1].nodes[1]: must differ from fleet.pairs[1].nodes[0], both are "http://10.0.0.3:9440"`,
		`fleet.pairs[1].token: must differ from api.token: api.token lets one read the fleet view, the pair's token lets one start and stop its services`,
		`fleet.pairs[2].name: duplicate of fleet.pairs[1].name "lyon-1"`,
		`fleet.pairs[2].nodes: must list the pair's 2 nodes' API base URLs, like [http://10.0.0.1:9440, http://10.0.0.2:9440], got 1`,
		`fleet.pairs[2].token: required: the pair's api.token, at least 16 characters`,
		`fleet.pairs[3].name: required: the pair's name, unique in the fleet, like paris-1`,
		`fleet.pairs[3].nodes[0]: must be a base URL, without query or fragment, got "http://10.0.0.7:9440?q"`,
		`fleet.pairs[3].nodes[1]: required: an http(s) URL, like http://10.0.0.1:9440`,
		`fleet.pairs_dir: must be an absolute directory, like /etc/resman/fleet.d, got "fleet.d"`,
		`fleet.interval: must be a duration above 0, like 2s, got 0s`,
		`fleet.concurrency: must be 1 to 1024, got 2000`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}

	// The timeout is checked against the interval only when the interval
	// is valid (above: no timeout problem); no pairs at all.
	_, err = Parse([]byte("api: {token: "+agg+"}\nfleet: {interval: 1s, timeout: 2s}\n"), envOf(nil))
	want = "fleet.pairs: list at least one pair, or set fleet.pairs_dir\nfleet.timeout: must not exceed fleet.interval (1s), got 2s"
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}

	// Defaults fill what the file left out (the timeout after the
	// interval), the environment overrides, and the pair's token is
	// redacted when printed and named when weak.
	ok := "api: {token: " + agg + "}\nfleet:\n  pairs_dir: /etc/resman/fleet.d\n  pairs: [{name: p1, nodes: [\"http://10.0.0.1:9440\", \"http://10.0.0.2:9440\"], token: change-me-0123456789}]\n"
	c := mustParse(t, ok, map[string]string{"RESMAN_FLEET_INTERVAL": "5s"})
	if f := c.Fleet; f.Interval != 5*time.Second || f.Timeout != 5*time.Second || f.Concurrency != 32 {
		t.Errorf("fleet %+v, want interval 5s, timeout 5s, concurrency 32", *f)
	}
	out, err := c.Redacted().YAML()
	if err != nil {
		t.Fatal(err)
	}
	wantYAML := `fleet:
    pairs:
        - name: p1
          nodes: ['http://10.0.0.1:9440', 'http://10.0.0.2:9440']
          token: REDACTED
    pairs_dir: /etc/resman/fleet.d
    interval: 5s
    timeout: 5s
    concurrency: 32
`
	if !strings.HasSuffix(string(out), wantYAML) {
		t.Errorf("printed:\n%s\nwant it to end with:\n%s", out, wantYAML)
	}
	if got := keysOf(c.WeakSecrets()); len(got) != 1 || got[0] != "fleet.pairs[0].token" {
		t.Errorf("weak secrets %q, want fleet.pairs[0].token", got)
	}
}
