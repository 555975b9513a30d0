package main

import (
	"strings"
	"testing"
)

// resman run with an example's placeholder token refuses to start, naming
// the key and how to make a good one; nothing is started.
func TestRunRefusesPlaceholderSecrets(t *testing.T) {
	out, stderr, code := cli(t, "run", "-c", examplesDir+"/pair/xivo-main.yaml")
	if code != exitUsage {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitUsage, out, stderr)
	}
	for _, want := range []string{"api.token: is a placeholder", "gossip.key", "resman gen-secret"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, stderr)
		}
	}
}
