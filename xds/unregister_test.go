package xds

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/xds/registrar"
)

// An unregistration the MDS does not confirm is retried with backoff after
// Deactivate has returned, shown in status and events, until it is.
func TestUnregisterRetriedUntilConfirmed(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{User: "pbx", Password: "pw"})
	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.RequestTimeout = 100 * time.Millisecond
	opts.ProbeInterval = time.Hour
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "udp", "pbx", "pw")}}, opts)
	r.Activate(1)
	_, i := rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))

	srv.SetKnobs(registrar.Knobs{Drop: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r.Deactivate(ctx); err == nil {
		t.Fatal("Deactivate succeeded against a registrar that answers nothing")
	}
	ev, i := rec.wait(t, i, 5*time.Second, kind("mds1", EventUnregistered))
	if !errors.Is(ev.Err, context.DeadlineExceeded) {
		t.Errorf("first unregistered event = %+v", ev)
	}
	// Retries go on in the background, and the status says so.
	before := srv.Stats().Registers
	testkit.EventuallyWithin(t, 5*time.Second, func() bool { return srv.Stats().Registers >= before+2 }, "two more attempts")
	st := r.Status()[0]
	if !st.Registered || !strings.Contains(st.Error, "no response to REGISTER") || st.NextRefresh.IsZero() {
		t.Errorf("status while the unregistration is pending = %+v", st)
	}

	srv.SetKnobs(registrar.Knobs{})
	ev, _ = rec.wait(t, i, 5*time.Second, func(ev Event) bool { return ev.Kind == EventUnregistered && ev.Err == nil })
	if ev.StatusCode != 200 {
		t.Errorf("confirmation = %+v", ev)
	}
	if _, ok := bindingOf(srv, testContact); ok {
		t.Errorf("binding still there: %+v", srv.Bindings())
	}
	if st := r.Status()[0]; st.Registered || st.Error != "" || !st.NextRefresh.IsZero() {
		t.Errorf("status after the confirmation = %+v", st)
	}
}

// The retries end when the binding would have lapsed anyway.
func TestUnregisterGivesUpWhenTheBindingLapses(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{Knobs: registrar.Knobs{MaxExpires: 1}})
	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.RequestTimeout = 100 * time.Millisecond
	opts.ProbeInterval = time.Hour
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "udp", "", "")}}, opts)
	r.Activate(1)
	_, i := rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	srv.SetKnobs(registrar.Knobs{MaxExpires: 1, Drop: true})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = r.Deactivate(ctx)
	ev, _ := rec.wait(t, i, 5*time.Second, func(ev Event) bool {
		return ev.Kind == EventUnregistered && ev.Err != nil && strings.Contains(ev.Err.Error(), "unregistration abandoned")
	})
	if !strings.Contains(ev.Err.Error(), "the binding lapses") {
		t.Errorf("abandon error = %v", ev.Err)
	}
	// No attempt after giving up: watched for 10 retry delays
	// (BackoffMax is 200ms), a bounded negative observation.
	n := srv.Stats().Registers
	time.Sleep(10 * opts.BackoffMax)
	if got := srv.Stats().Registers; got != n {
		t.Errorf("%d REGISTERs after giving up", got-n)
	}
	if st := r.Status()[0]; st.Registered || !st.NextRefresh.IsZero() {
		t.Errorf("status after giving up = %+v", st)
	}
}

// A Deactivate whose ctx is already over still leaves the unregistration
// to finish in the background.
func TestUnregisterAfterAnExpiredDeactivate(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{})
	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.ProbeInterval = time.Hour
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "udp", "", "")}}, opts)
	r.Activate(1)
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Deactivate(ctx); err == nil {
		t.Error("Deactivate with a cancelled ctx reported success")
	}
	testkit.EventuallyWithin(t, 5*time.Second, func() bool { _, ok := bindingOf(srv, testContact); return !ok }, "the binding gone")
	rec.wait(t, 0, 5*time.Second, func(ev Event) bool { return ev.Kind == EventUnregistered && ev.Err == nil })
}
