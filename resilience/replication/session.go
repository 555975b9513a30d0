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
	"sort"
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

// session is one transfer of a files job on the receiver. Nothing it
// receives is applied before its commit: a file received whole waits,
// verified, in its temp file; a directory to make, a mode or mtime to fix
// wait in dirs and metas. A refused request poisons the session
// (refused): it then applies nothing, ever. Its fields are guarded by mu,
// but stop.
type session struct {
	rc      *Receiver
	id      string
	job     *Job
	delete  bool
	lastUse atomic.Int64
	// stop, once set (by EndSessions), ends the session: the apply of a
	// commit checks it before each change, the next request poisons the
	// session with it.
	stop atomic.Pointer[string]

	mu     sync.Mutex
	closed bool
	// refused, when set, says why the session was refused: it applies
	// nothing, its temp files are gone, every request but abort is
	// answered 409.
	refused string
	roots   map[string]*sessRoot
	tot     totals
	quota   quota
	// measured: quota holds what the roots held when the first file was
	// asked for.
	measured bool
	// need holds the files asked for and not yet received, by root NUL
	// path.
	need map[string]*entry
	// cur is the file being received, if any: one at a time.
	cur *upload
	// staged holds the files received whole and verified, each in its
	// temp file next to its target, renamed over it at the commit.
	staged []*upload
	// dirs and metas are the changes the manifest asks that need no
	// upload: made or fixed at the commit.
	dirs  []dirOp
	metas []metaOp
	// made lists the directories made to hold temp files, in order: a
	// session that applies nothing removes them.
	made []madeDir
	// progress is the offset reached in the current (or last) file.
	progress int64
	bytes    int64
	// dirty lists the directories renamed into or deleted from since
	// their last fsync, by root: fsynced together at the end of the
	// commit rather than once per file.
	dirty map[*sessRoot]map[string]bool
}

// sessRoot is one root of a session, opened as an os.Root: no operation
// through it can leave the directory, whatever the symlinks inside.
type sessRoot struct {
	name, path string
	dir        *os.Root
	seen       map[string]uint8
	cache      *hashCache
	// dirModes holds the modes of the directories the manifest lists.
	dirModes map[string]fs.FileMode
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

// dirOp makes a directory (create) or sets its mode, at the commit.
type dirOp struct {
	root   *sessRoot
	path   string
	mode   fs.FileMode
	create bool
}

// metaOp sets the mode and mtime of a file whose content is the same.
type metaOp struct {
	root  *sessRoot
	path  string
	mode  fs.FileMode
	mtime time.Time
	sum   string
}

type madeDir struct {
	root *sessRoot
	path string
}

// quota holds max_total_mib against what the job's roots hold on this
// node: the files that stay plus the files being received, counted from
// the disk (measured when the first file is asked for, walked again at
// the commit), never from
// what the sender declares of the Standby. During the transfer, each file
// asked for reserves its size before its first byte is taken (and no
// chunk may go past it); the commit walks the roots and refuses, before
// it applies anything, a result above the limit.
type quota struct {
	limit int64
	// other: the job's roots left out of this transfer, as on disk at
	// begin.
	other int64
	// disk (without delete): the transfer's roots as on disk at begin;
	// replaced: the bytes of the files there that the transfer replaces.
	disk, replaced int64
	// kept (with delete): the bytes of the files on disk that the
	// manifest lists unchanged. What the manifest does not list goes at
	// the commit, so it is not counted here; what delete keeps anyway
	// (names no manifest can carry, paths listed as not replicated) is
	// counted by the commit's walk.
	kept int64
	// incoming: the sizes of the files asked for.
	incoming int64
}

// staying is what stays on this node of what it holds.
func (q *quota) staying(del bool) int64 {
	if del {
		return q.other + q.kept
	}
	return q.other + q.disk - q.replaced
}

func (q *quota) check(del bool) error {
	stay := q.staying(del)
	if total := stay + q.incoming; total > q.limit {
		return fmt.Errorf("the job's roots would hold %s after this transfer (%s that stay, %s to receive), above max_total_mib (%s)",
			sizeText(total), sizeText(stay), sizeText(q.incoming), sizeText(q.limit))
	}
	return nil
}

// end refuses the session for reason (s is locked): nothing it holds is
// applied, its temp files and the directories made for them are removed.
// The session stays known, so that its next requests hear why.
func (s *session) end(reason string) {
	if s.closed {
		return
	}
	s.refused = reason
	s.close()
	s.rc.log.Warn("transfer refused: nothing more of it is applied", "job", s.job.Name, "reason", reason)
}

// close drops what the session holds and closes the roots (s is locked).
// After a commit, nothing is left to drop.
func (s *session) close() {
	if s.closed {
		return
	}
	s.closed = true
	s.discard()
	for _, u := range s.staged {
		s.removeTemp(u)
	}
	s.staged = nil
	for i := len(s.made) - 1; i >= 0; i-- {
		// Only if empty: a commit that stopped part way may have put a
		// file there.
		s.made[i].root.dir.Remove(s.made[i].path)
	}
	s.made = nil
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
		s.removeTemp(u)
		s.cur = nil
	}
}

func (s *session) removeTemp(u *upload) {
	if err := u.root.dir.Remove(u.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.rc.log.Error("cannot remove a temp file", "job", s.job.Name, "root", u.root.name, "path", u.tmp, "err", err)
	}
}

// mayWrite says whether the session may still change this node: neither
// ended by EndSessions nor refused by Accept. The commit calls it under
// Receiver.applyMu before each change.
func (s *session) mayWrite() error {
	if r := s.stop.Load(); r != nil {
		return errStatus(http.StatusConflict, "%s", *r)
	}
	return s.rc.acceptErr(s.job.Name)
}

func conflict(format string, args ...any) error {
	return errStatus(http.StatusUnprocessableEntity, format, args...)
}

// apply takes one manifest entry: it checks the path, counts it against
// the limits, marks it seen, notes the directory to make or fix, and says
// whether a file must be uploaded (need) and whether the commit will fix
// something here without an upload (changed). It changes nothing on disk.
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
		changed, err = s.planDir(sr, e)
		return false, changed, err
	case typeFile:
		var old int64
		need, changed, old, err = s.compareFile(sr, e)
		if err != nil {
			return false, false, err
		}
		if !need {
			if old >= 0 {
				s.quota.kept += old
			}
			return false, changed, nil
		}
		if err := s.measure(); err != nil {
			return false, false, err
		}
		s.quota.incoming += e.Size
		if old >= 0 {
			s.quota.replaced += old
		}
		if err := s.quota.check(s.delete); err != nil {
			return false, false, errStatus(http.StatusUnprocessableEntity, "on this node: %v", err)
		}
		cp := *e
		s.need[sr.name+"\x00"+e.Path] = &cp
		return true, false, nil
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
// (never a symlink: none is followed). A missing parent is made by mkdir;
// with a nil mkdir, it is fs.ErrNotExist.
func checkParents(sr *sessRoot, p string, mkdir func(dir string) error) error {
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
			if mkdir == nil {
				return err
			}
			if err := mkdir(cur); err != nil && !errors.Is(err, fs.ErrExist) {
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

// mkdir0755 makes a directory the manifest does not list.
func mkdir0755(sr *sessRoot) func(string) error {
	return func(dir string) error { return sr.dir.Mkdir(dir, 0o755) }
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

// planDir checks a directory entry and notes what the commit must do:
// make it, or set its mode.
func (s *session) planDir(sr *sessRoot, e *entry) (bool, error) {
	mode := fs.FileMode(e.Mode)
	sr.dirModes[e.Path] = mode
	err := checkParents(sr, e.Path, nil)
	if errors.Is(err, fs.ErrNotExist) {
		s.dirs = append(s.dirs, dirOp{root: sr, path: e.Path, mode: mode, create: true})
		return true, nil
	} else if err != nil {
		return false, err
	}
	fi, err := sr.dir.Lstat(e.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.dirs = append(s.dirs, dirOp{root: sr, path: e.Path, mode: mode, create: true})
		return true, nil
	case err != nil:
		return false, fmt.Errorf("root %s: %q: %w", sr.name, e.Path, err)
	case !fi.IsDir():
		return false, conflict("root %s: %q is a %s on this node, a directory on the sender (remove it by hand)", sr.name, e.Path, kindOf(fi.Mode()))
	case fi.Mode().Perm() != mode:
		s.dirs = append(s.dirs, dirOp{root: sr, path: e.Path, mode: mode})
		return true, nil
	}
	return false, nil
}

// applyDir makes the directory of op or sets its mode (at the commit),
// and says whether this transfer changed it.
func (s *session) applyDir(op dirOp) (bool, error) {
	sr := op.root
	if err := checkParents(sr, op.path, mkdir0755(sr)); err != nil {
		return false, err
	}
	fi, err := sr.dir.Lstat(op.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := sr.dir.Mkdir(op.path, op.mode); err != nil {
			return false, fmt.Errorf("root %s: mkdir %q: %w", sr.name, op.path, err)
		}
		// Mkdir applies the umask; the mode is the sender's.
		if err := sr.dir.Chmod(op.path, op.mode); err != nil {
			return false, fmt.Errorf("root %s: chmod %q: %w", sr.name, op.path, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("root %s: %q: %w", sr.name, op.path, err)
	case !fi.IsDir():
		return false, conflict("root %s: %q is a %s on this node, a directory on the sender (remove it by hand)", sr.name, op.path, kindOf(fi.Mode()))
	case fi.Mode().Perm() != op.mode:
		if err := sr.dir.Chmod(op.path, op.mode); err != nil {
			return false, fmt.Errorf("root %s: chmod %q: %w", sr.name, op.path, err)
		}
		return true, nil
	}
	// Made by this transfer to hold a temp file.
	return op.create, nil
}

// compareFile says whether this node lacks e or holds it different (need),
// and the size of the file it holds there (old, -1 if none). Same content
// with another mode or mtime is noted for the commit to fix (fix).
func (s *session) compareFile(sr *sessRoot, e *entry) (need, fix bool, old int64, err error) {
	if err := checkParents(sr, e.Path, nil); errors.Is(err, fs.ErrNotExist) {
		return true, false, -1, nil
	} else if err != nil {
		return false, false, -1, err
	}
	fi, err := sr.dir.Lstat(e.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, false, -1, nil
	case err != nil:
		return false, false, -1, fmt.Errorf("root %s: %q: %w", sr.name, e.Path, err)
	case !fi.Mode().IsRegular():
		return false, false, -1, conflict("root %s: %q is a %s on this node, a file on the sender (remove it by hand)", sr.name, e.Path, kindOf(fi.Mode()))
	case fi.Size() != e.Size:
		return true, false, fi.Size(), nil
	}
	sum, err := hashFile(sr.dir, e.Path, fi, sr.cache)
	if err != nil {
		return false, false, -1, fmt.Errorf("root %s: %w", sr.name, err)
	}
	if sum != e.SHA256 {
		return true, false, fi.Size(), nil
	}
	mtime := time.Unix(0, e.MTime)
	if fi.Mode().Perm() == fs.FileMode(e.Mode) && fi.ModTime().Unix() == mtime.Unix() {
		return false, false, fi.Size(), nil
	}
	s.metas = append(s.metas, metaOp{root: sr, path: e.Path, mode: fs.FileMode(e.Mode), mtime: mtime, sum: sum})
	return false, true, fi.Size(), nil
}

// applyMeta sets the mode and mtime of a file whose content is the same
// (at the commit).
func (s *session) applyMeta(op metaOp) error {
	sr := op.root
	if err := checkParents(sr, op.path, nil); err != nil {
		return err
	}
	if fi, err := sr.dir.Lstat(op.path); err != nil {
		return fmt.Errorf("root %s: %q: %w", sr.name, op.path, err)
	} else if !fi.Mode().IsRegular() {
		return conflict("root %s: %q is a %s on this node, a file on the sender (remove it by hand)", sr.name, op.path, kindOf(fi.Mode()))
	}
	if err := sr.dir.Chmod(op.path, op.mode); err != nil {
		return fmt.Errorf("root %s: chmod %q: %w", sr.name, op.path, err)
	}
	if err := sr.dir.Chtimes(op.path, op.mtime, op.mtime); err != nil {
		return fmt.Errorf("root %s: chtimes %q: %w", sr.name, op.path, err)
	}
	if fi, err := sr.dir.Lstat(op.path); err == nil {
		sr.cache.put(op.path, fi, op.sum)
	}
	return nil
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
// complete (verified, and staged for the commit). On any error the temp
// file is removed (and the session is refused: see Receiver.withSession).
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
		return 0, false, errStatus(http.StatusConflict, "root %s: %q: expected offset %d, got %d", root, p, want, offset)
	}
	u := s.cur
	left := e.Size - u.written
	// Never more than the size asked for (its reservation in the quota),
	// plus one byte to tell a chunk that goes past it.
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
		return n, false, errStatus(http.StatusBadRequest, "root %s: %q: reading the chunk: %v", root, p, err)
	}
	if n > left {
		s.discard()
		return n, false, errStatus(http.StatusBadRequest, "root %s: %q: the chunk goes past the file's size (%d bytes)", root, p, e.Size)
	}
	if u.written < e.Size {
		return n, false, nil
	}
	if err := s.finish(); err != nil {
		s.discard()
		return n, false, err
	}
	delete(s.need, key)
	return n, true, nil
}

// start opens the temp file of e next to its target, making the missing
// directories on the way (with the mode the manifest gives them) under
// applyMu: after EndSessions, not even those are made.
func (s *session) start(sr *sessRoot, key string, e *entry) error {
	s.rc.applyMu.Lock()
	defer s.rc.applyMu.Unlock()
	if err := s.mayWrite(); err != nil {
		return err
	}
	err := checkParents(sr, e.Path, func(dir string) error {
		mode, listed := sr.dirModes[dir]
		if !listed {
			mode = 0o755
		}
		if err := sr.dir.Mkdir(dir, mode); err != nil {
			return err
		}
		s.made = append(s.made, madeDir{root: sr, path: dir})
		if listed {
			return sr.dir.Chmod(dir, mode)
		}
		return nil
	})
	if err != nil {
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

// finish verifies the current upload and readies it for the commit: hash,
// fsync, owner (the replaced file's, else its directory's), mode, mtime.
// The temp file waits in staged; the commit renames it over the target.
func (s *session) finish() error {
	u := s.cur
	sr, e := u.root, u.e
	if sum := hex.EncodeToString(u.h.Sum(nil)); sum != e.SHA256 {
		return conflict("root %s: %q: SHA-256 mismatch: received %s, the manifest says %s", sr.name, e.Path, sum, e.SHA256)
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
	s.staged = append(s.staged, u)
	s.cur = nil
	return nil
}

// place renames a staged file over its target (at the commit). The
// directory is fsynced before the commit answers (see dirty): a crash
// leaves the old file or the new one, never a mix.
func (s *session) place(u *upload) error {
	sr, e := u.root, u.e
	if err := checkParents(sr, e.Path, nil); err != nil {
		return err
	}
	if err := sr.dir.Rename(u.tmp, e.Path); err != nil {
		return fmt.Errorf("root %s: rename into %q: %w", sr.name, e.Path, err)
	}
	s.markDirty(sr, path.Dir(e.Path))
	if fi, err := sr.dir.Lstat(e.Path); err == nil {
		sr.cache.put(e.Path, fi, e.SHA256)
	}
	return nil
}

func (s *session) markDirty(sr *sessRoot, dir string) {
	if s.dirty == nil {
		s.dirty = map[*sessRoot]map[string]bool{}
	}
	if s.dirty[sr] == nil {
		s.dirty[sr] = map[string]bool{}
	}
	s.dirty[sr][dir] = true
}

// syncDirty fsyncs the directories files were renamed into or deleted
// from: then the renames and removals are durable.
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

// rootPlan is what the commit does in one root beyond the manifest's
// changes: the paths delete removes, and stale temp files.
type rootPlan struct {
	sr *sessRoot
	// extra lists the paths the manifest does not list (delete only),
	// each with what it holds, parents first.
	extra [][]string
	// temps are temp files left by an interrupted transfer (delete
	// only).
	temps []string
}

// plan walks the roots of the session, following no symlink, before the
// commit applies anything: it lists what delete removes, and measures
// the bytes of regular files the roots will hold once the commit is
// done: what stays of what is there, plus the staged files.
func (s *session) plan() ([]rootPlan, int64, error) {
	names := make([]string, 0, len(s.roots))
	for n := range s.roots {
		names = append(names, n)
	}
	sort.Strings(names)
	staged := map[*sessRoot]map[string]string{} // temp file -> target
	for _, u := range s.staged {
		if staged[u.root] == nil {
			staged[u.root] = map[string]string{}
		}
		staged[u.root][u.tmp] = u.e.Path
	}
	staleBefore := s.rc.now().Add(-s.rc.idle)
	var plans []rootPlan
	var total int64
	for _, name := range names {
		sr := s.roots[name]
		rp := rootPlan{sr: sr}
		replaced := map[string]bool{}
		for _, target := range staged[sr] {
			replaced[target] = true
		}
		// under is a directory whose whole content is removed (extra) or
		// kept and counted (!extra); the walk visits it in one stretch.
		under, extra := "", false
		err := fs.WalkDir(sr.dir.FS(), ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == "." {
				return nil
			}
			size := func() (int64, error) {
				if !d.Type().IsRegular() {
					return 0, nil
				}
				info, err := d.Info()
				if err != nil {
					return 0, err
				}
				return info.Size(), nil
			}
			if under != "" && strings.HasPrefix(p, under+"/") {
				if extra {
					rp.extra[len(rp.extra)-1] = append(rp.extra[len(rp.extra)-1], p)
					return nil
				}
				n, err := size()
				total += n
				return err
			}
			under = ""
			if strings.HasPrefix(d.Name(), tempPrefix) {
				n, err := size()
				if err != nil {
					return err
				}
				switch _, ours := staged[sr][p]; {
				case ours:
					total += n
				case s.delete && d.Type().IsRegular():
					if info, err := d.Info(); err == nil && info.ModTime().Before(staleBefore) {
						rp.temps = append(rp.temps, p)
					} else {
						total += n
					}
				default:
					total += n
				}
				return skipDir(d)
			}
			if s.delete {
				switch sr.seen[p] {
				case seenEntry, seenAncestor:
				case seenOther:
					// Left alone, inside too.
					under, extra = p, false
				default:
					if checkPath(p) != nil {
						// A name no manifest can carry: the Main skips it
						// too, so it is left alone here.
						under, extra = p, false
						break
					}
					rp.extra = append(rp.extra, []string{p})
					under, extra = p, true
					return nil
				}
			}
			if replaced[p] {
				return nil
			}
			n, err := size()
			total += n
			return err
		})
		if err != nil {
			return nil, 0, fmt.Errorf("root %s: walk: %w", sr.name, err)
		}
		plans = append(plans, rp)
	}
	return plans, total, nil
}

// remove deletes one path the manifest does not list, with what it holds,
// deepest first (a symlink is removed, never what it points to), calling
// step before each removal (failed wraps an error of one). The parent is
// fsynced with the others.
func (s *session) remove(sr *sessRoot, paths []string, step func() error, failed func(error) error) error {
	for i := len(paths) - 1; i >= 0; i-- {
		if err := step(); err != nil {
			return err
		}
		if err := sr.dir.Remove(paths[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return failed(fmt.Errorf("root %s: remove %q: %w", sr.name, paths[i], err))
		}
	}
	s.markDirty(sr, path.Dir(paths[0]))
	s.rc.log.Debug("deleted", "job", s.job.Name, "root", sr.name, "path", paths[0])
	return nil
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

// diskBytes is the size of the regular files under dir, temp files
// aside; it follows no symlink.
func diskBytes(dir *os.Root) (int64, error) {
	var n int64
	err := fs.WalkDir(dir.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != "." && strings.HasPrefix(d.Name(), tempPrefix) {
			return skipDir(d)
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}
