package config

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/resman-pbx/resman/cc"
	"github.com/resman-pbx/resman/xds"
	"golang.org/x/crypto/bcrypt"
)

// exampleHash is the examples' web password hash, of "change-me".
const exampleHash = "$2a$10$NyG8xZrpa/IewVjMFshoLuvdTVp78FtiVdjdT9vt95zV8LWcNjskq"

func hashOf(t *testing.T, pw string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// keysOf lists the key paths of ps, in their order.
func keysOf(ps Problems) []string {
	var keys []string
	for _, p := range ps {
		keys = append(keys, p.Key)
	}
	return keys
}

// secretsConfig is a valid config with every kind of secret set to the
// given values.
func secretsConfig(t *testing.T, token, key, extra, mdsPassword, hash string) *Config {
	t.Helper()
	return mustParse(t, `
node: {name: xivo-main, role: main, mode: auto, version: "2025.10.3"}
api:
  token: "`+token+`"
  users: [{name: admin, password_hash: "`+hash+`"}]
peer: {name: xivo-standby, api: "http://127.0.0.2:9440", gossip: "127.0.0.2:7946"}
gossip: {key: "`+key+`", extra_keys: ["`+extra+`"]}
xds:
  contact: "sip:xivo@10.0.0.1:5060"
  mds: [{name: mds1, registrar: "sip:10.0.0.11:5060", user: xivo, password: "`+mdsPassword+`"}]
cc: {name: cc-main, follow: "http://127.0.0.1:9440", token: "`+token+`"}
edge:
  listen: 0.0.0.0:8443
  token: "`+token+`"
  tls: {cert: /etc/resman/edge.crt, key: /etc/resman/change-me.key}
  sides: [{name: main, node: "http://10.0.0.1:9440", routes: [{path: /, upstream: "http://10.0.0.21:8080"}]}]
`, nil)
}

func TestWeakSecretsFindsTheExamplesPlaceholders(t *testing.T) {
	t.Parallel()
	c := secretsConfig(t, "change-me-to-a-long-random-token", "CHANGEMEchangemeCHANGEMEchangeme",
		"CHANGEMEchangemeCHANGEMEchangemf", "change-me-mds1-password", exampleHash)
	ps := c.WeakSecrets()
	want := []string{"api.token", "api.users[0].password_hash", "gossip.key", "gossip.extra_keys[0]",
		"xds.mds[0].password", "cc.token", "edge.token"}
	if got := keysOf(ps); !slices.Equal(got, want) {
		t.Fatalf("WeakSecrets names %q, want %q (edge.tls.key is a path, not a secret value):\n%v", got, want, ps)
	}
	for _, p := range ps {
		for _, secret := range []string{"change-me-to-a-long-random-token", "CHANGEMEchangeme", "change-me-mds1-password", exampleHash} {
			if strings.Contains(p.Msg, secret) {
				t.Errorf("%s: the message shows the secret: %s", p.Key, p.Msg)
			}
		}
		if !strings.Contains(p.Msg, "placeholder") && !strings.Contains(p.Msg, "well-known password") {
			t.Errorf("%s: the message does not say it is a placeholder: %s", p.Key, p.Msg)
		}
	}
	// Each says how to make a good one.
	for key, how := range map[string]string{
		"api.token":                  "resman gen-secret token",
		"cc.token":                   "resman gen-secret token",
		"edge.token":                 "openssl rand -hex 24",
		"gossip.key":                 "resman gen-secret gossip-key",
		"gossip.extra_keys[0]":       "openssl rand -base64 32",
		"api.users[0].password_hash": "resman hash-password",
		"xds.mds[0].password":        "the MDS",
	} {
		i := slices.Index(keysOf(ps), key)
		if i < 0 || !strings.Contains(ps[i].Msg, how) {
			t.Errorf("%s: the message does not say %q", key, how)
		}
	}
}

// Every file of examples/ carries the placeholders as shipped: each is
// named, starting with api.token.
func TestWeakSecretsInTheExamples(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("../examples/*/*.yaml")
	if len(files) < 10 {
		t.Fatalf("only %d example files", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse(data, nil)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		keys := keysOf(c.WeakSecrets())
		if len(keys) == 0 || keys[0] != "api.token" {
			t.Errorf("%s: WeakSecrets names %q, want api.token first", f, keys)
		}
		checks := map[string]bool{
			"gossip.key":                 c.Gossip.Key != "",
			"api.users[0].password_hash": len(c.API.Users) > 0,
			"cc.token":                   c.CC != nil,
			"edge.token":                 c.Edge != nil,
			"xds.mds[0].password":        c.XDS != nil && c.XDS.MDS[0].Password != "",
		}
		for key, set := range checks {
			if set && !slices.Contains(keys, key) {
				t.Errorf("%s: WeakSecrets does not name %s: %q", f, key, keys)
			}
		}
	}
}

// The test suites' own secrets are neither placeholders nor weak.
func TestWeakSecretsPassesTheTestSuitesSecrets(t *testing.T) {
	t.Parallel()
	random := hashOf(t, "correct horse battery", bcrypt.MinCost)
	for _, tc := range []struct{ token, key string }{
		{"e2e-token-0123456789abcdef", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))},
		{"0123456789abcdef0123", keyA},
		{"fedcba9876543210fedc", keyB},
		{"token-0123456789abcdef", keyC},
		{"6e5759e6c7f35c3b53ed3bb5d358eb4fb72a8c8c483e1587", base64.StdEncoding.EncodeToString([]byte("the-new-gossip-key-0123456789abc"))},
	} {
		c := secretsConfig(t, tc.token, tc.key, "MTIzNDU2Nzg5MGFiY2RlZg==", "mds-secret", random)
		if ps := c.WeakSecrets(); len(ps) > 0 {
			t.Errorf("token %q, key %q: %v", tc.token, tc.key, ps)
		}
	}
	// docs/install.md's user.
	docsHash := "$2a$10$At7zL9B5GOG5UH9K59tHPe5odakzpijAHhzkiBNI6MisWKy81EGh2"
	if ps := (&Config{API: API{Users: []User{{Name: "admin", PasswordHash: docsHash}}}}).WeakSecrets(); len(ps) > 0 {
		t.Errorf("docs/install.md's hash: %v", ps)
	}
	for _, name := range []string{"all-in-one.yaml", "auto-node.yaml", "cc.yaml", "edge.yaml", "manual-pair.yaml", "witness.yaml"} {
		if ps := mustParse(t, fixture(t, name), nil).WeakSecrets(); len(ps) > 0 {
			t.Errorf("testdata/%s: %v", name, ps)
		}
	}
}

func TestWeakSecretsPlaceholderSpellings(t *testing.T) {
	t.Parallel()
	for _, token := range []string{
		"CHANGE_ME_0123456789abcdef", "Change.Me-0123456789abcdef", "0123456789abcdef-changeme",
		"replace-me-0123456789abcdef", "REPLACEME0123456789abcdef",
		"your-token-0123456789abcdef", "<your token here 0123456789>", "your_api_token_0123456789",
		"placeholder-0123456789abcdef", "change-this-0123456789abcdef",
	} {
		ps := (&Config{API: API{Token: token}}).WeakSecrets()
		if !slices.Equal(keysOf(ps), []string{"api.token"}) {
			t.Errorf("token %q: %v, want api.token named", token, ps)
		}
	}
	// An MDS password has no length rule: the usual ones are refused whole.
	for _, pw := range []string{"password", "Secret", "admin", "changeme", "123456"} {
		ps := (&Config{XDS: &xds.Config{MDS: []xds.MDS{{Name: "mds1", Password: pw}}}}).WeakSecrets()
		if !slices.Equal(keysOf(ps), []string{"xds.mds[0].password"}) {
			t.Errorf("password %q: %v, want xds.mds[0].password named", pw, ps)
		}
	}
}

func TestWeakSecretsTooFewDistinctCharacters(t *testing.T) {
	t.Parallel()
	for token, weak := range map[string]bool{
		"aaaaaaaaaaaaaaaaaaaa":     true,
		"abababababababababab":     true,
		"abcdefgabcdefgabcdefg":    true,  // 7 distinct
		"abcdefghabcdefghabcdefgh": false, // 8 distinct
		"1111111111111111":         true,
	} {
		ps := (&Config{CC: &cc.Config{Token: token}}).WeakSecrets()
		if got := len(ps) == 1 && ps[0].Key == "cc.token"; got != weak {
			t.Errorf("token %q: %v, want weak %v", token, ps, weak)
		}
		if weak && len(ps) == 1 && !strings.Contains(ps[0].Msg, "distinct characters") {
			t.Errorf("token %q: the message does not say why: %s", token, ps[0].Msg)
		}
	}
}

func TestWeakSecretsGossipKeys(t *testing.T) {
	t.Parallel()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for key, want := range map[string]string{
		"CHANGEMEchangemeCHANGEMEchangeme":      "placeholder", // the examples': the text itself
		b64("change-me-change-me-change-me!!!"): "placeholder", // the bytes decoded
		b64("your-gossip-key-here-0123456789a"): "placeholder",
		b64(strings.Repeat("a", 32)):            "distinct byte values",
		b64("01234560123456012345601234560123"): "distinct byte values", // 7 distinct
		b64("0123456701234567"):                 "",                     // 8 distinct
		b64("0123456789abcdef"):                 "",
		keyA:                                    "",
		keyB:                                    "",
	} {
		ps := (&Config{Gossip: Gossip{Key: keyA, ExtraKeys: []string{key}}}).WeakSecrets()
		switch {
		case want == "" && len(ps) > 0:
			t.Errorf("key %q: %v, want none", key, ps)
		case want != "" && (len(ps) != 1 || ps[0].Key != "gossip.extra_keys[0]" || !strings.Contains(ps[0].Msg, want)):
			t.Errorf("key %q: %v, want gossip.extra_keys[0]: ...%s...", key, ps, want)
		}
	}
}

func TestWeakSecretsPasswordHashes(t *testing.T) {
	t.Parallel()
	users := []User{{Name: "a", PasswordHash: exampleHash}}
	for _, pw := range []string{"change-me", "changeme", "password", "admin"} {
		users = append(users, User{Name: pw, PasswordHash: hashOf(t, pw, bcrypt.MinCost)})
	}
	users = append(users,
		User{Name: "good", PasswordHash: hashOf(t, "correct horse battery", bcrypt.MinCost)},
		User{Name: "again", PasswordHash: exampleHash}, // compared once, reported for each user
	)
	ps := (&Config{API: API{Users: users}}).WeakSecrets()
	want := []string{"api.users[0].password_hash", "api.users[1].password_hash", "api.users[2].password_hash",
		"api.users[3].password_hash", "api.users[4].password_hash", "api.users[6].password_hash"}
	if got := keysOf(ps); !slices.Equal(got, want) {
		t.Fatalf("WeakSecrets names %q, want %q", got, want)
	}
	// users[3] is named after its password, "password".
	if !strings.Contains(ps[3].Msg, `log in as "password"`) || strings.Contains(ps[3].Msg, `well-known password "`) {
		t.Errorf("the message names the user, never the password: %s", ps[3].Msg)
	}
}

// The bcrypt comparisons are bounded: a hash of a cost above
// MaxPlaceholderHashCost is not compared (each comparison would take
// seconds at start and on every reload).
func TestWeakSecretsHashCostBounded(t *testing.T) {
	t.Parallel()
	h := hashOf(t, "admin", MaxPlaceholderHashCost+1)
	if ps := (&Config{API: API{Users: []User{{Name: "admin", PasswordHash: h}}}}).WeakSecrets(); len(ps) > 0 {
		t.Errorf("a hash of cost %d was compared: %v", MaxPlaceholderHashCost+1, ps)
	}
}

// Every secret field has a kind WeakSecrets knows, so that a new secret is
// checked too; and every one, set to a placeholder, is named.
func TestWeakSecretsCoversEverySecret(t *testing.T) {
	t.Parallel()
	var want []string
	c := &Config{}
	var fill func(key string, v reflect.Value)
	fill = func(key string, v reflect.Value) {
		for _, f := range fieldsOf(v.Type()) {
			sf, fv := v.Type().Field(f.index), v.Field(f.index)
			k := childKey(key, f.name)
			if sf.Tag.Get("secret") == "true" {
				kind := sf.Tag.Get("secretkind")
				val := map[string]string{"token": "change-me-0123456789", "password": "change-me",
					"gossip-key": "CHANGEMEchangemeCHANGEMEchangeme", "bcrypt": exampleHash, "path": "/etc/change-me"}[kind]
				if val == "" {
					t.Errorf("%s: secretkind %q is none of token, password, gossip-key, bcrypt, path", k, kind)
					continue
				}
				if fv.Kind() == reflect.Slice {
					fv.Set(reflect.ValueOf([]string{val}))
					k += "[0]"
				} else {
					fv.SetString(val)
				}
				if kind != "path" {
					want = append(want, k)
				}
				continue
			}
			switch {
			case fv.Kind() == reflect.Pointer && fv.Type().Elem().Kind() == reflect.Struct:
				fv.Set(reflect.New(fv.Type().Elem()))
				fill(k, fv.Elem())
			case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct:
				fv.Set(reflect.MakeSlice(fv.Type(), 1, 1))
				fill(k+"[0]", fv.Index(0))
			case fv.Kind() == reflect.Struct && fv.Type() != durationType:
				fill(k, fv)
			}
		}
	}
	fill("", reflect.ValueOf(c).Elem())
	got := keysOf(c.WeakSecrets())
	slices.Sort(got)
	slices.Sort(want)
	if len(want) < 7 || !slices.Equal(got, want) {
		t.Errorf("WeakSecrets names %q, want every secret %q", got, want)
	}
}

func TestRequireStrongSecrets(t *testing.T) {
	t.Parallel()
	good := secretsConfig(t, "6e5759e6c7f35c3b53ed3bb5d358eb4fb72a8c8c483e1587", keyB, keyA, "mds-secret",
		hashOf(t, "correct horse battery", bcrypt.MinCost))
	if err := good.RequireStrongSecrets("resman.yaml"); err != nil {
		t.Errorf("strong secrets refused: %v", err)
	}
	bad := secretsConfig(t, "change-me-to-a-long-random-token", keyB, keyA, "mds-secret",
		hashOf(t, "correct horse battery", bcrypt.MinCost))
	err := bad.RequireStrongSecrets("/etc/resman/resman.yaml")
	var ps Problems
	if err == nil || !errors.As(err, &ps) || len(ps) != 3 {
		t.Fatalf("want the 3 tokens refused as Problems, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"config file /etc/resman/resman.yaml: 3 placeholder or weak secret(s)",
		"resman gen-secret", "\napi.token: ", "\ncc.token: ", "\nedge.token: "} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "change-me-to-a-long-random-token") {
		t.Errorf("the error shows the token:\n%s", msg)
	}
}
