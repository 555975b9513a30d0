package main

// The Debian package under a real systemd (tier 3). A Debian tree made by
// mmdebstrap from Debian's packages boots its own systemd as PID 1 in a
// systemd-nspawn container; the .deb, built as package_test.go builds it,
// is installed there with apt-get as an admin would, and the service is
// driven through systemctl: the first start refused (the shipped token is
// a placeholder), `systemctl enable --now` once the admin wrote a token of
// their own, status, reload (a bad file refused, a good one applied), stop,
// an upgrade while running and a reinstall while stopped, remove, purge.
//
// The tree is cached in testout/systemd-tree/<key>, the key a hash of the
// suite and the package list; the container runs it with
// --volatile=overlay, so nothing done in the container is written to it.
// The container has a network of its own (--private-network): the shipped
// config's api.listen 127.0.0.1:9440 is its own loopback, and the shipped
// peer address is unreachable from it.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// The tree: Debian's minbase, plus what boots systemd (systemd,
// systemd-sysv, dbus) and what the package depends on (adduser, polkitd,
// procps for the unit's ExecReload /bin/kill, which minbase lacks): the
// container has no network, so apt-get finds the dependencies installed.
const (
	sdSuite   = "bookworm"
	sdVariant = "minbase"
)

var sdPackages = []string{"adduser", "dbus", "polkitd", "procps", "systemd", "systemd-sysv"}

// mmdebstrap copies the host's /etc/hostname into the tree: without it the
// container's hostname is its machine name.
const sdHook = `rm -f "$1/etc/hostname"`

// The shipped placeholder token (deploy/resman.yaml).
const sdPlaceholder = "CHANGE-ME-this-placeholder-token-is-public"

func TestPackageUnderSystemd(t *testing.T) {
	requireTools(t, "systemd-nspawn", "mmdebstrap", "nsenter", "dpkg-deb")
	if os.Geteuid() != 0 {
		pkgToolMissing(t, "not root: systemd-nspawn and mmdebstrap need root to build and boot the container", "")
	}
	began := time.Now()
	tree := systemdTree(t)
	treeDone := time.Now()

	debDir := t.TempDir()
	if err := os.Chmod(debDir, 0o755); err != nil {
		t.Fatal(err)
	}
	const v1, v2 = "1.2.3~test", "1.2.4~test"
	deb1 := "/mnt/resman/" + filepath.Base(buildTestDeb(t, debDir, v1))
	deb2 := "/mnt/resman/" + filepath.Base(buildTestDeb(t, debDir, v2))
	debsDone := time.Now()

	c := bootSystemd(t, tree, debDir)
	booted := time.Now()
	t.Logf("tree %v, packages %v, boot %v", treeDone.Sub(began).Round(time.Millisecond),
		debsDone.Sub(treeDone).Round(time.Millisecond), booted.Sub(debsDone).Round(time.Millisecond))

	// Install, as the guide says: apt-get install of the file.
	out := c.must(t, "apt-get install -y "+deb1)
	if !strings.Contains(out, "resman is installed but not started") {
		t.Errorf("apt-get install did not show postinst's next steps:\n%s", out)
	}
	if got := c.must(t, "dpkg-query -W -f '${Status} ${Version}' resman"); got != "install ok installed "+v1 {
		t.Fatalf("dpkg-query after install: %q", got)
	}
	// The system user and group, the config readable by the group only.
	pw := strings.Split(c.must(t, "getent passwd resman"), ":")
	if len(pw) != 7 || pw[5] != "/var/lib/resman" || pw[6] != "/usr/sbin/nologin" {
		t.Errorf("resman user: %q, want home /var/lib/resman and shell /usr/sbin/nologin", pw)
	} else if uid, _ := strconv.Atoi(pw[2]); uid == 0 || uid >= 1000 {
		t.Errorf("resman uid %d, want a system uid", uid)
	}
	c.must(t, "getent group resman")
	wantModes := map[string]string{
		"/etc/resman":             "750 root:resman",
		"/etc/resman/resman.yaml": "640 root:resman",
		"/var/lib/resman":         "750 resman:resman",
	}
	c.checkModes(t, wantModes)
	// Installed, not enabled nor started: the config still has placeholders.
	if got := c.show(t, "LoadState", "UnitFileState", "ActiveState"); got["LoadState"] != "loaded" ||
		got["UnitFileState"] != "disabled" || got["ActiveState"] != "inactive" {
		t.Errorf("after install: %v, want loaded, disabled, inactive", got)
	}

	// Started as shipped: refused, and the journal says why.
	if out, err := c.run("systemctl start resman"); err == nil {
		t.Errorf("systemctl start with the shipped config succeeded:\n%s", out)
	}
	testkit.Eventually(t, func() bool {
		return strings.Contains(c.journal(t), "api.token: is a placeholder")
	}, "the journal to name api.token as a placeholder")
	if got := c.show(t, "ActiveState")["ActiveState"]; got == "active" {
		t.Errorf("resman is active with the placeholder token")
	}
	// Exit 2 (a bad config) is not retried (RestartPreventExitStatus=2):
	// the unit stays failed, with no restart, over three RestartSec.
	time.Sleep(3 * time.Second)
	if got := c.show(t, "NRestarts", "ActiveState", "ExecMainStatus"); got["NRestarts"] != "0" ||
		got["ActiveState"] != "failed" || got["ExecMainStatus"] != "2" {
		t.Errorf("after the refused start: %v, want failed with status 2 and no restart", got)
	}
	c.must(t, "systemctl stop resman && { systemctl reset-failed resman 2>/dev/null || true; }")

	// The admin's token: gen-secret's line in place of the placeholder's,
	// then the guide's config check.
	line := c.must(t, "resman gen-secret token")
	m := regexp.MustCompile(`^token: "([0-9a-f]{48})"$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("resman gen-secret token printed %q", line)
	}
	token := m[1]
	c.must(t, fmt.Sprintf(`sed -i 's/^  token: ".*"$/  %s/' /etc/resman/resman.yaml && grep -q '%s' /etc/resman/resman.yaml`, line, token))
	if got := c.must(t, "resman config check /etc/resman/resman.yaml"); !strings.HasSuffix(got, ": ok") {
		t.Fatalf("config check with the admin's token: %q", got)
	}
	c.checkModes(t, wantModes)

	// systemctl enable --now: Type=notify, so start returns once resman
	// said READY=1, which it says once its API serves: asked at once.
	c.must(t, "systemctl enable --now resman")
	got := c.show(t, "ActiveState", "SubState", "UnitFileState", "MainPID")
	if got["ActiveState"] != "active" || got["SubState"] != "running" || got["UnitFileState"] != "enabled" {
		t.Fatalf("after enable --now: %v, want active, running, enabled", got)
	}
	pid := got["MainPID"]
	if user := c.must(t, "ps -o user= -p "+pid); user != "resman" {
		t.Errorf("the daemon runs as %q, want resman", user)
	}
	statusCmd := "RESMAN_TOKEN=" + token + " resman status --node http://127.0.0.1:9440"
	if st := c.must(t, statusCmd); !strings.Contains(st, "xivo-main (main, manual mode)  ACTIVE") {
		t.Errorf("resman status right after start:\n%s", st)
	}
	if st := c.must(t, "systemctl status resman --no-pager"); !strings.Contains(st, "Active: active (running)") {
		t.Errorf("systemctl status:\n%s", st)
	}

	// Reload of a file that does not pass (the placeholder back): refused,
	// the last good config kept, the daemon still running.
	c.must(t, `cp -p /etc/resman/resman.yaml /root/good.yaml && sed -i 's/^  token: ".*"$/  token: "`+sdPlaceholder+`"/' /etc/resman/resman.yaml && systemctl reload resman`)
	testkit.Eventually(t, func() bool {
		for _, l := range strings.Split(c.journal(t), "\n") {
			if strings.Contains(l, `msg="config reload refused: keeping the last good config"`) && strings.Contains(l, "api.token") {
				return true
			}
		}
		return false
	}, "the journal to say the reload was refused")
	if got := c.show(t, "ActiveState", "MainPID"); got["ActiveState"] != "active" || got["MainPID"] != pid {
		t.Errorf("after a refused reload: %v, want active with MainPID %s", got, pid)
	}
	c.must(t, statusCmd)
	// Reload of the good file: applied.
	c.must(t, "cp -p /root/good.yaml /etc/resman/resman.yaml && systemctl reload resman")
	testkit.Eventually(t, func() bool {
		return strings.Contains(c.journal(t), `msg="config reloaded" component=node mode=manual`)
	}, "the journal to say the config was reloaded")
	if got := c.show(t, "ActiveState", "MainPID"); got["ActiveState"] != "active" || got["MainPID"] != pid {
		t.Errorf("after reload: %v, want active with MainPID %s", got, pid)
	}

	// Stop: SIGTERM, a clean exit 0, the status persisted.
	c.must(t, "systemctl stop resman")
	if got := c.show(t, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus"); got["ActiveState"] != "inactive" ||
		got["Result"] != "success" || got["ExecMainCode"] != "1" || got["ExecMainStatus"] != "0" {
		t.Errorf("after stop: %v, want inactive, success, exited (ExecMainCode=1) with status 0", got)
	}
	c.checkModes(t, map[string]string{"/var/lib/resman/state.json": "600 resman:resman"})

	// Upgrade while running: restarted on the new version (postinst's
	// try-restart), the admin's config untouched, the status restored.
	c.must(t, "systemctl start resman")
	pid = c.show(t, "MainPID")["MainPID"]
	sum := c.must(t, "sha256sum /etc/resman/resman.yaml")
	cursor := c.must(t, "journalctl -u resman.service -n 1 -o export | sed -n 's/^__CURSOR=//p'")
	c.must(t, "apt-get install -y "+deb2)
	if got := c.must(t, "dpkg-query -W -f '${Version}' resman"); got != v2 {
		t.Fatalf("version after upgrade: %q, want %s", got, v2)
	}
	got = c.show(t, "ActiveState", "MainPID", "UnitFileState")
	if got["ActiveState"] != "active" || got["MainPID"] == pid || got["UnitFileState"] != "enabled" {
		t.Errorf("after an upgrade while running: %v, want active, a new MainPID (was %s), enabled", got, pid)
	}
	if after := c.must(t, "sha256sum /etc/resman/resman.yaml"); after != sum {
		t.Errorf("the upgrade changed the admin's config")
	}
	c.checkModes(t, wantModes)
	if j := c.must(t, "journalctl -u resman.service -o cat --no-pager --after-cursor='"+cursor+"'"); !strings.Contains(j, "restart: restoring the persisted status active") {
		t.Errorf("after the upgrade the journal does not show the status restored:\n%s", j)
	}
	c.must(t, statusCmd)

	// Reinstall while stopped: stays stopped (an admin's stop holds).
	c.must(t, "systemctl stop resman")
	c.must(t, "apt-get install -y --reinstall "+deb2)
	if got := c.show(t, "ActiveState")["ActiveState"]; got != "inactive" {
		t.Errorf("a reinstall started the stopped service: %s", got)
	}

	// Remove while running: prerm stops it; the config, the data and the
	// user stay for a reinstall.
	c.must(t, "systemctl start resman")
	c.must(t, "apt-get remove -y resman")
	if got := c.must(t, "dpkg-query -W -f '${Status}' resman"); got != "deinstall ok config-files" {
		t.Errorf("dpkg status after remove: %q", got)
	}
	if out, err := c.run("pgrep -x resman"); err == nil {
		t.Errorf("resman still runs after remove: %s", out)
	}
	if got := c.show(t, "LoadState")["LoadState"]; got != "not-found" {
		t.Errorf("unit after remove: LoadState=%s, want not-found", got)
	}
	c.must(t, "grep -q '"+token+"' /etc/resman/resman.yaml && test -f /var/lib/resman/state.json && getent passwd resman")

	// Purge: the config, the data, the enablement and the user go.
	c.must(t, "apt-get purge -y resman")
	if out, err := c.run("dpkg-query -W -f '${Status}' resman"); err == nil && out != "" {
		t.Errorf("dpkg still knows resman after purge: %q", out)
	}
	for _, p := range []string{"/etc/resman", "/var/lib/resman", "/usr/bin/resman", "/lib/systemd/system/resman.service",
		"/etc/systemd/system/multi-user.target.wants/resman.service", "/etc/polkit-1/rules.d/49-resman.rules"} {
		if out, err := c.run("test ! -e " + p + " && test ! -L " + p); err != nil {
			t.Errorf("%s is left after purge %s", p, out)
		}
	}
	for _, db := range []string{"passwd", "group"} {
		if out, err := c.run("getent " + db + " resman"); err == nil {
			t.Errorf("%s entry resman is left after purge: %s", db, out)
		}
	}
	if got := c.show(t, "LoadState")["LoadState"]; got != "not-found" {
		t.Errorf("unit after purge: LoadState=%s, want not-found", got)
	}

	// The container halts when asked.
	if err := c.halt(); err != nil {
		t.Errorf("halting the container: %v", err)
	}
	t.Logf("total %v", time.Since(began).Round(time.Millisecond))
}

// buildTestDeb builds the package of the test's binary with the given
// version into out, as TestDebianPackage does, and returns its path.
func buildTestDeb(t *testing.T, out, version string) string {
	t.Helper()
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
	return deb
}

// systemdTree returns the cached tree, building it with mmdebstrap first
// when the cache has none for this suite and package list (15 to 30 s).
// Trees of other keys are removed once the new one is in place.
func systemdTree(t *testing.T) string {
	t.Helper()
	sum := sha256.Sum256([]byte(sdSuite + " " + sdVariant + " " + strings.Join(sdPackages, ",") + " " + sdHook))
	key := hex.EncodeToString(sum[:8])
	base, err := filepath.Abs(filepath.Join("..", "..", "testout", "systemd-tree"))
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(base, key)
	if _, err := os.Stat(filepath.Join(tree, "usr/lib/systemd/systemd")); err == nil {
		return tree
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(base, key+".tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer removeUnlessMounted(t, tmp)
	// The root of a system: every user goes through it.
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mmdebstrap", "--mode=root", "--variant="+sdVariant,
		"--include="+strings.Join(sdPackages, ","), `--aptopt=Acquire::Retries "3"`, "--customize-hook="+sdHook, sdSuite, tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mmdebstrap of the %s tree: %v\n%s", sdSuite, err, out)
	}
	if err := os.Rename(tmp, tree); err != nil {
		// Another run built it meanwhile.
		if _, serr := os.Stat(filepath.Join(tree, "usr/lib/systemd/systemd")); serr != nil {
			t.Fatalf("caching the tree: %v", err)
		}
	}
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		if e.Name() != key && !strings.Contains(e.Name(), ".tmp-") {
			removeUnlessMounted(t, filepath.Join(base, e.Name()))
		}
	}
	return tree
}

// removeUnlessMounted removes dir, unless something is mounted below it
// (mmdebstrap ended midway may leave /dev or /proc mounted there: removing
// through those would remove the host's).
func removeUnlessMounted(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Lstat(dir); err != nil {
		return
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Logf("not removing %s: %v", dir, err)
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			t.Logf("not removing %s: %s is mounted", dir, fields[4])
			return
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Logf("removing %s: %v", dir, err)
	}
}

// sdContainer is a booted systemd-nspawn container.
type sdContainer struct {
	nspawn  *exec.Cmd
	done    chan error
	exited  bool
	leader  int // the container's PID 1 (systemd), as the host sees it
	log     *testkit.Buffer
	cgroups []string // made for the container, removed after it
}

// bootSystemd boots tree's systemd in a container with debDir mounted
// read-only at /mnt/resman, and returns once systemd says the system is
// running. The container is halted, and its cgroups removed, at cleanup.
func bootSystemd(t *testing.T, tree, debDir string) *sdContainer {
	t.Helper()
	name := "resman-e2e-" + randomID()
	args := []string{"-D", tree, "-M", name, "--boot", "--console=pipe", "--private-network",
		"--volatile=overlay", "--bind-ro=" + debDir + ":/mnt/resman"}
	c := &sdContainer{done: make(chan error, 1), log: &testkit.Buffer{}}
	var cmd *exec.Cmd
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		// The host runs systemd: nspawn asks it for a scope of its own.
		cmd = exec.Command("systemd-nspawn", args...)
	} else {
		// No systemd on the host (a container, a CI machine): no scope to
		// ask for, and nothing registers machines. nspawn then uses the
		// cgroup it runs in: one made for it, so that two runs do not
		// share, and nothing is left at the root of the hierarchies.
		c.cgroups = sdCgroups(t, name)
		script := ""
		for _, cg := range c.cgroups {
			script += fmt.Sprintf("echo $$ > '%s/cgroup.procs' && ", cg)
		}
		args = append([]string{"-c", script + `exec systemd-nspawn "$@"`, "sh", "--register=no", "--keep-unit"}, args...)
		cmd = exec.Command("sh", args...)
	}
	cmd.Stdout, cmd.Stderr = c.log, c.log
	if err := cmd.Start(); err != nil {
		c.removeCgroups(t)
		t.Fatal(err)
	}
	c.nspawn = cmd
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if err := c.halt(); err != nil {
			t.Errorf("halting the container: %v", err)
		}
		c.removeCgroups(t)
	})
	t.Cleanup(func() {
		if t.Failed() && !c.exited && c.leader > 0 {
			out, _ := c.run("journalctl -b --no-pager -n 150")
			t.Logf("systemd-nspawn:\n%s\ncontainer journal:\n%s", c.log.String(), out)
		}
	})

	// The container's PID 1: nspawn's child running systemd.
	deadline := time.Now().Add(30 * time.Second)
	for c.leader == 0 {
		select {
		case err := <-c.done:
			c.exited = true
			t.Fatalf("systemd-nspawn exited: %v\n%s", err, c.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no systemd started by systemd-nspawn (pid %d)\n%s", cmd.Process.Pid, c.log.String())
		}
		c.leader = childRunning(cmd.Process.Pid, "systemd")
		time.Sleep(50 * time.Millisecond)
	}
	state := ""
	deadline = time.Now().Add(60 * time.Second)
	for state != "running" && state != "degraded" {
		if time.Now().After(deadline) {
			t.Fatalf("systemd in the container did not finish booting: %q", state)
		}
		time.Sleep(100 * time.Millisecond)
		state, _ = c.run("systemctl is-system-running")
	}
	if state == "degraded" {
		failed, _ := c.run("systemctl --failed --no-pager")
		t.Logf("the container booted degraded (not resman's doing):\n%s", failed)
	}
	return c
}

// sdCgroups makes a cgroup called name, below the test's own, in each
// hierarchy systemd uses (name=systemd on cgroup v1, and cgroup v2),
// and returns their paths.
func sdCgroups(t *testing.T, name string) []string {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		mount := ""
		switch {
		case f[1] == "name=systemd":
			mount = "/sys/fs/cgroup/systemd"
		case f[0] == "0" && f[1] == "":
			mount = "/sys/fs/cgroup/unified"
			if _, err := os.Stat(mount + "/cgroup.procs"); err != nil {
				mount = "/sys/fs/cgroup"
			}
		default:
			continue
		}
		if _, err := os.Stat(mount + "/cgroup.procs"); err != nil {
			continue
		}
		dir := filepath.Join(mount, f[2], name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("a cgroup for the container: %v", err)
		}
		dirs = append(dirs, dir)
	}
	if len(dirs) == 0 {
		t.Fatalf("no cgroup hierarchy for systemd found in /proc/self/cgroup:\n%s", raw)
	}
	return dirs
}

// removeCgroups removes the container's cgroups and what nspawn and the
// container's systemd made below them, deepest first.
func (c *sdContainer) removeCgroups(t *testing.T) {
	for _, cg := range c.cgroups {
		var dirs []string
		filepath.WalkDir(cg, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if err := os.Remove(d); err != nil {
				t.Logf("removing cgroup %s: %v", d, err)
			}
		}
	}
	c.cgroups = nil
}

// childRunning returns the pid of a child of parent whose command is comm,
// or 0.
func childRunning(parent int, comm string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(raw)
		lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if lp < 0 || rp < lp {
			continue
		}
		rest := strings.Fields(s[rp+1:])
		if len(rest) < 2 || s[lp+1:rp] != comm || rest[1] != strconv.Itoa(parent) {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(s[:lp]))
		return pid
	}
	return 0
}

// halt asks the container to halt (SIGTERM to systemd-nspawn, which asks
// its systemd to halt) and waits for it; past 30 s it kills the
// container's PID 1, which ends every process in the container, and nspawn.
func (c *sdContainer) halt() error {
	if c.exited || c.nspawn == nil {
		return nil
	}
	c.exited = true
	c.nspawn.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		return err
	case <-time.After(30 * time.Second):
	}
	// nspawn has not exited: its child, the leader, is not reaped, so the
	// pid is still the container's.
	if c.leader > 0 {
		syscall.Kill(c.leader, syscall.SIGKILL)
	}
	c.nspawn.Process.Kill()
	<-c.done
	return fmt.Errorf("the container did not halt within 30 s: killed\n%s", c.log.String())
}

// run runs a shell script in the container (all its namespaces, a clean
// environment) and returns its stdout, trimmed; the error carries stderr.
func (c *sdContainer) run(script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(c.leader), "-a", "--",
		"env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8",
		"DEBIAN_FRONTEND=noninteractive", "sh", "-c", "cd / && "+script)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%v: %s", err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), err
}

// must runs a script in the container and fails the test if it fails.
func (c *sdContainer) must(t *testing.T, script string) string {
	t.Helper()
	out, err := c.run(script)
	if err != nil {
		t.Fatalf("in the container: %s: %v\n%s", script, err, out)
	}
	return out
}

// show returns properties of resman.service, as systemctl show gives them.
func (c *sdContainer) show(t *testing.T, props ...string) map[string]string {
	t.Helper()
	out := c.must(t, "systemctl show resman.service -p "+strings.Join(props, ","))
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			got[k] = v
		}
	}
	return got
}

// journal returns resman.service's journal, messages only.
func (c *sdContainer) journal(t *testing.T) string {
	t.Helper()
	return c.must(t, "journalctl -u resman.service -o cat --no-pager")
}

// checkModes checks each path's mode and owner, as "640 root:resman".
func (c *sdContainer) checkModes(t *testing.T, want map[string]string) {
	t.Helper()
	for path, w := range want {
		if got := c.must(t, "stat -c '%a %U:%G' "+path); got != w {
			t.Errorf("%s: %s, want %s", path, got, w)
		}
	}
}
