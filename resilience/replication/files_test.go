package replication

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
)

func TestFilesCopyChangeAndNoChange(t *testing.T) {
	p := newPair(t, nil).start()
	makeFiles(t, p.src, 1000)
	must(t, os.Chmod(filepath.Join(p.src, "d03", "f0300.conf"), 0o600))
	must(t, os.MkdirAll(filepath.Join(p.src, "empty", "dir"), 0o750))

	res := p.mustRun()
	sameTree(t, p.src, p.dst)
	if res.FilesSent != 1000 || p.wire.count(PathChunk) != 1000 {
		t.Fatalf("first run sent %d files in %d chunks, want 1000", res.FilesSent, p.wire.count(PathChunk))
	}
	if !res.OK || res.Files != 1000+10+2 || res.BytesSent != p.wire.total() {
		t.Fatalf("result %+v, %d bytes on the wire", res, p.wire.total())
	}
	if got := <-p.results; got.Job != "conf" || !got.OK || got.Trigger != TriggerManual {
		t.Fatalf("OnResult got %+v", got)
	}

	// One changed file is the only one sent again.
	writeFile(t, filepath.Join(p.src, "d05", "f0517.conf"), "changed\n")
	res = p.mustRun()
	sameTree(t, p.src, p.dst)
	if up := p.wire.uploaded(); len(up) != 1 || up[0] != "d05/f0517.conf" {
		t.Fatalf("uploaded %v, want only d05/f0517.conf", up)
	}
	if res.FilesSent != 1 || res.FilesChanged != 1 {
		t.Fatalf("result %+v", res)
	}

	// No change: the manifest only, no upload.
	res = p.mustRun()
	if n := p.wire.count(PathChunk); n != 0 {
		t.Fatalf("a re-sync without change made %d uploads", n)
	}
	manifest := p.wire.bodies[PathBegin] + p.wire.bodies[PathManifest] + p.wire.bodies[PathCommit]
	if res.BytesSent != manifest || p.wire.total() != manifest || res.FilesChanged != 0 {
		t.Fatalf("a re-sync without change sent %d bytes (%d on the wire), the manifest is %d: %+v", res.BytesSent, p.wire.total(), manifest, res)
	}
	t.Logf("no-change re-sync of %d paths: %d bytes in %d requests", res.Files, res.BytesSent,
		p.wire.count(PathBegin)+p.wire.count(PathManifest)+p.wire.count(PathCommit))

	// A mode or mtime change alone is fixed without an upload.
	must(t, os.Chmod(filepath.Join(p.src, "d01", "f0100.conf"), 0o640))
	res = p.mustRun()
	sameTree(t, p.src, p.dst)
	if p.wire.count(PathChunk) != 0 || res.FilesChanged != 1 {
		t.Fatalf("a mode change: %d uploads, %+v", p.wire.count(PathChunk), res)
	}
	noTemps(t, p.dst)
	if got := p.rc.LastReceived("conf"); !got.Equal(p.clock.Now()) {
		t.Fatalf("LastReceived %v", got)
	}
}

func TestFilesDelete(t *testing.T) {
	for _, del := range []bool{false, true} {
		t.Run(fmt.Sprintf("delete=%t", del), func(t *testing.T) {
			p := newPair(t, func(j *Job) { j.Delete = del }).start()
			writeFile(t, filepath.Join(p.src, "keep.conf"), "keep")
			writeFile(t, filepath.Join(p.src, "sub", "keep2.conf"), "keep2")
			// A symlink on the Main is not replicated, and protects what
			// the Standby holds at that path.
			must(t, os.Symlink("keep.conf", filepath.Join(p.src, "alias.conf")))
			writeFile(t, filepath.Join(p.dst, "alias.conf"), "standby's own")
			writeFile(t, filepath.Join(p.dst, "extra.conf"), "extra")
			writeFile(t, filepath.Join(p.dst, "old", "deep", "x.conf"), "x")
			writeFile(t, filepath.Join(p.dst, "sub", "extra2.conf"), "extra2")
			res := p.mustRun()
			got := listTree(t, p.dst)
			for _, k := range []string{"keep.conf", "sub/keep2.conf", "alias.conf"} {
				if _, ok := got[k]; !ok {
					t.Errorf("%s missing", k)
				}
			}
			for _, k := range []string{"extra.conf", "old", "old/deep/x.conf", "sub/extra2.conf"} {
				if _, ok := got[k]; ok == del {
					t.Errorf("%s: present %t with delete %t", k, ok, del)
				}
			}
			if readFile(t, filepath.Join(p.dst, "alias.conf")) != "standby's own" {
				t.Error("the path of a symlink on the Main was overwritten")
			}
			if want := map[bool]int{false: 0, true: 3}[del]; res.FilesDeleted != want {
				t.Errorf("FilesDeleted %d, want %d", res.FilesDeleted, want)
			}
			if res.Skipped != 1 {
				t.Errorf("Skipped %d, want 1 (the symlink)", res.Skipped)
			}
		})
	}
}

func TestFilesDeleteMustAgree(t *testing.T) {
	p := newPair(t, func(j *Job) { j.Delete = true })
	p.recvJob.Delete = false
	p.start()
	writeFile(t, filepath.Join(p.src, "a.conf"), "a")
	writeFile(t, filepath.Join(p.dst, "extra.conf"), "extra")
	_, err := p.run()
	if err == nil || !strings.Contains(err.Error(), "set delete alike on both nodes") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(p.dst, "extra.conf")); err != nil {
		t.Fatal("extra.conf deleted")
	}
}

func TestFilesBigFileInChunks(t *testing.T) {
	p := newPair(t, nil).start()
	big := make([]byte, 20<<20+12345)
	rand.Read(big)
	must(t, os.WriteFile(filepath.Join(p.src, "big.bin"), big, 0o644))
	res := p.mustRun()
	want := (len(big) + DefaultMaxRequestBytes - 1) / DefaultMaxRequestBytes
	if n := p.wire.count(PathChunk); n != want {
		t.Fatalf("%d chunks, want %d", n, want)
	}
	got, err := os.ReadFile(filepath.Join(p.dst, "big.bin"))
	must(t, err)
	if !bytes.Equal(got, big) {
		t.Fatal("the big file differs")
	}
	if res.BytesSent < int64(len(big)) {
		t.Fatalf("BytesSent %d", res.BytesSent)
	}
	noTemps(t, p.dst)
}

func TestFilesLimits(t *testing.T) {
	cases := []struct {
		name string
		lim  Limits
		want string
	}{
		{"files", Limits{MaxFiles: 3}, "above max_files (3)"},
		{"file size", Limits{MaxFileSize: 1000}, `file "big.bin" is 1.5 KiB, above max_file_mib (1000 B)`},
		{"total size", Limits{MaxTotalSize: 1800}, "above max_total_mib (1.8 KiB)"},
	}
	for _, c := range cases {
		t.Run("sender "+c.name, func(t *testing.T) {
			p := newPair(t, func(j *Job) { j.Limits = c.lim }).start()
			writeFile(t, filepath.Join(p.src, "a.conf"), strings.Repeat("a", 600))
			writeFile(t, filepath.Join(p.src, "b.conf"), strings.Repeat("b", 600))
			writeFile(t, filepath.Join(p.src, "big.bin"), strings.Repeat("c", 1500))
			writeFile(t, filepath.Join(p.src, "d.conf"), "d")
			res, err := p.run()
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(res.Error, c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if n := p.wire.count(PathBegin); n != 0 {
				t.Fatalf("%d requests sent", n)
			}
			if len(listTree(t, p.dst)) != 0 {
				t.Fatal("something was written")
			}
		})
	}
	// The receiver enforces its own limits.
	rcases := []struct {
		name string
		lim  Limits
		want string
	}{
		{"files", Limits{MaxFiles: 3}, "above this node's max_files (3)"},
		{"total size", Limits{MaxTotalSize: 1800}, "above this node's max_total_mib (1.8 KiB)"},
		{"file size", Limits{MaxFileSize: 1000}, `file "big.bin" is 1.5 KiB, above max_file_mib (1000 B)`},
	}
	for _, c := range rcases {
		t.Run("receiver "+c.name, func(t *testing.T) {
			p := newPair(t, nil)
			p.recvJob.Limits = c.lim
			p.start()
			writeFile(t, filepath.Join(p.src, "a.conf"), strings.Repeat("a", 600))
			writeFile(t, filepath.Join(p.src, "b.conf"), strings.Repeat("b", 600))
			writeFile(t, filepath.Join(p.src, "big.bin"), strings.Repeat("c", 1500))
			writeFile(t, filepath.Join(p.src, "d.conf"), "d")
			_, err := p.run()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if p.wire.count(PathChunk) != 0 || len(listTree(t, p.dst)) != 0 {
				t.Fatal("something was sent or written")
			}
		})
	}
}

func TestFilesPathTraversalRefused(t *testing.T) {
	p := newPair(t, nil).start()
	outside := filepath.Dir(p.dst)
	before := listTree(t, outside)
	for _, bad := range []string{"../x", "/etc/passwd", "a/../../x", "a\x00b", "./a", "a//b", "a/", "", "..",
		"a/./b", tempPrefix + "x", "a\nb"} {
		s := p.begin()
		code, out := p.manifest(s, fileEntry(bad, []byte("evil")))
		if code != http.StatusBadRequest || !strings.Contains(out, "invalid path") {
			t.Errorf("%q: %d %s", bad, code, out)
		}
		// Not asked for, and the session refused: an upload of it is
		// refused too.
		if code, out := p.chunk(s, bad, 0, []byte("evil")); code != http.StatusConflict {
			t.Errorf("upload %q: %d %s", bad, code, out)
		}
		for _, typ := range []string{typeDir, typeOther} {
			s := p.begin()
			if code, out := p.manifest(s, entry{Path: bad, Type: typ}); code != http.StatusBadRequest {
				t.Errorf("%s %q: %d %s", typ, bad, code, out)
			}
		}
	}
	if after := listTree(t, outside); len(after) != len(before) {
		t.Fatalf("written outside the root: %v", after)
	}
	if len(listTree(t, p.dst)) != 0 {
		t.Fatal("written inside the root")
	}
}

func TestFilesSymlinkEscapeRefused(t *testing.T) {
	p := newPair(t, nil).start()
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "target.conf"), "outside")
	must(t, os.Symlink(outside, filepath.Join(p.dst, "link")))
	must(t, os.Symlink(filepath.Join(outside, "target.conf"), filepath.Join(p.dst, "file-link")))
	// An in-root symlink to a directory is not followed either.
	must(t, os.Mkdir(filepath.Join(p.dst, "real"), 0o755))
	must(t, os.Symlink("real", filepath.Join(p.dst, "inner-link")))

	for _, e := range []entry{
		fileEntry("link/evil.conf", []byte("evil")),
		fileEntry("link/target.conf", []byte("evil")),
		fileEntry("link/sub/evil.conf", []byte("evil")),
		fileEntry("file-link", []byte("evil")),
		fileEntry("inner-link/x.conf", []byte("evil")),
		{Path: "link", Type: typeDir, Mode: 0o755},
		{Path: "link/sub", Type: typeDir, Mode: 0o755},
	} {
		s := p.begin()
		code, out := p.manifest(s, e)
		if code != http.StatusUnprocessableEntity || !strings.Contains(out, "symlink") {
			t.Errorf("%s %q: %d %s", e.Type, e.Path, code, out)
		}
		if code, out := p.chunk(s, e.Path, 0, []byte("evil")); code != http.StatusConflict {
			t.Errorf("upload %q: %d %s", e.Path, code, out)
		}
	}
	if got := listTree(t, outside); len(got) != 1 || readFile(t, filepath.Join(outside, "target.conf")) != "outside" {
		t.Fatalf("outside changed: %v", got)
	}
	if got := listTree(t, filepath.Join(p.dst, "real")); len(got) != 0 {
		t.Fatalf("written through an in-root symlink: %v", got)
	}

	// From a real sender: the job fails and says why.
	writeFile(t, filepath.Join(p.src, "link", "evil.conf"), "evil")
	_, err := p.run()
	if err == nil || !strings.Contains(err.Error(), `"link" is a symlink on this node`) {
		t.Fatalf("err = %v", err)
	}
	if got := listTree(t, outside); len(got) != 1 {
		t.Fatalf("outside changed: %v", got)
	}
}

func TestFilesHashMismatchKeepsOldFile(t *testing.T) {
	p := newPair(t, nil).start()
	writeFile(t, filepath.Join(p.dst, "a.conf"), "old")
	good := bytes.Repeat([]byte("new!"), 30000) // 120000 bytes: two chunks
	bad := bytes.Clone(good)
	bad[len(bad)-1] = 'X'
	session := func() string {
		t.Helper()
		s := p.begin()
		if code, out := p.manifest(s, fileEntry("a.conf", good)); code != http.StatusOK || !strings.Contains(out, "a.conf") {
			t.Fatalf("manifest: %d %s", code, out)
		}
		return s
	}
	s := session()
	if code, out := p.chunk(s, "a.conf", 0, bad[:60000]); code != http.StatusOK {
		t.Fatalf("chunk 1: %d %s", code, out)
	}
	if len(temps(t, p.dst)) != 1 {
		t.Fatal("no temp file during the upload")
	}
	code, out := p.chunk(s, "a.conf", 60000, bad[60000:])
	if code != http.StatusUnprocessableEntity || !strings.Contains(out, "SHA-256 mismatch") {
		t.Fatalf("chunk 2: %d %s", code, out)
	}
	if got := readFile(t, filepath.Join(p.dst, "a.conf")); got != "old" {
		t.Fatalf("a.conf = %q", got)
	}
	noTemps(t, p.dst)
	// Out of order, past the end: refused, nothing left behind.
	s = session()
	if code, _ := p.chunk(s, "a.conf", 5, good[:10]); code != http.StatusConflict {
		t.Fatalf("out of order: %d", code)
	}
	noTemps(t, p.dst)
	s = session()
	if code, _ := p.chunk(s, "a.conf", 0, good[:60000]); code != http.StatusOK {
		t.Fatalf("chunk 1 again: %d", code)
	}
	if code, out := p.chunk(s, "a.conf", 60000, append(bytes.Clone(good[60000:]), 'y')); code != http.StatusBadRequest || !strings.Contains(out, "past the file's size") {
		t.Fatalf("past the end: %d %s", code, out)
	}
	noTemps(t, p.dst)
	// The commit is refused while a requested file is missing.
	s = session()
	code, out = p.commit(s)
	if code != http.StatusConflict || !strings.Contains(out, "1 requested files were not received") {
		t.Fatalf("commit: %d %s", code, out)
	}
	// The right bytes go through, and are put in place at the commit.
	s = session()
	p.chunk(s, "a.conf", 0, good[:60000])
	if code, out := p.chunk(s, "a.conf", 60000, good[60000:]); code != http.StatusOK || !strings.Contains(out, `"done":true`) {
		t.Fatalf("good chunk: %d %s", code, out)
	}
	if readFile(t, filepath.Join(p.dst, "a.conf")) != "old" || len(temps(t, p.dst)) != 1 {
		t.Fatal("a.conf replaced before the commit")
	}
	if code, out := p.commit(s); code != http.StatusOK {
		t.Fatalf("commit: %d %s", code, out)
	}
	if !bytes.Equal([]byte(readFile(t, filepath.Join(p.dst, "a.conf"))), good) {
		t.Fatal("a.conf not replaced")
	}
	noTemps(t, p.dst)
}

// A file that changes between the manifest and its upload is not sent:
// the transfer stops and is not committed, so that none of it is applied,
// not even the files sent before; no temp file stays.
func TestFilesChangedWhileSent(t *testing.T) {
	p := newPair(t, func(j *Job) { j.Delete = true }).start()
	writeFile(t, filepath.Join(p.src, "a.conf"), "a1")
	writeFile(t, filepath.Join(p.src, "b.conf"), "b1")
	writeFile(t, filepath.Join(p.dst, "a.conf"), "a0")
	writeFile(t, filepath.Join(p.dst, "extra.conf"), "extra")
	before := listTree(t, p.dst)
	p.runner.beforeUpload = func(root, path string) {
		if path == "b.conf" {
			writeFile(t, filepath.Join(p.src, "b.conf"), "b2")
		}
	}
	res, err := p.run()
	if err == nil || !strings.Contains(err.Error(), "b.conf changed while being sent: file 2 of 2") ||
		!strings.Contains(err.Error(), "nothing of it is applied") {
		t.Fatalf("err = %v", err)
	}
	sameMap(t, "the Standby", before, listTree(t, p.dst))
	if res.FilesSent != 1 || p.wire.count(PathAbort) != 1 || p.wire.count(PathCommit) != 0 {
		t.Fatalf("result %+v, %d aborts", res, p.wire.count(PathAbort))
	}
	noTemps(t, p.dst)
	p.runner.beforeUpload = nil
	p.mustRun()
	sameTree(t, p.src, p.dst)
}

// The connection breaks in the middle of a chunk: on the sender's side
// (the body fails) or the server's (it closes the connection): the job
// fails, the old file stays whole, no temp file stays.
func TestFilesInterruptedTransfer(t *testing.T) {
	big := make([]byte, 3<<20)
	rand.Read(big)
	t.Run("sender side", func(t *testing.T) {
		p := newPair(t, nil).start()
		must(t, os.WriteFile(filepath.Join(p.src, "big.bin"), big, 0o644))
		writeFile(t, filepath.Join(p.dst, "big.bin"), "old")
		var chunks atomic.Int32
		p.wire.cut = func(r *http.Request) int64 {
			if r.URL.Path == PathChunk && chunks.Add(1) == 7 {
				return 1000
			}
			return -1
		}
		_, err := p.run()
		if err == nil || !strings.Contains(err.Error(), "connection cut by the test") {
			t.Fatalf("err = %v", err)
		}
		if readFile(t, filepath.Join(p.dst, "big.bin")) != "old" {
			t.Fatal("old file damaged")
		}
		noTemps(t, p.dst)
		p.wire.cut = nil
		p.mustRun()
		sameTree(t, p.src, p.dst)
	})
	t.Run("server side", func(t *testing.T) {
		p := newPair(t, nil)
		var chunks atomic.Int32
		var closed atomic.Bool
		p.startReceiver()
		h := p.rc.Handler()
		p.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == PathChunk && chunks.Add(1) == 7 {
				io.CopyN(io.Discard, r.Body, 1000)
				// Before the close: the sender's abort follows it at once.
				closed.Store(true)
				conn, _, err := http.NewResponseController(w).Hijack()
				must(t, err)
				conn.Close()
				return
			}
			// Once cut, the peer is gone: the abort does not arrive.
			if closed.Load() && r.URL.Path == PathAbort {
				conn, _, _ := http.NewResponseController(w).Hijack()
				conn.Close()
				return
			}
			h.ServeHTTP(w, r)
		})
		p.srv = httptest.NewServer(p.handler)
		t.Cleanup(p.srv.Close)
		p.startRunner()
		must(t, os.WriteFile(filepath.Join(p.src, "big.bin"), big, 0o644))
		writeFile(t, filepath.Join(p.dst, "big.bin"), "old")
		_, err := p.run()
		if err == nil || !strings.Contains(err.Error(), "send conf/big.bin: PUT "+PathChunk) {
			t.Fatalf("err = %v", err)
		}
		if readFile(t, filepath.Join(p.dst, "big.bin")) != "old" {
			t.Fatal("old file damaged")
		}
		// The session holds the first chunks in a temp file until it is
		// dropped for idleness.
		if len(temps(t, p.dst)) != 1 {
			t.Fatalf("temps: %v", temps(t, p.dst))
		}
		p.clock.Add(DefaultSessionIdle + time.Second)
		if code, _ := p.raw(http.MethodPost, PathCommit, nil, nil, testToken); code != http.StatusNotFound {
			t.Fatalf("commit without a session: %d", code)
		}
		noTemps(t, p.dst)
		if readFile(t, filepath.Join(p.dst, "big.bin")) != "old" {
			t.Fatal("old file damaged")
		}
	})
	t.Run("receiver restart", func(t *testing.T) {
		// A crash of the receiver mid-transfer leaves a temp file: the
		// next receiver removes it at start.
		p := newPair(t, nil).start()
		s := p.begin()
		p.manifest(s, fileEntry("x.conf", big))
		p.chunk(s, "x.conf", 0, big[:1000])
		if len(temps(t, p.dst)) != 1 {
			t.Fatal("no temp")
		}
		p.startReceiver()
		noTemps(t, p.dst)
	})
}

func TestFilesWrongToken(t *testing.T) {
	p := newPair(t, nil)
	p.token = "not-the-token-at-all"
	p.start()
	writeFile(t, filepath.Join(p.src, "a.conf"), "a")
	_, err := p.run()
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v", err)
	}
	for _, tok := range []string{"", "wrong", testToken + "x"} {
		code, _ := p.raw(http.MethodPost, PathBegin, nil, []byte(`{"job":"conf","roots":["conf"]}`), tok)
		if code != http.StatusUnauthorized {
			t.Fatalf("token %q: %d", tok, code)
		}
	}
	if len(listTree(t, p.dst)) != 0 || !p.rc.LastReceived("conf").IsZero() {
		t.Fatal("written with a wrong token")
	}
	// An empty configured token refuses everything.
	rc, err := NewReceiver(ReceiverOptions{Jobs: []Job{p.recvJob}})
	must(t, err)
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, PathBegin, strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer ")
	rc.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("empty token: %d", w.Code)
	}
}

func TestReceiverRoutes(t *testing.T) {
	p := newPair(t, nil).start()
	if code, _ := p.raw(http.MethodGet, PathBegin, nil, nil, testToken); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET begin: %d", code)
	}
	if code, _ := p.raw(http.MethodPost, Prefix+"/nope", nil, nil, testToken); code != http.StatusNotFound {
		t.Fatalf("unknown route: %d", code)
	}
	if code, out := p.raw(http.MethodPost, PathBegin, nil, []byte(`{"job":"nope","roots":["conf"]}`), testToken); code != http.StatusNotFound || !strings.Contains(out, "unknown job") {
		t.Fatalf("unknown job: %d %s", code, out)
	}
	if code, out := p.raw(http.MethodPost, PathBegin, nil, []byte(`{"job":"conf","roots":["other"]}`), testToken); code != http.StatusUnprocessableEntity || !strings.Contains(out, "not configured") {
		t.Fatalf("unknown root: %d %s", code, out)
	}
	big := []byte(`{"job":"` + strings.Repeat("x", DefaultMaxRequestBytes) + `"}`)
	if code, _ := p.raw(http.MethodPost, PathBegin, nil, big, testToken); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("big body: %d", code)
	}
	// A new transfer of a job replaces an unfinished one, temp files and
	// all.
	s := p.begin()
	p.manifest(s, fileEntry("x.conf", bytes.Repeat([]byte("x"), 100)))
	p.chunk(s, "x.conf", 0, []byte("xx"))
	p.begin()
	noTemps(t, p.dst)
	if code, _ := p.chunk(s, "x.conf", 2, []byte("xx")); code != http.StatusNotFound {
		t.Fatalf("old session: %d", code)
	}
}

func TestReceiverAcceptRefuses(t *testing.T) {
	p := newPair(t, nil)
	p.recvOpts = func(o *ReceiverOptions) {
		o.Accept = func() error { return errors.New("this node is Active") }
	}
	p.start()
	writeFile(t, filepath.Join(p.src, "a.conf"), "a")
	_, err := p.run()
	if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "this node is Active") {
		t.Fatalf("err = %v", err)
	}
	if len(listTree(t, p.dst)) != 0 {
		t.Fatal("written")
	}
}

func TestFilesMissingRoot(t *testing.T) {
	p := newPair(t, nil).start()
	must(t, os.Remove(p.dst))
	writeFile(t, filepath.Join(p.src, "a.conf"), "a")
	if _, err := p.run(); err == nil || !strings.Contains(err.Error(), "root conf") {
		t.Fatalf("err = %v", err)
	}
	must(t, os.Remove(filepath.Join(p.src, "a.conf")))
	must(t, os.Remove(p.src))
	if _, err := p.run(); err == nil || !strings.Contains(err.Error(), "root conf") || p.wire.count(PathBegin) != 0 {
		t.Fatalf("err = %v", err)
	}
}

func TestFilesTypeConflict(t *testing.T) {
	p := newPair(t, nil).start()
	writeFile(t, filepath.Join(p.src, "a", "x.conf"), "x")
	writeFile(t, filepath.Join(p.dst, "a"), "a file here")
	_, err := p.run()
	if err == nil || !strings.Contains(err.Error(), `"a" is a file on this node, a directory on the sender`) {
		t.Fatalf("err = %v", err)
	}
}

func TestManifestPages(t *testing.T) {
	var entries []entry
	for i := range 3000 {
		entries = append(entries, fileEntry(fmt.Sprintf("dir/<%d>&\"quoted\".conf", i), []byte("x")))
	}
	pages, err := manifestPages("conf", entries, MinMaxRequestBytes)
	must(t, err)
	n := 0
	for _, pg := range pages {
		if len(pg) > MinMaxRequestBytes {
			t.Fatalf("page of %d bytes", len(pg))
		}
		var mr manifestRequest
		must(t, json.Unmarshal(pg, &mr))
		for _, e := range mr.Entries {
			if e != entries[n] {
				t.Fatalf("entry %d: %+v", n, e)
			}
			n++
		}
	}
	if n != len(entries) || len(pages) < 2 {
		t.Fatalf("%d entries in %d pages", n, len(pages))
	}
	if pages, _ := manifestPages("conf", nil, MinMaxRequestBytes); len(pages) != 1 {
		t.Fatal("no page for an empty root")
	}
}

func TestRunnerCancelled(t *testing.T) {
	p := newPair(t, nil).start()
	makeFiles(t, p.src, 50)
	ctx, cancel := context.WithCancel(context.Background())
	p.runner.beforeUpload = func(string, string) { cancel() }
	res, err := p.runner.RunNow(ctx, "conf")
	if err == nil || res.OK || !strings.Contains(res.Error, "context canceled") {
		t.Fatalf("err = %v", err)
	}
	noTemps(t, p.dst)
}

// A name no manifest can carry (a control character) is skipped on the
// Main and left alone on the Standby, even with delete.
func TestFilesUnsendableNames(t *testing.T) {
	p := newPair(t, func(j *Job) { j.Delete = true }).start()
	writeFile(t, filepath.Join(p.src, "bad\nname"), "main")
	writeFile(t, filepath.Join(p.src, "bad\x01dir", "x.conf"), "main")
	writeFile(t, filepath.Join(p.src, "good.conf"), "good")
	writeFile(t, filepath.Join(p.dst, "bad\nname"), "standby")
	res := p.mustRun()
	if res.Skipped != 2 || res.FilesSent != 1 || res.FilesDeleted != 0 {
		t.Fatalf("result %+v", res)
	}
	if readFile(t, filepath.Join(p.dst, "bad\nname")) != "standby" {
		t.Fatal("touched")
	}
}

// A run under way shows how far it has come (a switchover's final sync of
// a large tree shows it): the phase, the files the peer needs and how many
// went; once it ends, no progress is shown.
func TestFilesProgress(t *testing.T) {
	p := newPair(t, nil).start()
	for _, f := range []string{"a.conf", "b.conf", "c.conf"} {
		writeFile(t, filepath.Join(p.src, f), "new "+f)
	}
	writeFile(t, filepath.Join(p.src, "same.conf"), "same")
	writeFile(t, filepath.Join(p.dst, "same.conf"), "same")
	var seen []api.ReplicationProgress
	p.runner.beforeUpload = func(string, string) {
		st := p.runner.Status(p.clock.Now())
		if len(st) != 1 || !st[0].Running || st[0].Progress == nil {
			t.Errorf("during an upload: %+v", st)
			return
		}
		seen = append(seen, *st[0].Progress)
	}
	p.mustRun()
	if len(seen) != 3 {
		t.Fatalf("progress seen at %d uploads, want 3", len(seen))
	}
	for i, pr := range seen {
		if pr.Phase != "uploading" || pr.Files != 4 || pr.ToSend != 3 || pr.Sent != i || pr.BytesSent <= 0 ||
			(i > 0 && pr.BytesSent <= seen[i-1].BytesSent) {
			t.Errorf("before upload %d: %+v; want uploading, 4 files, 3 to send, %d sent, bytes growing", i+1, pr, i)
		}
	}
	if st := p.runner.Status(p.clock.Now()); st[0].Running || st[0].Progress != nil {
		t.Errorf("after the run: running %v, progress %+v", st[0].Running, st[0].Progress)
	}
}
