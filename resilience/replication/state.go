package replication

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// stateVersion is the format of the state files.
const stateVersion = 1

// File names in the data dir.
const (
	// runnerStateFile holds the sender's last results.
	runnerStateFile = "replication.json"
	// receiverStateFile holds the receiver's last receives.
	receiverStateFile = "replication-received.json"
)

// writeFileAtomic replaces path with data: a temp file in the same
// directory, fsync, rename, fsync of the directory. A crash leaves the old
// file or the new one, never a mix.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// saver writes snapshots of a state to one file, in order, outside the
// lock of the state they copy: a reader of the state never waits for an
// fsync, and an older snapshot never overwrites a newer one.
type saver struct {
	path string
	// seq numbers snapshots (under the state's lock).
	seq uint64

	mu    sync.Mutex
	saved uint64
}

// next numbers a snapshot; call it under the state's lock.
func (s *saver) next() uint64 {
	s.seq++
	return s.seq
}

// save writes snapshot number seq, unless a newer one is written already.
func (s *saver) save(seq uint64, v any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.saved {
		return nil
	}
	if err := saveJSON(s.path, v); err != nil {
		return err
	}
	s.saved = seq
	return nil
}

// ensureDir makes the data dir if it is missing.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	return nil
}

// saveJSON writes v as JSON to path atomically.
func saveJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeFileAtomic(path, append(data, '\n'))
}

// loadJSON reads path into v; a missing file leaves v as is and is not an
// error.
func loadJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}
