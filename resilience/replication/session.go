package replication

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Marks in sessRoot.seen.
const (
	seenEntry    uint8 = 1 // listed by the manifest
	seenAncestor uint8 = 2 // holds a listed path
	seenOther    uint8 = 3 // listed as not replicated: left alone, inside too
)

// session is one transfer of a files job on the receiver. Its fields are
// guarded by mu.
type session struct {
	rc      *Receiver
	id      string
	job     *Job
	delete  bool
	lastUse atomic.Int64

	mu     sync.Mutex
	closed bool
	roots  map[string]*sessRoot
	tot    totals
	// need holds the files asked for and not yet received, by root NUL
	// path.
	need map[string]*entry
	// cur is the file being received, if any: one at a time.
	cur *upload
	// progress is the offset reached in the current (or last) file.
	progress int64
	changed  int
	bytes    int64
	// dirty lists the directories renamed into since their last fsync,
	// by root: fsynced together at the commit (or the end) rather than
	// once per file.
	dirty map[*sessRoot]map[string]bool
}

// sessRoot is one root of a session, opened as an os.Root: no operation
// through it can leave the directory, whatever the symlinks inside.
type sessRoot struct {
	name, path string
	dir        *os.Root
	seen       map[string]uint8
	cache      *hashCache
}

// upload is a file being received into a temp file next to its target.
type upload struct {
	key     string
	root    *sessRoot
	e       *entry
	tmp     string
	f       *os.File
	h       hash.Hash
	written int64
}

// close drops the current upload and closes the roots (s is locked).
func (s *session) close() {
	if s.closed {
		return
	}
	s.closed = true
	s.discard()
	if err := s.syncDirty(); err != nil {
		s.rc.log.Error("cannot fsync the directories written", "job", s.job.Name, "err", err)
	}
	for _, r := range s.roots {
		r.dir.Close()
	}
}

// discard removes the current upload's temp file.
func (s *session) discard() {
	if u := s.cur; u != nil {
		u.f.Close()
		if err := u.root.dir.Remove(u.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.rc.log.Error("cannot remove a temp file", "job", s.job.Name, "root", u.root.name, "path", u.tmp, "err", err)
		}
		s.cur = nil
	}
}

func conflict(format string, args ...any) error {
	return errStatus(http.StatusUnprocessableEntity, format, args...)
}

// apply takes one manifest entry: it checks the path, counts it against
// the limits, marks it seen, makes or fixes a directory, and says whether
// a file must be uploaded (need) and whether something was fixed here
// (changed).
func (s *session) apply(sr *sessRoot, e *entry) (need, changed bool, err error) {
	if err := checkPath(e.Path); err != nil {
		return false, false, errStatus(http.StatusBadRequest, "root %s: %v", sr.name, err)
	}
	if sr.seen[e.Path] == seenEntry || sr.seen[e.Path] == seenOther {
		return false, false, errStatus(http.StatusBadRequest, "root %s: %q is listed twice", sr.name, e.Path)
	}
	if e.Mode > 0o777 {
		return false, false, errStatus(http.StatusBadRequest, "root %s: %q: mode %o has more than permission bits", sr.name, e.Path, e.Mode)
	}
	switch e.Type {
	case typeFile:
		if e.Size < 0 {
			return false, false, errStatus(http.StatusBadRequest, "root %s: %q: negative size", sr.name, e.Path)
		}
		if b, err := hex.DecodeString(e.SHA256); err != nil || len(b) != sha256.Size {
			return false, false, errStatus(http.StatusBadRequest, "root %s: %q: sha256 must be 64 hex digits", sr.name, e.Path)
		}
	case typeDir, typeOther:
	default:
		return false, false, errStatus(http.StatusBadRequest, "root %s: %q: unknown type %q", sr.name, e.Path, e.Type)
	}
	if err := s.tot.add(sr.name, e.Path, e.Type == typeFile, e.Size); err != nil {
		return false, false, errStatus(http.StatusUnprocessableEntity, "on this node: %v", err)
	}
	sr.markSeen(e.Path, e.Type == typeOther)
	switch e.Type {
	case typeDir:
		changed, err = s.applyDir(sr, e)
		return false, changed, err
	case typeFile:
		need, changed, err = s.compareFile(sr, e)
		if need {
			cp := *e
			s.need[sr.name+"\x00"+e.Path] = &cp
		}
		return need, changed, err
	}
	return false, false, nil
}

func (sr *sessRoot) markSeen(p string, other bool) {
	if other {
		sr.seen[p] = seenOther
	} else {
		sr.seen[p] = seenEntry
	}
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if sr.seen[d] != 0 {
			break
		}
		sr.seen[d] = seenAncestor
	}
}

// checkParents checks that every existing parent of p is a real directory
// (never a symlink: none is followed). With create, missing parents are
// made (0755); without, a missing parent is fs.ErrNotExist.
func checkParents(sr *sessRoot, p string, create bool) error {
	dir := path.Dir(p)
	if dir == "." {
		return nil
	}
	cur := ""
	for c := range strings.SplitSeq(dir, "/") {
		cur = path.Join(cur, c)
		fi, err := sr.dir.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if !create {
				return err
			}
			if err := sr.dir.Mkdir(cur, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("root %s: mkdir %q: %w", sr.name, cur, err)
			}
			if fi, err = sr.dir.Lstat(cur); err != nil {
				return fmt.Errorf("root %s: %q: %w", sr.name, cur, err)
			}
			if !fi.IsDir() {
				return conflict("root %s: %q is not a directory on this node", sr.name, cur)
			}
		case err != nil:
			return fmt.Errorf("root %s: %q: %w", sr.name, cur, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return conflict("root %s: %q is a symlink on this node: refusing to write through it (remove it by hand)", sr.name, cur)
		case !fi.IsDir():
			return conflict("root %s: %q is a %s on this node, a directory on the sender (remove it by hand)", sr.name, cur, kindOf(fi.Mode()))
		}
	}
	return nil
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "file"
	}
	return typeName(m)
}

func (s *session) applyDir(sr *sessRoot, e *entry) (bool, error) {
	if err := checkParents(sr, e.Path, true); err != nil {
		return false, err
	}
	mode := fs.FileMode(e.Mode)
	fi, err := sr.dir.Lstat(e.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := sr.dir.Mkdir(e.Path, mode); err != nil {
			return false, fmt.Errorf("root %s: mkdir %q: %w", sr.name, e.Path, err)
		}
		// Mkdir applies the umask; the mode is the sender's.
		if err := sr.dir.Chmod(e.Path, mode); err != nil {
			return false, fmt.Errorf("root %s: chmod %q: %w", sr.name, e.Path, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("root %s: %q: %w", sr.name, e.Path, err)
	case !fi.IsDir():
		return false, conflict("root %s: %q is a %s on this node, a directory on the sender (remove it by hand)", sr.name, e.Path, kindOf(fi.Mode()))
	case fi.Mode().Perm() != mode:
		if err := sr.dir.Chmod(e.Path, mode); err != nil {
			return false, fmt.Errorf("root %s: chmod %q: %w", sr.name, e.Path, err)
		}
		return true, nil
	}
	return false, nil
}

// compareFile says whether this node lacks e or holds it different. Same
// content with another mode or mtime is fixed here, without an upload.
func (s *session) compareFile(sr *sessRoot, e *entry) (need, changed bool, err error) {
	if err := checkParents(sr, e.Path, false); errors.Is(err, fs.ErrNotExist) {
		return true, false, nil
	} else if err != nil {
		return false, false, err
	}
	fi, err := sr.dir.Lstat(e.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, false, nil
	case err != nil:
		return false, false, fmt.Errorf("root %s: %q: %w", sr.name, e.Path, err)
	case !fi.Mode().IsRegular():
		return false, false, conflict("root %s: %q is a %s on this node, a file on the sender (remove it by hand)", sr.name, e.Path, kindOf(fi.Mode()))
	case fi.Size() != e.Size:
		return true, false, nil
	}
	sum, err := hashFile(sr.dir, e.Path, fi, sr.cache)
	if err != nil {
		return false, false, fmt.Errorf("root %s: %w", sr.name, err)
	}
	if sum != e.SHA256 {
		return true, false, nil
	}
	mtime := time.Unix(0, e.MTime)
	if fi.Mode().Perm() == fs.FileMode(e.Mode) && fi.ModTime().Unix() == mtime.Unix() {
		return false, false, nil
	}
	if err := sr.dir.Chmod(e.Path, fs.FileMode(e.Mode)); err != nil {
		return false, false, fmt.Errorf("root %s: chmod %q: %w", sr.name, e.Path, err)
	}
	if err := sr.dir.Chtimes(e.Path, mtime, mtime); err != nil {
		return false, false, fmt.Errorf("root %s: chtimes %q: %w", sr.name, e.Path, err)
	}
	if fi, err := sr.dir.Lstat(e.Path); err == nil {
		sr.cache.put(e.Path, fi, sum)
	}
	return false, true, nil
}

func parseOffset(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, errStatus(http.StatusBadRequest, "offset must be a whole number, 0 or more, got %q", s)
	}
	return n, nil
}

// receive writes one chunk of root/p at offset from body. Chunks come in
// order: offset 0 starts the file (again), any other must be where the
// last one ended. It returns the bytes taken and whether the file is
// complete (verified and in place). On any error the temp file is removed
// and the file must start again from offset 0.
func (s *session) receive(root, p string, offset int64, body io.Reader) (got int64, done bool, err error) {
	sr := s.roots[root]
	if sr == nil {
		return 0, false, errStatus(http.StatusUnprocessableEntity, "root %q is not part of this transfer", root)
	}
	key := root + "\x00" + p
	e := s.need[key]
	if e == nil {
		return 0, false, errStatus(http.StatusConflict, "root %s: %q was not asked for, or was already received", root, p)
	}
	if s.cur != nil && (s.cur.key != key || offset == 0) {
		s.discard()
	}
	if offset == 0 {
		if err := s.start(sr, key, e); err != nil {
			return 0, false, err
		}
	} else if s.cur == nil || s.cur.written != offset {
		want := int64(0)
		if s.cur != nil {
			want = s.cur.written
		}
		s.discard()
		return 0, false, errStatus(http.StatusConflict, "root %s: %q: expected offset %d, got %d; start again from 0", root, p, want, offset)
	}
	u := s.cur
	left := e.Size - u.written
	n, err := io.Copy(io.MultiWriter(u.f, u.h), io.LimitReader(body, left+1))
	u.written += n
	s.bytes += n
	s.progress = u.written
	if err != nil {
		s.discard()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return n, false, err
		}
		return n, false, errStatus(http.StatusBadRequest, "root %s: %q: reading the chunk: %v; the file was not replaced", root, p, err)
	}
	if n > left {
		s.discard()
		return n, false, errStatus(http.StatusBadRequest, "root %s: %q: the chunk goes past the file's size (%d bytes); the file was not replaced", root, p, e.Size)
	}
	if u.written < e.Size {
		return n, false, nil
	}
	if err := s.finish(); err != nil {
		s.discard()
		return n, false, err
	}
	delete(s.need, key)
	s.changed++
	return n, true, nil
}

// start opens the temp file of e next to its target.
func (s *session) start(sr *sessRoot, key string, e *entry) error {
	if err := checkParents(sr, e.Path, true); err != nil {
		return err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path.Join(path.Dir(e.Path), tempPrefix+hex.EncodeToString(rnd[:]))
	f, err := sr.dir.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("root %s: create a temp file for %q: %w", sr.name, e.Path, err)
	}
	s.cur = &upload{key: key, root: sr, e: e, tmp: tmp, f: f, h: sha256.New()}
	return nil
}

// finish verifies the current upload and puts it in place: fsync, owner
// (the replaced file's, else its directory's), mode, mtime, rename over
// the target. The directory is fsynced before the commit answers (see
// dirty): a crash leaves the old file or the new one, never a mix.
func (s *session) finish() error {
	u := s.cur
	sr, e := u.root, u.e
	if sum := hex.EncodeToString(u.h.Sum(nil)); sum != e.SHA256 {
		return conflict("root %s: %q: SHA-256 mismatch: received %s, the manifest says %s; the file was not replaced", sr.name, e.Path, sum, e.SHA256)
	}
	if err := u.f.Sync(); err != nil {
		return fmt.Errorf("root %s: fsync %q: %w", sr.name, u.tmp, err)
	}
	owner, err := sr.dir.Lstat(e.Path)
	if err != nil || !owner.Mode().IsRegular() {
		owner, err = sr.dir.Lstat(path.Dir(e.Path))
	}
	if err == nil {
		if uid, gid, ok := ownerOf(owner); ok {
			if err := u.f.Chown(uid, gid); err != nil {
				s.rc.log.Debug("cannot keep the owner", "job", s.job.Name, "root", sr.name, "path", e.Path, "err", err)
			}
		}
	}
	// After Chown, which may clear set-id bits.
	if err := u.f.Chmod(fs.FileMode(e.Mode)); err != nil {
		return fmt.Errorf("root %s: chmod %q: %w", sr.name, u.tmp, err)
	}
	if err := u.f.Close(); err != nil {
		return fmt.Errorf("root %s: close %q: %w", sr.name, u.tmp, err)
	}
	mtime := time.Unix(0, e.MTime)
	if err := sr.dir.Chtimes(u.tmp, mtime, mtime); err != nil {
		return fmt.Errorf("root %s: chtimes %q: %w", sr.name, u.tmp, err)
	}
	if err := sr.dir.Rename(u.tmp, e.Path); err != nil {
		return fmt.Errorf("root %s: rename into %q: %w", sr.name, e.Path, err)
	}
	s.cur = nil
	if s.dirty == nil {
		s.dirty = map[*sessRoot]map[string]bool{}
	}
	if s.dirty[sr] == nil {
		s.dirty[sr] = map[string]bool{}
	}
	s.dirty[sr][path.Dir(e.Path)] = true
	if fi, err := sr.dir.Lstat(e.Path); err == nil {
		sr.cache.put(e.Path, fi, e.SHA256)
	}
	return nil
}

// syncDirty fsyncs the directories files were renamed into: then the
// renames are durable.
func (s *session) syncDirty() error {
	for sr, dirs := range s.dirty {
		for d := range dirs {
			if err := syncDir(sr.dir, d); err != nil {
				return fmt.Errorf("root %s: %w", sr.name, err)
			}
			delete(dirs, d)
		}
	}
	return nil
}

func syncDir(dir *os.Root, p string) error {
	d, err := dir.Open(p)
	if err != nil {
		return fmt.Errorf("open directory %q: %w", p, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %q: %w", p, err)
	}
	return nil
}

// deleteExtra removes what sr holds that the manifest does not list, and
// temp files left by an interrupted transfer. It follows no symlink (a
// symlink is removed, not its target).
func (s *session) deleteExtra(sr *sessRoot) (int, error) {
	var extra []string
	var temps []string
	staleBefore := s.rc.now().Add(-s.rc.idle)
	err := fs.WalkDir(sr.dir.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if strings.HasPrefix(d.Name(), tempPrefix) {
			if info, err := d.Info(); err == nil && info.ModTime().Before(staleBefore) {
				temps = append(temps, p)
			}
			return skipDir(d)
		}
		switch sr.seen[p] {
		case seenEntry, seenAncestor:
			return nil
		case seenOther:
			return skipDir(d)
		}
		if checkPath(p) != nil {
			// A name no manifest can carry: the Main skips it too, so
			// it is left alone here.
			return skipDir(d)
		}
		extra = append(extra, p)
		return skipDir(d)
	})
	if err != nil {
		return 0, fmt.Errorf("walk: %w", err)
	}
	n := 0
	for _, p := range extra {
		if err := sr.dir.RemoveAll(p); err != nil {
			return n, fmt.Errorf("remove %q: %w", p, err)
		}
		n++
		s.rc.log.Debug("deleted", "job", s.job.Name, "root", sr.name, "path", p)
	}
	for _, p := range temps {
		sr.dir.Remove(p)
	}
	if n > 0 {
		for _, d := range parentsOf(extra) {
			if err := syncDir(sr.dir, d); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// parentsOf lists the distinct parent directories of paths.
func parentsOf(paths []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range paths {
		if d := path.Dir(p); !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// openRootDir opens an existing directory as an os.Root.
func openRootDir(p string) (*os.Root, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", p)
	}
	return os.OpenRoot(p)
}

// removeTemps removes the temp files under dir last modified before
// olderThan ago (0: all of them), and returns how many.
func removeTemps(dir string, olderThan time.Duration, now time.Time) (int, error) {
	root, err := openRootDir(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	var temps []string
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != "." && strings.HasPrefix(d.Name(), tempPrefix) && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil && (olderThan == 0 || info.ModTime().Before(now.Add(-olderThan))) {
				temps = append(temps, p)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, p := range temps {
		if err := root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, err
		}
	}
	return len(temps), nil
}
