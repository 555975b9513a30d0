package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/edge"
	"github.com/resman-pbx/resman/services"
	"github.com/resman-pbx/resman/xds"
)

func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func mustParse(t *testing.T, yaml string, env map[string]string) *Config {
	t.Helper()
	c, err := Parse([]byte(yaml), envOf(env))
	if err != nil {
		t.Fatalf("Parse: unexpected error:\n%v", err)
	}
	return c
}

// checkProblems asserts err holds exactly len(want) problems, the i-th
// (in schema order) containing want[i].
func checkProblems(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected error:\n%v", err)
		}
		return
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want Problems %q, got %v", want, err)
	}
	ok := len(ps) == len(want)
	for i := 0; ok && i < len(ps); i++ {
		ok = strings.Contains(ps[i].String(), want[i])
	}
	if !ok {
		t.Fatalf("want problems (in order):\n  %s\ngot:\n  %s", strings.Join(want, "\n  "),
			strings.ReplaceAll(ps.Error(), "\n", "\n  "))
	}
}

func TestValidShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file  string
		check func(t *testing.T, c *Config)
	}{
		{"manual-pair.yaml", func(t *testing.T, c *Config) {
			if c.Node.Role != RoleMain || c.Node.Mode != ModeManual || c.CC != nil || c.Edge != nil {
				t.Errorf("sections: %+v cc=%v edge=%v", c.Node, c.CC, c.Edge)
			}
			kinds := []string{}
			for _, s := range c.Services {
				kinds = append(kinds, s.Kind()+"/"+s.Check.Kind())
			}
			if want := []string{"unit/tcp", "commands/sip", "run/http", "unit/exec"}; !slices.Equal(kinds, want) {
				t.Errorf("kinds %v, want %v", kinds, want)
			}
			if c.Services[1].Timeout != time.Minute || c.Services[1].Check.Rise != 3 || c.Services[1].Check.Interval != 2*time.Second {
				t.Errorf("asterisk: %+v %+v", c.Services[1], c.Services[1].Check)
			}
			if c.Replication[1].MaxAge != 30*time.Minute {
				t.Errorf("sounds max_age %s, want 2 x every", c.Replication[1].MaxAge)
			}
			if m := c.XDS.MDS[1]; m.Transport != "tcp" || m.Expires != 300 || c.XDS.MDS[0].Transport != "udp" {
				t.Errorf("mds: %+v", c.XDS.MDS)
			}
		}},
		{"auto-node.yaml", func(t *testing.T, c *Config) {
			if c.Node.Mode != ModeAuto || c.Gossip.ProbeInterval != 300*time.Millisecond {
				t.Errorf("node %+v gossip %+v", c.Node, c.Gossip)
			}
			if want := []string{"127.0.0.1:7946", "127.0.0.3:7946"}; !slices.Equal(c.Gossip.Join, want) {
				t.Errorf("join %v, want peer and witness %v", c.Gossip.Join, want)
			}
			if c.Failover.FailbackHold != 0 || c.Failover.Failback != FailbackManual {
				t.Errorf("explicit failback_hold 0 must stay 0: %+v", c.Failover)
			}
			if c.Failover.BootGrace != 0 {
				t.Errorf("explicit boot_grace 0 must stay 0: %+v", c.Failover)
			}
			if key, err := c.GossipKeyBytes(); err != nil || len(key) != 32 {
				t.Errorf("key %d bytes, %v", len(key), err)
			}
		}},
		{"witness.yaml", func(t *testing.T, c *Config) {
			if c.Node.Role != RoleWitness || c.Peer != nil || len(c.Gossip.Join) != 2 {
				t.Errorf("witness: %+v peer=%v join=%v", c.Node, c.Peer, c.Gossip.Join)
			}
		}},
		{"cc.yaml", func(t *testing.T, c *Config) {
			if c.Node != nil || c.CC == nil || len(c.CC.Services) != 2 {
				t.Fatalf("cc: node=%v cc=%+v", c.Node, c.CC)
			}
			if s := c.CC.Services[1]; s.Kind() != services.KindCommands || s.Timeout != 30*time.Second || s.Check != nil {
				t.Errorf("recording: %+v", s)
			}
			if len(c.Gossip.Join) != 0 {
				t.Errorf("a cc-only file joins nothing, got %v", c.Gossip.Join)
			}
		}},
		{"edge.yaml", func(t *testing.T, c *Config) {
			if c.Edge == nil || len(c.Edge.Sides) != 2 || c.Node != nil {
				t.Fatalf("edge: %+v", c.Edge)
			}
			if ch := c.Edge.Check; ch.Interval != time.Second || ch.Rise != 2 || ch.Fall != 2 {
				t.Errorf("edge.check %+v", ch)
			}
		}},
		{"all-in-one.yaml", func(t *testing.T, c *Config) {
			if c.Node == nil || c.CC == nil || c.Edge == nil {
				t.Fatal("want node, cc and edge")
			}
			if c.Node.DataDir != "/srv/resman" || c.Peer.Timeout != 1500*time.Millisecond || c.Gossip.SuspicionMult != 3 {
				t.Errorf("node %+v peer %+v gossip %+v", c.Node, c.Peer, c.Gossip)
			}
			if c.Gossip.Bind != DefaultBind || !slices.Equal(c.Gossip.Join, []string{"10.0.0.2:7946"}) {
				t.Errorf("gossip %+v", c.Gossip)
			}
			if c.Log != (Log{Level: "warn", Format: "json"}) {
				t.Errorf("log %+v", c.Log)
			}
			h := c.Hooks
			if h.Timeout != 20*time.Second || len(h.BeforeActivate) != 1 || h.BeforeActivate[0].Timeout != 5*time.Second ||
				h.AfterActivate[0].Timeout != 20*time.Second || !slices.Equal(h.AfterDeactivate[0].Run, []string{"/usr/local/bin/notify", "inactive"}) {
				t.Errorf("hooks %+v", h)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			tt.check(t, mustParse(t, fixture(t, tt.file), nil))
		})
	}
}

func TestLoad(t *testing.T) {
	t.Setenv("RESMAN_LOG_LEVEL", "debug")
	c, err := Load(filepath.Join("testdata", "witness.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Level != "debug" {
		t.Errorf("log.level %q, want the process env override debug", c.Log.Level)
	}

	missing := filepath.Join(t.TempDir(), "nope.yaml")
	_, err = Load(missing)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	if strings.Count(err.Error(), missing) != 1 {
		t.Errorf("name the file once: %v", err)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("node: {name: a, role: primary}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	var ps Problems
	if !errors.As(err, &ps) || !strings.HasPrefix(err.Error(), "config file "+bad+": ") ||
		!strings.Contains(err.Error(), "\nnode.role: must be main, standby or witness, got \"primary\"") {
		t.Errorf("bad file: %v", err)
	}
}

func TestSyntaxError(t *testing.T) {
	t.Parallel()
	for _, y := range []string{"node: [\n", "- a\n- b\n", "node:\n\tname: x\n"} {
		_, err := Parse([]byte(y), nil)
		var ps Problems
		if err == nil || errors.As(err, &ps) || !strings.HasPrefix(err.Error(), "config: ") {
			t.Errorf("%q: want a parse error, got %v", y, err)
		}
	}
}

const manualMain = `
node: {name: xivo-main, role: main, version: "2025.10.3"}
api: {token: 0123456789abcdef0123}
peer: {name: xivo-standby, api: "http://127.0.0.2:9440"}
`

const autoMain = `
node: {name: xivo-main, role: main, mode: auto, version: "2025.10.3"}
api: {token: 0123456789abcdef0123}
peer: {name: xivo-standby, api: "http://127.0.0.2:9440", gossip: "127.0.0.2:7946"}
gossip: {key: "ixRkyckRn2MAzPkiERpX1Q=="}
`

func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		yaml     string
		env      map[string]string
		check    func(t *testing.T, c *Config)
		wantErrs []string
	}{
		{name: "scalar", yaml: manualMain,
			env: map[string]string{"RESMAN_API_TOKEN": "from-env-0123456789", "RESMAN_NODE_VERSION": "2026.1.0"},
			check: func(t *testing.T, c *Config) {
				if c.API.Token != "from-env-0123456789" || c.Node.Version != "2026.1.0" {
					t.Errorf("token %q version %q", c.API.Token, c.Node.Version)
				}
			}},
		{name: "mode switch", yaml: manualMain + "gossip: {key: \"ixRkyckRn2MAzPkiERpX1Q==\"}\n",
			env: map[string]string{"RESMAN_NODE_MODE": "auto", "RESMAN_PEER_GOSSIP": "127.0.0.2:7946"},
			check: func(t *testing.T, c *Config) {
				if c.Node.Mode != ModeAuto || c.Peer.Gossip != "127.0.0.2:7946" || !slices.Equal(c.Gossip.Join, []string{"127.0.0.2:7946"}) {
					t.Errorf("node %+v peer %+v join %v", c.Node, c.Peer, c.Gossip.Join)
				}
			}},
		{name: "duration and int", yaml: autoMain,
			env: map[string]string{"RESMAN_GOSSIP_PROBE_INTERVAL": "500ms", "RESMAN_GOSSIP_SUSPICION_MULT": "4", "RESMAN_PEER_CHECK_INTERVAL": "5s"},
			check: func(t *testing.T, c *Config) {
				if c.Gossip.ProbeInterval != 500*time.Millisecond || c.Gossip.SuspicionMult != 4 || c.Peer.CheckInterval != 5*time.Second {
					t.Errorf("gossip %+v peer %+v", c.Gossip, c.Peer)
				}
			}},
		{name: "string list", yaml: autoMain,
			env: map[string]string{"RESMAN_GOSSIP_JOIN": "10.0.0.2:7946, 10.0.0.3:7946,"},
			check: func(t *testing.T, c *Config) {
				if want := []string{"10.0.0.2:7946", "10.0.0.3:7946"}; !slices.Equal(c.Gossip.Join, want) {
					t.Errorf("join %q, want %q", c.Gossip.Join, want)
				}
			}},
		{name: "env-only keys absent from the file", yaml: manualMain,
			env: map[string]string{"RESMAN_FAILOVER_LOST_AFTER": "3s", "RESMAN_NODE_DATA_DIR": "/srv/r", "RESMAN_EDGE_LISTEN": ":1"},
			check: func(t *testing.T, c *Config) {
				if c.Failover.LostAfter != 3*time.Second || c.Node.DataDir != "/srv/r" {
					t.Errorf("failover %+v node %+v", c.Failover, c.Node)
				}
				if c.Edge != nil {
					t.Errorf("an env override created the absent edge section: %+v", c.Edge)
				}
			}},
		{name: "empty section enables env", yaml: manualMain + "cc: {}\n",
			env: map[string]string{"RESMAN_CC_NAME": "cc-main", "RESMAN_CC_FOLLOW": "http://127.0.0.1:9440", "RESMAN_CC_TOKEN": "0123456789abcdef0123"},
			check: func(t *testing.T, c *Config) {
				if c.CC == nil || c.CC.Name != "cc-main" || c.CC.Follow != "http://127.0.0.1:9440" {
					t.Errorf("cc %+v", c.CC)
				}
			}},
		{name: "empty value ignored", yaml: manualMain,
			env: map[string]string{"RESMAN_API_TOKEN": ""},
			check: func(t *testing.T, c *Config) {
				if c.API.Token != "0123456789abcdef0123" {
					t.Errorf("token %q", c.API.Token)
				}
			}},
		{name: "bad env values name their variable", yaml: manualMain,
			env: map[string]string{"RESMAN_GOSSIP_PROBE_INTERVAL": "fast", "RESMAN_NODE_ROLE": "primary", "RESMAN_GOSSIP_JOIN": "a:1,nope"},
			wantErrs: []string{
				`node.role: must be main, standby or witness, got "primary" (set by RESMAN_NODE_ROLE)`,
				`gossip.probe_interval: expected a duration like 200ms, got "fast" (set by RESMAN_GOSSIP_PROBE_INTERVAL)`,
				`gossip.join[1]: must be host:port with a port from 1 to 65535, like 10.0.0.2:7946, got "nope" (set by RESMAN_GOSSIP_JOIN)`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(tt.yaml), envOf(tt.env))
			checkProblems(t, err, tt.wantErrs)
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestEnvKeys(t *testing.T) {
	t.Parallel()
	got := map[string]envKey{}
	for _, k := range envKeys() {
		got[k.env] = k
	}
	for _, name := range []string{"RESMAN_NODE_MODE", "RESMAN_API_TOKEN", "RESMAN_PEER_API", "RESMAN_GOSSIP_JOIN",
		"RESMAN_FAILOVER_FAILBACK_HOLD", "RESMAN_XDS_CONTACT", "RESMAN_CC_TOKEN", "RESMAN_EDGE_CHECK_RISE", "RESMAN_LOG_FORMAT"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s is not bound", name)
		}
	}
	if k, ok := got["RESMAN_HOOKS_TIMEOUT"]; !ok || k.optional {
		t.Errorf("hooks.timeout: %+v, want bound and always accepted", k)
	}
	for _, name := range []string{"RESMAN_SERVICES", "RESMAN_API_USERS", "RESMAN_XDS_MDS", "RESMAN_EDGE_SIDES", "RESMAN_CC_SERVICES",
		"RESMAN_HOOKS_BEFORE_ACTIVATE", "RESMAN_HOOKS_AFTER_ACTIVATE", "RESMAN_HOOKS_AFTER_DEACTIVATE"} {
		if _, ok := got[name]; ok {
			t.Errorf("%s is a list of sections and must not be bound", name)
		}
	}
	if k := got["RESMAN_GOSSIP_JOIN"]; !k.list || k.optional {
		t.Errorf("gossip.join: %+v", k)
	}
	if k := got["RESMAN_GOSSIP_EXTRA_KEYS"]; !k.list || k.optional {
		t.Errorf("gossip.extra_keys: %+v", k)
	}
	if k := got["RESMAN_PEER_NAME"]; !k.optional {
		t.Errorf("peer.name: %+v", k)
	}
}

func TestProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		yaml     string
		env      map[string]string
		wantErrs []string
	}{
		{name: "empty file", yaml: "",
			wantErrs: []string{"node: a config needs at least one of node, cc, edge or fleet, found none"}},
		{name: "unknown top-level key", yaml: manualMain + "nodes: {name: x}\n",
			wantErrs: []string{"nodes: unknown key, did you mean node?"}},
		{name: "unknown key far from any", yaml: manualMain + "frobnicate: 1\n",
			wantErrs: []string{"frobnicate: unknown key, expected one of node, api, peer"}},
		{name: "unknown nested key", yaml: strings.Replace(manualMain, "role: main", "rol: main", 1),
			wantErrs: []string{"node.role: required: must be main, standby or witness", "node.rol: unknown key, did you mean role?"}},
		{name: "unknown key in a list", yaml: manualMain + "services:\n  - {name: a, unit: a.service, chek: {tcp: \"h:1\"}}\n",
			wantErrs: []string{"services[0].chek: unknown key, did you mean check?"}},
		{name: "unknown key deep in a list", yaml: manualMain + "services:\n  - {name: a, unit: a, check: {tcp: \"h:1\", raise: 3}}\n",
			wantErrs: []string{"services[0].check.raise: unknown key, did you mean rise?"}},
		{name: "wrong types", yaml: `
node: {name: [a, b], role: main, version: 2025.10}
api: {token: 0123456789abcdef0123, users: {name: admin}}
peer: {name: xivo-standby, api: "http://127.0.0.2:9440", timeout: 5}
gossip: {probe_interval: fast, suspicion_mult: lots}
services:
  - {name: a, unit: a, critical: maybe, start: systemctl start a}
log: info
`,
			wantErrs: []string{
				"node.name: expected a string, got a list",
				"node.version: expected a string, got a decimal number 2025.1: put the value in quotes",
				"api.users: expected a list of sections (- name: ...), got a section",
				"peer.timeout: expected a duration with a unit like 200ms, got 5",
				`gossip.probe_interval: expected a duration like 200ms, got "fast"`,
				`gossip.suspicion_mult: expected a whole number, got "lots"`,
				`services[0].start: expected a list [a, b], got "systemctl start a"`,
				`services[0].critical: expected true or false, got "maybe"`,
				`log: expected a section of key: value pairs, got "info"`,
			}},
		{name: "section of the wrong shape", yaml: "node: 5\n",
			wantErrs: []string{"node: expected a section of key: value pairs, got the number 5", "api.token: required"}},
		{name: "five distinct mistakes", yaml: `
node: {name: xivo-main, role: primary, version: "2025.10.3"}
api: {token: short}
peer: {name: xivo-standby, api: "ftp://10.0.0.2"}
services:
  - {name: asterisk, unit: asterisk, check: {sip: "sip:127.0.0.1:5060"}}
  - {name: kamailio, unit: kamailio, check: {sip: "http://127.0.0.1:5070"}}
log: {level: verbose}
`,
			wantErrs: []string{
				`node.role: must be main, standby or witness, got "primary"`,
				"api.token: must be at least 16 characters, got 5",
				`peer.api: must be an http(s) URL with a host, like http://10.0.0.2:9440, got "ftp://10.0.0.2"`,
				`services[1].check.sip: must be a sip: or sips: URI with a host, like sip:127.0.0.1:5060, got "http://127.0.0.1:5070"`,
				`log.level: must be debug, info, warn or error, got "verbose"`,
			}},
		{name: "node basics", yaml: `
node: {name: "xivo main", role: main, mode: automatic, data_dir: var/lib/resman}
api: {listen: "localhost", token: "0123456789abcdef 0123"}
peer: {name: "xivo main", api: "http://127.0.0.2:9440", check_interval: 1s, timeout: 2s}
`,
			wantErrs: []string{
				`node.name: must not contain spaces, got "xivo main"`,
				`node.mode: must be auto or manual, got "automatic"`,
				"node.version: required",
				`node.data_dir: must be an absolute path, like /var/lib/resman, got "var/lib/resman"`,
				`api.listen: must be host:port with a port from 1 to 65535, like 127.0.0.1:9440, got "localhost"`,
				"api.token: must not contain spaces",
				`peer.name: must not contain spaces, got "xivo main"`,
				`peer.name: must differ from node.name, both are "xivo main"`,
				"peer.timeout: must not exceed peer.check_interval (1s), got 2s",
			}},
		{name: "main needs a peer and a token", yaml: "node: {name: m, role: standby, version: '1'}\n",
			wantErrs: []string{"api.token: required", "peer: required for a standby node"}},
		{name: "users", yaml: `
node: {name: xivo-main, role: main, version: "2025.10.3"}
peer: {name: xivo-standby, api: "http://127.0.0.2:9440"}
api:
  token: 0123456789abcdef0123
  users:
    - {name: admin, password_hash: "$2a$10$OWLD2kffFQclbT8YWT7Y1uCcyV4.xFPA0WJIWoOB3Ej4Jfk1xOw8S"}
    - {name: admin, password_hash: "hunter2"}
    - {password_hash: "$2a$10$short"}
    - {name: wall, password_hash: "$2a$10$OWLD2kffFQclbT8YWT7Y1uCcyV4.xFPA0WJIWoOB3Ej4Jfk1xOw8S", role: guest}
    - {name: tv, password_hash: "$2a$10$OWLD2kffFQclbT8YWT7Y1uCcyV4.xFPA0WJIWoOB3Ej4Jfk1xOw8S", role: viewer}
`,
			wantErrs: []string{
				`api.users[1].name: duplicate of api.users[0].name "admin"`,
				"api.users[1].password_hash: must be a bcrypt hash like $2a$10$..., as printed by resman hash-password",
				"api.users[2].name: required",
				"api.users[2].password_hash: must be a bcrypt hash",
				`api.users[3].role: must be admin or viewer, got "guest"`,
			}},
		{name: "auto mode needs gossip", yaml: `
node: {name: xivo-main, role: main, mode: auto, version: "1"}
api: {token: 0123456789abcdef0123}
peer: {name: xivo-standby, api: "http://127.0.0.2:9440"}
`,
			wantErrs: []string{"peer.gossip: required in auto mode", "gossip.key: required in auto mode"}},
		{name: "gossip form", yaml: autoMain + `
failover: {failback: sometimes, failback_hold: -1s, boot_grace: -2s, lost_after: 0, witness: "witness"}
`, env: map[string]string{"RESMAN_GOSSIP_KEY": "c2hvcnQ=", "RESMAN_GOSSIP_PROBE_TIMEOUT": "1s",
			"RESMAN_GOSSIP_SUSPICION_MULT": "0", "RESMAN_GOSSIP_BIND": "7946", "RESMAN_GOSSIP_JOIN": ":7946"},
			wantErrs: []string{
				"gossip.bind: must be host:port",
				"gossip.key: must be base64 of 16, 24 or 32 bytes, got 5 bytes (set by RESMAN_GOSSIP_KEY)",
				"gossip.probe_timeout: must be shorter than gossip.probe_interval (200ms), got 1s",
				"gossip.suspicion_mult: must be at least 1, got 0",
				`gossip.join[0]: must name a host, like 10.0.0.2:7946, got ":7946"`,
				`failover.failback: must be auto or manual, got "sometimes"`,
				"failover.failback_hold: must not be negative, got -1s",
				"failover.boot_grace: must not be negative, got -2s",
				"failover.lost_after: must be a duration above 0, like 1s, got 0s",
				`failover.witness: must be host:port with a port from 1 to 65535, like 10.0.0.3:7946, got "witness"`,
			}},
		{name: "manual mode still checks gossip form", yaml: manualMain + "gossip: {key: not-base64!}\n",
			wantErrs: []string{"gossip.key: must be base64 of 16, 24 or 32 random bytes"}},
		{name: "witness", yaml: `
node: {name: w, role: witness, mode: manual}
api: {token: 0123456789abcdef0123}
peer: {name: xivo-main, api: "http://127.0.0.1:9440"}
services: [{name: a, unit: a}]
replication: [{name: db, run: [x], every: 1h}]
xds: {contact: "sip:x@10.0.0.1", mds: [{name: m, registrar: "sip:10.0.0.11"}]}
`,
			wantErrs: []string{
				"node.mode: a witness only takes part in gossip, so it must be auto",
				"peer: a witness has no peer",
				"gossip.join: required for a witness",
				"services: a witness runs no services",
				"replication: a witness runs no replication",
				"xds: a witness never registers",
			}},
		{name: "services", yaml: manualMain + `
services:
  - {name: a, start: [systemctl, start, a]}
  - {name: a, unit: b, run: [b]}
  - {name: c}
  - {name: d, run: ["", x], timeout: 0}
  - name: e
    unit: e
    check: {tcp: "e:1", exec: [x], interval: 500ms, timeout: 1s, rise: 0, fall: 0}
  - {name: f, unit: f, check: {}}
  - {name: g, unit: g, check: {tcp: ":5432", interval: 300ms}}
  - {name: h, unit: h, check: {http: "127.0.0.1/health"}}
`,
			wantErrs: []string{
				"services[0].stop: required with start",
				"services[1]: set only one of start+stop, unit or run, got unit and run",
				`services[1].name: duplicate of services[0].name "a"`,
				"services[2]: needs one of start+stop, unit or run",
				"services[3].run: the program (first item) must not be empty",
				"services[3].timeout: must be a duration above 0, like 1s, got 0s",
				"services[4].check: set only one of sip, exec, tcp or http, got exec and tcp",
				"services[4].check.timeout: must not exceed services[4].check.interval (500ms), got 1s",
				"services[4].check.rise: must be at least 1, got 0",
				"services[4].check.fall: must be at least 1, got 0",
				"services[5].check: needs one of sip, exec, tcp or http",
				`services[6].check.tcp: must name a host, like 127.0.0.1:5432, got ":5432"`,
				`services[7].check.http: must be an http(s) URL with a host`,
			}},
		{name: "replication", yaml: manualMain + `
replication:
  - {name: db, run: [x], every: 1h, max_age: 30m}
  - {name: db, run: [], every: 0s}
`,
			wantErrs: []string{
				"replication[0].max_age: must be at least replication[0].every (1h0m0s), got 30m0s",
				`replication[1].name: duplicate of replication[0].name "db"`,
				"replication[1].run: required",
				"replication[1].every: must be a duration above 0",
			}},
		{name: "xds", yaml: manualMain + `
xds:
  contact: "xivo@10.0.0.1"
  mds:
    - {name: m, registrar: "sip:", transport: sctp, expires: 5, user: xivo}
    - {name: m, registrar: "sip:10.0.0.12:99999", expires: 4000}
`,
			wantErrs: []string{
				`xds.contact: must be a sip: URI with a host, like sip:xivo@10.0.0.1:5060, got "xivo@10.0.0.1"`,
				`xds.mds[0].registrar: must be a sip: URI with a host, like sip:10.0.0.11:5060, got "sip:"`,
				`xds.mds[0].transport: must be udp, tcp or tls, got "sctp"`,
				"xds.mds[0].password: required when user is set",
				"xds.mds[0].expires: must be between 10 and 3600 seconds, got 5",
				`xds.mds[1].name: duplicate of xds.mds[0].name "m"`,
				`xds.mds[1].registrar: must be a sip: URI with a host`,
				"xds.mds[1].expires: must be between 10 and 3600 seconds, got 4000",
			}},
		{name: "xds peer, source, proxy and TLS keys", yaml: manualMain + `
xds:
  contact: "sip:xivo@10.0.0.1"
  peer_contact: "xivo@10.0.0.2"
  source_address: "10.0.0.300"
  outbound_proxy: "sips:10.0.0.5"
  tls_ca_file: "mds-ca.pem"
  mds:
    - {name: m1, registrar: "sip:10.0.0.11", transport: udp, tls_server_name: mds1.example.com}
    - {name: m2, registrar: "sip:10.0.0.12", transport: tls, tls_server_name: "mds 2"}
`,
			wantErrs: []string{
				`xds.mds[0].tls_server_name: applies only with transport tls (transport is "udp")`,
				`xds.mds[1].tls_server_name: must be a host name, like mds1.example.com, got "mds 2"`,
				`xds.peer_contact: must be a sip: URI with a host, the peer node's xds.contact, like sip:xivo@10.0.0.2:5060, got "xivo@10.0.0.2"`,
				`xds.source_address: must be an IP address of this host (or 0.0.0.0 for the routes' choice), like 10.0.0.1, got "10.0.0.300"`,
				`xds.outbound_proxy: must be a sip: URI with a host, like sip:10.0.0.5:5060, got "sips:10.0.0.5"`,
				`xds.tls_ca_file: must be an absolute path, like /etc/resman/mds-ca.pem, got "mds-ca.pem"`,
			}},
		{name: "xds without a node", yaml: `
api: {token: 0123456789abcdef0123}
xds: {contact: "sip:x@10.0.0.1"}
cc: {name: c, follow: "http://127.0.0.1:9440", token: 0123456789abcdef0123}
services: [{name: a, unit: a}]
peer: {name: p, api: "http://127.0.0.1:9440"}
`,
			wantErrs: []string{
				"peer: only a node has a peer",
				"services: only a node runs services",
				"xds: only a main or standby node registers",
				"xds.mds: list at least one media server",
			}},
		{name: "cc", yaml: `
node: {name: xivo-main, role: main, version: "1"}
api: {token: 0123456789abcdef0123}
peer: {name: xivo-standby, api: "http://127.0.0.2:9440"}
cc:
  name: xivo-main
  follow: "127.0.0.1:9440"
  services: [{name: x}]
`,
			wantErrs: []string{
				`cc.name: must differ from node.name, both are "xivo-main"`,
				`cc.follow: must be an http(s) URL with a host, like http://127.0.0.1:9440, got "127.0.0.1:9440"`,
				"cc.token: required: the api.token of the node it follows",
				"cc.services[0]: needs one of start+stop, unit or run",
			}},
		{name: "cc required keys", yaml: "api: {token: 0123456789abcdef0123}\ncc: {}\n",
			wantErrs: []string{"cc.name: required", "cc.follow: required", "cc.token: required"}},
		{name: "edge", yaml: `
api: {listen: "0.0.0.0:8443", token: 0123456789abcdef0123}
edge:
  listen: 0.0.0.0:8443
  token: 0123456789abcdef0123
  check: {interval: 0s, rise: 0}
  sides:
    - {name: a, node: "http://10.0.0.1:9440", routes: [{path: api, upstream: "http://10.0.0.21:8080"}, {path: /x, upstream: "10.0.0.21"}, {path: /x, upstream: "http://h"}]}
    - {name: a, node: "tcp://10.0.0.2"}
    - {name: c, node: "http://10.0.0.3:9440", routes: [{path: /, upstream: "http://10.0.0.23"}]}
`,
			wantErrs: []string{
				`edge.listen: must differ from api.listen, both are "0.0.0.0:8443"`,
				"edge.check.interval: must be a duration above 0",
				"edge.check.rise: must be at least 1, got 0",
				"edge.sides: must list 1 or 2 sides (main, standby), got 3",
				`edge.sides[0].routes[0].path: must start with /, like /api, got "api"`,
				`edge.sides[0].routes[1].upstream: must be an http(s) URL with a host, like http://10.0.0.21:8080, got "10.0.0.21"`,
				`edge.sides[0].routes[2].path: duplicate of edge.sides[0].routes[1].path "/x"`,
				`edge.sides[1].name: duplicate of edge.sides[0].name "a"`,
				`edge.sides[1].node: must be an http(s) URL with a host, like http://10.0.0.1:9440, got "tcp://10.0.0.2"`,
				"edge.sides[1].routes: list at least one route",
			}},
		{name: "edge sip", yaml: `
api: {token: 0123456789abcdef0123}
edge:
  listen: 0.0.0.0:8443
  token: 0123456789abcdef0123
  sip: {listen: "0.0.0.0:5060", expires: 5, register_rate: -1}
  sides:
    - {name: a, node: "http://10.0.0.1:9440", sip: "http://10.0.0.1", routes: [{path: /, upstream: "http://10.0.0.21"}]}
    - {name: b, node: "http://10.0.0.2:9440", routes: [{path: /, upstream: "http://10.0.0.22"}]}
`,
			wantErrs: []string{
				`edge.sides[0].sip: must be a sip: URI with a host, like sip:10.0.0.1:5060, got "http://10.0.0.1"`,
				"edge.sides[1].sip: required when edge.sip is set",
				`edge.sip.advertise: required when edge.sip.listen ("0.0.0.0:5060") names no host`,
				"edge.sip.expires: must be between 10 and 3600 seconds",
				"edge.sip.register_rate: must be a whole number of REGISTERs per second from 1 to 100000, like 50, got -1",
			}},
		{name: "edge sip listen and transports", yaml: `
api: {token: 0123456789abcdef0123}
edge:
  listen: 10.0.0.5:5060
  token: 0123456789abcdef0123
  sip: {listen: "10.0.0.5:5060", advertise: "edge host"}
  sides:
    - {name: a, node: "http://10.0.0.1:9440", sip: "sip:10.0.0.1;transport=tls", routes: [{path: /, upstream: "http://10.0.0.21"}]}
`,
			wantErrs: []string{
				"edge.sides[0].sip: transport must be udp or tcp",
				`edge.sip.listen: must differ from edge.listen (both TCP), both are "10.0.0.5:5060"`,
				`edge.sip.advertise: must be a host or host:port`,
			}},
		{name: "edge sip tls and websocket", yaml: `
api: {token: 0123456789abcdef0123, listen: "127.0.0.1:9442"}
edge:
  listen: 10.0.0.5:443
  token: 0123456789abcdef0123
  sip:
    listen: "10.0.0.5:5060"
    tls: {listen: "10.0.0.5:5060"}
    ws: {listen: "10.0.0.5:443"}
    wss: {listen: "10.0.0.5:8089"}
  sides:
    - {name: a, node: "http://10.0.0.1:9440", sip: "sip:10.0.0.1", routes: [{path: /, upstream: "http://10.0.0.21"}]}
`,
			wantErrs: []string{
				`edge.sip.tls.listen: must differ from edge.sip.listen (both TCP), both are "10.0.0.5:5060"`,
				"edge.sip.tls.cert: required: the PEM file of the certificate phones check",
				"edge.sip.tls.key: required: the PEM file of the private key",
				`edge.sip.ws.listen: must differ from edge.listen (both TCP), both are "10.0.0.5:443"`,
			}},
		{name: "edge sip websocket listen", yaml: `
api: {token: 0123456789abcdef0123}
edge:
  listen: 10.0.0.5:443
  token: 0123456789abcdef0123
  sip:
    listen: "10.0.0.5:5060"
    tls: {cert: /etc/resman/sip.crt, key: /etc/resman/sip.key}
    ws: {listen: "10.0.0.5"}
    wss: {listen: ""}
  sides:
    - {name: a, node: "http://10.0.0.1:9440", sip: "sip:10.0.0.1", routes: [{path: /, upstream: "http://10.0.0.21"}]}
`,
			wantErrs: []string{
				`edge.sip.ws.listen: must be host:port`,
				"edge.sip.wss.listen: required: the host:port of SIP over WebSocket, like 0.0.0.0:8089",
			}},
		{name: "edge sip wss without a certificate, tls without a listener", yaml: `
api: {token: 0123456789abcdef0123}
edge:
  listen: 10.0.0.5:443
  token: 0123456789abcdef0123
  sip:
    listen: "10.0.0.5:5060"
    wss: {listen: "10.0.0.5:8089"}
  sides:
    - {name: a, node: "http://10.0.0.1:9440", sip: "sip:10.0.0.1", routes: [{path: /, upstream: "http://10.0.0.21"}]}
`,
			wantErrs: []string{"edge.sip.wss: needs edge.sip.tls (its cert and key; its listen is optional)"}},
		{name: "edge sip tls without a listener nor wss", yaml: `
api: {token: 0123456789abcdef0123}
edge:
  listen: 10.0.0.5:443
  token: 0123456789abcdef0123
  sip:
    listen: "10.0.0.5:5060"
    tls: {cert: /etc/resman/sip.crt, key: /etc/resman/sip.key}
  sides:
    - {name: a, node: "http://10.0.0.1:9440", sip: "sip:10.0.0.1", routes: [{path: /, upstream: "http://10.0.0.21"}]}
`,
			wantErrs: []string{"edge.sip.tls.listen: required unless edge.sip.wss is set"}},
		{name: "edge sip without the front", yaml: `
api: {token: 0123456789abcdef0123}
edge:
  listen: 10.0.0.5:8443
  token: 0123456789abcdef0123
  sides:
    - {name: a, node: "http://10.0.0.1:9440", sip: "sip:10.0.0.1", routes: [{path: /, upstream: "http://10.0.0.21"}]}
`,
			wantErrs: []string{"edge.sides[0].sip: applies only with edge.sip (the SIP front)"}},
		{name: "edge sip required listen", yaml: `
api: {token: 0123456789abcdef0123}
edge:
  listen: 10.0.0.5:8443
  token: 0123456789abcdef0123
  sip: {advertise: 10.0.0.5}
  sides:
    - {name: a, node: "http://10.0.0.1:9440", sip: "sip:10.0.0.1:5060;transport=tcp", routes: [{path: /, upstream: "http://10.0.0.21"}]}
`,
			wantErrs: []string{"edge.sip.listen: required: the SIP front's host:port"}},
		{name: "edge required keys", yaml: "api: {token: 0123456789abcdef0123}\nedge: {}\n",
			wantErrs: []string{"edge.listen: required", "edge.token: required", "edge.sides: must list 1 or 2 sides (main, standby), got 0"}},
		{name: "explicit empty values are not defaulted", yaml: manualMain + "gossip: {bind: \"\"}\nlog: {format: \"\"}\n",
			env:      map[string]string{"RESMAN_API_LISTEN": ""},
			wantErrs: []string{"gossip.bind: required: host:port, like 0.0.0.0:7946", "log.format: required: must be text or json"}},
		{name: "witness with a peer is one problem", yaml: fixture(t, "witness.yaml") + "peer: {name: x}\n",
			wantErrs: []string{"peer: a witness has no peer: list both nodes in gossip.join instead"}},
		{name: "the witness is this node itself", yaml: strings.Replace(autoMain, "gossip: {", `gossip: {bind: "10.0.0.1:7946", `, 1) +
			"failover: {witness: \"10.0.0.1:7946\"}\n",
			wantErrs: []string{`failover.witness: is this node's own gossip.bind ("10.0.0.1:7946"): name the witness's gossip.bind, a third host`}},
		{name: "the witness is this node itself, spelt differently", yaml: strings.Replace(autoMain, "gossip: {", `gossip: {bind: "[::1]:7946", `, 1) +
			"failover: {witness: \"[0:0::1]:7946\"}\n",
			wantErrs: []string{`failover.witness: is this node's own gossip.bind`}},
		{name: "a null section is absent", yaml: "node:\napi: {token: 0123456789abcdef0123}\n",
			wantErrs: []string{"node: a config needs at least one of node, cc, edge or fleet"}},
		{name: "log", yaml: manualMain + "log: {level: INFO, format: yaml}\n",
			wantErrs: []string{`log.level: must be debug, info, warn or error, got "INFO"`, `log.format: must be text or json, got "yaml"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.yaml), envOf(tt.env))
			checkProblems(t, err, tt.wantErrs)
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c := mustParse(t, manualMain+`
services:
  - {name: a, unit: a, check: {tcp: "127.0.0.1:1"}}
  - {name: b, unit: b, check: {tcp: "127.0.0.1:1", interval: 300ms}}
  - {name: c, unit: c, check: {tcp: "127.0.0.1:1", interval: 5s, timeout: 2s}}
replication: [{name: db, run: [x], every: 1h}]
xds: {contact: "sip:x@10.0.0.1", mds: [{name: m, registrar: "sip:10.0.0.11"}]}
edge:
  listen: ":8443"
  token: 0123456789abcdef0123
  sides: [{name: main, node: "http://10.0.0.1:9440", routes: [{path: /, upstream: "http://10.0.0.21"}]}]
`, nil)
	want := &Config{
		Node: &Node{Name: "xivo-main", Role: RoleMain, Mode: ModeManual, Version: "2025.10.3", DataDir: "/var/lib/resman"},
		API:  API{Listen: "127.0.0.1:9440", Token: "0123456789abcdef0123"},
		Peer: &Peer{Name: "xivo-standby", API: "http://127.0.0.2:9440", CheckInterval: 2 * time.Second, Timeout: 2 * time.Second},
		Gossip: Gossip{Bind: "0.0.0.0:7946", ProbeInterval: 200 * time.Millisecond, ProbeTimeout: 100 * time.Millisecond,
			SuspicionMult: 1, RejoinInterval: time.Second},
		Failover: Failover{Failback: FailbackAuto, FailbackHold: 30 * time.Second, BootGrace: 30 * time.Second, LostAfter: 100 * time.Millisecond,
			Confirm: Confirm{Listen: "127.0.0.1:9440", Peer: "127.0.0.2:9440", Every: 20 * time.Millisecond, Window: 300 * time.Millisecond}},
		Services: []services.Service{
			{Name: "a", Unit: "a", Timeout: 30 * time.Second,
				Check: &services.Check{TCP: "127.0.0.1:1", Interval: time.Second, Timeout: time.Second, Rise: 2, Fall: 2}},
			{Name: "b", Unit: "b", Timeout: 30 * time.Second,
				Check: &services.Check{TCP: "127.0.0.1:1", Interval: 300 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 2, Fall: 2}},
			{Name: "c", Unit: "c", Timeout: 30 * time.Second,
				Check: &services.Check{TCP: "127.0.0.1:1", Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 2}},
		},
		Replication: []Replication{{Name: "db", Run: []string{"x"}, Every: time.Hour, MaxAge: 2 * time.Hour, Timeout: 30 * time.Minute}},
		XDS:         &xds.Config{Contact: "sip:x@10.0.0.1", MDS: []xds.MDS{{Name: "m", Registrar: "sip:10.0.0.11", Transport: "udp", Expires: 120}}},
		Edge: &edge.Config{Listen: ":8443", Token: "0123456789abcdef0123",
			Check: edge.Check{Interval: 500 * time.Millisecond, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 2},
			Sides: []edge.Side{{Name: "main", Node: "http://10.0.0.1:9440", Routes: []edge.Route{{Path: "/", Upstream: "http://10.0.0.21"}}}}},
		Hooks: Hooks{Timeout: 10 * time.Second},
		Log:   Log{Level: "info", Format: "text"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", *c, *want)
	}
}

func TestEdgeSIPDefaults(t *testing.T) {
	t.Parallel()
	c := mustParse(t, `
api: {token: 0123456789abcdef0123}
edge:
  listen: ":8443"
  token: 0123456789abcdef0123
  sip: {listen: "10.0.0.5:5060"}
  sides: [{name: main, node: "http://10.0.0.1:9440", sip: "sip:10.0.0.1:5060", routes: [{path: /, upstream: "http://10.0.0.21"}]}]
`, nil)
	want := &edge.SIP{Listen: "10.0.0.5:5060", Expires: 60, RegisterRate: 500}
	if !reflect.DeepEqual(c.Edge.SIP, want) {
		t.Errorf("edge.sip defaults: got %+v, want %+v", c.Edge.SIP, want)
	}
	if c.Edge.Sides[0].SIP != "sip:10.0.0.1:5060" {
		t.Errorf("edge.sides[0].sip = %q", c.Edge.Sides[0].SIP)
	}
	// TLS and WebSocket, all set: valid, kept as given.
	c = mustParse(t, `
api: {token: 0123456789abcdef0123}
edge:
  listen: ":8443"
  token: 0123456789abcdef0123
  sip:
    listen: "10.0.0.5:5060"
    tls: {listen: "0.0.0.0:5061", cert: /etc/resman/sip.crt, key: /etc/resman/sip.key}
    ws: {listen: "0.0.0.0:8088"}
    wss: {listen: "0.0.0.0:8089"}
  sides: [{name: main, node: "http://10.0.0.1:9440", sip: "sip:10.0.0.1:5060", routes: [{path: /, upstream: "http://10.0.0.21"}]}]
`, nil)
	want = &edge.SIP{Listen: "10.0.0.5:5060", Expires: 60, RegisterRate: 500,
		TLS: &edge.SIPTLS{Listen: "0.0.0.0:5061", Cert: "/etc/resman/sip.crt", Key: "/etc/resman/sip.key"},
		WS:  &edge.SIPListen{Listen: "0.0.0.0:8088"}, WSS: &edge.SIPListen{Listen: "0.0.0.0:8089"}}
	if !reflect.DeepEqual(c.Edge.SIP, want) {
		t.Errorf("edge.sip with tls and websocket: got %+v, want %+v", c.Edge.SIP, want)
	}
}

func TestXDSPeerSourceProxyTLSKeys(t *testing.T) {
	t.Parallel()
	c := mustParse(t, manualMain+`
xds:
  contact: "sip:xivo@10.0.0.1:5060"
  peer_contact: "sip:xivo@10.0.0.2:5060"
  source_address: "10.0.0.1"
  outbound_proxy: "sip:10.0.0.5:5060"
  tls_ca_file: /etc/resman/mds-ca.pem
  unregister_on_stop: true
  contact_epoch: true
  mds:
    - {name: m1, registrar: "sip:10.0.0.11", transport: tls, tls_server_name: mds1.example.com}
    - {name: m2, registrar: "sip:10.0.0.12", transport: tcp}
`, nil)
	want := &xds.Config{Contact: "sip:xivo@10.0.0.1:5060", PeerContact: "sip:xivo@10.0.0.2:5060", SourceAddress: "10.0.0.1",
		OutboundProxy: "sip:10.0.0.5:5060", TLSCAFile: "/etc/resman/mds-ca.pem", UnregisterOnStop: true, ContactEpoch: true,
		MDS: []xds.MDS{{Name: "m1", Registrar: "sip:10.0.0.11", Transport: "tls", TLSServerName: "mds1.example.com", Expires: 120},
			{Name: "m2", Registrar: "sip:10.0.0.12", Transport: "tcp", Expires: 120}}}
	if !reflect.DeepEqual(c.XDS, want) {
		t.Errorf("xds:\n got %+v\nwant %+v", *c.XDS, *want)
	}
	// unregister_on_stop is false unless set: stopping resman leaves the
	// bindings, as it leaves the PBX running.
	c = mustParse(t, manualMain+`
xds: {contact: "sip:x@10.0.0.1", source_address: "0.0.0.0", mds: [{name: m, registrar: "sip:10.0.0.11"}]}
`, map[string]string{"RESMAN_XDS_PEER_CONTACT": "sip:x@10.0.0.2"})
	if c.XDS.UnregisterOnStop || c.XDS.ContactEpoch || c.XDS.PeerContact != "sip:x@10.0.0.2" {
		t.Errorf("unregister_on_stop %v, contact_epoch %v (want both false by default), peer_contact %q (want from the env)",
			c.XDS.UnregisterOnStop, c.XDS.ContactEpoch, c.XDS.PeerContact)
	}
}

func TestExplicitZeroIsNotDefaulted(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(manualMain+`
gossip: {suspicion_mult: 0}
services: [{name: a, unit: a, timeout: 0s, check: {tcp: "h:1", rise: 0}}]
`), nil)
	checkProblems(t, err, []string{
		"gossip.suspicion_mult: must be at least 1, got 0",
		"services[0].timeout: must be a duration above 0",
		"services[0].check.rise: must be at least 1, got 0",
	})
}

func TestApplyDefaults(t *testing.T) {
	t.Parallel()
	c := &Config{
		Node:   &Node{Name: "w", Role: RoleWitness, Mode: ModeAuto},
		API:    API{Token: "0123456789abcdef0123"},
		Gossip: Gossip{Key: "ixRkyckRn2MAzPkiERpX1Q==", Join: []string{"10.0.0.1:7946", "10.0.0.2:7946"}},
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Node.DataDir != DefaultDataDir || c.Failover.FailbackHold != 30*time.Second || c.Log.Level != "info" {
		t.Errorf("defaults not filled: %+v %+v %+v", c.Node, c.Failover, c.Log)
	}
	if err := (&Config{}).Validate(); err == nil {
		t.Error("an empty config must not validate")
	}
	if err := (*Config)(nil).Validate(); err == nil {
		t.Error("a nil config must not validate")
	}
}

func TestProblemsOrderAndFormat(t *testing.T) {
	t.Parallel()
	ps := Problems{
		{Key: "log.level", Msg: "l"},
		{Key: "services[10].name", Msg: "s10"},
		{Key: "zzz", Msg: "unknown"},
		{Key: "services[2].check.sip", Msg: "s2sip"},
		{Key: "node.role", Msg: "r"},
		{Key: "services[2].name", Msg: "s2"},
		{Key: "node", Msg: "n"},
		{Key: "api.users[0].name", Msg: "u"},
	}
	want := "node: n\nnode.role: r\napi.users[0].name: u\nservices[2].name: s2\nservices[2].check.sip: s2sip\n" +
		"services[10].name: s10\nlog.level: l\nzzz: unknown"
	if got := ps.Error(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if ps[0].Key != "log.level" {
		t.Error("Error must not reorder the receiver")
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	c := mustParse(t, fixture(t, "all-in-one.yaml"), nil)
	c.XDS.MDS = append(c.XDS.MDS, xds.MDS{Name: "open"}) // an empty secret stays empty
	orig := deepCopy(reflect.ValueOf(c)).Interface().(*Config)

	r := c.Redacted()
	for name, got := range map[string]string{
		"api.token": r.API.Token, "api.users[0].password_hash": r.API.Users[0].PasswordHash,
		"api.users[1].password_hash": r.API.Users[1].PasswordHash, "gossip.key": r.Gossip.Key,
		"gossip.extra_keys[0]": r.Gossip.ExtraKeys[0],
		"xds.mds[0].password":  r.XDS.MDS[0].Password, "cc.token": r.CC.Token, "edge.token": r.Edge.Token,
	} {
		if got != RedactedValue {
			t.Errorf("%s = %q, want %s", name, got, RedactedValue)
		}
	}
	if r.XDS.MDS[1].Password != "" {
		t.Errorf("empty secret became %q", r.XDS.MDS[1].Password)
	}
	if r.Node.Name != c.Node.Name || r.XDS.MDS[0].User != "xivo" || r.Services[0].Start[0] != "systemctl" {
		t.Error("non-secrets must be kept")
	}
	if !reflect.DeepEqual(c, orig) {
		t.Error("Redacted changed the original")
	}
	// The copy shares no memory with the original.
	r.Services[0].Start[0] = "x"
	r.Services[0].Check.SIP = "x"
	r.Gossip.Join[0] = "x"
	r.Gossip.ExtraKeys[0] = "x"
	r.Node.Name = "x"
	if !reflect.DeepEqual(c, orig) {
		t.Error("the copy aliases the original")
	}
	if (*Config)(nil).Redacted() != nil {
		t.Error("nil.Redacted() must be nil")
	}
}

// Every field that looks like a secret must be tagged, so that Redacted
// stays complete when the schema grows.
func TestSecretsAreTagged(t *testing.T) {
	t.Parallel()
	var walk func(key string, t reflect.Type)
	walk = func(key string, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ == durationType {
			return
		}
		for _, f := range fieldsOf(typ) {
			sf := typ.Field(f.index)
			k := childKey(key, f.name)
			looksSecret := strings.Contains(f.name, "token") || strings.Contains(f.name, "password") ||
				strings.HasSuffix(f.name, "key") || strings.HasSuffix(f.name, "_keys")
			if looksSecret != (sf.Tag.Get("secret") == "true") {
				t.Errorf("%s: looks secret %v, tagged %q", k, looksSecret, sf.Tag.Get("secret"))
			}
			walk(k, sf.Type)
		}
	}
	walk("", reflect.TypeFor[Config]())
}

func TestGossipKeyBytes(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]int{
		"ixRkyckRn2MAzPkiERpX1Q==": 16, "a2iXfzYGLuvr8OGfz+W7MedzOWhLVON9DgSYh/yPTrc=": 32,
		"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3": 24, "": -1, "c2hvcnQ=": -1, "%%%": -1,
	} {
		c := &Config{Gossip: Gossip{Key: key}}
		b, err := c.GossipKeyBytes()
		if want < 0 {
			if err == nil || !strings.HasPrefix(err.Error(), "gossip.key: ") {
				t.Errorf("%q: want an error, got %v", key, err)
			}
			continue
		}
		if err != nil || len(b) != want {
			t.Errorf("%q: %d bytes, %v; want %d", key, len(b), err, want)
		}
	}
}

// Every key of the schema is documented in README.md.
func TestREADMEDocumentsEveryKey(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(key string, typ reflect.Type)
	walk = func(key string, typ reflect.Type) {
		for _, f := range fieldsOf(typ) {
			k := childKey(key, f.name)
			ft := typ.Field(f.index).Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			// cc.services is documented by reference to services[].
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && k != "cc.services" {
				walk(k+"[]", ft.Elem())
				continue
			}
			if ft.Kind() == reflect.Struct && ft != durationType {
				walk(k, ft)
				continue
			}
			if !strings.Contains(string(readme), "`"+k+"`") {
				t.Errorf("README.md does not document `%s`", k)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
}

func FuzzParse(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yaml") {
			f.Add(fixture(f, e.Name()), "")
		}
	}
	f.Add(manualMain, "5s")
	f.Add("node: {name: [a], role: {x: 1}}\nservices: [~, 1, {check: []}]\n", "a,b")
	f.Add("node:\n  data_dir: &a [*a]\n", "")
	f.Add("\"a.b\": {c: 1}\n1: 2\n", "0")
	f.Fuzz(func(t *testing.T, yaml, envVal string) {
		// Every override gets the same value: enough to reach the
		// conversions and the section-presence logic.
		env := func(string) (string, bool) { return envVal, envVal != "" }
		c, err := Parse([]byte(yaml), env)
		if (c == nil) == (err == nil) {
			t.Fatalf("want exactly one of config and error, got %v, %v", c, err)
		}
		if c != nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("Parse returned a config that does not validate: %v", err)
			}
			c.Redacted()
		}
	})
}

func TestReplicationFilesRules(t *testing.T) {
	base := `node: {name: n1, role: main, version: "1", data_dir: /var/lib/r}
api: {token: 0123456789abcdef0123}
peer: {name: n2, api: "http://127.0.0.2:9440"}
`
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"valid files job", `replication:
  - {name: conf, every: 1h, files: {roots: [{name: ast, path: /etc/asterisk}]}}`, nil},
		{"both run and files", `replication:
  - {name: conf, every: 1h, run: [x], files: {roots: [{name: ast, path: /etc/asterisk}]}}`,
			[]string{"replication[0].run: set one of run or files, got both"}},
		{"no roots, relative path, overlap", `replication:
  - {name: a, every: 1h, files: {roots: []}}
  - {name: b, every: 1h, files: {roots: [{name: x, path: etc/asterisk}, {name: y, path: /etc/asterisk}]}}
  - {name: c, every: 1h, files: {roots: [{name: z, path: /etc/asterisk/sip}], max_file_mib: 20, max_total_mib: 10}}`,
			[]string{
				"replication[0].files.roots: required",
				"replication[1].files.roots[0].path: must be an absolute path",
				"replication[2].files.roots[0].path: overlaps replication[1].files.roots[1].path",
				"replication[2].files.max_file_mib: must not exceed max_total_mib (10), got 20",
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(base+tc.yaml), nil)
			var got []string
			var ps Problems
			if errors.As(err, &ps) {
				for _, p := range ps {
					got = append(got, p.String())
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("problems:\n%s\nwant %d: %q", strings.Join(got, "\n"), len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

// TestYAMLRoundTrip: what config check --print shows reads back as the
// same config.
func TestYAMLRoundTrip(t *testing.T) {
	for _, f := range []string{"testdata/all-in-one.yaml", "testdata/auto-node.yaml", "testdata/witness.yaml"} {
		cfg, err := Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out, err := cfg.YAML()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out, nil)
		if err != nil {
			t.Fatalf("%s: printed config does not load back: %v\n%s", f, err, out)
		}
		if !reflect.DeepEqual(cfg, back) {
			t.Errorf("%s: round trip differs:\n%s", f, out)
		}
		if strings.Contains(string(out), "datadir") || !strings.Contains(string(out), "data_dir") {
			t.Errorf("%s: keys not in the schema's names:\n%s", f, out)
		}
	}
}

func TestHooks(t *testing.T) {
	t.Parallel()
	c := mustParse(t, manualMain+`
hooks:
  before_activate:
    - {name: check-trunk, run: [/usr/local/bin/check-trunk], timeout: 5s}
  after_activate:
    - {name: page-oncall, run: [/usr/local/bin/notify, active]}
  after_deactivate:
    - {name: page-oncall, run: [/usr/local/bin/notify, inactive], timeout: 5m}
`, map[string]string{"RESMAN_HOOKS_TIMEOUT": "3s"})
	want := Hooks{Timeout: 3 * time.Second,
		BeforeActivate:  []Hook{{Name: "check-trunk", Run: []string{"/usr/local/bin/check-trunk"}, Timeout: 5 * time.Second}},
		AfterActivate:   []Hook{{Name: "page-oncall", Run: []string{"/usr/local/bin/notify", "active"}, Timeout: 3 * time.Second}},
		AfterDeactivate: []Hook{{Name: "page-oncall", Run: []string{"/usr/local/bin/notify", "inactive"}, Timeout: 5 * time.Minute}},
	}
	if !reflect.DeepEqual(c.Hooks, want) {
		t.Errorf("hooks:\n got %+v\nwant %+v", c.Hooks, want)
	}

	tests := []struct {
		name, yaml string
		env        map[string]string
		want       []string
	}{
		{name: "each hook's problems", yaml: manualMain + `
hooks:
  before_activate:
    - {run: [x]}
    - {name: a, run: []}
    - {name: a, run: ["", y], timeout: 0s}
    - {name: "b c", run: [x], timeout: 6m}
  after_activate:
    - {name: a, run: [x], tiemout: 1s}
`, want: []string{
			"hooks.before_activate[0].name: required",
			"hooks.before_activate[1].run: required: a command",
			"hooks.before_activate[2].name: duplicate of hooks.before_activate[1].name \"a\"",
			"hooks.before_activate[2].run: the program (first item) must not be empty",
			"hooks.before_activate[2].timeout: must be a duration above 0 and at most 5m0s, like 5s, got 0s",
			"hooks.before_activate[3].name: must not contain spaces",
			"hooks.before_activate[3].timeout: must be a duration above 0 and at most 5m0s, like 5s, got 6m0s",
			"hooks.after_activate[0].tiemout: unknown key, did you mean timeout?",
		}},
		{name: "a wrong default is reported once, not for each hook that inherits it",
			yaml: manualMain + "hooks: {after_activate: [{name: a, run: [x]}, {name: b, run: [x], timeout: 1s}]}\n",
			env:  map[string]string{"RESMAN_HOOKS_TIMEOUT": "10m"},
			want: []string{"hooks.timeout: must be a duration above 0 and at most 5m0s, like 10s, got 10m0s (set by RESMAN_HOOKS_TIMEOUT)"}},
		{name: "a hook is a section, not a command",
			yaml: manualMain + "hooks: {after_activate: [x]}\n",
			want: []string{"hooks.after_activate[0]: expected a section of key: value pairs"}},
		{name: "not on a witness",
			yaml: "node: {name: w, role: witness, mode: auto}\napi: {token: 0123456789abcdef0123}\n" +
				"gossip: {key: \"ixRkyckRn2MAzPkiERpX1Q==\", join: [\"10.0.0.1:7946\", \"10.0.0.2:7946\"]}\n" +
				"hooks: {after_activate: [{name: a, run: [x]}]}\n",
			want: []string{"hooks: a witness is never Active and runs no hooks"}},
		{name: "not without a node",
			yaml: "api: {token: 0123456789abcdef0123}\ncc: {name: cc, follow: \"http://127.0.0.1:9440\", token: 0123456789abcdef0123}\n" +
				"hooks: {before_activate: [{name: a, run: [x]}]}\n",
			want: []string{"hooks: only a main or standby node runs hooks"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.yaml), envOf(tt.env))
			checkProblems(t, err, tt.want)
		})
	}
}

func TestTrustedProxies(t *testing.T) {
	base := "node: {name: a, role: main, mode: manual, version: \"1.0\", data_dir: /var/lib/resman}\n" +
		"api: {listen: \"127.0.0.1:9440\", token: \"e2e-token-0123456789abcdef\", trusted_proxies: [%s]}\n" +
		"peer: {name: b, api: \"http://10.0.0.2:9440\"}\n"
	cfg, err := Parse([]byte(fmt.Sprintf(base, `"10.0.0.5", "192.168.1.0/24", "::ffff:10.0.0.9"`)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(cfg.API.TrustedProxyPrefixes())
	if want := "[10.0.0.5/32 192.168.1.0/24 10.0.0.9/32]"; got != want {
		t.Errorf("prefixes %s, want %s", got, want)
	}
	_, err = Parse([]byte(fmt.Sprintf(base, `"10.0.0.5", "proxy.example"`)), func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "api.trusted_proxies[1]: must be an IP address or a CIDR prefix") {
		t.Errorf("a host name: %v", err)
	}
}

// api.users[].role defaults to admin; viewer is kept; an empty role
// written out is refused, naming the key.
func TestUserRole(t *testing.T) {
	t.Parallel()
	const hash = "$2a$10$OWLD2kffFQclbT8YWT7Y1uCcyV4.xFPA0WJIWoOB3Ej4Jfk1xOw8S"
	const head = `
node: {name: xivo-main, role: main, version: "2025.10.3"}
peer: {name: xivo-standby, api: "http://127.0.0.2:9440"}
api:
  token: 0123456789abcdef0123
`
	c, err := Parse([]byte(head+`  users:
    - {name: admin, password_hash: "`+hash+`"}
    - {name: wall, password_hash: "`+hash+`", role: viewer}
`), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{c.API.Users[0].Role, c.API.Users[1].Role}; !slices.Equal(got, []string{UserRoleAdmin, UserRoleViewer}) {
		t.Errorf("roles %q, want admin (the default) and viewer", got)
	}
	if c.API.Users[0].Viewer() || !c.API.Users[1].Viewer() {
		t.Errorf("Viewer(): %v %v", c.API.Users[0].Viewer(), c.API.Users[1].Viewer())
	}
	_, err = Parse([]byte(head+`  users:
    - {name: wall, password_hash: "`+hash+`", role: ""}
`), envOf(nil))
	checkProblems(t, err, []string{"api.users[0].role: required: must be admin or viewer"})
}
