package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// TestReloadSwitchesMode starts a pair in manual mode, switches both to
// auto mode with SIGHUP, and shows the heartbeat then fails over by itself;
// a broken file on reload changes nothing and says so.
func TestReloadSwitchesMode(t *testing.T) {
	mainP, standbyP, mainSpec, standbySpec := pair(t)
	testkit.Eventually(t, func() bool { return status(t, mainP.url).Status == "active" }, "main active")

	// A broken file: refused, audited, the mode unchanged.
	good, err := os.ReadFile(standbyP.cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeCfg := func(path string, b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(standbyP.cfg, []byte("node: {name: [broken"))
	standbyP.cmd.Process.Signal(syscall.SIGHUP)
	testkit.Eventually(t, func() bool { return auditHas(t, standbyP.url, "kept the last good config") }, "refused reload in the audit log")
	if st := status(t, standbyP.url); st.Mode != "manual" {
		t.Fatalf("a broken file changed the mode to %s", st.Mode)
	}

	// Both to auto mode: gossip on the hosts' own addresses.
	mg, sg := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.2")
	toAuto := func(cfg []byte, spec, peer nodeSpec, port, peerPort int) []byte {
		s := strings.Replace(string(cfg), "mode: manual", "mode: auto", 1)
		s = strings.Replace(s, "  timeout: 1s\n", fmt.Sprintf("  timeout: 1s\n  gossip: \"%s:%d\"\n", peer.host, peerPort), 1)
		return []byte(s + fmt.Sprintf("gossip: {bind: \"%s:%d\", key: \"%s\"}\n", spec.host, port, gossipKey))
	}
	mainCfg, err := os.ReadFile(mainP.cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeCfg(standbyP.cfg, toAuto(good, standbySpec, mainSpec, sg, mg))
	writeCfg(mainP.cfg, toAuto(mainCfg, mainSpec, standbySpec, mg, sg))
	standbyP.cmd.Process.Signal(syscall.SIGHUP)
	mainP.cmd.Process.Signal(syscall.SIGHUP)
	testkit.Eventually(t, func() bool {
		m, s := status(t, mainP.url), status(t, standbyP.url)
		return m.Mode == "auto" && s.Mode == "auto" && s.HA.Ready && s.Peer != nil && s.Peer.Epoch == m.Epoch
	}, "both in auto mode, seeing each other over gossip")
	if !auditHas(t, standbyP.url, "mode manual -> auto") {
		t.Fatal("the switch is not in the audit log")
	}
	mainP.kill(syscall.SIGKILL)
	testkit.Eventually(t, func() bool { return status(t, standbyP.url).Status == "active" }, "the standby takes over by itself")
}
