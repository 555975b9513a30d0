package xds

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/resilience/testkit/sippeers"
)

// startKamailio runs a real registrar from testdata/kamailio.cfg on a free
// loopback port, asking for digest with user and password; it is stopped
// by PID at cleanup.
func startKamailio(t testing.TB, user, password string) *sippeers.Kamailio {
	t.Helper()
	return sippeers.StartKamailioWith(t, filepath.Join("testdata", "kamailio.cfg"), testkit.Port(t),
		sippeers.KamailioOptions{Vars: map[string]string{"USER": user, "PASSWORD": password}})
}

func TestKamailio(t *testing.T) {
	t.Parallel() // mostly waits for kamailio and timers
	const user, password = "pbx", "kam-Secret-42"
	k := startKamailio(t, user, password)

	t.Run("contact in location table while active", func(t *testing.T) {
		rec := newRecorder()
		r := startXDS(t, Config{Contact: testContact, MDS: []MDS{
			mds("kam", k.Addr, "udp", user, password),
		}}, fastOptions(nil, rec))
		r.Activate(1)
		rec.wait(t, 0, 10*time.Second, kind("kam", EventRegistered))
		testkit.EventuallyWithin(t, 5*time.Second, func() bool {
			return strings.Contains(k.Locations(t), testContact)
		}, "the contact in ul.dump")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.Deactivate(ctx); err != nil {
			t.Fatalf("Deactivate: %v", err)
		}
		testkit.EventuallyWithin(t, 5*time.Second, func() bool {
			return !strings.Contains(k.Locations(t), testContact)
		}, "the contact gone from ul.dump")
	})

	t.Run("wrong password", func(t *testing.T) {
		const wrong = "not-" + password
		logs := &testkit.Buffer{}
		rec := newRecorder()
		r := startXDS(t, Config{Contact: testContact, MDS: []MDS{
			mds("kam", k.Addr, "udp", user, wrong),
		}}, fastOptions(logs, rec))
		r.Activate(1)
		ev, _ := rec.wait(t, 0, 10*time.Second, kind("kam", EventFailed))
		const want = "kam: registration refused: 401 Unauthorized after authentication (check xds.mds[0].user/password)"
		if ev.Err == nil || ev.Err.Error() != want {
			t.Errorf("error = %v, want %q", ev.Err, want)
		}
		if strings.Contains(k.Locations(t), testContact) {
			t.Error("registered with a wrong password")
		}
		assertNoSecret(t, wrong, map[string]string{"logs": logs.String(), "error": ev.Err.Error(), "status": r.Status()[0].Error})
	})

	t.Run("frozen registrar reported then recovered", func(t *testing.T) {
		rec := newRecorder()
		opts := fastOptions(nil, rec)
		opts.RequestTimeout = 300 * time.Millisecond
		opts.ProbeInterval = 100 * time.Millisecond
		m := mds("kam", k.Addr, "udp", user, password)
		m.Expires = 2
		r := startXDS(t, Config{Contact: testContact, MDS: []MDS{m}}, opts)
		r.Activate(1)
		rec.wait(t, 0, 10*time.Second, kind("kam", EventRegistered))
		_, i := rec.wait(t, 0, 10*time.Second, kind("kam", EventReachable))

		k.Signal(t, syscall.SIGSTOP)
		ev, _ := rec.wait(t, i, 10*time.Second, kind("kam", EventUnreachable))
		if !errors.Is(ev.Err, context.DeadlineExceeded) {
			t.Errorf("unreachable: %+v", ev)
		}
		ev, _ = rec.wait(t, i, 10*time.Second, kind("kam", EventFailed))
		if !errors.Is(ev.Err, context.DeadlineExceeded) {
			t.Errorf("failed: %+v", ev)
		}
		testkit.EventuallyWithin(t, 10*time.Second, func() bool {
			st := r.Status()[0]
			return !st.Registered && !st.Reachable && st.Error != ""
		}, "the binding to lapse")
		n := len(rec.all())

		k.Signal(t, syscall.SIGCONT)
		rec.wait(t, n, 10*time.Second, kind("kam", EventReachable))
		rec.wait(t, n, 10*time.Second, kind("kam", EventRegistered))
		if st := r.Status()[0]; !st.Registered || st.Error != "" {
			t.Errorf("status after recovery = %+v", st)
		}
		testkit.EventuallyWithin(t, 5*time.Second, func() bool {
			return strings.Contains(k.Locations(t), testContact)
		}, "the contact in ul.dump")
	})
}

// A kamailio restarted without a database has lost our binding: the next
// binding query finds it missing, the status says not registered, and the
// binding is back within about one verification interval.
func TestKamailioRestartedBindingRestored(t *testing.T) {
	t.Parallel()
	const user, password = "pbx", "kam-Secret-43"
	k := startKamailio(t, user, password)
	rec := newRecorder()
	opts := fastOptions(nil, nil)
	opts.RequestTimeout = 300 * time.Millisecond
	opts.VerifyInterval = 500 * time.Millisecond
	opts.ProbeInterval = time.Hour // only the verification may notice
	var r *Registrar
	notHeld := make(chan api.Registration, 1)
	opts.OnEvent = func(ev Event) {
		var re *ResponseError
		if ev.Kind == EventFailed && errors.As(ev.Err, &re) && re.Kind == KindNotHeld {
			select {
			case notHeld <- r.Status()[0]:
			default:
			}
		}
		rec.add(ev)
	}
	m := mds("kam", k.Addr, "udp", user, password)
	m.Expires = 60 // the refresh comes after 45s: only the verification restores it
	r = startXDS(t, Config{Contact: testContact, MDS: []MDS{m}}, opts)
	r.Activate(1)
	rec.wait(t, 0, 10*time.Second, kind("kam", EventRegistered))
	testkit.EventuallyWithin(t, 5*time.Second, func() bool {
		return strings.Contains(k.Locations(t), testContact)
	}, "the contact in ul.dump")
	n := len(rec.all())

	k.Restart(t)
	back := time.Now()
	if strings.Contains(k.Locations(t), testContact) {
		t.Fatal("the restarted kamailio still holds the contact: the test proves nothing")
	}
	ev, _ := rec.wait(t, n, 10*time.Second, func(ev Event) bool {
		var re *ResponseError
		return ev.Kind == EventFailed && errors.As(ev.Err, &re) && re.Kind == KindNotHeld
	})
	if want := "kam: registration not held: 200 OK lists no contact, not ours (" + testContact + ")"; ev.Err.Error() != want {
		t.Errorf("failure = %v, want %q", ev.Err, want)
	}
	if st := <-notHeld; st.Registered || st.Error != ev.Err.Error() {
		t.Errorf("status when the loss was found = %+v, want not registered", st)
	}
	// Back well before the refresh (45 s): the verification restored it.
	// How soon is logged, not asserted: about one verification interval
	// (0.5 s) usually, later on a loaded machine.
	testkit.EventuallyWithin(t, 10*time.Second, func() bool {
		return strings.Contains(k.Locations(t), testContact)
	}, "the contact back in ul.dump")
	t.Logf("binding back %s after kamailio answered again", time.Since(back).Round(time.Millisecond))
	// kamailio holds the binding before its 200 reaches the registrar,
	// which then says registered.
	testkit.Until(t, func() api.Registration { return r.Status()[0] },
		func(st api.Registration) bool { return st.Registered && st.Error == "" }, "the status to say registered again")
}

// A node killed while Active leaves its binding; the new Active, told the
// peer was Active before it, leaves kamailio holding its own contact only,
// within 2s of its registration.
func TestKamailioNewActiveRemovesKilledPeer(t *testing.T) {
	t.Parallel()
	const user, password = "pbx", "kam-Secret-44"
	k := startKamailio(t, user, password)
	m := mds("kam", k.Addr, "udp", user, password)
	killedActive(t, m, peerContact)
	if !strings.Contains(k.Locations(t), peerContact) {
		t.Fatalf("the killed node's binding is not there: %s", k.Locations(t))
	}

	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.PeerContact = peerContact
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{m}}, opts)
	r.RemovePeer()
	r.Activate(2)
	rec.wait(t, 0, 10*time.Second, kind("kam", EventRegistered))
	registered := time.Now()
	testkit.EventuallyWithin(t, 2*time.Second, func() bool {
		l := k.Locations(t)
		return strings.Contains(l, testContact) && !strings.Contains(l, peerContact)
	}, "kamailio to hold our contact only")
	t.Logf("our contact only %s after our registration", time.Since(registered).Round(time.Millisecond))
	ev, _ := rec.wait(t, 0, time.Second, kind("kam", EventPeerRemoved))
	if ev.Err != nil {
		t.Errorf("peer removed event = %+v", ev)
	}
}

// A contact shared by the two nodes: the Inactive node restarting (its boot
// clean-up, a deactivation) never removes the Active node's binding.
func TestKamailioSharedContactSurvivesInactiveRestart(t *testing.T) {
	t.Parallel()
	const user, password = "pbx", "kam-Secret-45"
	k := startKamailio(t, user, password)
	m := mds("kam", k.Addr, "udp", user, password)
	rec := newRecorder()
	active := startXDS(t, Config{Contact: testContact, MDS: []MDS{m}}, fastOptions(nil, rec))
	active.Activate(1)
	rec.wait(t, 0, 10*time.Second, kind("kam", EventRegistered))

	for i := range 2 { // two restarts of the Inactive node
		opts := fastOptions(nil, nil)
		opts.PeerContact = testContact
		inactive, err := New(Config{Contact: testContact, MDS: []MDS{m}}, opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- inactive.Run(ctx) }()
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := inactive.Deactivate(dctx); err != nil {
			t.Errorf("restart %d: Deactivate: %v", i, err)
		}
		dcancel()
		cancel() // Run's end unregisters too, unless shared
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(k.Locations(t), testContact) {
			t.Fatalf("restart %d of the Inactive node removed the shared binding", i)
		}
	}
	if st := active.Status()[0]; !st.Registered {
		t.Errorf("Active node status = %+v", st)
	}
}

// An unregistration sent to a frozen kamailio is retried until kamailio
// resumes and confirms it: the contact is gone within 10s of the resume.
func TestKamailioUnregistrationFinishesAfterFreeze(t *testing.T) {
	t.Parallel()
	const user, password = "pbx", "kam-Secret-46"
	k := startKamailio(t, user, password)
	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.RequestTimeout = 300 * time.Millisecond
	opts.ProbeInterval = 100 * time.Millisecond
	m := mds("kam", k.Addr, "udp", user, password)
	m.Expires = 60 // it must be the unregistration that removes it, not a lapse
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{m}}, opts)
	r.Activate(1)
	_, i := rec.wait(t, 0, 10*time.Second, kind("kam", EventRegistered))

	k.Signal(t, syscall.SIGSTOP)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r.Deactivate(ctx); err == nil {
		t.Fatal("Deactivate succeeded against a frozen kamailio")
	}
	ev, i := rec.wait(t, i, 5*time.Second, kind("kam", EventUnregistered))
	if ev.Err == nil {
		t.Fatalf("unregistered event = %+v", ev)
	}
	// Retried while frozen: the next attempt is rescheduled at least once.
	first := r.Status()[0].NextRefresh
	testkit.EventuallyWithin(t, 10*time.Second, func() bool {
		st := r.Status()[0]
		return !st.NextRefresh.IsZero() && !st.NextRefresh.Equal(first)
	}, "a retry while frozen")
	if st := r.Status()[0]; !st.Registered || st.Error == "" {
		t.Errorf("status while the unregistration is pending = %+v", st)
	}

	k.Signal(t, syscall.SIGCONT)
	resumed := time.Now()
	testkit.EventuallyWithin(t, 10*time.Second, func() bool {
		return !strings.Contains(k.Locations(t), testContact)
	}, "the contact gone from ul.dump")
	t.Logf("contact gone %s after kamailio resumed", time.Since(resumed).Round(time.Millisecond))
	rec.wait(t, i, 10*time.Second, func(ev Event) bool { return ev.Kind == EventUnregistered && ev.Err == nil })
	if st := r.Status()[0]; st.Registered || st.Error != "" {
		t.Errorf("status after the confirmation = %+v", st)
	}
}
