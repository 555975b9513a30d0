package config

import (
	"fmt"
	"reflect"
)

// hookPhase is one list of hooks with its key path.
type hookPhase struct {
	key   string
	hooks []Hook
}

// phases lists the hook lists in schema order.
func (h Hooks) phases() []hookPhase {
	return []hookPhase{
		{"hooks.before_activate", h.BeforeActivate},
		{"hooks.after_activate", h.AfterActivate},
		{"hooks.after_deactivate", h.AfterDeactivate},
	}
}

// Any reports whether at least one hook is configured.
func (h Hooks) Any() bool {
	return len(h.BeforeActivate)+len(h.AfterActivate)+len(h.AfterDeactivate) > 0
}

// GossipKeyBytes decodes gossip.key into the 16, 24 or 32 bytes of the
// gossip encryption key.
func (c *Config) GossipKeyBytes() ([]byte, error) {
	b, err := decodeGossipKey(c.Gossip.Key)
	if err != nil {
		return nil, fmt.Errorf("gossip.key: %w", err)
	}
	return b, nil
}

// GossipKeys decodes gossip.key, the primary key gossip is encrypted with,
// and gossip.extra_keys, the other keys accepted to decrypt it.
func (c *Config) GossipKeys() (primary []byte, extra [][]byte, err error) {
	if primary, err = c.GossipKeyBytes(); err != nil {
		return nil, nil, err
	}
	for i, k := range c.Gossip.ExtraKeys {
		b, err := decodeGossipKey(k)
		if err != nil {
			return nil, nil, fmt.Errorf("gossip.extra_keys[%d]: %w", i, err)
		}
		extra = append(extra, b)
	}
	return primary, extra, nil
}

// Redacted returns a deep copy of c with every non-empty secret (fields
// tagged secret:"true": api.token, each of api.read_tokens,
// api.users[].password_hash, gossip.key,
// each of gossip.extra_keys, xds.mds[].password, cc.token, edge.token,
// edge.tls.key) replaced by RedactedValue, for logs and "config check
// --print". c is left untouched.
func (c *Config) Redacted() *Config {
	if c == nil {
		return nil
	}
	cp := deepCopy(reflect.ValueOf(c)).Interface().(*Config)
	redact(reflect.ValueOf(cp).Elem())
	return cp
}

// deepCopy copies pointers, slices and structs so that the copy shares no
// memory with v; other kinds in the schema are plain values.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(deepCopy(v.Elem()))
		return p
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		s := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			s.Index(i).Set(deepCopy(v.Index(i)))
		}
		return s
	case reflect.Struct:
		s := reflect.New(v.Type()).Elem()
		for i := range v.NumField() {
			s.Field(i).Set(deepCopy(v.Field(i)))
		}
		return s
	}
	return v
}

func redact(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			redact(v.Elem())
		}
	case reflect.Slice:
		for i := range v.Len() {
			redact(v.Index(i))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Field(i)
			if v.Type().Field(i).Tag.Get("secret") == "true" {
				redactSecret(f)
				continue
			}
			redact(f)
		}
	}
}

// redactSecret replaces a secret string, or each item of a list of them.
func redactSecret(f reflect.Value) {
	switch {
	case f.Kind() == reflect.String:
		if f.String() != "" {
			f.SetString(RedactedValue)
		}
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		for i := range f.Len() {
			redactSecret(f.Index(i))
		}
	default:
		// A secret of another kind would need its own case: rather than
		// leave it in clear, drop it.
		f.Set(reflect.Zero(f.Type()))
	}
}
