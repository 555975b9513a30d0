package xds

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/xds/registrar"
)

func TestEpochQ(t *testing.T) {
	for epoch, want := range map[uint64]string{1: "0.001", 7: "0.007", 42: "0.042", 999: "0.999", 1000: "1.000", 1001: "0.001", 2345: "0.345"} {
		if got := EpochQ(epoch); got != want {
			t.Errorf("EpochQ(%d) = %s, want %s", epoch, got, want)
		}
	}
}

// With ContactEpoch the Contact carries the epoch and its q-value, the
// epoch of the latest activation; without it, no parameter.
func TestContactEpoch(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{User: "pbx", Password: "pw"})
	m := mds("mds1", srv.Addr(), "udp", "pbx", "pw")

	rec := newRecorder()
	r := startXDS(t, Config{Contact: peerContact, MDS: []MDS{m}}, fastOptions(nil, rec))
	r.Activate(6)
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	if b, _ := bindingOf(srv, peerContact); b.Params != "" {
		t.Errorf("without ContactEpoch, Contact parameters %q", b.Params)
	}

	rec = newRecorder()
	opts := fastOptions(nil, rec)
	opts.ContactEpoch = true
	r = startXDS(t, Config{Contact: testContact, MDS: []MDS{m}}, opts)
	r.Activate(7)
	rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
	if b, _ := bindingOf(srv, testContact); b.Params != "q=0.007;resman-epoch=7" {
		t.Errorf("Contact parameters %q, want q=0.007;resman-epoch=7", b.Params)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Deactivate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := bindingOf(srv, testContact); ok {
		t.Fatalf("still bound after Deactivate: %+v", srv.Bindings())
	}
	r.Activate(9)
	testkit.EventuallyWithin(t, 5*time.Second, func() bool {
		b, ok := bindingOf(srv, testContact)
		return ok && b.Params == "q=0.009;resman-epoch=9"
	}, "the binding of epoch 9")
}

// kamailio keeps the q-value derived from the epoch: a kamailio MDS that
// forks serially by q (t_load_contacts, t_next_contacts) tries the newest
// Active first.
func TestKamailioContactEpochQ(t *testing.T) {
	t.Parallel()
	const user, password = "pbx", "kam-Secret-42"
	k := startKamailio(t, user, password)
	m := mds("kam", k.Addr, "udp", user, password)

	// The old Active registers, and is killed; the new one registers
	// after it. With equal q-values kamailio keeps them in arrival order,
	// the old one first: the q-value of the epoch puts the newest first.
	old := newRecorder()
	killed := startXDS(t, Config{Contact: peerContact, MDS: []MDS{m}}, func() Options {
		o := fastOptions(nil, old)
		o.ContactEpoch = true
		return o
	}())
	killed.Activate(4)
	old.wait(t, 0, 10*time.Second, kind("kam", EventRegistered))
	killed.cancelBase() // killed while Active: its binding stays

	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.ContactEpoch = true
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{m}}, opts)
	r.Activate(5)
	rec.wait(t, 0, 10*time.Second, kind("kam", EventRegistered))
	var dump string
	testkit.EventuallyWithin(t, 5*time.Second, func() bool {
		dump = k.Locations(t)
		return strings.Contains(dump, testContact) && strings.Contains(dump, peerContact)
	}, "both contacts in ul.dump")
	// kamailio keeps the contacts of a record in q order, highest first:
	// the order lookup("location") makes the branches in.
	qOf := func(contact string) string {
		_, rest, _ := strings.Cut(dump, "Address: "+contact+"\n")
		_, q, _ := strings.Cut(rest, "Q: ")
		q, _, _ = strings.Cut(q, "\n")
		return q
	}
	if qn, qo := qOf(testContact), qOf(peerContact); qn != "0.005000" || qo != "0.004000" {
		t.Errorf("q of the new Active %q (want 0.005000), of the old %q (want 0.004000):\n%s", qn, qo, dump)
	}
	if strings.Index(dump, testContact) > strings.Index(dump, peerContact) {
		t.Errorf("the newest Active is not first in the record:\n%s", dump)
	}
}
