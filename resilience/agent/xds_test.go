package agent

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/audit"
	"github.com/resman-pbx/resman/resilience/node"
	"github.com/resman-pbx/resman/xds"
)

type noServices struct{}

func (noServices) Start(context.Context) error { return nil }
func (noServices) Stop(context.Context) error  { return nil }
func (noServices) Status() []api.Service       { return nil }
func (noServices) Unhealthy() []string         { return nil }

// The removal of the peer's contact from an MDS, or its failure, is in
// the audit log.
func TestNoteXDSPeerRemovedIsAudited(t *testing.T) {
	dir := t.TempDir()
	al, err := audit.Open(filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	n, err := node.New(node.Deps{
		Core:     resilience.Config{Name: "xivo-standby", Role: resilience.RoleStandby, Mode: resilience.ModeManual},
		Services: noServices{},
		Audit:    al,
		DataDir:  dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	noteXDS(n, xds.Event{MDS: "mds1", Kind: xds.EventPeerRemoved, StatusCode: 200})
	noteXDS(n, xds.Event{MDS: "mds2", Kind: xds.EventPeerRemoved, Err: errors.New("mds2: removal refused: 403 Forbidden")})
	entries, err := al.List(10, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]api.AuditEntry{
		"mds1": {Action: "sip unregister peer", Outcome: resilience.OutcomeOK, Cause: "removed the peer's contact from MDS mds1"},
		"mds2": {Action: "sip unregister peer", Outcome: resilience.OutcomeFailed, Cause: "removed the peer's contact from MDS mds2",
			Detail: "mds2: removal refused: 403 Forbidden"},
	}
	found := 0
	for _, e := range entries {
		for _, w := range want {
			if e.Action == w.Action && e.Outcome == w.Outcome && e.Cause == w.Cause && e.Detail == w.Detail {
				found++
			}
		}
	}
	if found != len(want) {
		t.Errorf("audit log %+v, want the entries %+v", entries, want)
	}
}
