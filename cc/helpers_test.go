package cc

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client/clienttest"
	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/services"
)

const (
	nodeToken = "node-token-0123456789abcdef"
	ccToken   = "cc-token-0123456789abcdef"
	waitLimit = 15 * time.Second
)

// newFakeNode serves a node's API over loopback (see clienttest): GET
// /api/v1/status, /active and the event stream, from a status the test
// sets. It can go down (every connection cut) and come back.
func newFakeNode(t *testing.T, status string, epoch uint64) *clienttest.FakeNode {
	t.Helper()
	return clienttest.New(t, api.Status{Node: "xivo-main", Role: "main", Mode: "manual", Status: status, Epoch: epoch},
		clienttest.WithToken(nodeToken))
}

type testFollower struct {
	*Follower
	reg *prometheus.Registry
	dir string
}

type optFunc func(*Options)

// startFollower runs a follower of node with services until the test ends.
func startFollower(t *testing.T, node *clienttest.FakeNode, svcs []services.Service, opts ...optFunc) *testFollower {
	t.Helper()
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	o := Options{
		Config:        Config{Name: "cc-main", Follow: node.URL(), Token: nodeToken, Services: svcs},
		Token:         ccToken,
		DataDir:       dir,
		CheckInterval: 20 * time.Millisecond,
		Logger:        testkit.FailureLogger(t),
		Registerer:    reg,
	}
	for _, f := range opts {
		f(&o)
	}
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLimit):
			t.Error("Run did not return")
		}
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &testFollower{Follower: f, reg: reg, dir: dir}
}

// sleeper is a run: service that stays up until stopped.
func sleeper(name string) services.Service {
	return services.Service{Name: name, Run: []string{"sleep", "300"}, Timeout: 5 * time.Second}
}

func (f *testFollower) waitStatus(t *testing.T, status string) {
	t.Helper()
	testkit.Until(t, func() string { return f.Status().Status }, func(s string) bool { return s == status }, "follower %s", status)
}

// causes lists the audit entries, oldest first, as "action: cause".
func (f *testFollower) causes(t *testing.T) []string {
	t.Helper()
	entries, err := f.Audit(1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range slices.Backward(entries) {
		s := e.Action + ": " + e.Cause
		if e.Outcome != api.OutcomeOK {
			s += " [" + e.Outcome + "]"
		}
		out = append(out, s)
	}
	return out
}

func has(list []string, want string) bool {
	for _, s := range list {
		if strings.Contains(s, want) {
			return true
		}
	}
	return false
}
