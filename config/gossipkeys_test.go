package config

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// Keys of the gossip key tests: base64 of 16, 32 and 24 bytes.
const (
	keyA = "ixRkyckRn2MAzPkiERpX1Q=="
	keyB = "a2iXfzYGLuvr8OGfz+W7MedzOWhLVON9DgSYh/yPTrc="
	keyC = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"
)

func TestGossipExtraKeys(t *testing.T) {
	t.Parallel()
	auto := func(gossip string) string {
		return `
node: {name: xivo-main, role: main, mode: auto, version: "2025.10.3"}
api: {token: 0123456789abcdef0123}
peer: {name: xivo-standby, api: "http://127.0.0.2:9440", gossip: "127.0.0.2:7946"}
gossip: ` + gossip + "\n"
	}
	tests := []struct {
		name      string
		yaml      string
		env       map[string]string
		wantExtra []string
		wantErrs  []string
	}{
		{name: "rotation step 1: the new key accepted", yaml: auto(`{key: "` + keyA + `", extra_keys: ["` + keyB + `"]}`),
			wantExtra: []string{keyB}},
		{name: "rotation step 2: the new key primary, the old accepted", yaml: auto(`{key: "` + keyB + `", extra_keys: ["` + keyA + `"]}`),
			wantExtra: []string{keyA}},
		{name: "empty list", yaml: auto(`{key: "` + keyA + `", extra_keys: []}`)},
		{name: "several sizes, up to the limit", yaml: auto(`{key: "` + keyA + `", extra_keys: ["` + keyB + `", "` + keyC + `", "MTIzNDU2Nzg5MGFiY2RlZg==", "YWJjZGVmZ2hpamtsbW5vcA=="]}`),
			wantExtra: []string{keyB, keyC, "MTIzNDU2Nzg5MGFiY2RlZg==", "YWJjZGVmZ2hpamtsbW5vcA=="}},
		{name: "from the environment", yaml: auto(`{key: "` + keyA + `"}`),
			env:       map[string]string{"RESMAN_GOSSIP_EXTRA_KEYS": keyB + ", " + keyC},
			wantExtra: []string{keyB, keyC}},
		{name: "each problem by its index", yaml: auto(`{key: "` + keyA + `", extra_keys: ["c2hvcnQ=", "not base64!", "", "` + keyA + `", "` + keyB + `", "` + keyB + `"]}`),
			wantErrs: []string{
				"gossip.extra_keys: at most 4 keys, got 6",
				"gossip.extra_keys[0]: must be base64 of 16, 24 or 32 bytes, got 5 bytes",
				"gossip.extra_keys[1]: must be base64 of 16, 24 or 32 random bytes (openssl rand -base64 32): illegal base64 data",
				"gossip.extra_keys[2]: must be base64 of 16, 24 or 32 random bytes (openssl rand -base64 32), got an empty value",
				"gossip.extra_keys[3]: is gossip.key itself: the primary key is always accepted",
				"gossip.extra_keys[5]: duplicate of gossip.extra_keys[4]",
			}},
		{name: "a repeat is found decoded", yaml: auto(`{key: "` + keyA + `", extra_keys: ["` + keyB + `", "` + keyB + `\n"]}`),
			wantErrs: []string{"gossip.extra_keys[1]: "}},
		{name: "from the environment, named", yaml: auto(`{key: "` + keyA + `"}`),
			env:      map[string]string{"RESMAN_GOSSIP_EXTRA_KEYS": keyB + ",c2hvcnQ="},
			wantErrs: []string{"gossip.extra_keys[1]: must be base64 of 16, 24 or 32 bytes, got 5 bytes (set by RESMAN_GOSSIP_EXTRA_KEYS)"}},
		{name: "from the environment, no item: refused, not an empty list", yaml: auto(`{key: "` + keyA + `", extra_keys: ["` + keyB + `"]}`),
			env:      map[string]string{"RESMAN_GOSSIP_EXTRA_KEYS": " , "},
			wantErrs: []string{"gossip.extra_keys: RESMAN_GOSSIP_EXTRA_KEYS has no item, only commas or spaces: unset it, or give a comma-separated list"}},
		{name: "extra keys need a primary, even in manual mode", yaml: manualMain + `gossip: {extra_keys: ["` + keyB + `"]}` + "\n",
			wantErrs: []string{"gossip.key: required with gossip.extra_keys"}},
		{name: "auto mode still needs the primary", yaml: auto(`{extra_keys: ["` + keyB + `"]}`),
			wantErrs: []string{"gossip.key: required in auto mode"}},
		{name: "not a list", yaml: auto(`{key: "` + keyA + `", extra_keys: "` + keyB + `"}`),
			wantErrs: []string{"gossip.extra_keys: expected a list [a, b], got a string"}},
		{name: "secrets are not shown in decode problems either", yaml: auto(`{key: 1.5, extra_keys: [true, ["` + keyC + `"]]}`),
			wantErrs: []string{
				"gossip.key: expected a string, got a decimal number: put the value in quotes",
				"gossip.extra_keys[0]: expected a string, got a boolean: put the value in quotes",
				"gossip.extra_keys[1]: expected a string, got a list",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(tt.yaml), envOf(tt.env))
			checkProblems(t, err, tt.wantErrs)
			if err != nil {
				// A problem never repeats a key, good or bad.
				for _, k := range []string{keyA, keyB, keyC, "c2hvcnQ="} {
					if strings.Contains(err.Error(), k) {
						t.Errorf("a problem shows a key:\n%v", err)
					}
				}
				return
			}
			if !slices.Equal(c.Gossip.ExtraKeys, tt.wantExtra) {
				t.Errorf("extra_keys = %q, want %q", c.Gossip.ExtraKeys, tt.wantExtra)
			}
			primary, extra, err := c.GossipKeys()
			if err != nil || len(primary) == 0 || len(extra) != len(tt.wantExtra) {
				t.Fatalf("GossipKeys: %d bytes, %d extra, %v", len(primary), len(extra), err)
			}
		})
	}
}

func TestGossipKeysDecoded(t *testing.T) {
	t.Parallel()
	c := &Config{Gossip: Gossip{Key: keyA, ExtraKeys: []string{keyB, keyC}}}
	primary, extra, err := c.GossipKeys()
	if err != nil || len(primary) != 16 || len(extra) != 2 || len(extra[0]) != 32 || len(extra[1]) != 24 {
		t.Fatalf("GossipKeys = %d bytes, %v, %v", len(primary), extra, err)
	}
	if !bytes.Equal(extra[1], []byte("0123456789abcdef01234567")) {
		t.Errorf("extra[1] = %q", extra[1])
	}
	c.Gossip.ExtraKeys = []string{keyB, "c2hvcnQ="}
	if _, _, err := c.GossipKeys(); err == nil || !strings.HasPrefix(err.Error(), "gossip.extra_keys[1]: ") {
		t.Errorf("a bad extra key: %v", err)
	}
	c.Gossip.Key = ""
	if _, _, err := c.GossipKeys(); err == nil || !strings.HasPrefix(err.Error(), "gossip.key: ") {
		t.Errorf("no primary: %v", err)
	}
}

// The extra keys are secrets: each is redacted for config check --print,
// the printed config still reads back, and the original is untouched.
func TestGossipExtraKeysRedacted(t *testing.T) {
	t.Parallel()
	c := mustParse(t, manualMain+`gossip: {key: "`+keyA+`", extra_keys: ["`+keyB+`", "`+keyC+`"]}`+"\n", nil)
	r := c.Redacted()
	if !slices.Equal(r.Gossip.ExtraKeys, []string{RedactedValue, RedactedValue}) || r.Gossip.Key != RedactedValue {
		t.Errorf("redacted gossip = %+v", r.Gossip)
	}
	if !slices.Equal(c.Gossip.ExtraKeys, []string{keyB, keyC}) {
		t.Errorf("Redacted changed the original: %q", c.Gossip.ExtraKeys)
	}
	out, err := r.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{keyA, keyB, keyC} {
		if strings.Contains(string(out), k) {
			t.Errorf("the printed config shows a key:\n%s", out)
		}
	}
	if !strings.Contains(string(out), "extra_keys: [REDACTED, REDACTED]") {
		t.Errorf("the printed config does not show the redacted list:\n%s", out)
	}
	// Unredacted, the list prints and reads back.
	out, err = c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out, nil)
	if err != nil || !slices.Equal(back.Gossip.ExtraKeys, c.Gossip.ExtraKeys) {
		t.Errorf("round trip: %v, %+v\n%s", err, back, out)
	}
}
