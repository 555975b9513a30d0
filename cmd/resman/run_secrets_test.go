package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// A truncated audit store stops resman run at once with a clear error and
// exit code 2, instead of a SIGBUS inside bbolt (a crash loop under
// systemd); the file is left as it was.
func TestRunRefusesATruncatedAuditStore(t *testing.T) {
	dataDir := t.TempDir()
	apiPort := freePort(t, "127.0.0.1")
	cfg := writeNodeConfig(t, nodeSpec{name: "xivo-main", role: "main", peer: "xivo-standby", host: "127.0.0.1",
		peerURL: "http://127.0.0.1:1", dataDir: dataDir, apiPort: apiPort, sipPort: freePort(t, "127.0.0.1")})
	// A real audit log first, by a node that ran once.
	p := startProc(t, "xivo-main", cfg, fmt.Sprintf("http://127.0.0.1:%d", apiPort))
	p.kill(syscall.SIGTERM)
	audit := filepath.Join(dataDir, "audit.db")
	if err := os.Truncate(audit, 8<<10); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := cli(t, "run", "-c", cfg)
	if code != exitUsage || !strings.Contains(stderr, audit) || strings.Contains(stderr, "SIGBUS") {
		t.Fatalf("run on a truncated audit.db: exit %d\n%s%s", code, out, stderr)
	}
	if fi, err := os.Stat(audit); err != nil || fi.Size() != 8<<10 {
		t.Errorf("the damaged file was changed: %v %v", fi, err)
	}
}
