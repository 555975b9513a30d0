package xds

import (
	"context"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/xds/registrar"
)

// peerContact is the contact of the other node of the pair in these tests.
const peerContact = "sip:pbx@127.0.0.2:5099"

// killedActive registers contact as an Active node would, then ends its
// loops without unregistering, as kill -9 does: its binding stays.
func killedActive(t *testing.T, m MDS, contact string) {
	t.Helper()
	rec := newRecorder()
	prev := startXDS(t, Config{Contact: contact, MDS: []MDS{m}}, fastOptions(nil, rec))
	prev.Activate(1)
	rec.wait(t, 0, 10*time.Second, kind(m.Name, EventRegistered))
	prev.cancelBase()
}

// Unregistration, at Deactivate or at the boot clean-up, removes this
// node's contact and nothing else of the address of record.
func TestUnregisterTouchesOnlyOurContact(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{User: "pbx", Password: "pw"})
	m := mds("mds1", srv.Addr(), "udp", "pbx", "pw")
	killedActive(t, m, peerContact)

	rec := newRecorder()
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{m}}, fastOptions(nil, rec))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Deactivate(ctx); err != nil { // the boot clean-up
		t.Fatalf("first Deactivate: %v", err)
	}
	if _, ok := bindingOf(srv, peerContact); !ok {
		t.Fatalf("the boot clean-up removed another contact: %+v", srv.Bindings())
	}
	r.Activate(2)
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	if err := r.Deactivate(ctx); err != nil {
		t.Fatalf("Deactivate: %v", err)
	}
	if _, ok := bindingOf(srv, testContact); ok {
		t.Errorf("our contact is still there: %+v", srv.Bindings())
	}
	if _, ok := bindingOf(srv, peerContact); !ok {
		t.Errorf("Deactivate removed another contact: %+v", srv.Bindings())
	}
}

// The new Active told that the peer was Active before it (or is dead)
// removes the peer's contact as soon as its own is registered.
func TestNewActiveRemovesThePeersContact(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{User: "pbx", Password: "pw"})
	m := mds("mds1", srv.Addr(), "udp", "pbx", "pw")
	killedActive(t, m, peerContact)

	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.PeerContact = peerContact
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{m}}, opts)
	r.RemovePeer()
	r.Activate(2)
	_, i := rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	registered := time.Now()
	ev, _ := rec.wait(t, i, 2*time.Second, kind("mds1", EventPeerRemoved))
	if ev.Err != nil || ev.StatusCode != 200 {
		t.Errorf("peer removed event = %+v", ev)
	}
	bs := srv.Bindings()
	if len(bs) != 1 || bs[0].Contact != testContact {
		t.Errorf("bindings %s after our registration: %+v, want ours only", time.Since(registered), bs)
	}
}

// Without RemovePeer the peer's contact is left alone: it may be a node
// that unregisters by itself.
func TestPeerContactKeptUnlessToldToRemove(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{})
	m := mds("mds1", srv.Addr(), "udp", "", "")
	killedActive(t, m, peerContact)
	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.PeerContact = peerContact
	opts.VerifyInterval = 20 * time.Millisecond
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{m}}, opts)
	r.Activate(1)
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	// Several verifications see the peer's contact listed.
	start := srv.Stats().Registers
	testkit.EventuallyWithin(t, 5*time.Second, func() bool { return srv.Stats().Registers >= start+3 }, "three binding queries")
	if _, ok := bindingOf(srv, peerContact); !ok {
		t.Errorf("the peer's contact was removed unasked: %+v", srv.Bindings())
	}
}

// With a contact shared by both nodes, the Inactive node never sends an
// unregistration: it would remove the Active node's binding.
func TestSharedContactNeverUnregistered(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{User: "pbx", Password: "pw"})
	m := mds("mds1", srv.Addr(), "udp", "pbx", "pw")
	activeRec := newRecorder()
	active := startXDS(t, Config{Contact: testContact, MDS: []MDS{m}}, fastOptions(nil, activeRec))
	active.Activate(1)
	activeRec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))

	// The other node boots Inactive: its clean-up, a deactivation, and
	// even a RemovePeer, leave the shared binding alone.
	opts := fastOptions(nil, nil)
	opts.PeerContact = testContact
	inactive := startXDS(t, Config{Contact: testContact, MDS: []MDS{m}}, opts)
	before := srv.Stats().Registers
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := inactive.Deactivate(ctx); err != nil {
		t.Fatalf("Deactivate: %v", err)
	}
	inactive.RemovePeer()
	if got := srv.Stats().Registers; got != before {
		t.Errorf("the Inactive node sent %d REGISTERs", got-before)
	}
	if _, ok := bindingOf(srv, testContact); !ok {
		t.Errorf("the shared binding is gone: %+v", srv.Bindings())
	}
	if st := inactive.Status()[0]; st.Registered {
		t.Errorf("Inactive node status = %+v", st)
	}
}
