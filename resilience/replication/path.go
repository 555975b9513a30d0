package replication

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits of a manifest path.
const (
	// maxPathLen is the longest relative path, in bytes (PATH_MAX).
	maxPathLen = 4096
	// maxNameLen is the longest path component, in bytes (NAME_MAX).
	maxNameLen = 255
	// tempPrefix starts the names of the receiver's temp files. Paths
	// with a component starting with it are never replicated.
	tempPrefix = ".resman-tmp-"
)

// errBadPath marks a manifest path the receiver refuses.
var errBadPath = errors.New("invalid path")

// checkPath accepts a manifest path: relative, slash-separated, clean (no
// empty, "." or ".." component), valid UTF-8 without NUL or control
// characters, at most maxPathLen bytes with components of at most
// maxNameLen bytes, and no component starting with tempPrefix. What it
// accepts names a location strictly inside the root it is joined to.
func checkPath(p string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", errBadPath, p, why) }
	switch {
	case p == "":
		return bad("empty")
	case len(p) > maxPathLen:
		return bad(fmt.Sprintf("longer than %d bytes", maxPathLen))
	case strings.IndexByte(p, 0) >= 0:
		return bad("contains a NUL byte")
	case !utf8.ValidString(p):
		return bad("not valid UTF-8")
	case p[0] == '/':
		return bad("absolute")
	}
	for _, c := range p {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return bad("contains a control character")
		}
	}
	for c := range strings.SplitSeq(p, "/") {
		switch {
		case c == "":
			return bad("empty component (// or a trailing /)")
		case c == "." || c == "..":
			return bad(fmt.Sprintf("%q component", c))
		case len(c) > maxNameLen:
			return bad(fmt.Sprintf("a component is longer than %d bytes", maxNameLen))
		case strings.HasPrefix(c, tempPrefix):
			return bad(fmt.Sprintf("names starting with %s are reserved for temp files", tempPrefix))
		}
	}
	return nil
}
