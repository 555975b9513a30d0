package replication

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Tests of "nothing lost, nothing forged": a session applies everything
// at its commit or nothing; no request is served while this node is not
// Inactive; the limits hold for what is on disk.

// gate is an Accept that refuses once shut, as the runtime's does once
// the node leaves Inactive.
type gate struct{ reason atomic.Pointer[string] }

func (g *gate) accept() error {
	if r := g.reason.Load(); r != nil {
		return errors.New(*r)
	}
	return nil
}

func (g *gate) shut(reason string) { g.reason.Store(&reason) }
func (g *gate) open()              { g.reason.Store(nil) }

func (p *pair) commit(session string) (int, string) {
	p.t.Helper()
	return p.raw(http.MethodPost, PathCommit, url.Values{"session": {session}}, nil, testToken)
}

func (p *pair) abort(session string) (int, string) {
	p.t.Helper()
	return p.raw(http.MethodPost, PathAbort, url.Values{"session": {session}}, nil, testToken)
}

// upload sends content as the file path in chunks of at most n bytes and
// fails the test unless every chunk is taken.
func (p *pair) upload(session, path string, content []byte, n int) {
	p.t.Helper()
	for off := 0; off < len(content); off += n {
		end := min(off+n, len(content))
		if code, out := p.chunk(session, path, int64(off), content[off:end]); code != http.StatusOK {
			p.t.Fatalf("chunk %s@%d: %d %s", path, off, code, out)
		}
	}
}

// mustManifest sends a manifest page that must be taken.
func (p *pair) mustManifest(session string, entries ...entry) string {
	p.t.Helper()
	code, out := p.manifest(session, entries...)
	if code != http.StatusOK {
		p.t.Fatalf("manifest: %d %s", code, out)
	}
	return out
}

// treeSize is the bytes of the regular files under dir.
func treeSize(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	}))
	return n
}

func sameMap(t testing.TB, what string, want, got map[string]string) {
	t.Helper()
	if fmt.Sprint(want) != fmt.Sprint(got) {
		t.Fatalf("%s changed:\nbefore %v\nafter  %v", what, want, got)
	}
}

// standby puts what the Standby holds before a transfer: an old a.conf
// and b.conf, and extra.conf that a commit with delete would remove.
func standby(t testing.TB, dst string) map[string]string {
	t.Helper()
	writeFile(t, filepath.Join(dst, "a.conf"), "old a")
	writeFile(t, filepath.Join(dst, "b.conf"), "old b")
	writeFile(t, filepath.Join(dst, "extra.conf"), "extra")
	return listTree(t, dst)
}

// Every request re-checks Accept: a session opened while this node was
// Inactive is ended, its temp files removed and nothing applied, at
// whichever request the node turns out to be no longer Inactive.
func TestAcceptCheckedOnEveryRequest(t *testing.T) {
	newA := bytes.Repeat([]byte("new a "), 20000) // 120,000 bytes: two chunks
	for _, at := range []string{"manifest", "chunk", "commit", "abort"} {
		t.Run(at, func(t *testing.T) {
			g := &gate{}
			p := newPair(t, func(j *Job) { j.Delete = true })
			p.recvOpts = func(o *ReceiverOptions) { o.Accept = g.accept }
			p.start()
			before := standby(t, p.dst)
			s := p.begin()
			var code int
			var out string
			switch at {
			case "manifest":
				g.shut("this node is Active")
				code, out = p.manifest(s, fileEntry("a.conf", newA))
			case "chunk":
				p.mustManifest(s, fileEntry("a.conf", newA), fileEntry("b.conf", []byte("old b")))
				p.chunk(s, "a.conf", 0, newA[:60000])
				g.shut("this node is Active")
				code, out = p.chunk(s, "a.conf", 60000, newA[60000:])
			case "commit":
				p.mustManifest(s, fileEntry("a.conf", newA), fileEntry("b.conf", []byte("old b")))
				p.upload(s, "a.conf", newA, 60000)
				g.shut("this node is Active")
				code, out = p.commit(s)
			case "abort":
				p.mustManifest(s, fileEntry("a.conf", newA))
				p.chunk(s, "a.conf", 0, newA[:60000])
				g.shut("this node is Active")
				code, out = p.abort(s)
			}
			if code != http.StatusConflict || !strings.Contains(out, "this node is Active") {
				t.Fatalf("%s while Active: %d %s", at, code, out)
			}
			noTemps(t, p.dst)
			sameMap(t, "the Standby", before, listTree(t, p.dst))
			// The session is over: back to Inactive, it still applies
			// nothing.
			g.open()
			if code, out := p.commit(s); code < 400 {
				t.Fatalf("a commit after the refusal: %d %s", code, out)
			}
			sameMap(t, "the Standby", before, listTree(t, p.dst))
			if !p.rc.LastReceived("conf").IsZero() {
				t.Fatal("recorded as received")
			}
		})
	}
}

// An exec job's report is refused too: an Active node does not record a
// receive it did not take.
func TestReportRefusedWhileActive(t *testing.T) {
	g := &gate{}
	rc, err := NewReceiver(ReceiverOptions{Token: testToken, Accept: g.accept,
		Jobs: []Job{{Name: "db", Kind: KindExec, Every: time.Hour}}})
	must(t, err)
	p := &pair{t: t}
	p.srv = httptest.NewServer(rc.Handler())
	t.Cleanup(p.srv.Close)
	body := []byte(`{"job":"db","start":"2026-03-01T10:00:00Z","duration_seconds":1}`)
	g.shut("this node is Active")
	if code, out := p.raw(http.MethodPost, PathReport, nil, body, testToken); code != http.StatusConflict || !strings.Contains(out, "this node is Active") {
		t.Fatalf("report while Active: %d %s", code, out)
	}
	if !rc.LastReceived("db").IsZero() {
		t.Fatal("recorded while Active")
	}
	g.open()
	if code, out := p.raw(http.MethodPost, PathReport, nil, body, testToken); code != http.StatusOK {
		t.Fatalf("report while Inactive: %d %s", code, out)
	}
	if rc.LastReceived("db").IsZero() {
		t.Fatal("not recorded")
	}
}

// Once a request of a session is refused, whatever the cause, the
// session applies nothing: a later commit is refused, the files received
// before are not put in place, nothing is deleted, no temp file stays.
func TestRefusedRequestPoisonsSession(t *testing.T) {
	newA, newB := []byte("new a"), []byte("new b")
	cases := []struct {
		name string
		// refuse makes one refused request and says what it answered.
		refuse func(p *pair, s string) (int, string)
		code   int
		// whole: b.conf too was received before the refusal (else only
		// a.conf).
		whole bool
	}{
		{"manifest page with a bad path", func(p *pair, s string) (int, string) {
			return p.manifest(s, fileEntry("../escape.conf", []byte("x")))
		}, http.StatusBadRequest, true},
		{"manifest page above a limit", func(p *pair, s string) (int, string) {
			return p.manifest(s, fileEntry("huge.bin", bytes.Repeat([]byte("h"), 20<<10)))
		}, http.StatusUnprocessableEntity, true},
		{"manifest page through a symlink", func(p *pair, s string) (int, string) {
			must(t, os.Symlink(t.TempDir(), filepath.Join(p.dst, "link")))
			return p.manifest(s, fileEntry("link/x.conf", []byte("x")))
		}, http.StatusUnprocessableEntity, true},
		{"chunk at a wrong offset", func(p *pair, s string) (int, string) {
			code, out := p.chunk(s, "b.conf", 3, newB[3:])
			// The sender starts the file again, rightly this time.
			if c, o := p.chunk(s, "b.conf", 0, newB); c != http.StatusConflict {
				t.Errorf("b.conf after the refusal: %d %s", c, o)
			}
			return code, out
		}, http.StatusConflict, false},
		{"chunk of a file not asked for", func(p *pair, s string) (int, string) {
			return p.chunk(s, "extra.conf", 0, []byte("forged"))
		}, http.StatusConflict, true},
		{"chunk with a wrong hash", func(p *pair, s string) (int, string) {
			return p.chunk(s, "b.conf", 0, []byte("forgd"))
		}, http.StatusUnprocessableEntity, false},
		{"chunk past the size", func(p *pair, s string) (int, string) {
			return p.chunk(s, "b.conf", 0, []byte("new b and more"))
		}, http.StatusBadRequest, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPair(t, func(j *Job) { j.Delete = true })
			p.recvJob.Limits = Limits{MaxTotalSize: 10 << 10}
			p.start()
			before := standby(t, p.dst)
			s := p.begin()
			p.mustManifest(s, fileEntry("a.conf", newA), fileEntry("b.conf", newB))
			p.upload(s, "a.conf", newA, 1000)
			if c.whole {
				p.upload(s, "b.conf", newB, 1000)
			}
			if code, out := c.refuse(p, s); code != c.code {
				t.Fatalf("the refused request: %d %s, want %d", code, out, c.code)
			}
			unchanged := func() {
				t.Helper()
				after := listTree(t, p.dst)
				delete(after, "link")
				sameMap(t, "the Standby", before, after)
				noTemps(t, p.dst)
			}
			unchanged()
			code, out := p.commit(s)
			if code != http.StatusConflict || !strings.Contains(out, "refused") {
				t.Fatalf("commit after a refusal: %d %s", code, out)
			}
			unchanged()
			if !p.rc.LastReceived("conf").IsZero() {
				t.Fatal("recorded as received")
			}
		})
	}
}

// max_total_mib counts what the job's roots hold on this node, not what
// the sender declares: no sequence of transfers grows them past it.
func TestQuotaCountsWhatIsOnDisk(t *testing.T) {
	const limit = 10 << 10
	file := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 4<<10) }
	t.Run("repeated pushes without delete", func(t *testing.T) {
		p := newPair(t, nil)
		p.recvJob.Limits = Limits{MaxTotalSize: limit}
		p.start()
		for i := range 5 {
			// The Main holds one 4 KiB file, another each time.
			must(t, os.RemoveAll(p.src))
			must(t, os.MkdirAll(p.src, 0o755))
			must(t, os.WriteFile(filepath.Join(p.src, fmt.Sprintf("f%d.bin", i)), file(i), 0o644))
			_, err := p.run()
			switch {
			case i < 2 && err != nil:
				t.Fatalf("push %d: %v", i, err)
			case i >= 2 && (err == nil || !strings.Contains(err.Error(), "max_total_mib")):
				t.Fatalf("push %d: err = %v", i, err)
			}
			if n := treeSize(t, p.dst); n > limit {
				t.Fatalf("after push %d the Standby holds %d bytes, above %d", i, n, limit)
			}
			noTemps(t, p.dst)
		}
	})
	t.Run("the Standby's own files count", func(t *testing.T) {
		p := newPair(t, nil)
		p.recvJob.Limits = Limits{MaxTotalSize: limit}
		p.start()
		writeFile(t, filepath.Join(p.dst, "own.bin"), strings.Repeat("o", 8<<10))
		must(t, os.WriteFile(filepath.Join(p.src, "a.bin"), file(0), 0o644))
		if _, err := p.run(); err == nil || !strings.Contains(err.Error(), "max_total_mib") {
			t.Fatalf("err = %v", err)
		}
		if n := treeSize(t, p.dst); n != 8<<10 {
			t.Fatalf("the Standby holds %d bytes", n)
		}
		// Replacing a file counts the new size, not both.
		writeFile(t, filepath.Join(p.src, "own.bin"), strings.Repeat("O", 9<<10))
		must(t, os.Remove(filepath.Join(p.src, "a.bin")))
		p.mustRun()
		if n := treeSize(t, p.dst); n != 9<<10 {
			t.Fatalf("the Standby holds %d bytes", n)
		}
	})
	t.Run("the job's other roots count", func(t *testing.T) {
		p := newPair(t, nil)
		other := filepath.Join(filepath.Dir(p.dst), "other")
		writeFile(t, filepath.Join(other, "big.bin"), strings.Repeat("x", 8<<10))
		p.recvJob.Roots = append(p.recvJob.Roots, Root{Name: "other", Path: other})
		p.recvJob.Limits = Limits{MaxTotalSize: limit}
		p.start()
		must(t, os.WriteFile(filepath.Join(p.src, "a.bin"), file(0), 0o644))
		if _, err := p.run(); err == nil || !strings.Contains(err.Error(), "max_total_mib") {
			t.Fatalf("err = %v", err)
		}
		if len(listTree(t, p.dst)) != 0 {
			t.Fatal("written")
		}
	})
	t.Run("delete makes room", func(t *testing.T) {
		// A root near its limit whose file is renamed on the Main: with
		// delete, the old name goes at the commit, so the new one fits.
		p := newPair(t, func(j *Job) { j.Delete = true })
		p.recvJob.Limits = Limits{MaxTotalSize: limit}
		p.start()
		writeFile(t, filepath.Join(p.src, "old.bin"), strings.Repeat("x", 8<<10))
		p.mustRun()
		must(t, os.Rename(filepath.Join(p.src, "old.bin"), filepath.Join(p.src, "new.bin")))
		writeFile(t, filepath.Join(p.src, "new.bin"), strings.Repeat("y", 8<<10))
		p.mustRun()
		sameTree(t, p.src, p.dst)
	})
	t.Run("what delete keeps counts at the commit", func(t *testing.T) {
		// A name no manifest can carry is never deleted: it stays, and
		// counts.
		p := newPair(t, func(j *Job) { j.Delete = true })
		p.recvJob.Limits = Limits{MaxTotalSize: limit}
		p.start()
		writeFile(t, filepath.Join(p.dst, "bad\nname"), strings.Repeat("k", 8<<10))
		writeFile(t, filepath.Join(p.dst, "extra.conf"), "extra")
		before := listTree(t, p.dst)
		must(t, os.WriteFile(filepath.Join(p.src, "a.bin"), file(0), 0o644))
		if _, err := p.run(); err == nil || !strings.Contains(err.Error(), "max_total_mib") {
			t.Fatalf("err = %v", err)
		}
		sameMap(t, "the Standby", before, listTree(t, p.dst))
		noTemps(t, p.dst)
	})
}

// EndSessions ends every session at once when the node leaves Inactive:
// their temp files go at once, nothing of them is applied, their next
// requests hear why; transfers go again once the node is Inactive again.
func TestEndSessions(t *testing.T) {
	g := &gate{}
	p := newPair(t, func(j *Job) { j.Delete = true })
	p.recvOpts = func(o *ReceiverOptions) { o.Accept = g.accept }
	p.start()
	before := standby(t, p.dst)
	newA, newB := []byte("new a"), bytes.Repeat([]byte("b"), 100000)
	s := p.begin()
	p.mustManifest(s, fileEntry("a.conf", newA), fileEntry("b.conf", newB))
	p.upload(s, "a.conf", newA, 1000)
	if code, out := p.chunk(s, "b.conf", 0, newB[:60000]); code != http.StatusOK {
		t.Fatalf("chunk: %d %s", code, out)
	}
	if n := len(temps(t, p.dst)); n != 2 {
		t.Fatalf("%d temp files, want 2 (a.conf whole, b.conf begun)", n)
	}

	g.shut("this node is Activating")
	p.rc.EndSessions("this node is Activating")
	noTemps(t, p.dst)
	sameMap(t, "the Standby", before, listTree(t, p.dst))
	if code, out := p.chunk(s, "b.conf", 60000, newB[60000:]); code != http.StatusConflict || !strings.Contains(out, "this node is Activating") {
		t.Fatalf("chunk after EndSessions: %d %s", code, out)
	}
	if code, out := p.commit(s); code != http.StatusConflict || !strings.Contains(out, "this node is Activating") {
		t.Fatalf("commit after EndSessions: %d %s", code, out)
	}
	sameMap(t, "the Standby", before, listTree(t, p.dst))
	if !p.rc.LastReceived("conf").IsZero() {
		t.Fatal("recorded as received")
	}

	// Inactive again: the Main's transfers go through.
	g.open()
	writeFile(t, filepath.Join(p.src, "a.conf"), "new a")
	p.mustRun()
	sameTree(t, p.src, p.dst)
}

// A begin that passed Accept just before EndSessions ran is refused: no
// session outlives EndSessions.
func TestEndSessionsRefusesARacingBegin(t *testing.T) {
	p := newPair(t, nil)
	p.recvOpts = func(o *ReceiverOptions) {
		o.Accept = func() error {
			// The node leaves Inactive right after this answer.
			p.rc.EndSessions("this node is Activating")
			return nil
		}
	}
	p.start()
	body := []byte(`{"job":"conf","roots":["conf"]}`)
	if code, out := p.raw(http.MethodPost, PathBegin, nil, body, testToken); code != http.StatusConflict || !strings.Contains(out, "this node is Activating") {
		t.Fatalf("begin: %d %s", code, out)
	}
}

// threeFiles opens a session that has received new a.conf, b.conf and
// c.conf whole, over the Standby's old ones, and is ready to commit.
func threeFiles(p *pair) (session string, before map[string]string) {
	p.t.Helper()
	for _, n := range []string{"a", "b", "c"} {
		writeFile(p.t, filepath.Join(p.dst, n+".conf"), "old "+n)
	}
	before = listTree(p.t, p.dst)
	s := p.begin()
	var entries []entry
	for _, n := range []string{"a", "b", "c"} {
		entries = append(entries, fileEntry(n+".conf", []byte("new "+n)))
	}
	p.mustManifest(s, entries...)
	for _, n := range []string{"a", "b", "c"} {
		p.upload(s, n+".conf", []byte("new "+n), 1000)
	}
	return s, before
}

// A commit that races with the node leaving Inactive stops at the next
// change: the files it renamed before stay, none is renamed after.
func TestCommitStopsWhenNodeLeavesInactive(t *testing.T) {
	g := &gate{}
	p := newPair(t, nil)
	p.recvOpts = func(o *ReceiverOptions) { o.Accept = g.accept }
	p.start()
	s, _ := threeFiles(p)
	p.rc.beforeApply = func(step int) {
		if step == 1 {
			// Between the first rename and the second.
			g.shut("this node is Active")
		}
	}
	code, out := p.commit(s)
	if code != http.StatusConflict || !strings.Contains(out, "this node is Active") ||
		!strings.Contains(out, "the commit stopped after 1 of 3 changes") {
		t.Fatalf("commit: %d %s", code, out)
	}
	for n, want := range map[string]string{"a": "new a", "b": "old b", "c": "old c"} {
		if got := readFile(t, filepath.Join(p.dst, n+".conf")); got != want {
			t.Errorf("%s.conf = %q, want %q", n, got, want)
		}
	}
	noTemps(t, p.dst)
	if !p.rc.LastReceived("conf").IsZero() {
		t.Fatal("recorded as received")
	}
}

// EndSessions returns only once the change a commit is making is done,
// and the commit makes no other: when it returns, nothing more is written.
func TestEndSessionsWaitsForTheChangeInProgress(t *testing.T) {
	p := newPair(t, nil).start()
	s, _ := threeFiles(p)
	entered, release, waiting := make(chan struct{}), make(chan struct{}), make(chan struct{})
	p.rc.beforeApply = func(step int) {
		if step == 1 {
			close(entered)
			<-release
		}
	}
	p.rc.endWaiting = func() { close(waiting) }
	type answer struct {
		code int
		body string
		err  error
	}
	committed := make(chan answer, 1)
	go func() {
		req, err := http.NewRequest(http.MethodPost, p.srv.URL+PathCommit+"?session="+s, nil)
		if err != nil {
			committed <- answer{err: err}
			return
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			committed <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		committed <- answer{code: resp.StatusCode, body: b.String()}
	}()
	<-entered // the commit holds the lock of the changes, a.conf renamed
	ended := make(chan struct{})
	go func() {
		p.rc.EndSessions("this node is Activating")
		close(ended)
	}()
	<-waiting
	select {
	case <-ended:
		t.Fatal("EndSessions returned while a commit was applying")
	default:
	}
	close(release)
	<-ended
	// What the targets hold when EndSessions returns (the temp files of
	// b.conf and c.conf go when the commit answers: they never replace
	// anything).
	contents := func() map[string]string {
		m := map[string]string{}
		for _, n := range []string{"a", "b", "c"} {
			m[n] = readFile(t, filepath.Join(p.dst, n+".conf"))
		}
		return m
	}
	atEnd := contents()
	a := <-committed
	if a.err != nil || a.code != http.StatusConflict || !strings.Contains(a.body, "this node is Activating") ||
		!strings.Contains(a.body, "the commit stopped after 1 of 3 changes") {
		t.Fatalf("commit: %d %s %v", a.code, a.body, a.err)
	}
	want := map[string]string{"a": "new a", "b": "old b", "c": "old c"}
	sameMap(t, "the Standby when EndSessions returned", want, atEnd)
	sameMap(t, "the Standby after EndSessions returned", want, contents())
	noTemps(t, p.dst)
}
