package config

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

var durationType = reflect.TypeFor[time.Duration]()

// field is one mapstructure-tagged field of a schema struct.
type field struct {
	name  string
	index int
}

// fieldsOf lists the tagged fields of struct type t in declaration order.
func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
		if name != "" && name != "-" {
			fs = append(fs, field{name, i})
		}
	}
	return fs
}

func childKey(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// decoder fills a Config from the map viper produced. Unlike mapstructure it
// names the full key path of every unknown key and wrong type, keeps going
// after a problem, and records which keys were given so defaults never
// overwrite an explicit value (an explicit 0 must reach validation).
type decoder struct {
	probs Problems
	set   map[string]bool
	// secret is set while a field tagged secret:"true" is decoded: its
	// problems then describe the value without showing it.
	secret bool
}

// describe names a value for a problem, without its text for a secret.
func (d *decoder) describe(in any) string {
	if d.secret {
		switch in.(type) {
		case string:
			return "a string"
		case float64:
			return "a decimal number"
		}
	}
	return describe(in)
}

func (d *decoder) problem(key, format string, args ...any) {
	d.probs = append(d.probs, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// decode stores in into out. A nil in (a YAML key without a value) leaves
// out untouched, as if the key were absent.
func (d *decoder) decode(key string, in any, out reflect.Value) {
	if in == nil {
		return
	}
	t := out.Type()
	switch {
	case t == durationType:
		if v, ok := d.duration(key, in); ok {
			out.SetInt(int64(v))
			d.set[key] = true
		}
	case t.Kind() == reflect.Pointer:
		if out.IsNil() {
			out.Set(reflect.New(t.Elem()))
		}
		d.decode(key, in, out.Elem())
	case t.Kind() == reflect.Struct:
		d.decodeStruct(key, in, out)
	case t.Kind() == reflect.Slice:
		d.decodeSlice(key, in, out)
	case t.Kind() == reflect.String:
		if v, ok := d.str(key, in); ok {
			out.SetString(v)
			d.set[key] = true
		}
	case t.Kind() == reflect.Int:
		if v, ok := d.integer(key, in); ok {
			out.SetInt(v)
			d.set[key] = true
		}
	case t.Kind() == reflect.Bool:
		if v, ok := d.boolean(key, in); ok {
			out.SetBool(v)
			d.set[key] = true
		}
	default:
		// The schema holds only the kinds above; a new kind needs a case
		// (TestSchemaKinds guards this).
		d.problem(key, "internal error: no decoder for %s", t)
	}
}

func (d *decoder) decodeStruct(key string, in any, out reflect.Value) {
	m, ok := asMap(in)
	if !ok {
		d.problem(key, "expected a section of key: value pairs, got %s", d.describe(in))
		return
	}
	d.set[key] = true
	fs := fieldsOf(out.Type())
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		i := slices.IndexFunc(fs, func(f field) bool { return f.name == k })
		if i < 0 {
			d.problem(childKey(key, k), "unknown key, %s", suggest(k, fs))
			continue
		}
		secret := d.secret
		d.secret = secret || out.Type().Field(fs[i].index).Tag.Get("secret") == "true"
		d.decode(childKey(key, k), m[k], out.Field(fs[i].index))
		d.secret = secret
	}
}

func (d *decoder) decodeSlice(key string, in any, out reflect.Value) {
	var items []any
	switch v := in.(type) {
	case []any:
		items = v
	case []string: // from an env override, already split
		for _, s := range v {
			items = append(items, s)
		}
	default:
		example := "[a, b]"
		if out.Type().Elem().Kind() == reflect.Struct {
			example = "of sections (- name: ...)"
		}
		d.problem(key, "expected a list %s, got %s", example, d.describe(in))
		return
	}
	s := reflect.MakeSlice(out.Type(), len(items), len(items))
	for i, item := range items {
		d.decode(fmt.Sprintf("%s[%d]", key, i), item, s.Index(i))
	}
	out.Set(s)
	d.set[key] = true
}

func (d *decoder) duration(key string, in any) (time.Duration, bool) {
	switch v := in.(type) {
	case string:
		dur, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			d.problem(key, "expected a duration like 200ms, got %q", v)
			return 0, false
		}
		return dur, true
	case int, int64, uint64, float64:
		// A bare 0 is unambiguous; any other bare number lacks its unit.
		if n, ok := wholeNumber(v); ok && n == 0 {
			return 0, true
		}
		d.problem(key, "expected a duration with a unit like 200ms, got %v", v)
	default:
		d.problem(key, "expected a duration like 200ms, got %s", describe(in))
	}
	return 0, false
}

func (d *decoder) str(key string, in any) (string, bool) {
	switch v := in.(type) {
	case string:
		return v, true
	case int, int64, uint64:
		// e.g. user: 1001; the text is exactly what was written.
		return fmt.Sprint(v), true
	case float64, bool:
		// YAML changed what was written (2025.10 becomes 2025.1, yes may
		// become true): ask for quotes rather than guess.
		if d.secret {
			d.problem(key, "expected a string, got %s: put the value in quotes", d.describe(in))
		} else {
			d.problem(key, "expected a string, got %s %v: put the value in quotes", describe(in), v)
		}
	default:
		d.problem(key, "expected a string, got %s", d.describe(in))
	}
	return "", false
}

func (d *decoder) integer(key string, in any) (int64, bool) {
	if s, ok := in.(string); ok {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 0)
		if err != nil {
			d.problem(key, "expected a whole number, got %q", s)
			return 0, false
		}
		return n, true
	}
	if n, ok := wholeNumber(in); ok {
		return n, true
	}
	d.problem(key, "expected a whole number, got %s", describe(in))
	return 0, false
}

func (d *decoder) boolean(key string, in any) (bool, bool) {
	switch v := in.(type) {
	case bool:
		return v, true
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(v)); err == nil {
			return b, true
		}
	}
	d.problem(key, "expected true or false, got %s", describe(in))
	return false, false
}

// wholeNumber converts the numeric types YAML produces to an int that fits.
func wholeNumber(in any) (int64, bool) {
	switch v := in.(type) {
	case int:
		return int64(v), true
	case int64:
		return v, true
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v), true
		}
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return int64(v), true
		}
	}
	return 0, false
}

func asMap(in any) (map[string]any, bool) {
	switch v := in.(type) {
	case map[string]any:
		return v, true
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, val := range v {
			m[strings.ToLower(fmt.Sprint(k))] = val
		}
		return m, true
	}
	return nil, false
}

// describe names a value for an error message.
func describe(in any) string {
	switch v := in.(type) {
	case string:
		return strconv.Quote(v)
	case bool:
		return "a boolean"
	case int, int64, uint64:
		return fmt.Sprintf("the number %v", v)
	case float64:
		return "a decimal number"
	case []any, []string:
		return "a list"
	case map[string]any, map[any]any:
		return "a section"
	case time.Time:
		return "a date"
	}
	return fmt.Sprintf("a %T", in)
}

// suggest names the nearest known key, or lists them all.
func suggest(k string, fs []field) string {
	best, bestDist := "", 3
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
		if dist := editDistance(k, f.name); dist < bestDist && dist < len(f.name) {
			best, bestDist = f.name, dist
		}
	}
	if best != "" {
		return "did you mean " + best + "?"
	}
	return "expected one of " + strings.Join(names, ", ")
}

// editDistance is the Levenshtein distance, enough to catch typos.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
