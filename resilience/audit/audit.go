// Package audit is the node's durable audit log: who did what, why, when,
// and how it ended, for every admin command and every automatic transition.
// It is an embedded bbolt database; every append is committed and synced
// before it returns, so an entry written before a crash is there after it.
package audit

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/resman-pbx/resman/resilience/api"
)

var bucket = []byte("audit")

// Log is an open audit log. It is safe for concurrent use. A file cut
// short while open (an admin's mistake, a restore over it) makes its reads
// and writes fail with a CorruptError rather than crash the process or
// hang it (see guard).
type Log struct {
	db   *bolt.DB
	now  func() time.Time
	path string
	file *os.File // bbolt's, for its size
	// size is the file's size after the last operation: a bbolt file
	// never shrinks, so a smaller one was cut by someone else.
	size atomic.Int64
	// broken, once set, answers every operation: bbolt's memory map no
	// longer matches the file, and a fault inside it can leave its locks
	// held, so it is not touched again.
	broken atomic.Pointer[CorruptError]
}

// guard runs f on the database unless the file was cut short since the
// last operation, turning a fault inside bbolt's memory map into a
// CorruptError (guarded); after either, the log is broken for good: the
// node reports it, and a restart refuses the file with what to do.
func (l *Log) guard(f func() error) error {
	if b := l.broken.Load(); b != nil {
		return b
	}
	fi, err := l.file.Stat()
	if err != nil {
		return fmt.Errorf("audit log %s: %w", l.path, err)
	}
	if was := l.size.Load(); fi.Size() < was {
		return l.breakWith(&CorruptError{Path: l.path, Problem: fmt.Sprintf(
			"the file was cut from %d to %d bytes while this node had it open", was, fi.Size())})
	}
	err = guarded(l.path, f)
	var ce *CorruptError
	if errors.As(err, &ce) {
		return l.breakWith(ce)
	}
	if fi, serr := l.file.Stat(); serr == nil {
		l.size.Store(fi.Size())
	}
	return err
}

func (l *Log) breakWith(ce *CorruptError) error {
	l.broken.CompareAndSwap(nil, ce)
	return l.broken.Load()
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
	db, file, err := openBolt(path, false)
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
	l := &Log{db: db, now: time.Now, path: path, file: file}
	if fi, err := file.Stat(); err == nil {
		l.size.Store(fi.Size())
	}
	return l, nil
}

// Append stores e with the next ID (and the current time when e.Time is
// zero) and returns it as stored.
func (l *Log) Append(e api.AuditEntry) (api.AuditEntry, error) {
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	err := l.guard(func() error {
		return l.db.Update(func(tx *bolt.Tx) error {
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
	err := l.guard(func() error { return l.list(&out, limit, beforeID) })
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}

func (l *Log) list(out *[]api.AuditEntry, limit int, beforeID uint64) error {
	return l.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		var k, v []byte
		if beforeID > 0 {
			c.Seek(key(beforeID))
			k, v = c.Prev()
		} else {
			k, v = c.Last()
		}
		for ; k != nil && len(*out) < limit; k, v = c.Prev() {
			var e api.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			*out = append(*out, e)
		}
		return nil
	})
}

// Close closes the database. A broken log closes only bbolt's file, which
// releases its lock: a fault may have left bbolt's own locks held, and
// its Close would wait on them forever (the memory map stays until the
// process ends).
func (l *Log) Close() error {
	if l.broken.Load() != nil {
		return l.file.Close()
	}
	return l.db.Close()
}

func key(id uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, id)
	return k
}
