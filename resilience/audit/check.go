package audit

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// A damaged bbolt file must be refused before bbolt maps it: bbolt trusts
// its header, and a header that says the file holds more pages than it does
// makes bbolt read its memory map past the end of the file, which kills the
// process with SIGBUS (a crash loop under systemd, with nothing in the log
// to say why). checkFile reads the two headers (meta pages) as bbolt does
// and refuses a file bbolt would crash on.
//
// The layout is bbolt v1.5.0's (go.etcd.io/bbolt: db.go, internal/common
// meta.go and page.go), in the machine's byte order:
//
//	page header (16 bytes): id u64, flags u16, count u16, overflow u32
//	meta, right after it:   magic u32, version u32, pageSize u32, flags u32,
//	                        root {pgid u64, sequence u64}, freelist u64,
//	                        pgid u64 (high-water mark: pages in use),
//	                        txid u64, checksum u64 (FNV-64a of the 56
//	                        bytes before it)
//
// Page 0 and page 1 are both metas; each commit rewrites the one of its
// transaction's parity, so a torn write leaves the other valid. bbolt uses
// the valid meta with the higher txid and maps pgid pages.
const (
	pageHeaderSize = 16
	metaSize       = 64
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	noFreelist     = ^uint64(0)
	minPageSize    = 1024
	lockTimeout    = time.Second
)

// ErrCorrupt matches every error of a damaged audit log file.
var ErrCorrupt = errors.New("audit log file damaged")

// CorruptError refuses a damaged audit log file: which file, what is wrong
// with it, and what to do.
type CorruptError struct {
	Path    string
	Problem string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("audit log %s is damaged: %s; resman does not open it (bbolt could crash on it). "+
		"Move it away and put back a backup of it, or start once with `resman run --reset`, which sets it aside "+
		"and starts a new audit log without lowering the epoch (see docs/troubleshooting.md)", e.Path, e.Problem)
}

func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func lockedErr(path string) error {
	return fmt.Errorf("open audit log %s: locked by another process (is another resman using this data_dir?)", path)
}

type meta struct {
	magic, version, pageSize        uint32
	root, freelist, pgid, txid, sum uint64
	problem                         string // "" when valid
}

// readMeta decodes the meta of the page that starts at b[0]; b may be
// short, the problem says so.
func readMeta(b []byte) meta {
	if len(b) < pageHeaderSize+metaSize {
		return meta{problem: "missing (the file ends before it)"}
	}
	b = b[pageHeaderSize:]
	ne := binary.NativeEndian
	m := meta{magic: ne.Uint32(b[0:]), version: ne.Uint32(b[4:]), pageSize: ne.Uint32(b[8:]),
		root: ne.Uint64(b[16:]), freelist: ne.Uint64(b[32:]), pgid: ne.Uint64(b[40:]),
		txid: ne.Uint64(b[48:]), sum: ne.Uint64(b[56:])}
	h := fnv.New64a()
	h.Write(b[:56])
	switch {
	case m.magic != boltMagic:
		m.problem = fmt.Sprintf("bad magic %#x (not a bbolt file)", m.magic)
	case m.version != boltVersion:
		m.problem = fmt.Sprintf("format version %d, not %d", m.version, boltVersion)
	case m.sum != h.Sum64():
		m.problem = "checksum mismatch"
	}
	return m
}

// readAt reads up to n bytes at off; fewer at the end of the file.
func readAt(f *os.File, off int64, n int) ([]byte, error) {
	b := make([]byte, n)
	got, err := f.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:got], nil
}

// checkFile refuses, with a CorruptError, a file bbolt would fail on or
// crash on. A missing or empty file passes: bbolt makes a new database of
// it. It holds a shared lock while it reads, so that it never reads a file
// another resman is writing (that one's lock is reported instead).
func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open audit log %s: %w", path, err)
	}
	defer f.Close() // releases the lock
	if err := lockShared(f); err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return lockedErr(path)
		}
		return fmt.Errorf("open audit log %s: lock: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open audit log %s: %w", path, err)
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	bad := func(format string, args ...any) error {
		return &CorruptError{Path: path, Problem: fmt.Sprintf(format, args...)}
	}

	// The page size is in the metas: meta 0's, else (as bbolt does) the
	// first valid meta found at a power-of-two offset from 1 KiB up.
	b, err := readAt(f, 0, pageHeaderSize+metaSize)
	if err != nil {
		return fmt.Errorf("open audit log %s: %w", path, err)
	}
	m0, ps := readMeta(b), int64(0)
	if m0.problem == "" {
		ps = int64(m0.pageSize)
	} else {
		for i := range 15 {
			off := int64(minPageSize) << i
			if off+pageHeaderSize+metaSize > size {
				break
			}
			b, err := readAt(f, off, pageHeaderSize+metaSize)
			if err != nil {
				return fmt.Errorf("open audit log %s: %w", path, err)
			}
			if m := readMeta(b); m.problem == "" {
				ps = int64(m.pageSize)
				break
			}
		}
	}
	if ps == 0 {
		return bad("no valid header (meta page) in its %d bytes: page 0: %s; no valid page 1 at any page size", size, m0.problem)
	}
	if ps < minPageSize || ps&(ps-1) != 0 {
		return bad("its header gives an impossible page size %d", ps)
	}
	b, err = readAt(f, ps, pageHeaderSize+metaSize)
	if err != nil {
		return fmt.Errorf("open audit log %s: %w", path, err)
	}
	m1 := readMeta(b)
	if m0.problem != "" && m1.problem != "" {
		return bad("no valid header (meta page): page 0: %s; page 1: %s", m0.problem, m1.problem)
	}

	// bbolt's choice: the higher txid when it is valid, else the other.
	m, which := m0, 0
	if m1.txid > m0.txid {
		m, which = m1, 1
	}
	if m.problem != "" {
		m, which = m0, 0
		if m0.problem != "" {
			m, which = m1, 1
		}
	}
	switch {
	case m.pageSize != uint32(ps):
		return bad("its headers disagree on the page size (%d and %d)", ps, m.pageSize)
	case m.pgid < 2 || m.root >= m.pgid || (m.freelist != noFreelist && m.freelist >= m.pgid):
		return bad("its header (page %d, transaction %d) points past its own end (root page %d, freelist page %d, %d pages)",
			which, m.txid, m.root, m.freelist, m.pgid)
	case m.pgid > uint64(size/ps):
		// What SIGBUS comes from: the pages bbolt maps go past the end.
		return bad("cut short: its header (page %d, transaction %d) says it holds %d pages of %d bytes (%d bytes), but the file is only %d bytes",
			which, m.txid, m.pgid, ps, m.pgid*uint64(ps), size)
	}
	return nil
}

// lockShared takes a shared flock on f, retrying for lockTimeout while a
// writer holds it (bbolt's own lock, same timeout).
func lockShared(f *os.File) error {
	deadline := time.Now().Add(lockTimeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		if time.Now().After(deadline) {
			return bolterrors.ErrTimeout
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// guarded runs f, turning a panic in it into a CorruptError for path,
// and a memory fault too: bbolt reads its memory map directly, and a page
// the file does not hold (a file shorter than its header says, or cut
// while open) faults with SIGBUS, which would otherwise kill the process.
// It is the net under checkFile, for what a check of the headers cannot
// see (a garbled page inside the file).
func guarded(path string, f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		problem := fmt.Sprintf("reading it failed: %v", r)
		if fault, ok := r.(interface{ Addr() uintptr }); ok {
			if _, ok := r.(runtime.Error); ok {
				problem = fmt.Sprintf("reading it faulted at address %#x: the file is shorter than its pages say, or was cut while open", fault.Addr())
			}
		}
		err = &CorruptError{Path: path, Problem: problem}
	}()
	return f()
}

// openBolt opens the database at path (checked or not) with the lock
// timeout, faults and panics turned into errors. It returns bbolt's file
// too, for the size checks of a Log.
func openBolt(path string, readOnly bool) (*bolt.DB, *os.File, error) {
	var (
		file *os.File
		db   *bolt.DB
		done bool
	)
	opts := &bolt.Options{Timeout: lockTimeout, ReadOnly: readOnly,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		}}
	err := guarded(path, func() error {
		var err error
		db, err = bolt.Open(path, 0o600, opts)
		done = true
		return err
	})
	switch {
	case !done:
		// bbolt panicked before it could close its file: close it, which
		// releases its lock. (Its memory map, if any, stays.)
		if file != nil {
			file.Close()
		}
		return nil, nil, err
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, nil, lockedErr(path)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrChecksum):
		return nil, nil, &CorruptError{Path: path, Problem: err.Error()}
	case err != nil:
		return nil, nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	return db, file, nil
}

// History is what an audit log holds, in short.
type History struct {
	Entries  uint64 // number of entries
	MaxEpoch uint64 // the highest epoch any entry carries
}

// Inspect reads the history of the audit log at path without changing the
// file (nor creating it): zero for a missing or empty file. A damaged file
// is refused as Open refuses it; a log open in another process too (its
// lock).
func Inspect(path string) (History, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return History{}, nil
	}
	if err != nil {
		return History{}, fmt.Errorf("read audit log %s: %w", path, err)
	}
	if fi.Size() == 0 {
		return History{}, nil
	}
	if err := checkFile(path); err != nil {
		return History{}, err
	}
	db, _, err := openBolt(path, true)
	if err != nil {
		return History{}, err
	}
	defer db.Close()
	var h History
	err = guarded(path, func() error {
		return db.View(func(tx *bolt.Tx) (err error) { h, err = history(tx); return err })
	})
	if err != nil {
		return History{}, fmt.Errorf("read audit log %s: %w", path, err)
	}
	return h, nil
}

// MaxEpoch is the highest epoch recorded in the log (0 when it is empty).
// It reads every entry: epochs are not in order across a --reset.
func (l *Log) MaxEpoch() (uint64, error) {
	var h History
	err := l.guard(func() error {
		return l.db.View(func(tx *bolt.Tx) (err error) { h, err = history(tx); return err })
	})
	if err != nil {
		return 0, fmt.Errorf("read audit log: %w", err)
	}
	return h.MaxEpoch, nil
}

func history(tx *bolt.Tx) (History, error) {
	var h History
	b := tx.Bucket(bucket)
	if b == nil {
		return h, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		var e struct {
			Epoch uint64 `json:"epoch"`
		}
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("entry %d: %w", binary.BigEndian.Uint64(k), err)
		}
		h.Entries++
		h.MaxEpoch = max(h.MaxEpoch, e.Epoch)
		return nil
	})
	return h, err
}
