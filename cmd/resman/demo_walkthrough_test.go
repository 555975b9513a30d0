package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// walkthroughCheck is what one line of demoTry must do when replayed.
type walkthroughCheck struct {
	exit int
	want string // in the output
	// eventually: run it again (every second, up to a minute) until it
	// gives want: the demo moves on by itself (failover, failback).
	eventually bool
}

// TestDemoWalkthrough starts the demo and runs the walkthrough its banner
// prints, line by line in a shell, as a newcomer would in another
// terminal: each command must exit and print as its note says.
func TestDemoWalkthrough(t *testing.T) {
	requireTools(t, "curl", "pkill", "bash")
	checks := []walkthroughCheck{
		{}, // export RESMAN_TOKEN: set in the shell's environment
		{want: "xivo-main"},
		{want: "served by xivo-main"},
		{want: "served by cc-main"},
		{want: `resman_edge_sip_registered{side="main"} 3`},
		{},
		{want: "served by xivo-standby", eventually: true},
		{want: `resman_edge_sip_registered{side="standby"} 3`, eventually: true},
		{want: "the Main takes the Active role", eventually: true},
		{exit: exitRefused, want: "refused"},
		{want: "xivo-standby", eventually: true}, // the Main may still be activating
		{want: "xivo-main"},
		{want: "manual failover"},
	}
	if len(checks) != len(demoTry) {
		t.Fatalf("demoTry has %d lines, this test checks %d: say what each new line must do", len(demoTry), len(checks))
	}

	// Outside the kernel's ephemeral ports (32768 and up on Linux): a port
	// there can be taken by any outgoing connection between the demo's
	// check and its listen (a full run once lost the stand-in's port so).
	base := demoBasePort(t)
	demo := exec.Command(binary, "demo", "--base-port", strconv.Itoa(base))
	stdout, err := demo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testkit.Buffer
	demo.Stderr = &stderr
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		before := len(stderr.String())
		demo.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
			// Ctrl-C is a quiet, clean stop: no warning, no error.
			if after := stderr.String()[before:]; !t.Failed() &&
				(strings.Contains(after, "level=WARN") || strings.Contains(after, "level=ERROR")) {
				t.Errorf("the demo's shutdown was not quiet:\n%s", after)
			}
		case <-time.After(30 * time.Second):
			demo.Process.Kill()
			t.Errorf("the demo did not stop within 30 s of Ctrl-C")
		}
		if t.Failed() {
			t.Logf("demo stderr:\n%s", stderr.String())
		}
	})
	bannerCh := make(chan string, 1)
	go func() {
		var banner strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			banner.WriteString(sc.Text() + "\n")
			if sc.Text() == "Ctrl-C stops the demo." {
				bannerCh <- banner.String()
			}
		}
		io.Copy(io.Discard, stdout)
		demo.Wait()
		close(exited)
	}()
	var banner string
	select {
	case banner = <-bannerCh:
	case <-exited:
		t.Fatalf("the demo ended before its banner:\n%s", stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("no banner within 2 minutes:\n%s", stderr.String())
	}
	token := regexp.MustCompile(`(?m)^  Token    (\S+)$`).FindStringSubmatch(banner)
	if token == nil {
		t.Fatalf("no token in the banner:\n%s", banner)
	}

	// The lines the banner printed: the binary under test is neither on
	// PATH nor built by go run, so the banner calls it by its path.
	// (TestDemoDocsMatchTheBanner checks the README's ./resman form.)
	dir := t.TempDir()
	lines := strings.Split(strings.TrimSpace(renderDemoTry(newDemoPorts(base), token[1], binary)), "\n")
	if !strings.Contains(banner, strings.Join(lines, "\n")) {
		t.Fatalf("the banner does not print the walkthrough as rendered; banner:\n%s", banner)
	}
	for i, line := range lines {
		cmdline := strings.TrimSpace(line)
		if j := strings.Index(cmdline, "   # "); j > 0 {
			cmdline = strings.TrimSpace(cmdline[:j])
		}
		c := checks[i]
		if strings.HasPrefix(cmdline, "export ") {
			continue
		}
		deadline := time.Now().Add(time.Minute)
		for {
			out, code := runShell(t, dir, token[1], cmdline)
			if code == c.exit && strings.Contains(out, c.want) {
				t.Logf("%s: exit %d", cmdline, code)
				break
			}
			if !c.eventually || time.Now().After(deadline) {
				t.Fatalf("%s: exit %d, want %d with %q in:\n%s", cmdline, code, c.exit, c.want, out)
			}
			time.Sleep(time.Second)
		}
	}
}

// runShell runs one walkthrough line in bash, as typed in a terminal.
func runShell(t *testing.T, dir, token, line string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", "-c", line)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RESMAN_TOKEN="+token)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", line, err)
	}
	return out.String(), 0
}
