package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/resman-pbx/resman/resilience"
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
	var s stateFile
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("read state %s: %w (move the file away to start as a new node)", path, err)
	}
	if s.Status != resilience.Active && s.Status != resilience.Inactive {
		return nil, fmt.Errorf("read state %s: status %q is neither active nor inactive", path, s.Status)
	}
	if err := resilience.ValidEpoch(s.Epoch); err != nil {
		return nil, fmt.Errorf("read state %s: %w (move the file away to start as a new node)", path, err)
	}
	return &resilience.Saved{Status: s.Status, Epoch: s.Epoch}, nil
}

// saveState writes the decision atomically and durably: a temporary file in
// the same directory, synced, renamed over the old one, then the directory
// synced. A crash leaves either the old or the new file, never half of one.
func saveState(path string, s resilience.Saved, now time.Time) error {
	raw, err := json.MarshalIndent(stateFile{Status: s.Status, Epoch: s.Epoch, Updated: now.UTC()}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".state-*.tmp")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("save state: sync %s: %w", dir, err)
	}
	return nil
}
