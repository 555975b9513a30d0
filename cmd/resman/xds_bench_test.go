package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/xds"
	"github.com/resman-pbx/resman/xds/registrar"
)

// The XDS benchmarks are in package xds (make bench-xds); this file holds
// the tests of the xds wiring of resman run.

// resman run hands the xds keys to the registrar: the Main booting Active
// removes the contact its peer, killed while Active, left at the MDS
// (xds.peer_contact, RemovePeer at activation), audits it, and with
// xds.unregister_on_stop unregisters when stopped.
func TestRunWiresXDSPeerContactAndUnregisterOnStop(t *testing.T) {
	const user, password = "xivo", "mds-Secret-e2e-41"
	srv := registrar.New(registrar.Options{User: user, Password: password})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe(ctx, "udp", "127.0.0.1:0") }()
	select {
	case <-srv.Ready():
	case err := <-served:
		t.Fatalf("registrar: %v", err)
	}
	mds := xds.MDS{Name: "mds1", Registrar: "sip:" + srv.Addr(), Transport: "udp", User: user, Password: password, Expires: 120}
	bound := func(contact string) bool {
		return slices.ContainsFunc(srv.Bindings(), func(b registrar.Binding) bool { return b.Contact == contact })
	}

	// The peer, Active, registered; then resman stopped there (its
	// binding stays, the default), as a node killed while Active leaves it.
	const peerContact = "sip:xivo@127.0.0.2:5060"
	registered := make(chan struct{}, 1)
	old, err := xds.New(xds.Config{Contact: peerContact, MDS: []xds.MDS{mds}}, xds.Options{Hostname: "xivo-standby",
		OnEvent: func(ev xds.Event) {
			if ev.Kind == xds.EventRegistered {
				select {
				case registered <- struct{}{}:
				default:
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	octx, ocancel := context.WithCancel(context.Background())
	odone := make(chan error, 1)
	go func() { odone <- old.Run(octx) }()
	old.Activate(1)
	select {
	case <-registered:
	case <-time.After(10 * time.Second):
		t.Fatalf("the peer did not register: %+v", old.Status())
	}
	ocancel()
	<-odone
	if !bound(peerContact) {
		t.Fatalf("the peer's binding is gone: %+v", srv.Bindings())
	}

	host := "127.0.0.1"
	spec := nodeSpec{name: "xivo-main", role: "main", peer: "xivo-standby", host: host,
		peerURL: fmt.Sprintf("http://%s:%d", host, freePort(t, host)), dataDir: t.TempDir(),
		apiPort: freePort(t, host), sipPort: freePort(t, host)}
	cfg := writeNodeConfig(t, spec)
	contact := fmt.Sprintf("sip:xivo@%s:%d", host, spec.sipPort)
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, `xds:
  contact: %q
  peer_contact: %q
  unregister_on_stop: true
  mds:
    - {name: mds1, registrar: %q, transport: udp, user: %s, password: %q, expires: 120}
`, contact, peerContact, mds.Registrar, user, password)
	f.Close()

	url := fmt.Sprintf("http://%s:%d", host, spec.apiPort)
	p := startProc(t, "main", cfg, url)
	testkit.Eventually(t, func() bool { return status(t, url).Status == "active" }, "the main Active")
	testkit.Eventually(t, func() bool { return bound(contact) && !bound(peerContact) }, "the MDS holding the main's contact only")
	testkit.Eventually(t, func() bool {
		return slices.ContainsFunc(auditEntries(t, url), func(e api.AuditEntry) bool {
			return e.Action == "sip unregister peer" && e.Outcome == resilience.OutcomeOK && e.Cause == "removed the peer's contact from MDS mds1"
		})
	}, "the removal in the audit log")

	p.kill(syscall.SIGTERM)
	if bound(contact) {
		t.Errorf("xds.unregister_on_stop true, but the binding is still there after SIGTERM: %+v", srv.Bindings())
	}
}
