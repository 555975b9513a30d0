package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/audit"
)

// stateFile is the persisted decision, as JSON an admin can read.
type stateFile struct {
	Status  resilience.Status `json:"status"`
	Epoch   uint64            `json:"epoch"`
	Updated time.Time         `json:"updated"`
}

// loadState reads the persisted decision; nil without error when none was
// ever saved.
func loadState(path string) (*resilience.Saved, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", path, err)
	}
	saved, err := parseState(raw)
	if err != nil {
		return nil, stateError(path, err)
	}
	return saved, nil
}

// parseState reads a decision from the content of a state file.
func parseState(raw []byte) (*resilience.Saved, error) {
	var s stateFile
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	if s.Status != resilience.Active && s.Status != resilience.Inactive {
		return nil, fmt.Errorf("status %q is neither active nor inactive", s.Status)
	}
	if err := resilience.ValidEpoch(s.Epoch); err != nil {
		return nil, err
	}
	return &resilience.Saved{Status: s.Status, Epoch: s.Epoch}, nil
}

// stateError refuses the state file at path, saying what to do.
func stateError(path string, err error) error {
	return fmt.Errorf("read state %s: %w (put back a backup of it, or start once with `resman run --reset`, which "+
		"sets it aside and rebuilds it Inactive at the highest epoch the audit log shows; see docs/troubleshooting.md)", path, err)
}

// probeStore checks that dir takes a write: a temporary file written,
// synced and removed.
func probeStore(dir string) error {
	f, err := os.CreateTemp(dir, ".probe-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write([]byte("resman\n"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// saveState writes the decision atomically and durably: a temporary file in
// the same directory, synced, renamed over the old one, then the directory
// synced. A crash leaves either the old or the new file, never half of one.
func saveState(path string, s resilience.Saved, now time.Time) error {
	raw, err := json.MarshalIndent(stateFile{Status: s.Status, Epoch: s.Epoch, Updated: now.UTC()}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, append(raw, '\n'), true); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// writeFileAtomic writes raw to path atomically: a temporary file in the
// same directory, renamed over the old one. durable syncs the file before
// the rename and the directory after it (a crash then leaves the old or
// the new file whole); without it a crash may leave either, or an empty
// file, and the write costs no disk flush.
func writeFileAtomic(path string, raw []byte, durable bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return err
	}
	if durable {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if !durable {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// The stores of a data directory.
const (
	stateName = "state.json"
	auditName = "audit.db"
)

// CheckStores enforces, before the node opens them, the rule of the two
// stores of dataDir, state.json (the decision and its epoch) and audit.db
// (the history): an empty or missing store next to evidence of history is
// refused unless reset is set (resman run --reset), and the epoch never
// goes backwards. It is refused when
//
//   - audit.db is empty (0 bytes) or missing while state.json holds an
//     epoch above 0: the history is gone;
//   - state.json is empty or missing while audit.db holds entries:
//     starting as a new node would start the epoch again from 0;
//   - either file is damaged (audit.db: see audit.Open) or unreadable.
//
// Neither file (a fresh node) is no history: accepted. With reset, a
// damaged or unreadable file is set aside (renamed NAME.damaged-TIME, kept
// for inspection); a lost audit.db is started anew; a lost state.json is
// rebuilt Inactive at the highest epoch found in either store; and the
// reset is the next audit entry, with its cause. With nothing to reset,
// reset changes nothing. Each error names the files and what to do.
func CheckStores(dataDir string, reset bool, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return checkStores(dataDir, reset, time.Now(), logger.With("component", "node"))
}

// store kinds, as found.
const (
	storeMissing = "missing"
	storeEmpty   = "empty"
	storeOK      = "ok"
	storeBad     = "bad" // damaged or unreadable
)

func checkStores(dataDir string, reset bool, now time.Time, log *slog.Logger) error {
	statePath, auditPath := filepath.Join(dataDir, stateName), filepath.Join(dataDir, auditName)

	// The state file.
	stateKind, saved, stateErr := storeMissing, (*resilience.Saved)(nil), error(nil)
	switch raw, err := os.ReadFile(statePath); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read state %s: %w", statePath, err)
	case len(raw) == 0:
		stateKind = storeEmpty
	default:
		if saved, stateErr = parseState(raw); stateErr != nil {
			stateKind = storeBad
		} else {
			stateKind = storeOK
		}
	}

	// The audit log: what it holds, without creating or changing it.
	auditKind, hist, auditErr := storeMissing, audit.History{}, error(nil)
	switch fi, err := os.Stat(auditPath); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read audit log %s: %w", auditPath, err)
	case fi.Size() == 0:
		auditKind = storeEmpty
	default:
		hist, auditErr = audit.Inspect(auditPath)
		switch {
		case errors.Is(auditErr, audit.ErrCorrupt):
			auditKind = storeBad
		case auditErr != nil:
			return auditErr // locked by another resman, unreadable: no reset helps
		default:
			auditKind = storeOK
		}
	}

	stateEpoch := uint64(0)
	if saved != nil {
		stateEpoch = saved.Epoch
	}
	epoch := max(stateEpoch, hist.MaxEpoch)
	lostAudit := (auditKind == storeMissing || auditKind == storeEmpty) && stateEpoch > 0
	// A damaged audit log is evidence of history too, and an empty state
	// file of a decision lost. A history at epoch 0 only (a witness, a
	// Standby never Active) has no epoch to go back from: a missing
	// state.json next to it starts the node as it was.
	lostState := stateKind == storeEmpty || (stateKind == storeMissing && (hist.MaxEpoch > 0 || auditKind == storeBad))

	if !reset {
		switch {
		case auditKind == storeBad:
			return auditErr
		case stateKind == storeBad:
			return stateError(statePath, stateErr)
		case lostAudit:
			return fmt.Errorf("audit log %s is %s while %s holds epoch %d: the node's history is gone, and resman does not "+
				"start a new one silently. Put back a backup of %s, or start once with `resman run --reset`, which starts "+
				"a new audit log at epoch %d (see docs/troubleshooting.md)",
				auditPath, describe(auditKind), statePath, stateEpoch, auditName, stateEpoch)
		case lostState && hist.Entries == 0:
			return stateError(statePath, errors.New("the file is empty (0 bytes)"))
		case lostState:
			return fmt.Errorf("%s is %s while audit log %s holds %d entries up to epoch %d: as a new node it would "+
				"take its epochs from 0 again, and the epoch never goes backwards. Put back a backup of %s, or start once with "+
				"`resman run --reset`, which rebuilds it Inactive at epoch %d (see docs/troubleshooting.md)",
				statePath, describe(stateKind), auditPath, hist.Entries, hist.MaxEpoch, stateName, epoch)
		case stateKind == storeOK && auditKind != storeOK:
			log.Warn("the audit log is "+describe(auditKind)+" next to a state at epoch 0: a new audit log starts",
				"audit", auditPath, "state", statePath)
		}
		return nil
	}

	// The reset. What was wrong, for the audit entry, and what was done.
	var causes, done []string
	aside := func(path, name string) error {
		// Never over another file set aside: that is evidence too.
		to := fmt.Sprintf("%s.damaged-%s", path, now.UTC().Format("20060102T150405Z"))
		for i := 2; ; i++ {
			if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
				break
			}
			to = fmt.Sprintf("%s.damaged-%s-%d", path, now.UTC().Format("20060102T150405Z"), i)
		}
		if err := os.Rename(path, to); err != nil {
			return fmt.Errorf("reset: set %s aside: %w", name, err)
		}
		done = append(done, fmt.Sprintf("%s set aside as %s", name, filepath.Base(to)))
		return nil
	}
	newAudit := false
	switch {
	case auditKind == storeBad:
		if err := aside(auditPath, auditName); err != nil {
			return err
		}
		var ce *audit.CorruptError
		problem := auditErr.Error()
		if errors.As(auditErr, &ce) {
			problem = ce.Problem
		}
		causes = append(causes, fmt.Sprintf("%s was damaged (%s)", auditName, problem))
		newAudit = true
	case lostAudit:
		causes = append(causes, fmt.Sprintf("%s was %s while %s holds epoch %d", auditName, describe(auditKind), stateName, stateEpoch))
		newAudit = true
	}
	rebuild := false
	switch {
	case stateKind == storeBad:
		if err := aside(statePath, stateName); err != nil {
			return err
		}
		causes = append(causes, fmt.Sprintf("%s was unreadable (%v)", stateName, stateErr))
		rebuild = true
	case lostState && hist.Entries > 0:
		causes = append(causes, fmt.Sprintf("%s was %s while %s holds %d entries up to epoch %d",
			stateName, describe(stateKind), auditName, hist.Entries, hist.MaxEpoch))
		rebuild = true
	case lostState:
		causes = append(causes, fmt.Sprintf("%s was %s, and no readable audit log gives an epoch", stateName, describe(stateKind)))
		rebuild = true
	}
	if len(causes) == 0 {
		log.Info("--reset: no store is damaged, or lost next to history: nothing to reset", "state", statePath, "audit", auditPath)
		return nil
	}
	if newAudit {
		done = append(done, "a new audit log starts with this entry")
	}
	if rebuild {
		done = append(done, fmt.Sprintf("%s rebuilt: Inactive at epoch %d", stateName, epoch))
	}

	// The entry first: a crash before the state is rebuilt leaves the
	// state lost next to history, refused again, and the entry says why.
	l, err := audit.Open(auditPath)
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	_, err = l.Append(api.AuditEntry{Who: resilience.Self, Action: "reset", Outcome: api.OutcomeOK, Epoch: epoch,
		Cause:  "resman run --reset: " + strings.Join(causes, "; "),
		Detail: strings.Join(done, "; ")})
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	if rebuild {
		if err := saveState(statePath, resilience.Saved{Status: resilience.Inactive, Epoch: epoch}, now); err != nil {
			return fmt.Errorf("reset: rebuild %s: %w", statePath, err)
		}
	}
	log.Warn("--reset: "+strings.Join(done, "; "), "cause", strings.Join(causes, "; "), "epoch", epoch)
	return nil
}

// describe names a store kind in an error.
func describe(kind string) string {
	if kind == storeEmpty {
		return "empty (0 bytes)"
	}
	return kind
}
