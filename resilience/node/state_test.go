package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/audit"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// The stores of a data directory: state.json (the decision and its epoch)
// and audit.db (the history). An empty or missing store next to evidence
// of history is refused unless the admin resets; a reset never lowers the
// epoch.

type stores struct {
	t                  *testing.T
	dir, state, audits string
}

func newStores(t *testing.T) stores {
	dir := t.TempDir()
	return stores{t: t, dir: dir, state: filepath.Join(dir, "state.json"), audits: filepath.Join(dir, "audit.db")}
}

func (s stores) check(reset bool) error {
	return CheckStores(s.dir, reset, testkit.Logger(s.t))
}

func (s stores) saveState(status resilience.Status, epoch uint64) {
	s.t.Helper()
	if err := saveState(s.state, resilience.Saved{Status: status, Epoch: epoch}, time.Now()); err != nil {
		s.t.Fatal(err)
	}
}

// audit writes one entry per epoch.
func (s stores) audit(epochs ...uint64) {
	s.t.Helper()
	l, err := audit.Open(s.audits)
	if err != nil {
		s.t.Fatal(err)
	}
	defer l.Close()
	for _, e := range epochs {
		if _, err := l.Append(api.AuditEntry{Who: "alice", Action: "start services", Outcome: api.OutcomeOK, Epoch: e}); err != nil {
			s.t.Fatal(err)
		}
	}
}

func (s stores) entries() []api.AuditEntry {
	s.t.Helper()
	l, err := audit.Open(s.audits)
	if err != nil {
		s.t.Fatal(err)
	}
	defer l.Close()
	es, err := l.List(100, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	return es
}

func (s stores) loaded() resilience.Saved {
	s.t.Helper()
	saved, err := loadState(s.state)
	if err != nil || saved == nil {
		s.t.Fatalf("state file: %+v, %v", saved, err)
	}
	return *saved
}

func (s stores) size(path string) int64 {
	s.t.Helper()
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return -1
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return fi.Size()
}

func mustSay(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error saying %q, got none", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
}

// The reset entry: the newest in the log, action reset, at the epoch.
func wantResetEntry(t *testing.T, es []api.AuditEntry, epoch uint64, cause ...string) {
	t.Helper()
	if len(es) == 0 || es[0].Action != "reset" || es[0].Who != resilience.Self || es[0].Outcome != api.OutcomeOK {
		t.Fatalf("want the reset as the newest audit entry, got %+v", es)
	}
	if es[0].Epoch != epoch {
		t.Errorf("reset entry at epoch %d, want %d", es[0].Epoch, epoch)
	}
	for _, c := range cause {
		if !strings.Contains(es[0].Cause, c) {
			t.Errorf("reset cause %q does not say %q", es[0].Cause, c)
		}
	}
}

func TestCheckStoresFreshNodeStarts(t *testing.T) {
	s := newStores(t)
	if err := s.check(false); err != nil {
		t.Fatalf("fresh node: %v", err)
	}
	if s.size(s.state) != -1 || s.size(s.audits) != -1 {
		t.Fatal("the check created a store")
	}
	// A data_dir not made yet is a fresh node too.
	if err := CheckStores(filepath.Join(s.dir, "not-yet"), false, nil); err != nil {
		t.Fatalf("missing data_dir: %v", err)
	}
	// --reset on a fresh node resets nothing.
	if err := s.check(true); err != nil || s.size(s.state) != -1 || s.size(s.audits) != -1 {
		t.Fatalf("reset of a fresh node: %v, state %d bytes, audit %d bytes", err, s.size(s.state), s.size(s.audits))
	}
}

func TestCheckStoresAcceptsBothStores(t *testing.T) {
	s := newStores(t)
	s.saveState(resilience.Active, 6)
	s.audit(2, 6)
	if err := s.check(false); err != nil {
		t.Fatal(err)
	}
	// --reset with nothing to reset changes nothing.
	if err := s.check(true); err != nil {
		t.Fatal(err)
	}
	if got := s.loaded(); got != (resilience.Saved{Status: resilience.Active, Epoch: 6}) {
		t.Fatalf("state changed: %+v", got)
	}
	if es := s.entries(); len(es) != 2 {
		t.Fatalf("audit changed: %+v", es)
	}
}

// (a) The audit log empty or gone, the state at epoch > 0: refused.
func TestCheckStoresRefusesALostAuditLogNextToAnEpoch(t *testing.T) {
	for _, how := range []string{"empty", "missing"} {
		t.Run(how, func(t *testing.T) {
			s := newStores(t)
			s.saveState(resilience.Active, 6)
			if how == "empty" {
				if err := os.WriteFile(s.audits, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := s.check(false)
			mustSay(t, err, s.audits, s.state, how, "epoch 6", "--reset")
			// Refused as it was found: not made a new log.
			want := map[string]int64{"empty": 0, "missing": -1}[how]
			if got := s.size(s.audits); got != want {
				t.Fatalf("audit.db is %d bytes after the refusal, want %d", got, want)
			}
		})
	}
}

// A state at epoch 0 risks no epoch: a lost audit log only loses history,
// and a new one starts (the brief's rule is about epochs > 0).
func TestCheckStoresAcceptsALostAuditLogAtEpochZero(t *testing.T) {
	s := newStores(t)
	s.saveState(resilience.Inactive, 0)
	if err := s.check(false); err != nil {
		t.Fatal(err)
	}
}

// (b) The state gone or empty, the audit log holding entries: refused,
// with the highest epoch the log shows.
func TestCheckStoresRefusesALostStateNextToHistory(t *testing.T) {
	for _, how := range []string{"missing", "empty"} {
		t.Run(how, func(t *testing.T) {
			s := newStores(t)
			s.audit(2, 9, 4) // the highest is not the last
			if how == "empty" {
				if err := os.WriteFile(s.state, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := s.check(false)
			mustSay(t, err, s.state, s.audits, how, "3 entries", "epoch 9", "--reset")
			if got := s.size(s.state); got != map[string]int64{"missing": -1, "empty": 0}[how] {
				t.Fatalf("state.json touched by the refusal: %d bytes", got)
			}
		})
	}
}

// (b) does not apply to a history at epoch 0 only: a witness, or a
// Standby never Active, keeps no state.json to lose, and no epoch can go
// back. The chaos run found a witness restarted after kill -9 refused.
func TestCheckStoresAcceptsAHistoryAtEpochZeroWithoutState(t *testing.T) {
	s := newStores(t)
	s.audit(0, 0)
	if err := s.check(false); err != nil {
		t.Fatalf("a history at epoch 0 without state.json: %v", err)
	}
}

// (b) with --reset: the state is rebuilt Inactive at the audit's highest
// epoch, the reset is audited, and the node boots there and takes a higher
// epoch for its next activation.
func TestResetRebuildsALostStateAtTheHighestEpoch(t *testing.T) {
	s := newStores(t)
	s.audit(2, 9, 4)
	if err := s.check(true); err != nil {
		t.Fatal(err)
	}
	if got := s.loaded(); got != (resilience.Saved{Status: resilience.Inactive, Epoch: 9}) {
		t.Fatalf("rebuilt state %+v, want inactive at epoch 9", got)
	}
	es := s.entries()
	if len(es) != 4 {
		t.Fatalf("want the 3 entries and the reset, got %+v", es)
	}
	wantResetEntry(t, es, 9, "--reset", "state.json", "missing", "epoch 9")
	if err := s.check(false); err != nil {
		t.Fatalf("after the reset, a start without it: %v", err)
	}

	peer := &fakePeer{}
	peer.set("", 0, errDown)
	svc := &fakeServices{}
	h := start(t, s.dir, resilience.RoleMain, peer, svc)
	if st := h.waitStatus("inactive"); st.Epoch != 9 {
		t.Fatalf("booted at epoch %d, want 9", st.Epoch)
	}
	st, err := h.node.StartServices(context.Background(), "alice", api.StartRequest{Reason: "after the reset"})
	if err != nil || st.Status != "active" {
		t.Fatalf("start: %+v, %v", st, err)
	}
	if st.Epoch <= 9 {
		t.Fatalf("activation took epoch %d: not above the 9 the audit showed", st.Epoch)
	}
}

// (a) with --reset: a new audit log starts with the reset; the state and
// its epoch stay.
func TestResetStartsANewAuditLogKeepingTheEpoch(t *testing.T) {
	for _, how := range []string{"empty", "missing"} {
		t.Run(how, func(t *testing.T) {
			s := newStores(t)
			s.saveState(resilience.Active, 6)
			if how == "empty" {
				if err := os.WriteFile(s.audits, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.check(true); err != nil {
				t.Fatal(err)
			}
			if got := s.loaded(); got != (resilience.Saved{Status: resilience.Active, Epoch: 6}) {
				t.Fatalf("state changed by the reset: %+v", got)
			}
			es := s.entries()
			if len(es) != 1 {
				t.Fatalf("want only the reset in the new log, got %+v", es)
			}
			wantResetEntry(t, es, 6, "--reset", "audit.db", how, "epoch 6")
			if err := s.check(false); err != nil {
				t.Fatalf("after the reset, a start without it: %v", err)
			}
		})
	}
}

// A damaged audit log: refused as damaged; with --reset set aside (kept,
// byte for byte) and replaced by a new log, the epoch kept.
func TestResetSetsADamagedAuditLogAside(t *testing.T) {
	s := newStores(t)
	s.saveState(resilience.Inactive, 5)
	s.audit(1, 5)
	if err := os.Truncate(s.audits, 8<<10); err != nil {
		t.Fatal(err)
	}
	damaged, err := os.ReadFile(s.audits)
	if err != nil {
		t.Fatal(err)
	}
	err = s.check(false)
	if !errors.Is(err, audit.ErrCorrupt) {
		t.Fatalf("want the audit log refused as damaged, got %v", err)
	}
	mustSay(t, err, s.audits, "--reset")

	if err := s.check(true); err != nil {
		t.Fatal(err)
	}
	aside, _ := filepath.Glob(filepath.Join(s.dir, "audit.db.damaged-*"))
	if len(aside) != 1 {
		t.Fatalf("want the damaged log set aside once, got %v", aside)
	}
	if kept, err := os.ReadFile(aside[0]); err != nil || string(kept) != string(damaged) {
		t.Fatalf("the damaged log was not kept as it was: %v", err)
	}
	if got := s.loaded(); got != (resilience.Saved{Status: resilience.Inactive, Epoch: 5}) {
		t.Fatalf("state changed: %+v", got)
	}
	es := s.entries()
	if len(es) != 1 {
		t.Fatalf("want only the reset in the new log, got %+v", es)
	}
	wantResetEntry(t, es, 5, "audit.db", "damaged", "cut short")
	if !strings.Contains(es[0].Detail, filepath.Base(aside[0])) {
		t.Errorf("reset detail %q does not name the file set aside", es[0].Detail)
	}
}

// An unreadable state file next to history: refused; with --reset set
// aside and rebuilt from the audit's highest epoch.
func TestResetSetsAnUnreadableStateAside(t *testing.T) {
	s := newStores(t)
	s.audit(3, 7)
	if err := os.WriteFile(s.state, []byte(`{"status":"act`), 0o600); err != nil {
		t.Fatal(err)
	}
	mustSay(t, s.check(false), s.state, "--reset")
	if err := s.check(true); err != nil {
		t.Fatal(err)
	}
	if aside, _ := filepath.Glob(filepath.Join(s.dir, "state.json.damaged-*")); len(aside) != 1 {
		t.Fatalf("want the unreadable state set aside once, got %v", aside)
	}
	if got := s.loaded(); got != (resilience.Saved{Status: resilience.Inactive, Epoch: 7}) {
		t.Fatalf("rebuilt state %+v, want inactive at epoch 7", got)
	}
	wantResetEntry(t, s.entries(), 7, "state.json", "unreadable")
}

// The epoch never goes backwards: whichever store holds the higher epoch,
// the node starts at no less after a reset.
func TestResetNeverLowersTheEpoch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(s stores)
		want  uint64
	}{
		{"state lost, the audit at 11", func(s stores) { s.audit(11, 3) }, 11},
		{"audit lost, the state at 13", func(s stores) { s.saveState(resilience.Inactive, 13) }, 13},
		{"audit damaged, the state at 8", func(s stores) {
			s.audit(20)
			s.saveState(resilience.Active, 8)
			if err := os.Truncate(s.audits, 100); err != nil {
				s.t.Fatal(err)
			}
		}, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStores(t)
			tc.setup(s)
			if err := s.check(true); err != nil {
				t.Fatal(err)
			}
			if got := s.loaded().Epoch; got < tc.want {
				t.Fatalf("epoch %d after the reset, below %d", got, tc.want)
			}
			if es := s.entries(); es[0].Action != "reset" || es[0].Epoch < tc.want {
				t.Fatalf("reset entry %+v, want at epoch >= %d", es[0], tc.want)
			}
		})
	}
}

// The check reads the stores of a data_dir another resman runs on: it
// reports that one's lock, and changes nothing.
func TestCheckStoresReportsALockedAuditLog(t *testing.T) {
	s := newStores(t)
	s.audit(4)
	l, err := audit.Open(s.audits)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, reset := range []bool{false, true} {
		mustSay(t, s.check(reset), "locked by another process")
	}
	if s.size(s.state) != -1 {
		t.Fatal("state.json written while the log was locked")
	}
}

// An empty state file is a decision lost even with no history beside it:
// refused; with --reset rebuilt Inactive (no store gives an epoch: 0).
func TestResetRebuildsAnEmptyStateWithoutHistory(t *testing.T) {
	s := newStores(t)
	if err := os.WriteFile(s.state, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mustSay(t, s.check(false), s.state, "empty", "--reset")
	if err := s.check(true); err != nil {
		t.Fatal(err)
	}
	if got := s.loaded(); got != (resilience.Saved{Status: resilience.Inactive}) {
		t.Fatalf("rebuilt state %+v, want inactive at epoch 0", got)
	}
	wantResetEntry(t, s.entries(), 0, "state.json", "empty")
}

// Both stores lost (the audit log damaged, the state gone): the damaged
// log is the evidence; --reset sets it aside and rebuilds the state
// Inactive rather than let the node take a first start's decision.
func TestResetWithBothStoresLost(t *testing.T) {
	s := newStores(t)
	s.audit(4)
	if err := os.Truncate(s.audits, 8<<10); err != nil {
		t.Fatal(err)
	}
	if err := s.check(false); !errors.Is(err, audit.ErrCorrupt) {
		t.Fatalf("want the damaged log refused, got %v", err)
	}
	if err := s.check(true); err != nil {
		t.Fatal(err)
	}
	if got := s.loaded(); got.Status != resilience.Inactive {
		t.Fatalf("rebuilt state %+v, want inactive", got)
	}
	wantResetEntry(t, s.entries(), 0, "audit.db", "damaged", "state.json", "missing")
}

// Two resets in the same second never set one file over the other.
func TestResetKeepsEveryFileSetAside(t *testing.T) {
	s := newStores(t)
	s.saveState(resilience.Inactive, 3)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	log := testkit.Logger(t)
	for i := range 2 {
		if err := os.WriteFile(s.audits, fmt.Appendf(nil, "garbage %d", i), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := checkStores(s.dir, true, now, log); err != nil {
			t.Fatal(err)
		}
	}
	aside, _ := filepath.Glob(filepath.Join(s.dir, "audit.db.damaged-*"))
	if len(aside) != 2 {
		t.Fatalf("want both damaged logs kept, got %v", aside)
	}
	for i, p := range aside {
		if raw, err := os.ReadFile(p); err != nil || !strings.HasPrefix(string(raw), "garbage") {
			t.Fatalf("file set aside %d: %q, %v", i, raw, err)
		}
	}
}
