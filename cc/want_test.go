package cc

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/golden"
)

// TestWantScenarios runs every testdata/want/*.txt file: each "> key=value
// ..." line is one input of decide (or of retryBackoff), followed by the
// expected "= move" line. Lines starting with "#" say why. Run with
// -rewrite to regenerate the expected lines, then read the diff.
//
// Keys of decide: node= the node's status (active, activating,
// deactivating, inactive, or none before its first answer), reachable=
// yes|no (default yes), mine= the follower's status, retry_in= a duration
// (default 0), swept= and running= yes|no (default no). A line
// "> failures=N" asks retryBackoff instead.
func TestWantScenarios(t *testing.T) {
	golden.Files(t, "testdata/want/*.txt", func(src string) (string, error) { return runLines(src, wantLine) })
}

// wantLine answers one "> " line.
func wantLine(line string) (string, error) {
	kv, err := parseKV(line)
	if err != nil {
		return "", err
	}
	if v, ok := kv["failures"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || len(kv) != 1 {
			return "", fmt.Errorf("failures=%q: want a whole number from 1, alone on its line", v)
		}
		return "= retry in " + retryBackoff(n).String(), nil
	}
	in := wantInput{Node: kv["node"], Mine: kv["mine"]}
	if in.Node == "none" {
		in.Node = ""
	}
	for key, b := range map[string]*bool{"reachable": &in.Reachable, "swept": &in.Swept, "running": &in.Running} {
		v, ok := kv[key]
		switch {
		case !ok:
			*b = key == "reachable"
		case v == "yes" || v == "no":
			*b = v == "yes"
		default:
			return "", fmt.Errorf("%s=%q: want yes or no", key, v)
		}
	}
	if v, ok := kv["retry_in"]; ok {
		if in.RetryIn, err = time.ParseDuration(v); err != nil {
			return "", fmt.Errorf("retry_in=%q: %w", v, err)
		}
	}
	for key := range kv {
		switch key {
		case "node", "mine", "reachable", "swept", "running", "retry_in":
		default:
			return "", fmt.Errorf("unknown key %q", key)
		}
	}
	if kv["node"] == "" || in.Mine == "" {
		return "", fmt.Errorf("node= and mine= are required")
	}
	d := decide(in)
	if d.Move == moveWait {
		return "= wait " + d.Wait.String(), nil
	}
	return "= " + d.Move.String(), nil
}

// runLines returns src with the line after every "> " line (its expected
// answer, "= ...") replaced by what answer gives.
func runLines(src string, answer func(string) (string, error)) (string, error) {
	var out strings.Builder
	lines := strings.Split(strings.TrimRight(src, "\n"), "\n")
	for n := 0; n < len(lines); n++ {
		line := lines[n]
		out.WriteString(line + "\n")
		if !strings.HasPrefix(line, "> ") {
			continue
		}
		got, err := answer(strings.TrimPrefix(line, "> "))
		if err != nil {
			return "", fmt.Errorf("line %d: %w", n+1, err)
		}
		out.WriteString(got + "\n")
		if n+1 < len(lines) && strings.HasPrefix(lines[n+1], "= ") {
			n++ // the expected line, replaced
		}
	}
	return out.String(), nil
}

// parseKV reads "key=value key=value".
func parseKV(s string) (map[string]string, error) {
	kv := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key=value", f)
		}
		if _, dup := kv[k]; dup {
			return nil, fmt.Errorf("key %q twice", k)
		}
		kv[k] = v
	}
	return kv, nil
}
