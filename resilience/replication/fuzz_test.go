package replication

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzCheckPath: whatever checkPath accepts names a location strictly
// inside the root it is joined to, and holds nothing the receiver must
// refuse.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"a", "a/b.conf", "../x", "/etc/passwd", "a/../../x", "a\x00b", "./a", "a//b", "a/",
		"", "..", "...", "a/..b", "..a/b", "a/.", tempPrefix + "x", "a/" + tempPrefix, "é/ü", "a\\..\\b", "\xff",
		strings.Repeat("a", 256), strings.Repeat("a/", 2049)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		err := checkPath(p)
		if err == nil {
			root := "/srv/root"
			joined := filepath.Join(root, p)
			switch {
			case !filepath.IsLocal(p):
				t.Fatalf("accepted %q, not local", p)
			case filepath.Clean(p) != p:
				t.Fatalf("accepted %q, not clean", p)
			case !strings.HasPrefix(joined, root+"/") || joined == root:
				t.Fatalf("accepted %q, joined to %q", p, joined)
			case strings.ContainsRune(p, 0) || !utf8.ValidString(p) || len(p) > maxPathLen:
				t.Fatalf("accepted %q", p)
			}
			for _, c := range strings.Split(p, "/") {
				if c == ".." || c == "." || c == "" || strings.HasPrefix(c, tempPrefix) || len(c) > maxNameLen {
					t.Fatalf("accepted %q with component %q", p, c)
				}
			}
			return
		}
		if !strings.Contains(err.Error(), "invalid path") {
			t.Fatalf("error %q", err)
		}
	})
}

// FuzzReceiverStaysInRoot: whatever path a manifest names, the receiver
// writes nothing outside its root, even with a symlink in the root that
// points out of it.
func FuzzReceiverStaysInRoot(f *testing.F) {
	for _, s := range []string{"a", "link/x", "link/../x", "../x", "/tmp/x", "a/b/c", "link", "in/../../x", "a\x00"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	base := f.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	must(f, os.MkdirAll(root, 0o755))
	must(f, os.MkdirAll(outside, 0o755))
	must(f, os.Symlink(outside, filepath.Join(root, "link")))
	must(f, os.Symlink("../outside", filepath.Join(root, "rel-link")))
	rc, err := NewReceiver(ReceiverOptions{Token: testToken, Jobs: []Job{{Name: "j", Every: time.Hour,
		Roots: []Root{{Name: "r", Path: root}}}}})
	must(f, err)
	f.Fuzz(func(t *testing.T, p string, dir bool) {
		dirRoot, err := os.OpenRoot(root)
		must(t, err)
		s := rc.newSession(&rc.jobs[0])
		s.addRoot(rc.jobs[0].Roots[0], dirRoot)
		s.mu.Lock()
		defer func() {
			s.close()
			s.mu.Unlock()
		}()
		e := entry{Path: p, Type: typeDir, Mode: 0o755}
		if !dir {
			e = fileEntry(p, []byte("data"))
		}
		need, _, err := s.apply(s.roots["r"], &e)
		if err == nil && need {
			_, _, err = s.receive("r", p, 0, strings.NewReader("data"))
		}
		if err == nil {
			_, err = rc.commit(s)
		}
		if err == nil && checkPath(p) != nil {
			t.Fatalf("accepted %q", p)
		}
		entries, err := os.ReadDir(outside)
		must(t, err)
		if len(entries) != 0 {
			t.Fatalf("%q: written outside the root", p)
		}
		entries, err = os.ReadDir(base)
		must(t, err)
		if len(entries) != 2 {
			t.Fatalf("%q: written next to the root", p)
		}
	})
}

// FuzzManifestPage feeds any body to the receiver as a manifest page (the
// wire decoding and the checks of every entry), then commits. Whatever the
// body: no panic, an answer the protocol knows, nothing written outside
// the root, only file paths of the page asked for; and a refused page
// poisons its session: the commit that follows is refused and the root is
// as it was. The seeds are in testdata/fuzz/FuzzManifestPage.
func FuzzManifestPage(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		base := t.TempDir()
		root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
		writeFile(t, filepath.Join(root, "keep.conf"), "keep")
		writeFile(t, filepath.Join(root, "sub", "old.conf"), "old")
		writeFile(t, filepath.Join(outside, "target.conf"), "outside")
		must(t, os.Symlink(outside, filepath.Join(root, "link")))
		rc, err := NewReceiver(ReceiverOptions{Token: testToken, Jobs: []Job{{Name: "j", Every: time.Hour, Delete: true,
			Roots: []Root{{Name: "r", Path: root}}, Limits: Limits{MaxFiles: 50, MaxFileSize: 1 << 20, MaxTotalSize: 2 << 20}}}})
		must(t, err)
		h := rc.Handler()
		do := func(method, path string, q url.Values, body []byte) (int, []byte) {
			req := httptest.NewRequest(method, path+"?"+q.Encode(), bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			return w.Code, w.Body.Bytes()
		}
		before, beforeOut := listTree(t, root), listTree(t, outside)

		code, out := do(http.MethodPost, PathBegin, nil, []byte(`{"job":"j","roots":["r"],"delete":true}`))
		if code != http.StatusOK {
			t.Fatalf("begin: %d %s", code, out)
		}
		var br beginResponse
		must(t, json.Unmarshal(out, &br))
		q := url.Values{"session": {br.Session}}

		code, out = do(http.MethodPost, PathManifest, q, body)
		refused := code != http.StatusOK
		var need []string
		switch code {
		case http.StatusOK:
			var mr manifestResponse
			if err := json.Unmarshal(out, &mr); err != nil {
				t.Fatalf("answer %s: %v", out, err)
			}
			// The receiver reads the first JSON value of the body, as
			// here.
			var req manifestRequest
			must(t, json.NewDecoder(bytes.NewReader(body)).Decode(&req))
			files := map[string]bool{}
			for _, e := range req.Entries {
				if e.Type == typeFile {
					files[e.Path] = true
				}
			}
			for _, p := range mr.Need {
				if !files[p] || checkPath(p) != nil {
					t.Fatalf("asked for %q, no file path of the page", p)
				}
			}
			need = mr.Need
		case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("manifest: %d %s", code, out)
		}

		code, out = do(http.MethodPost, PathCommit, q, nil)
		applied := code == http.StatusOK
		switch {
		case refused && code != http.StatusConflict:
			t.Fatalf("commit after a refused page: %d %s", code, out)
		case len(need) > 0 && code != http.StatusConflict:
			t.Fatalf("commit with %d files missing: %d %s", len(need), code, out)
		case len(need) == 0 && !applied && code != http.StatusConflict && code != http.StatusUnprocessableEntity:
			t.Fatalf("commit: %d %s", code, out)
		}
		if !applied {
			sameMap(t, "the root after a refused transfer", before, listTree(t, root))
		}
		sameMap(t, "outside the root", beforeOut, listTree(t, outside))
		if entries, _ := os.ReadDir(base); len(entries) != 2 {
			t.Fatalf("written next to the root: %v", entries)
		}
		noTemps(t, root)
	})
}
