package main

// The Debian package (tier 3): scripts/build-deb.sh packages the binary
// built in TestMain, dpkg-deb shows what the package holds and does, and
// the package unpacked into a throwaway root checks its own default config.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// pkgToolMissing skips the test, saying which tool is missing and why, or
// fails it when the environment variable CI is set.
func pkgToolMissing(t *testing.T, what, detail string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s; CI is set, so the package test fails instead of skipping\n%s", what, detail)
	}
	t.Skipf("%s: skipping the package test\n%s", what, detail)
}

// pkgRun runs a command and returns its stdout; stderr goes into the failure.
func pkgRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

func TestDebianPackage(t *testing.T) {
	skipShort(t) // builds the package with nfpm: tier 3
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		pkgToolMissing(t, "dpkg-deb is not installed (apt-get install dpkg)", err.Error())
	}

	// Build: the test's binary, a fixed version, into a temp dir.
	const version = "1.2.3~test"
	out := t.TempDir()
	build := exec.Command("bash", "../../scripts/build-deb.sh")
	build.Env = append(os.Environ(), "RESMAN_BIN="+binary, "OUT_DIR="+out, "RESMAN_VERSION="+version,
		"RESMAN_DEB_COMPRESSION=none")
	var stdout, stderr bytes.Buffer
	build.Stdout, build.Stderr = &stdout, &stderr
	if err := build.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 3 {
			pkgToolMissing(t, "the packaging tool nfpm cannot be fetched through the Go module proxy or run", stderr.String())
		}
		t.Fatalf("scripts/build-deb.sh: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	deb := lines[len(lines)-1]
	if filepath.Base(deb) != "resman_"+version+"_amd64.deb" {
		t.Fatalf("package named %q, want resman_%s_amd64.deb", deb, version)
	}

	// Control fields and dependencies.
	for field, want := range map[string]string{
		"Package":      "resman",
		"Version":      version,
		"Architecture": "amd64",
		// procps: ExecReload runs /bin/kill, which minimal images lack.
		"Depends": "adduser, polkitd (>= 121), procps",
	} {
		if got := strings.TrimSpace(pkgRun(t, "dpkg-deb", "-f", deb, field)); got != want {
			t.Errorf("control field %s: %q, want %q", field, got, want)
		}
	}

	// Conffiles: the config and the polkit rule, kept across upgrades.
	conffiles := strings.Fields(pkgRun(t, "dpkg-deb", "-I", deb, "conffiles"))
	wantConf := []string{"/etc/polkit-1/rules.d/49-resman.rules", "/etc/resman/resman.yaml"}
	if strings.Join(conffiles, " ") != strings.Join(wantConf, " ") {
		t.Errorf("conffiles %q, want %q", conffiles, wantConf)
	}

	// Files, with their modes.
	listing := pkgRun(t, "dpkg-deb", "-c", deb)
	modes := map[string]string{}
	for _, l := range strings.Split(listing, "\n") {
		f := strings.Fields(l)
		if len(f) >= 6 {
			modes[strings.TrimPrefix(f[len(f)-1], ".")] = f[0] + " " + f[1]
		}
	}
	for path, want := range map[string]string{
		"/usr/bin/resman":                                  "-rwxr-xr-x root/root",
		"/lib/systemd/system/resman.service":               "-rw-r--r-- root/root",
		"/etc/resman/":                                     "drwxr-x--- root/root",
		"/etc/resman/resman.yaml":                          "-rw-r----- root/root",
		"/etc/polkit-1/rules.d/49-resman.rules":            "-rw-r--r-- root/root",
		"/var/lib/resman/":                                 "drwxr-x--- root/root",
		"/usr/share/doc/resman/README.md":                  "-rw-r--r-- root/root",
		"/usr/share/doc/resman/install.md":                 "-rw-r--r-- root/root",
		"/usr/share/doc/resman/troubleshooting.md":         "-rw-r--r-- root/root",
		"/usr/share/doc/resman/reference/config.md":        "-rw-r--r-- root/root",
		"/usr/share/doc/resman/reference/hooks.md":         "-rw-r--r-- root/root",
		"/usr/share/doc/resman/reference/replication.md":   "-rw-r--r-- root/root",
		"/usr/share/lintian/overrides/resman":              "-rw-r--r-- root/root",
		"/usr/share/doc/resman/copyright":                  "-rw-r--r-- root/root",
		"/usr/share/doc/resman/img/keepalived.svg":         "-rw-r--r-- root/root",
		"/usr/share/doc/resman/CHANGELOG.md":               "-rw-r--r-- root/root",
		"/usr/share/bash-completion/completions/resman":    "-rw-r--r-- root/root",
		"/usr/share/zsh/vendor-completions/_resman":        "-rw-r--r-- root/root",
		"/usr/share/fish/vendor_completions.d/resman.fish": "-rw-r--r-- root/root",
	} {
		if got := modes[path]; got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}

	// Every file of examples/, each deployment's configs and README, at
	// its path below the doc directory.
	err := filepath.WalkDir("../../examples", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("../../examples", path)
		dst := "/usr/share/doc/resman/examples/" + filepath.ToSlash(rel)
		if got := modes[dst]; got != "-rw-r--r-- root/root" {
			t.Errorf("%s: %q, want %q (shipped from %s)", dst, got, "-rw-r--r-- root/root", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Maintainer scripts: present, valid sh, and doing what the guide says.
	ctrl := filepath.Join(t.TempDir(), "DEBIAN")
	pkgRun(t, "dpkg-deb", "-e", deb, ctrl)
	scripts := map[string]string{}
	for _, name := range []string{"postinst", "prerm", "postrm"} {
		path := filepath.Join(ctrl, name)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("maintainer script %s missing: %v", name, err)
		}
		if fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s is not executable: %v", name, fi.Mode())
		}
		pkgRun(t, "sh", "-n", path)
		raw, _ := os.ReadFile(path)
		scripts[name] = string(raw)
	}
	for _, want := range []string{"adduser --system", "chown -R resman:resman /var/lib/resman", "fix /var/lib/resman resman:resman 0750",
		"fix /etc/resman/resman.yaml root:resman 0640", "deb-systemd-invoke try-restart resman.service"} {
		if !strings.Contains(scripts["postinst"], want) {
			t.Errorf("postinst does not contain %q", want)
		}
	}
	// Never enabled nor started before the admin edited the config.
	if regexp.MustCompile(`systemctl[^\n]*\b(enable|start) resman|deb-systemd-(helper enable|invoke start)`).MatchString(scripts["postinst"]) {
		t.Errorf("postinst enables or starts resman:\n%s", scripts["postinst"])
	}
	at := strings.Index(scripts["postrm"], "purge)")
	if at < 0 {
		t.Fatalf("postrm has no purge case:\n%s", scripts["postrm"])
	}
	purge := scripts["postrm"][at:]
	for _, want := range []string{"rm -rf /var/lib/resman", "deluser --system", "delgroup --system"} {
		if !strings.Contains(purge, want) {
			t.Errorf("postrm purge does not contain %q", want)
		}
	}
	if remove := scripts["postrm"][:at]; strings.Contains(remove, "/var/lib/resman") ||
		strings.Contains(remove, "deluser") {
		t.Errorf("postrm removes data or the user outside purge:\n%s", remove)
	}

	// Unpacked into a throwaway root: the installed binary accepts the
	// installed default config as shipped.
	root := t.TempDir()
	pkgRun(t, "dpkg-deb", "-x", deb, root)
	installedBin := filepath.Join(root, "usr/bin/resman")
	installedCfg := filepath.Join(root, "etc/resman/resman.yaml")
	if got := pkgRun(t, installedBin, "config", "check", installedCfg); !strings.HasSuffix(strings.TrimSpace(got), ": ok") {
		t.Errorf("config check of the installed default config: %q", got)
	}
	// The copyright file covers what the binary links: the modules it
	// lists and the Go standard library.
	copyright, err := os.ReadFile(filepath.Join(root, "usr/share/doc/resman/copyright"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Upstream-Name: resman", "Go module github.com/hashicorp/memberlist",
		"Go module github.com/emiago/sipgo", "Go module github.com/gofiber/fiber/v2", "the Go standard library"} {
		if !strings.Contains(string(copyright), want) {
			t.Errorf("copyright file lacks %q", want)
		}
	}
	// Bash completion from the binary: it completes the subcommands.
	if bash, _ := os.ReadFile(filepath.Join(root, "usr/share/bash-completion/completions/resman")); !strings.Contains(string(bash), "__start_resman") {
		t.Errorf("bash completion does not define __start_resman")
	}
	if m := strings.TrimSpace(pkgRun(t, "dpkg-deb", "-f", deb, "Maintainer")); !strings.Contains(m, "<") {
		t.Errorf("Maintainer %q has no address", m)
	}
	// The installed examples pass the installed binary's config check.
	installedExamples, _ := filepath.Glob(filepath.Join(root, "usr/share/doc/resman/examples/*/*.yaml"))
	if len(installedExamples) == 0 {
		t.Errorf("no example config installed under /usr/share/doc/resman/examples/")
	}
	for _, f := range installedExamples {
		if got := pkgRun(t, installedBin, "config", "check", f); !strings.HasSuffix(strings.TrimSpace(got), ": ok") {
			t.Errorf("config check of the installed %s: %q", f, got)
		}
	}
	cfg, err := config.Load(installedCfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node == nil || cfg.Node.Mode != config.ModeManual || cfg.Node.DataDir != "/var/lib/resman" {
		t.Errorf("default config: want a node in manual mode with data_dir /var/lib/resman, got %+v", cfg.Node)
	}
	if len(cfg.Services) != 0 {
		t.Errorf("default config starts services before the admin chose them: %+v", cfg.Services)
	}
	if !strings.Contains(cfg.API.Token, "CHANGE-ME") {
		t.Errorf("default api.token is not a visible placeholder")
	}

	// The unit: how resman runs, and its hardening.
	unitPath := filepath.Join(root, "lib/systemd/system/resman.service")
	unitRaw, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	unit := map[string]string{}
	for _, l := range strings.Split(string(unitRaw), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			unit[k] = v
		}
	}
	for k, want := range map[string]string{
		"Type":                     "notify",
		"NotifyAccess":             "main",
		"ExecStart":                "/usr/bin/resman run -c /etc/resman/resman.yaml",
		"ExecReload":               "/bin/kill -HUP $MAINPID",
		"User":                     "resman",
		"Group":                    "resman",
		"Restart":                  "on-failure",
		"RestartSec":               "1",
		"RestartPreventExitStatus": "2",
		"NoNewPrivileges":          "yes",
		"ProtectSystem":            "strict",
		"ProtectHome":              "yes",
		"PrivateTmp":               "yes",
		"ReadWritePaths":           cfg.Node.DataDir,
		"CapabilityBoundingSet":    "",
		"WantedBy":                 "multi-user.target",
	} {
		if got, ok := unit[k]; !ok || got != want {
			t.Errorf("resman.service %s=%q (set: %v), want %q", k, got, ok, want)
		}
	}

	t.Run("unit-runs-the-daemon", func(t *testing.T) { unitRunsTheDaemon(t, root, unit) })

	t.Run("systemd-analyze", func(t *testing.T) {
		if _, err := exec.LookPath("systemd-analyze"); err != nil {
			t.Skip("systemd-analyze is not installed (apt-get install systemd): unit not verified")
		}
		// verify wants ExecStart's binary on this host: point it at the
		// unpacked one, the rest of the unit as shipped.
		dir := t.TempDir()
		patched := strings.Replace(string(unitRaw), "ExecStart=/usr/bin/resman", "ExecStart="+installedBin, 1)
		if err := os.WriteFile(filepath.Join(dir, "resman.service"), []byte(patched), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("systemd-analyze", "verify", filepath.Join(dir, "resman.service"))
		msgs, err := cmd.CombinedOutput()
		// verify exits 0 on unknown keys and bad values: any message fails.
		if err != nil || len(bytes.TrimSpace(msgs)) > 0 {
			t.Errorf("systemd-analyze verify resman.service: %v\n%s", err, msgs)
		}
	})
}

// unitRunsTheDaemon does what systemd does with the unit, without systemd
// (no PID 1 here): in the unpacked package as its root (chroot; the binary
// is static), in a network namespace of its own (the shipped config listens
// on 127.0.0.1:9440), as an unprivileged user, it runs ExecStart as
// shipped with the shipped config, waits for READY=1 on NOTIFY_SOCKET
// (Type=notify), asks the daemon its status, runs ExecReload with MAINPID
// set, and stops it with SIGTERM as systemd's stop does, within
// TimeoutStopSec.
func unitRunsTheDaemon(t *testing.T, root string, unit map[string]string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chroot, unshare): the daemon is not started from the unit")
	}
	for _, tool := range []string{"unshare", "chroot", "nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s missing: the daemon is not started from the unit", tool)
		}
	}
	// As shipped, the config's token is the public placeholder: the daemon
	// refuses to run and names the key. The admin's first step
	// (docs/install.md) is a token of their own.
	cfgPath := filepath.Join(root, "etc/resman/resman.yaml")
	refused := exec.Command(filepath.Join(root, "usr/bin/resman"), "run", "-c", cfgPath)
	if out, err := refused.CombinedOutput(); err == nil || !strings.Contains(string(out), "api.token: is a placeholder") {
		t.Fatalf("run with the shipped placeholder token: %v\n%s", err, out)
	}
	shipped, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	const token = "pkg-test-token-5f0c2a9e7b14d3"
	ours := strings.Replace(string(shipped), "CHANGE-ME-this-placeholder-token-is-public", token, 1)
	if ours == string(shipped) {
		t.Fatal("the shipped config's token is not the placeholder this test replaces")
	}
	if err := os.WriteFile(cfgPath, []byte(ours), 0o640); err != nil {
		t.Fatal(err)
	}
	// The package's data directory, owned by the unprivileged user the
	// daemon runs as here (nobody: the package's resman user exists only
	// once postinst ran).
	const uid = 65534
	// What postinst does with the resman user: the data directory is
	// his, the config directory and file his group's.
	for path, owner := range map[string][2]int{"var/lib/resman": {uid, uid}, "etc/resman": {0, uid}, "etc/resman/resman.yaml": {0, uid}} {
		if err := os.Chown(filepath.Join(root, path), owner[0], owner[1]); err != nil {
			t.Fatal(err)
		}
	}
	// The root of a system: readable by all (t.TempDir makes it 0700).
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	// NOTIFY_SOCKET is resolved inside the chroot.
	if err := os.MkdirAll(filepath.Join(root, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(root, "run/notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}

	argv := strings.Fields(unit["ExecStart"])
	script := fmt.Sprintf("ip link set lo up && exec chroot --userspec=%d:%d %s %s", uid, uid, root, strings.Join(argv, " "))
	cmd := exec.Command("unshare", "--net", "sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET=/run/notify"}
	out := &testkit.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("daemon output:\n%s", out.String())
		}
	}()

	notified := func(want string) {
		t.Helper()
		ln.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 256)
		n, err := ln.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("notify socket got %q, %v; want %q", buf[:n], err, want)
		}
	}
	notified("READY=1")

	// Asked from inside its network namespace, with the admin's token.
	pid := cmd.Process.Pid
	status := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-n", filepath.Join(root, "usr/bin/resman"),
		"status", "--node", "http://127.0.0.1:9440")
	status.Env = []string{"RESMAN_TOKEN=" + token}
	got, err := status.CombinedOutput()
	if err != nil || !strings.Contains(string(got), "xivo-main (main, manual mode)") {
		t.Fatalf("status of the daemon: %v\n%s", err, got)
	}

	// ExecReload, as systemd runs it.
	reload := exec.Command("sh", "-c", unit["ExecReload"])
	reload.Env = []string{"PATH=/usr/bin:/bin", "MAINPID=" + strconv.Itoa(pid)}
	if msg, err := reload.CombinedOutput(); err != nil {
		t.Fatalf("ExecReload: %v\n%s", err, msg)
	}
	// The reload done, not only begun: "config reload refused" would
	// also contain "reload".
	testkit.Eventually(t, func() bool { return strings.Contains(out.String(), `msg="config reloaded"`) }, "the reload logged")
	select {
	case err := <-done:
		exited = true
		t.Fatalf("the daemon exited on reload: %v", err)
	default:
	}

	// Stop: SIGTERM, then systemd waits TimeoutStopSec before SIGKILL.
	stopWithin, err := time.ParseDuration(unit["TimeoutStopSec"] + "s")
	if err != nil {
		t.Fatalf("TimeoutStopSec=%q: %v", unit["TimeoutStopSec"], err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		exited = true
		if err != nil {
			t.Errorf("the daemon ended with %v on SIGTERM, want exit 0 (Restart=on-failure would restart it)", err)
		}
	case <-time.After(stopWithin):
		t.Fatalf("the daemon did not stop within TimeoutStopSec (%v)", stopWithin)
	}
	// What it persisted is in the package's data directory.
	if _, err := os.Stat(filepath.Join(root, "var/lib/resman/state.json")); err != nil {
		t.Errorf("no state.json in the data directory: %v", err)
	}
}
