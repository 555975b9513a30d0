// Package audit is the node's durable audit log: who did what, why, when,
// and how it ended, for every admin command and every automatic transition.
// It is an embedded bbolt database; every append is committed and synced
// before it returns, so an entry written before a crash is there after it.
package audit

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/resman-pbx/resman/resilience/api"
)

var bucket = []byte("audit")

// Log is an open audit log. It is safe for concurrent use.
type Log struct {
	db  *bolt.DB
	now func() time.Time
}

// Open opens or creates the log at path. It fails within a second if another
// process holds the file (two resman processes sharing a data_dir). A
// damaged file is refused with a CorruptError (matching ErrCorrupt) that
// names it and says what to do, rather than crash the process: see
// checkFile. A missing or empty file is made a new, empty log.
func Open(path string) (*Log, error) {
	if err := checkFile(path); err != nil {
		return nil, err
	}
	db, err := openBolt(path, false)
	if err != nil {
		return nil, err
	}
	err = guarded(path, func() error {
		return db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(bucket)
			return err
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init audit log %s: %w", path, err)
	}
	return &Log{db: db, now: time.Now}, nil
}

// Append stores e with the next ID (and the current time when e.Time is
// zero) and returns it as stored.
func (l *Log) Append(e api.AuditEntry) (api.AuditEntry, error) {
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	err := l.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.ID = id
		raw, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return b.Put(key(id), raw)
	})
	if err != nil {
		return api.AuditEntry{}, fmt.Errorf("append audit entry: %w", err)
	}
	return e, nil
}

// List returns up to limit entries, newest first; with beforeID > 0 only
// entries older than that ID.
func (l *Log) List(limit int, beforeID uint64) ([]api.AuditEntry, error) {
	out := []api.AuditEntry{}
	err := l.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		var k, v []byte
		if beforeID > 0 {
			c.Seek(key(beforeID))
			k, v = c.Prev()
		} else {
			k, v = c.Last()
		}
		for ; k != nil && len(out) < limit; k, v = c.Prev() {
			var e api.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}

// Close closes the database.
func (l *Log) Close() error { return l.db.Close() }

func key(id uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, id)
	return k
}
