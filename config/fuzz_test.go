package config

// FuzzYAMLRoundTrip protects the promise of Config.YAML, which
// `resman config check --print` shows: the printed config reads back as
// the same config. For any file (and RESMAN_* overrides) that Parse
// accepts, after the defaults and the overrides are applied:
//
//   - the config validates (Parse must not accept what Validate refuses);
//   - its YAML parses back, without overrides, with no problem;
//   - into a config deeply equal to the first: nothing printed is lost
//     or changed (an empty list that meant something, a duration, a
//     quoted string, a secret), nothing is added;
//   - and prints the same YAML again (the printing is a fixed point).
//
// FuzzParse (config_test.go) covers the other side: whatever the input,
// exactly one of a config or an error. The seed corpus is in
// testdata/fuzz/FuzzYAMLRoundTrip/, plus the configs of testdata/. Run it
// with a short -fuzzminimizetime (e.g. 1s): each new input found is
// minimized first, and at a few milliseconds a parse the default 60s per
// input leaves almost no time to fuzz (FuzzParse alike).

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func FuzzYAMLRoundTrip(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yaml") {
			f.Add(fixture(f, e.Name()), "")
		}
	}
	f.Fuzz(func(t *testing.T, yaml, envVal string) {
		// Every override gets the same value, as in FuzzParse.
		env := func(string) (string, bool) { return envVal, envVal != "" }
		c, err := Parse([]byte(yaml), env)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", err)
		}
		out, err := c.YAML()
		if err != nil {
			t.Fatalf("an accepted config does not print: %v", err)
		}
		back, err := Parse(out, nil)
		if err != nil {
			t.Fatalf("the printed config does not read back: %v\ninput:\n%s\nprinted:\n%s", err, yaml, out)
		}
		if !reflect.DeepEqual(c, back) {
			t.Fatalf("the printed config reads back different:\nfirst %+v\nback  %+v\nprinted:\n%s", c, back, out)
		}
		again, err := back.YAML()
		if err != nil || string(again) != string(out) {
			t.Fatalf("printing is not a fixed point (%v):\n%s\nthen:\n%s", err, out, again)
		}
	})
}
