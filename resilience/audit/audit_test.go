package audit

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/resman-pbx/resman/resilience/api"
)

func TestAppendListAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"alice", "bob", "carol"} {
		e, err := l.Append(api.AuditEntry{Who: who, Action: "stop services", Outcome: api.OutcomeOK})
		if err != nil {
			t.Fatal(err)
		}
		if e.ID == 0 || e.Time.IsZero() {
			t.Fatalf("entry not stamped: %+v", e)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	all, err := l.List(10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := whos(all); got != "carol,bob,alice" {
		t.Fatalf("after reopen, newest first: got %s", got)
	}
	page, err := l.List(1, all[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := whos(page); got != "bob" {
		t.Fatalf("one entry before carol: got %s", got)
	}
	old, err := l.List(10, all[2].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(old) != 0 {
		t.Fatalf("nothing is older than the first entry, got %v", whos(old))
	}
	// IDs keep growing after a reopen.
	e, err := l.Append(api.AuditEntry{Who: "dave"})
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != all[0].ID+1 {
		t.Fatalf("next id %d, want %d", e.ID, all[0].ID+1)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Open(path)
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second open: want a clear lock error, got %v", err)
	}
}

func whos(es []api.AuditEntry) string {
	var s []string
	for _, e := range es {
		s = append(s, e.Who)
	}
	return strings.Join(s, ",")
}
