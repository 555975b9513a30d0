package config

import (
	"slices"
	"strings"
	"testing"
)

func TestReadTokens(t *testing.T) {
	t.Parallel()
	const readA, readB = "read-token-aaaa-0123456789", "read-token-bbbb-9876543210"
	withRead := func(list string) string {
		return `
node: {name: xivo-main, role: main, version: "2025.10.3"}
api: {token: 0123456789abcdef0123, read_tokens: ` + list + `}
peer: {name: xivo-standby, api: "http://127.0.0.2:9440"}
`
	}
	tests := []struct {
		name     string
		yaml     string
		env      map[string]string
		want     []string
		wantErrs []string
	}{
		{name: "none", yaml: manualMain},
		{name: "two", yaml: withRead(`["` + readA + `", "` + readB + `"]`), want: []string{readA, readB}},
		{name: "from the environment", yaml: manualMain, env: map[string]string{"RESMAN_API_READ_TOKENS": readA + "," + readB}, want: []string{readA, readB}},
		{name: "each problem by its index", yaml: withRead(`["short", "", "with space 0123456789", "0123456789abcdef0123", "` + readA + `", "` + readA + `"]`),
			wantErrs: []string{
				"api.read_tokens[0]: must be at least 16 characters, got 5",
				"api.read_tokens[1]: required: a token that may only read",
				"api.read_tokens[2]: must not contain spaces or control characters",
				"api.read_tokens[3]: must differ from api.token: the full token may write",
				"api.read_tokens[5]: duplicate of api.read_tokens[4]",
			}},
		{name: "a file without a node", yaml: "api: {token: 0123456789abcdef0123, read_tokens: [\"" + readA + "\"]}\ncc: {name: c, follow: \"http://127.0.0.1:9440\", token: 0123456789abcdef0123}\n",
			wantErrs: []string{"api.read_tokens: only a node (a file with a node section) accepts read tokens: the CC follower's, the Edge's and the fleet's APIs only read, with api.token"}},
		{name: "too many", yaml: withRead(`[` + strings.Repeat(`"`+readA+`", `, MaxReadTokens) + `"` + readB + `"]`),
			wantErrs: []string{"api.read_tokens: at most 16 tokens, got 17"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(tt.yaml), envOf(tt.env))
			if tt.name == "too many" {
				// The duplicates are problems too: look for the count's.
				if err == nil || !strings.Contains(err.Error(), tt.wantErrs[0]) {
					t.Fatalf("want %q, got %v", tt.wantErrs[0], err)
				}
				return
			}
			checkProblems(t, err, tt.wantErrs)
			if err != nil {
				for _, s := range []string{readA, "0123456789abcdef0123", "with space"} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("a problem shows a token:\n%v", err)
					}
				}
				return
			}
			if !slices.Equal(c.API.ReadTokens, tt.want) {
				t.Errorf("read_tokens = %q, want %q", c.API.ReadTokens, tt.want)
			}
			if r := c.Redacted(); len(tt.want) > 0 && (r.API.ReadTokens[0] != RedactedValue || c.API.ReadTokens[0] != tt.want[0]) {
				t.Errorf("Redacted: %q (original %q)", r.API.ReadTokens, c.API.ReadTokens)
			}
		})
	}
}

func TestWeakSecretsReadTokens(t *testing.T) {
	t.Parallel()
	c := &Config{API: API{Token: "0123456789abcdef0123", ReadTokens: []string{"read-token-aaaa-0123456789", "change-me-read-token", "aaaaaaaaaaaaaaaaaaaa"}}}
	ps := c.WeakSecrets()
	if got := keysOf(ps); !slices.Equal(got, []string{"api.read_tokens[1]", "api.read_tokens[2]"}) {
		t.Fatalf("weak keys = %q, want the placeholder and the repeated one:\n%v", got, ps)
	}
	for _, p := range ps {
		if !strings.Contains(p.Msg, "read token of this node") || strings.Contains(p.Msg, "of the nodes it talks to") {
			t.Errorf("%s: the advice is not for a read token: %s", p.Key, p.Msg)
		}
	}
}
