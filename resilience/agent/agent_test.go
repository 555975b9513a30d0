package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/resilience/testkit"
)

const testToken = "agent-token-0123456789abcdef"

// nodeConfig is a Standby in manual mode with its API on
// 127.0.0.1:apiPort, whose one service is a stand-in that sleeps, with
// extra appended. A Standby starts Inactive: the stand-in never starts
// (a run: service stops with the resman process, not when Run returns:
// it would outlive the test).
func nodeConfig(dataDir string, apiPort int, extra string) string {
	return fmt.Sprintf(`node:
  name: xivo-standby
  role: standby
  mode: manual
  version: "2025.10.3"
  data_dir: %s
api:
  listen: 127.0.0.1:%d
  token: %s
peer:
  name: xivo-main
  api: http://127.0.0.1:1
  check_interval: 1s
  timeout: 1s
services:
  - name: asterisk
    run: [sh, -c, "exec sleep 600"]
    timeout: 5s
`, dataDir, apiPort, testToken) + extra
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// events collects what an agent reports.
type events chan Event

func (e events) sink(ev Event) { e <- ev }

// next waits (generously) for the next event of kind, skipping others.
func (e events) next(t *testing.T, kind EventKind) Event {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev := <-e:
			if ev.Kind == kind {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %q event", kind)
		}
	}
}

// An agent built from a config file runs a node without the binary: it
// serves the API, applies a reload by the policy (hooks at run time, the
// log section only at a restart, a broken file not at all) and reports
// each on the sink, and stops every goroutine when ctx ends.
func TestAgentRunsANodeAndReloads(t *testing.T) {
	before := goroutines()
	dir := t.TempDir()
	path := filepath.Join(dir, "node.yaml")
	port := testkit.Port(t)
	writeFile(t, path, nodeConfig(filepath.Join(dir, "data"), port, ""))
	ready := make(chan struct{})
	level := new(slog.LevelVar)
	a, evs, stop := runAgent(t, path, Options{
		Logger:   slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: level})),
		LogLevel: level,
		Ready:    func() { close(ready) },
	})

	started := evs.next(t, Started)
	<-ready
	if started.Addr != a.Addr().String() {
		t.Errorf("started on %s, the API listens on %s", started.Addr, a.Addr())
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + started.Addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", resp.Status)
	}

	// Hooks change at run time.
	writeFile(t, path, nodeConfig(filepath.Join(dir, "data"), port,
		"hooks:\n  after_activate:\n    - {name: note, run: [\"true\"]}\n"))
	if err := a.Reload(path); err != nil {
		t.Fatalf("reload of the hooks: %v", err)
	}
	if ev := evs.next(t, Reloaded); !slices.Equal(ev.Applied, []string{"hooks"}) || len(ev.NeedRestart) != 0 {
		t.Errorf("reload of the hooks reported %+v", ev)
	}

	// The log level changes at run time.
	writeFile(t, path, nodeConfig(filepath.Join(dir, "data"), port,
		"hooks:\n  after_activate:\n    - {name: note, run: [\"true\"]}\nlog: {level: debug}\n"))
	if err := a.Reload(path); err != nil {
		t.Fatalf("reload of the log level: %v", err)
	}
	if ev := evs.next(t, Reloaded); !slices.Equal(ev.Applied, []string{"log.level"}) || len(ev.NeedRestart) != 0 {
		t.Errorf("reload of the log level reported %+v", ev)
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("log level after the reload: %v, want DEBUG", level.Level())
	}

	// The log format needs a restart: reported, not applied.
	writeFile(t, path, nodeConfig(filepath.Join(dir, "data"), port,
		"hooks:\n  after_activate:\n    - {name: note, run: [\"true\"]}\nlog: {level: debug, format: json}\n"))
	if err := a.Reload(path); err != nil {
		t.Fatalf("reload of the log format: %v", err)
	}
	if ev := evs.next(t, Reloaded); len(ev.Applied) != 0 || !slices.Equal(ev.NeedRestart, []string{"log"}) {
		t.Errorf("reload of the log format reported %+v", ev)
	}

	// A broken file changes nothing.
	writeFile(t, path, "node: {name: [broken")
	if err := a.Reload(path); err == nil {
		t.Error("a broken file was reloaded")
	}
	if ev := evs.next(t, ReloadRefused); ev.Err == nil {
		t.Errorf("refused reload reported without a reason: %+v", ev)
	}

	stop()
	if ev := evs.next(t, Stopped); ev.Err != nil {
		t.Errorf("stopped with %v", ev.Err)
	}
	if err := a.Reload(path); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Reload after Run: %v, want ErrNotRunning", err)
	}
	// Every goroutine the agent started ends.
	testkit.Until(t, goroutines, func(now []string) bool { return len(now) <= len(before) },
		"as many goroutines as before Run (%d)", len(before))
}

// runAgent builds an agent from the file at path with opts (its Events go
// to the events returned) and runs it; stop cancels it and fails the test
// unless Run returns nil within 30 s.
func runAgent(t *testing.T, path string, opts Options) (a *Agent, evs events, stop func()) {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	evs = make(events, 16)
	opts.Events = evs.sink
	if a, err = New(cfg, opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return a, evs, func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return after ctx ended")
		}
	}
}

// goroutines are the stacks of the goroutines running now, less two of
// fasthttp's (under the API): the date ticker it starts once per process
// and never stops, and its worker pool's cleaner, which notices a stopped
// server only when it next wakes, up to 10 s later. A server left running
// would still show here by its accept loop.
func goroutines() []string {
	buf := make([]byte, 1<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if !strings.Contains(g, "fasthttp.updateServerDate") && !strings.Contains(g, "fasthttp.(*workerPool).Start.func") {
			out = append(out, g)
		}
	}
	return out
}

// A config with nothing to run is refused by New; an agent without a node
// or a fleet aggregator has nothing to reload.
func TestAgentNothingToRun(t *testing.T) {
	cfg := &config.Config{API: config.API{Listen: "127.0.0.1:0", Token: testToken}}
	if _, err := New(cfg, Options{}); !errors.Is(err, ErrNothingToRun) {
		t.Fatalf("New with no section: %v, want ErrNothingToRun", err)
	}
	// Neither a node nor a fleet aggregator (a CC- or Edge-only agent).
	if err := (&Agent{}).Reload("resman.yaml"); !errors.Is(err, ErrNoNode) {
		t.Errorf("Reload without a node or a fleet: %v, want ErrNoNode", err)
	}
}

// A part that fails (here one added by the test) stops the others: the
// sink hears which, and Run returns its error.
func TestAgentStopsWhenAPartFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.yaml")
	writeFile(t, path, nodeConfig(filepath.Join(dir, "data"), testkit.Port(t), ""))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	evs := make(events, 16)
	a, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Events: evs.sink})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	a.parts = append(a.parts, part{"boom", func(context.Context) error { return boom }})
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return when a part failed")
	}
	failed := evs.next(t, PartFailed)
	if failed.Part != "boom" || failed.Err != boom || runErr != boom {
		t.Errorf("part failed %+v; Run returned %v", failed, runErr)
	}
	if ev := evs.next(t, Stopped); ev.Err != runErr {
		t.Errorf("stopped with %v, Run returned %v", ev.Err, runErr)
	}
}
