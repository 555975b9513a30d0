package xds

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/xds/registrar"
)

// A 200 OK lists every binding the MDS holds for the address of record
// (RFC 3261 10.3 step 8). One that does not list our contact means the MDS
// does not hold it, whatever its status code.
func TestOKWithoutOurContactIsNotRegistered(t *testing.T) {
	for _, tc := range []struct {
		name, answer, want string
	}{
		{"another contact only", "SIP/2.0 200 OK\r\nContact: <sip:other@127.0.0.1:5000>;expires=60",
			"mds1: registration not held: 200 OK lists 1 contact, not ours (" + testContact + ")"},
		{"no contact at all", "SIP/2.0 200 OK\r\nExpires: 60",
			"mds1: registration not held: 200 OK lists no contact, not ours (" + testContact + ")"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := scriptedPeer(t, tc.answer)
			rec := newRecorder()
			opts := fastOptions(nil, rec)
			opts.ProbeInterval = time.Hour
			r := startXDS(t, Config{Contact: testContact, MDS: []MDS{
				mds("mds1", addr, "udp", "pbx", "pw"),
			}}, opts)
			r.Activate(1)
			ev, _ := rec.wait(t, 0, 20*time.Second, outcome)
			if ev.Kind != EventFailed || ev.Err == nil || ev.Err.Error() != tc.want {
				t.Fatalf("event = %+v (%v), want failed with %q", ev, ev.Err, tc.want)
			}
			var re *ResponseError
			if !errors.As(ev.Err, &re) || re.Kind != KindNotHeld || re.StatusCode != 200 {
				t.Errorf("error %#v is not a not-held ResponseError", ev.Err)
			}
			if st := r.Status()[0]; st.Registered || st.Error != tc.want {
				t.Errorf("status = %+v", st)
			}
		})
	}
}

// While Active each binding is verified every VerifyInterval with a binding
// query (REGISTER without Contact, RFC 3261 10.2.3); a binding the MDS lost
// is reported at once and registered again.
func TestLostBindingFoundAndRestored(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{User: "pbx", Password: "pw"})
	rec := newRecorder()
	logs := &testkit.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	})
	opts := fastOptions(logs, rec)
	opts.VerifyInterval = 200 * time.Millisecond
	opts.ProbeInterval = time.Hour
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{
		mds("mds1", srv.Addr(), "udp", "pbx", "pw"),
	}}, opts) // Expires 120: the refresh would come after 90s
	r.Activate(1)
	_, i := rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))

	srv.DropBindings() // as a registrar restarted without a database
	lost := time.Now()
	ev, i := rec.wait(t, i, 5*time.Second, kind("mds1", EventFailed))
	const want = "mds1: registration not held: 200 OK lists no contact, not ours (" + testContact + ")"
	if ev.Err == nil || ev.Err.Error() != want {
		t.Errorf("failure = %v, want %q", ev.Err, want)
	}
	rec.wait(t, i, 5*time.Second, kind("mds1", EventRegistered))
	if took := time.Since(lost); took > time.Second {
		t.Errorf("binding restored %s after it was lost; verification every %s", took, opts.VerifyInterval)
	}
	if _, ok := bindingOf(srv, testContact); !ok {
		t.Errorf("no binding at the registrar: %+v", srv.Bindings())
	}
	if st := r.Status()[0]; !st.Registered || st.Error != "" {
		t.Errorf("status = %+v", st)
	}
}

// The status shows not registered between the loss and the new binding:
// the snapshot taken when the failure is reported says so.
func TestLostBindingShownNotRegistered(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{})
	rec := newRecorder()
	opts := fastOptions(nil, nil)
	opts.VerifyInterval = 100 * time.Millisecond
	opts.ProbeInterval = time.Hour
	var r *Registrar
	snap := make(chan bool, 16)
	opts.OnEvent = func(ev Event) {
		if ev.Kind == EventFailed {
			select {
			case snap <- r.Status()[0].Registered:
			default:
			}
		}
		rec.add(ev)
	}
	r = startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "udp", "", "")}}, opts)
	r.Activate(1)
	_, i := rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	srv.DropBindings()
	rec.wait(t, i, 5*time.Second, kind("mds1", EventFailed))
	if registered := <-snap; registered {
		t.Error("status said registered when the loss was reported")
	}
	rec.wait(t, i, 5*time.Second, kind("mds1", EventRegistered))
}

// An MDS that comes back (OPTIONS answered again) is registered to at once,
// not at the next retry: the retry delay here is a minute.
func TestReachableAgainRegistersAtOnce(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{})
	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.RequestTimeout = 100 * time.Millisecond
	opts.BackoffMin, opts.BackoffMax = time.Minute, time.Minute
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "udp", "", "")}}, opts)
	_, i := rec.wait(t, 0, 5*time.Second, kind("mds1", EventReachable))
	srv.SetKnobs(registrar.Knobs{Drop: true})
	_, i = rec.wait(t, i, 5*time.Second, kind("mds1", EventUnreachable))
	r.Activate(1)
	_, i = rec.wait(t, i, 5*time.Second, kind("mds1", EventFailed))
	srv.SetKnobs(registrar.Knobs{})
	// The next retry is a minute away: only the flip to reachable (whose
	// event may come just after) can register this soon.
	rec.wait(t, i, 5*time.Second, kind("mds1", EventRegistered))
	rec.wait(t, i, 5*time.Second, kind("mds1", EventReachable))
	if st := r.Status()[0]; !st.Registered {
		t.Errorf("status = %+v", st)
	}
}

// An MDS that refuses binding queries is verified by refreshing instead,
// every VerifyInterval: a lost binding still comes back that soon.
func TestQueriesRefusedVerifiedByRefresh(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{User: "pbx", Password: "pw", Knobs: registrar.Knobs{QueryFailCode: 405}})
	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.VerifyInterval = 200 * time.Millisecond
	opts.ProbeInterval = time.Hour
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "udp", "pbx", "pw")}}, opts)
	r.Activate(1)
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	srv.DropBindings()
	lost := time.Now()
	testkit.EventuallyWithin(t, 5*time.Second, func() bool { _, ok := bindingOf(srv, testContact); return ok }, "the binding back")
	if took := time.Since(lost); took > time.Second {
		t.Errorf("binding back after %s, verification every %s", took, opts.VerifyInterval)
	}
	for _, ev := range rec.all() {
		if ev.Kind == EventFailed {
			t.Errorf("the refused query is reported as a failure: %+v", ev)
		}
	}
	if st := r.Status()[0]; !st.Registered || st.Error != "" {
		t.Errorf("status = %+v", st)
	}
}

// A query answered with Retry-After holds every REGISTER, refreshes
// included, until it has passed.
func TestQueryRetryAfterHolds(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{Knobs: registrar.Knobs{MaxExpires: 1}})
	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.VerifyInterval = 100 * time.Millisecond
	opts.ProbeInterval = time.Hour
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "udp", "", "")}}, opts)
	r.Activate(1) // granted 1s: refreshed after 750ms, verified at 100ms
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	srv.SetKnobs(registrar.Knobs{MaxExpires: 1, QueryFailCode: 503, RetryAfter: 120})
	ev, _ := rec.wait(t, 0, 5*time.Second, kind("mds1", EventFailed))
	if ev.Err == nil || !strings.Contains(ev.Err.Error(), "503 Service Unavailable (the MDS asks to retry after 120s)") {
		t.Errorf("failure = %v", ev.Err)
	}
	n := srv.Stats().Registers
	// Watched past the refresh due at 750ms and many verification
	// intervals, a bounded negative observation: nothing may be sent.
	time.Sleep(1500 * time.Millisecond)
	if got := srv.Stats().Registers; got != n {
		t.Errorf("%d REGISTERs during Retry-After", got-n)
	}
}
