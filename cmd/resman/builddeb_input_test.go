package main

// scripts/build-deb.sh refuses bad input before it fetches or writes
// anything: a RESMAN_VERSION dpkg would refuse, a RESMAN_BIN that is not a
// linux/amd64 build of resman, an unknown RESMAN_DEB_COMPRESSION. Each
// fails with exit status 1 and a message naming the variable.

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuildDebRefusesBadInput(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	script := write("script", "#!/bin/sh\necho resman\n", 0o755)
	noExec := write("noexec", "not run\n", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A Go program that is not resman.
	hello := filepath.Join(dir, "hello")
	src := write("hello.go", "package main\n\nfunc main() {}\n", 0o644)
	build := exec.Command("go", "build", "-o", hello, src)
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build hello: %v\n%s", err, out)
	}
	// resman built for arm64, as go version -m tells it (a fake go: a
	// cross build would take long).
	fakeBin := filepath.Join(dir, "fakego")
	if err := os.Mkdir(fakeBin, 0o755); err != nil {
		t.Fatal(err)
	}
	write("fakego/go", "#!/bin/sh\nprintf '%s: go1.26\\n\\tpath\\tgithub.com/resman-pbx/resman/cmd/resman\\n\\tbuild\\tGOARCH=arm64\\n\\tbuild\\tGOOS=linux\\n' \"$3\"\n", 0o755)

	tests := []struct {
		name string
		env  []string
		want string
	}{
		{name: "version with an underscore", env: []string{"RESMAN_VERSION=1.0_rc1"},
			want: "build-deb: RESMAN_VERSION must be a Debian version like 1.2.3 or 1.2.3~rc1-1 (digits first, then letters, digits and . + ~ -, not ending in -), got '1.0_rc1'"},
		{name: "version with an empty revision", env: []string{"RESMAN_VERSION=1.0-"},
			want: "RESMAN_VERSION must be a Debian version like 1.2.3"},
		{name: "version with a space", env: []string{"RESMAN_VERSION=1.0 beta"},
			want: "RESMAN_VERSION must be a Debian version like 1.2.3"},
		{name: "version with a slash", env: []string{"RESMAN_VERSION=1.0/x"},
			want: "RESMAN_VERSION must be a Debian version like 1.2.3"},
		{name: "version without a leading digit", env: []string{"RESMAN_VERSION=v1.0"},
			want: "build-deb: RESMAN_VERSION must start with a digit, got 'v1.0'"},
		{name: "unknown compression", env: []string{"RESMAN_DEB_COMPRESSION=lzma"},
			want: "build-deb: RESMAN_DEB_COMPRESSION must be gzip, xz, zstd or none, got 'lzma'"},
		{name: "binary missing", env: []string{"RESMAN_BIN=" + filepath.Join(dir, "nope")},
			want: "build-deb: RESMAN_BIN must be a built resman, got '" + filepath.Join(dir, "nope") + "': no such file"},
		{name: "binary a directory", env: []string{"RESMAN_BIN=" + filepath.Join(dir, "adir")},
			want: "RESMAN_BIN must be a built resman, got '" + filepath.Join(dir, "adir") + "': not a regular file"},
		{name: "binary not executable", env: []string{"RESMAN_BIN=" + noExec},
			want: "RESMAN_BIN must be a built resman, got '" + noExec + "': not executable"},
		{name: "binary not a Go program", env: []string{"RESMAN_BIN=" + script},
			want: "build-deb: RESMAN_BIN '" + script + "' is not a Go program"},
		{name: "binary another Go program", env: []string{"RESMAN_BIN=" + hello},
			want: "build-deb: RESMAN_BIN '" + hello + "' is not resman: it is a build of 'command-line-arguments'"},
		{name: "binary for another architecture", env: []string{"RESMAN_BIN=" + script, "PATH=" + fakeBin + ":" + os.Getenv("PATH")},
			want: "build-deb: RESMAN_BIN '" + script + "' is built for linux/arm64, the package is for linux/amd64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "dist")
			cmd := exec.Command("bash", "../../scripts/build-deb.sh")
			// NFPM=false: a check that let the input through would stop at
			// the packaging tool (exit 3), never fetch it.
			cmd.Env = append(os.Environ(), "OUT_DIR="+out, "NFPM=false", "RESMAN_VERSION=1.2.3~test", "RESMAN_BIN="+binary)
			cmd.Env = append(cmd.Env, tt.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want exit status 1\n%s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr:\n%s\nwant it to contain:\n%s", stderr.String(), tt.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout %q, want nothing (no package path)", stdout.String())
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("OUT_DIR %s was made (%v): bad input must change nothing", out, err)
			}
		})
	}
}
