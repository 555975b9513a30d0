package main

import (
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"github.com/resman-pbx/resman/config"
)

var (
	tokenLineRE = regexp.MustCompile(`^token: "([0-9a-f]+)"$`)
	keyLineRE   = regexp.MustCompile(`^key: "([A-Za-z0-9+/]+=*)"$`)
)

// genSecret runs resman gen-secret ARGS and returns its lines.
func genSecret(t *testing.T, args ...string) []string {
	t.Helper()
	out, stderr, code := cli(t, append([]string{"gen-secret"}, args...)...)
	if code != 0 || stderr != "" {
		t.Fatalf("gen-secret %v: exit %d\n%s%s", args, code, out, stderr)
	}
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}

// parseSecrets reads a token line and a key line, checking their form.
func parseSecrets(t *testing.T, lines []string) (token, key string) {
	t.Helper()
	for _, l := range lines {
		switch {
		case tokenLineRE.MatchString(l):
			token = tokenLineRE.FindStringSubmatch(l)[1]
			if b, err := hex.DecodeString(token); err != nil || len(b) != 24 {
				t.Errorf("token %q: want hex of 24 bytes (%d bytes, %v)", token, len(b), err)
			}
		case keyLineRE.MatchString(l):
			key = keyLineRE.FindStringSubmatch(l)[1]
			if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 32 {
				t.Errorf("key %q: want base64 of 32 bytes (%d bytes, %v)", key, len(b), err)
			}
		default:
			t.Errorf("unexpected line %q", l)
		}
	}
	return token, key
}

func TestGenSecret(t *testing.T) {
	lines := genSecret(t)
	if len(lines) != 2 {
		t.Fatalf("want a token line and a key line, got %q", lines)
	}
	token, key := parseSecrets(t, lines)
	if token == "" || key == "" {
		t.Fatalf("want both a token and a key, got %q", lines)
	}
	token2, key2 := parseSecrets(t, genSecret(t))
	if token2 == token || key2 == key {
		t.Errorf("two runs printed the same secrets: %s %s", token, key)
	}

	// Pasted in a config, both pass the validation and WeakSecrets.
	cfg, err := config.Parse([]byte(`
node: {name: xivo-main, role: main, mode: auto, version: "2025.10.3"}
api:
  `+lines[0]+`
peer: {name: xivo-standby, api: "http://10.0.0.2:9440", gossip: "10.0.0.2:7946"}
gossip:
  `+lines[1]+`
`), nil)
	if err != nil {
		t.Fatalf("the printed lines do not make a valid config: %v", err)
	}
	if cfg.API.Token != token || cfg.Gossip.Key != key {
		t.Errorf("pasted: api.token %q, gossip.key %q; want %q, %q", cfg.API.Token, cfg.Gossip.Key, token, key)
	}
	if ps := cfg.WeakSecrets(); len(ps) > 0 {
		t.Errorf("WeakSecrets: %v", ps)
	}
}

func TestGenSecretOne(t *testing.T) {
	lines := genSecret(t, "token")
	if token, key := parseSecrets(t, lines); len(lines) != 1 || token == "" || key != "" {
		t.Errorf("gen-secret token: %q, want one token line", lines)
	}
	lines = genSecret(t, "gossip-key")
	if token, key := parseSecrets(t, lines); len(lines) != 1 || token != "" || key == "" {
		t.Errorf("gen-secret gossip-key: %q, want one key line", lines)
	}
	_, stderr, code := cli(t, "gen-secret", "password")
	if code != exitUsage || !strings.Contains(stderr, "token") || !strings.Contains(stderr, "gossip-key") {
		t.Errorf("gen-secret password: exit %d %q, want exit %d naming token and gossip-key", code, stderr, exitUsage)
	}
}
