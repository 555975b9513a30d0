package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// TestReplicationFilesJob: a files job copies a tree from the Active node
// to the other over the API; a Standby that never received is not HA
// ready and says why; the run is audited; a run asked of the Inactive
// node is refused.
func TestReplicationFilesJob(t *testing.T) {
	srcRoot, dstRoot := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(srcRoot, "dialplan"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"sip.conf": "[general]\ncontext=default\n", "dialplan/extensions.conf": "exten => 100,1,Answer()\n"} {
		if err := os.WriteFile(filepath.Join(srcRoot, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	job := func(root string) string {
		return fmt.Sprintf("replication:\n  - {name: asterisk-conf, every: 1h, files: {roots: [{name: etc, path: %s}]}}\n", root)
	}
	mainP, standbyP, _, _ := pairWith(t, job(srcRoot), job(dstRoot))
	testkit.Eventually(t, func() bool { return status(t, mainP.url).Status == "active" }, "main active")
	testkit.Eventually(t, func() bool {
		return strings.Contains(strings.Join(status(t, standbyP.url).HA.Reasons, ";"), "replication job asterisk-conf")
	}, "standby not ready: never replicated")

	if _, stderr, code := cli(t, "replication", "run", "--node", standbyP.url, "--reason", "wrong side"); code != exitRefused {
		t.Fatalf("run on the inactive node: exit %d %s", code, stderr)
	}
	out, stderr, code := cli(t, "replication", "run", "--node", mainP.url, "--reason", "before maintenance")
	if code != 0 || !strings.Contains(out, "asterisk-conf") {
		t.Fatalf("replication run: exit %d %s %s", code, out, stderr)
	}
	got, err := os.ReadFile(filepath.Join(dstRoot, "dialplan", "extensions.conf"))
	if err != nil || string(got) != "exten => 100,1,Answer()\n" {
		t.Fatalf("the file did not arrive: %q %v", got, err)
	}
	testkit.Eventually(t, func() bool { return status(t, standbyP.url).HA.Ready }, "standby ready after replication")
	if !auditHas(t, mainP.url, "manual job asterisk-conf") {
		t.Fatal("the run is not in the main's audit log")
	}
}

// pairWith starts a Main on 127.0.0.1 and a Standby on 127.0.0.2, with
// extra config appended to each node's file.
func pairWith(t testing.TB, mainExtra, standbyExtra string) (mainP, standbyP *proc, mainSpec, standbySpec nodeSpec) {
	t.Helper()
	mainSpec = nodeSpec{name: "xivo-main", role: "main", peer: "xivo-standby", host: "127.0.0.1",
		dataDir: t.TempDir(), apiPort: freePort(t, "127.0.0.1"), sipPort: freePort(t, "127.0.0.1")}
	standbySpec = nodeSpec{name: "xivo-standby", role: "standby", peer: "xivo-main", host: "127.0.0.2",
		dataDir: t.TempDir(), apiPort: freePort(t, "127.0.0.2"), sipPort: freePort(t, "127.0.0.2")}
	mainSpec.peerURL = fmt.Sprintf("http://127.0.0.2:%d", standbySpec.apiPort)
	standbySpec.peerURL = fmt.Sprintf("http://127.0.0.1:%d", mainSpec.apiPort)
	write := func(spec nodeSpec, extra string) string {
		path := writeNodeConfig(t, spec)
		if extra != "" {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.WriteString(extra)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatalf("append the extra config to %s: %v", path, err)
			}
		}
		return path
	}
	standbyP = startProc(t, "standby", write(standbySpec, standbyExtra), mainSpec.peerURL)
	mainP = startProc(t, "main", write(mainSpec, mainExtra), standbySpec.peerURL)
	return
}
