package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"

	"github.com/spf13/viper"
)

// EnvPrefix starts the name of every environment override.
const EnvPrefix = "RESMAN_"

// Load reads the YAML file at path, applies RESMAN_* overrides from the
// process environment, fills defaults and validates. Problems with the
// content come back as an error wrapping Problems (use errors.As).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is already in our message
		}
		return nil, fmt.Errorf("config file %s: cannot read: %w", path, err)
	}
	c, err := parse(data, os.LookupEnv)
	if err != nil {
		var ps Problems
		if errors.As(err, &ps) {
			return nil, fmt.Errorf("config file %s: %d problem(s):\n%w", path, len(ps), err)
		}
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return c, nil
}

// Parse is Load without files: it decodes yaml, applies overrides found by
// env (os.LookupEnv for the process environment, nil for none), fills
// defaults and validates. Unknown keys, wrong types and invalid values are
// all reported together in one Problems error.
//
// Env overrides: every scalar or string-list key has a variable named
// RESMAN_ plus its path in upper case with dots as underscores, e.g.
// RESMAN_NODE_MODE or RESMAN_GOSSIP_JOIN (a comma-separated list). Lists of
// sections (services, replication, api.users, xds.mds, cc.services,
// edge.sides, the hooks lists) cannot be overridden. Overrides of keys in the optional
// sections node, peer, xds, cc and edge apply only when that section is in
// the file (write "cc: {}" to configure a section from the environment
// alone), so a stray variable never creates a half-configured component.
// api, gossip, failover, hooks and log always accept overrides. Empty values are
// ignored, as with viper; a list variable with no item (only commas or
// spaces) is a problem, not an empty list.
func Parse(yaml []byte, env func(string) (string, bool)) (*Config, error) {
	c, err := parse(yaml, env)
	var ps Problems
	if err != nil && !errors.As(err, &ps) {
		return nil, fmt.Errorf("config: %w", err)
	}
	return c, err
}

func parse(yaml []byte, env func(string) (string, bool)) (*Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(yaml)); err != nil {
		var pe viper.ConfigParseError
		if errors.As(err, &pe) {
			err = pe.Unwrap() // drop viper's "While parsing config:"
		}
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}

	present := map[string]bool{}
	for _, f := range fieldsOf(reflect.TypeFor[Config]()) {
		present[f.name] = v.InConfig(f.name)
	}
	fromEnv := map[string]string{}
	var envProbs Problems
	if env != nil {
		// v.Set instead of v.BindEnv: same effect (the value reaches
		// AllSettings even for keys absent from the file), but the lookup
		// is injectable, so tests need not touch the process environment.
		for _, k := range envKeys() {
			if section, _, _ := strings.Cut(k.key, "."); !present[section] && k.optional {
				continue
			}
			val, ok := env(k.env)
			if !ok || val == "" {
				continue
			}
			if k.list {
				items := splitList(val)
				if len(items) == 0 {
					// Not "clear the list": an unset variable does that
					// without a doubt. Most likely an expansion that came
					// out empty (RESMAN_GOSSIP_EXTRA_KEYS=" $OLD").
					envProbs = append(envProbs, Problem{Key: k.key, Msg: fmt.Sprintf(
						"%s has no item, only commas or spaces: unset it, or give a comma-separated list", k.env)})
					continue
				}
				v.Set(k.key, items)
			} else {
				v.Set(k.key, val)
			}
			fromEnv[k.key] = k.env
		}
	}

	settings := v.AllSettings()
	// viper drops empty sections ("cc: {}"), which still mean "present".
	for name, ok := range present {
		if _, kept := settings[name]; ok && !kept {
			settings[name] = map[string]any{}
		}
	}

	c := &Config{}
	d := decoder{set: map[string]bool{}}
	d.decode("", settings, reflect.ValueOf(c).Elem())
	d.probs = append(d.probs, envProbs...)
	c.applyDefaults(func(key string) bool { return d.set[key] })

	probs := d.probs
	if err := c.Validate(); err != nil {
		var vps Problems
		errors.As(err, &vps)
		// A key that failed to decode would also fail validation (it is
		// empty); report it once, as the decode problem.
		for _, p := range vps {
			if !underAny(p.Key, d.probs) {
				probs = append(probs, p)
			}
		}
	}
	if len(probs) == 0 {
		return c, nil
	}
	for i, p := range probs {
		for key, name := range fromEnv {
			if p.Key == key || strings.HasPrefix(p.Key, key+"[") {
				probs[i].Msg += " (set by " + name + ")"
			}
		}
	}
	probs.sort()
	return nil, probs
}

func underAny(key string, ps Problems) bool {
	for _, p := range ps {
		if key == p.Key || strings.HasPrefix(key, p.Key+".") || strings.HasPrefix(key, p.Key+"[") {
			return true
		}
	}
	return false
}

func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// envKey is one env-overridable key of the schema.
type envKey struct {
	key, env string
	list     bool
	// optional: the key is inside a pointer section (node, peer, ...).
	optional bool
}

// envKeys walks the schema: every scalar and string list outside lists of
// sections can be overridden.
func envKeys() []envKey {
	var out []envKey
	var walk func(prefix string, t reflect.Type, optional bool)
	walk = func(prefix string, t reflect.Type, optional bool) {
		for _, f := range fieldsOf(t) {
			key := childKey(prefix, f.name)
			ft := t.Field(f.index).Type
			opt := optional
			if ft.Kind() == reflect.Pointer {
				ft, opt = ft.Elem(), true
			}
			switch {
			case ft == durationType:
			case ft.Kind() == reflect.Struct:
				walk(key, ft, opt)
				continue
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() != reflect.String:
				continue
			}
			out = append(out, envKey{
				key:      key,
				env:      EnvName(key),
				list:     ft.Kind() == reflect.Slice,
				optional: opt,
			})
		}
	}
	walk("", reflect.TypeFor[Config](), false)
	return out
}

// EnvName is the environment variable that overrides key, e.g.
// RESMAN_GOSSIP_PROBE_INTERVAL for gossip.probe_interval.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}
