package replication

import (
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
		s := &session{rc: rc, job: &rc.jobs[0], need: map[string]*entry{}, tot: totals{lim: rc.jobs[0].Limits},
			roots: map[string]*sessRoot{"r": {name: "r", path: root, dir: dirRoot, seen: map[string]uint8{}, cache: newHashCache()}}}
		defer s.close()
		e := entry{Path: p, Type: typeDir, Mode: 0o755}
		if !dir {
			e = fileEntry(p, []byte("data"))
		}
		need, _, err := s.apply(s.roots["r"], &e)
		if err == nil && need {
			_, _, err = s.receive("r", p, 0, strings.NewReader("data"))
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
