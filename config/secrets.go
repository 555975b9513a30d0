package config

import (
	"encoding/base64"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// MaxPlaceholderHashCost bounds the bcrypt comparisons of WeakSecrets: a
// password hash of a higher cost is not compared with the well-known
// passwords. They run at every start and reload: one comparison takes
// 50 to 150 ms at cost 10 (resman hash-password's default), and doubles
// with each step of cost.
const MaxPlaceholderHashCost = 11

// MinSecretDistinct is the fewest distinct characters of a token, or
// distinct byte values of a decoded gossip key, that WeakSecrets accepts.
// A random hex token of 32 characters has about 14; a random gossip key of
// 32 bytes, about 30.
const MinSecretDistinct = 8

// placeholderWords make a secret a placeholder wherever they appear in it,
// compared in lower case with everything but letters and digits removed
// ("Change_Me", "<your token here>"). Words of 7 letters or more: a random
// base64 key contains one by chance about once in 10^9.
var placeholderWords = []string{
	"changeme", "changethis", "replaceme", "replacethis", "placeholder", "example",
	"yourtoken", "yourapitoken", "yourkey", "yourgossipkey", "yoursecret", "yourpassword",
}

// placeholderValues are placeholders when they are the whole secret
// (normalised as above): the usual default passwords.
var placeholderValues = []string{
	"secret", "password", "passw0rd", "admin", "root", "token", "test", "default",
	"resman", "xivo", "qwerty", "letmein", "123456", "12345678", "123456789", "1234567890",
}

// placeholderPasswords are the passwords a web user's hash is compared
// with: the examples' and the most common defaults. Each costs one bcrypt
// comparison per distinct hash: keep the list short.
var placeholderPasswords = []string{"change-me", "changeme", "password", "admin"}

// knownPlaceholderHashes are hashes published with resman, found without
// a comparison: the examples' hash of "change-me".
var knownPlaceholderHashes = map[string]bool{
	"$2a$10$NyG8xZrpa/IewVjMFshoLuvdTVp78FtiVdjdT9vt95zV8LWcNjskq": true,
}

// secretValue is one non-empty secret of a config.
type secretValue struct {
	key, kind, value string
	owner            reflect.Value // the struct holding it (a User for a hash)
}

// secretValues lists the config's non-empty secrets (fields tagged
// secret:"true") in schema order, with their key paths and kinds.
func (c *Config) secretValues() []secretValue {
	var out []secretValue
	var walk func(key string, v reflect.Value)
	walk = func(key string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(key, v.Elem())
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(fmt.Sprintf("%s[%d]", key, i), v.Index(i))
			}
		case reflect.Struct:
			for _, f := range fieldsOf(v.Type()) {
				sf, fv := v.Type().Field(f.index), v.Field(f.index)
				k := childKey(key, f.name)
				if sf.Tag.Get("secret") != "true" {
					walk(k, fv)
					continue
				}
				kind := sf.Tag.Get("secretkind")
				add := func(k string, s string) {
					if s != "" {
						out = append(out, secretValue{key: k, kind: kind, value: s, owner: v})
					}
				}
				switch fv.Kind() {
				case reflect.String:
					add(k, fv.String())
				case reflect.Slice:
					for i := range fv.Len() {
						add(fmt.Sprintf("%s[%d]", k, i), fv.Index(i).String())
					}
				}
			}
		}
	}
	if c != nil {
		walk("", reflect.ValueOf(c).Elem())
	}
	return out
}

// WeakSecrets lists every secret of c that is a known placeholder or too
// weak to keep the deployment closed, each by its key path with what is
// wrong and how to make a good one. The secrets are the fields tagged
// secret:"true", checked by their secretkind:
//
//   - token (api.token, api.read_tokens[i], cc.token, edge.token,
//     fleet.pairs[i].token): a placeholder (changeme,
//     change-me, replace-me, your-token... in any case and punctuation),
//     or fewer than MinSecretDistinct distinct characters;
//   - gossip-key (gossip.key, gossip.extra_keys[i]): a placeholder in the
//     base64 text or in the bytes it decodes to, or fewer than
//     MinSecretDistinct distinct byte values;
//   - bcrypt (api.users[i].password_hash): the examples' hash, or a hash of
//     a well-known password (change-me, changeme, password, admin...),
//     compared with bcrypt when its cost is at most MaxPlaceholderHashCost;
//   - password (xds.mds[i].password): a placeholder or a usual default
//     (its strength is the MDS's business);
//   - path (edge.tls.key, edge.sip.tls.key): a file's path, not a secret value: not checked.
//
// No value is repeated in the messages. c need not be valid.
func (c *Config) WeakSecrets() Problems {
	secrets := c.secretValues()
	weakHashes := placeholderHashes(secrets)
	var ps Problems
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	for _, s := range secrets {
		switch s.kind {
		case "path":
		case "gossip-key":
			how := "Make a key with `resman gen-secret gossip-key` (or openssl rand -base64 32), the same on every member (both nodes and the witness)"
			decoded, err := base64.StdEncoding.DecodeString(s.value)
			switch {
			case isPlaceholder(s.value) || err == nil && isPlaceholder(string(decoded)):
				add(s.key, "is a placeholder, public in the examples or the docs: anyone who read them can read and forge this deployment's gossip. %s", how)
			case err == nil && distinctBytes(decoded) < MinSecretDistinct:
				add(s.key, "decodes to only %d distinct byte values: it is not random, and easy to guess. %s", distinctBytes(decoded), how)
			}
		case "bcrypt":
			if weakHashes[s.value] {
				add(s.key, "is the hash of a well-known password (a placeholder or a common default): anyone can log in as %q. "+
					"Choose a password of your own and paste the hash that resman hash-password prints", userName(s.owner))
			}
		case "password":
			if isPlaceholder(s.value) {
				add(s.key, "is a placeholder or a well-known password: set the MDS's real digest password "+
					"(if the MDS account still has this one, give it a new one there first, e.g. openssl rand -hex 24)")
			}
		default: // token
			how := "Make a token with `resman gen-secret token` (or openssl rand -hex 24)"
			switch {
			case s.key == "api.token":
				how += " and put it in every file of the deployment (api.token of the nodes and the witness, cc.token, edge.token)"
			case strings.HasPrefix(s.key, "api.read_tokens["):
				how += ": this is a read token of this node, give the new one to the fleet aggregator, CC or Edge that use it"
			default:
				how += ": this is a token of the nodes it talks to (their api.token or one of their api.read_tokens), change it there too"
			}
			switch n := utf8.RuneCountInString(distinctRunes(s.value)); {
			case isPlaceholder(s.value):
				add(s.key, "is a placeholder, public in the examples or the docs: anyone who read them can use this API. %s", how)
			case n < MinSecretDistinct:
				add(s.key, "has only %d distinct characters: it is not random, and easy to guess. %s", n, how)
			}
		}
	}
	ps.sort()
	return ps
}

// RequireStrongSecrets returns nil when WeakSecrets finds nothing, else an
// error wrapping its Problems (errors.As) that names the file and every
// key: "config file PATH: N placeholder or weak secret(s)...", one
// "key: message" per line. resman run refuses to start, or a reload to
// apply, a config it fails.
func (c *Config) RequireStrongSecrets(path string) error {
	ps := c.WeakSecrets()
	if len(ps) == 0 {
		return nil
	}
	return fmt.Errorf("config file %s: %d placeholder or weak secret(s): resman does not run with them "+
		"(make new ones with resman gen-secret):\n%w", path, len(ps), ps)
}

// normalise keeps the letters and digits of s, in lower case.
func normalise(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isPlaceholder(s string) bool {
	n := normalise(s)
	for _, w := range placeholderWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	for _, v := range placeholderValues {
		if n == v {
			return true
		}
	}
	return false
}

// distinctRunes is s with each character once.
func distinctRunes(s string) string {
	seen := map[rune]bool{}
	var b strings.Builder
	for _, r := range s {
		if !seen[r] {
			seen[r] = true
			b.WriteRune(r)
		}
	}
	return b.String()
}

func distinctBytes(b []byte) int {
	var seen [256]bool
	n := 0
	for _, x := range b {
		if !seen[x] {
			seen[x], n = true, n+1
		}
	}
	return n
}

func userName(owner reflect.Value) string {
	if u, ok := owner.Interface().(User); ok {
		return u.Name
	}
	return ""
}

// placeholderHashes finds which of the bcrypt secrets are hashes of a
// placeholder password: each distinct hash once, in parallel, skipping
// those of a cost above MaxPlaceholderHashCost.
func placeholderHashes(secrets []secretValue) map[string]bool {
	weak := map[string]bool{}
	var todo []string
	for _, s := range secrets {
		if s.kind != "bcrypt" {
			continue
		}
		if _, done := weak[s.value]; done {
			continue
		}
		weak[s.value] = knownPlaceholderHashes[s.value]
		if cost, err := bcrypt.Cost([]byte(s.value)); !weak[s.value] && err == nil && cost <= MaxPlaceholderHashCost {
			todo = append(todo, s.value)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	for _, h := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			for _, pw := range placeholderPasswords {
				if bcrypt.CompareHashAndPassword([]byte(h), []byte(pw)) == nil {
					mu.Lock()
					weak[h] = true
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return weak
}
