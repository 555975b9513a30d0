package node

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
)

// fakeRegistrar records the calls of the node, in order; it has the
// optional RemovePeer of the xds Registrar.
type fakeRegistrar struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeRegistrar) log(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

func (f *fakeRegistrar) Activate(uint64)                  { f.log("activate") }
func (f *fakeRegistrar) Deactivate(context.Context) error { f.log("deactivate"); return nil }
func (f *fakeRegistrar) Status() []api.Registration       { return nil }
func (f *fakeRegistrar) RemovePeer()                      { f.log("remove-peer") }

func (f *fakeRegistrar) callLog() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, ",")
}

// A node that becomes Active tells its registrar, before activating it,
// to remove the peer's contact: the core activates only when the peer is
// not Active or is outranked, so the peer's binding is a leftover.
func TestActivationRemovesThePeersContact(t *testing.T) {
	peer := &fakePeer{}
	peer.set("", 0, errDown) // killed while Active: unreachable
	reg := &fakeRegistrar{}
	m := startWith(t, t.TempDir(), resilience.RoleMain, peer, &fakeServices{}, func(d *Deps) { d.Registrar = reg })
	m.waitStatus("active")
	if got := reg.callLog(); got != "remove-peer,activate" {
		t.Fatalf("registrar calls = %q, want remove-peer just before activate", got)
	}
}
