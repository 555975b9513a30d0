package services

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// waitLimit bounds every wait for a state; it is a safety net, not a
// timing under test.
const waitLimit = 15 * time.Second

// newTestSupervisor makes a Supervisor whose services are stopped when the
// test ends. opts.Logger defaults to a buffered test logger.
func newTestSupervisor(t *testing.T, specs []Service, opts Options) *Supervisor {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger, _ = testkit.BufferLogger(t)
	}
	s, err := New(specs, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		_ = s.Stop(ctx)
	})
	return s
}

// runHealth runs s.Run until the test ends.
func runHealth(t *testing.T, s *Supervisor) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func sh(script string) []string { return []string{"sh", "-c", script} }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func statusOf(t *testing.T, s *Supervisor, name string) api.Service {
	t.Helper()
	for _, st := range s.Status() {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no service %q in status", name)
	return api.Service{}
}

func waitState(t *testing.T, s *Supervisor, name, state string) api.Service {
	t.Helper()
	return testkit.Until(t, func() api.Service { return statusOf(t, s, name) },
		func(st api.Service) bool { return st.State == state }, "%s %s", name, state)
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// readPID waits for a process to write its pid to path.
func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	testkit.Eventually(t, func() bool {
		b, err := os.ReadFile(path)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	}, "pid in %s", filepath.Base(path))
	return pid
}

// processGone reports whether pid has exited. A zombie counts as gone: an
// orphan may wait a while for its reaper.
func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	fields := strings.Fields(string(b[i+1:]))
	return len(fields) == 0 || fields[0] == "Z" || fields[0] == "X"
}
