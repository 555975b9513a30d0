package xds

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/xds/registrar"
)

// stopActive registers testContact to srv, stops Run (resman stopping)
// and returns the logs once Run has returned.
func stopActive(t *testing.T, srv *registrar.Server, unregister bool) string {
	t.Helper()
	logs, rec := &testkit.Buffer{}, newRecorder()
	opts := fastOptions(logs, rec)
	opts.UnregisterOnStop = unregister
	r, err := New(Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "udp", "pbx", "pw")}}, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	r.Activate(1)
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	return logs.String()
}

// By default stopping resman leaves the binding at the MDS: the PBX keeps
// running, and keeps receiving calls.
func TestStopLeavesTheBindingByDefault(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{User: "pbx", Password: "pw"})
	logs := stopActive(t, srv, false)
	if _, ok := bindingOf(srv, testContact); !ok {
		t.Errorf("the binding is gone after Run ended: %+v", srv.Bindings())
	}
	if !strings.Contains(logs, "left at the MDS") || !strings.Contains(logs, "unregister_on_stop false") {
		t.Errorf("the log does not say the bindings are left:\n%s", logs)
	}
}

// With UnregisterOnStop, stopping resman unregisters (the host's PBX
// stops with it).
func TestStopUnregistersWhenAsked(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{User: "pbx", Password: "pw"})
	logs := stopActive(t, srv, true)
	if _, ok := bindingOf(srv, testContact); ok {
		t.Errorf("the binding is still there after Run ended: %+v", srv.Bindings())
	}
	if !strings.Contains(logs, "unregister_on_stop true") {
		t.Errorf("the log does not say it unregisters on stop:\n%s", logs)
	}
}

// A Registrar started anew after a stop that left the binding verifies
// it when Active: the MDS still holds it, registered again in place.
func TestBindingLeftAtStopIsKeptByTheNextRun(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{User: "pbx", Password: "pw"})
	stopActive(t, srv, false)
	rec := newRecorder()
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "udp", "pbx", "pw")}}, fastOptions(nil, rec))
	r.Activate(2)
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	if n := len(srv.Bindings()); n != 1 {
		t.Errorf("%d bindings, want ours once: %+v", n, srv.Bindings())
	}
}
