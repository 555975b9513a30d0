package replication

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// tree is the manifest of one root on the sender.
type tree struct {
	root    Root
	dir     *os.Root
	entries []entry
	// files indexes the file entries by path.
	files map[string]*entry
}

// totals accumulates the size of a job's trees against its limits.
type totals struct {
	lim   Limits
	files int
	bytes int64
}

// add counts one path (a file of size bytes when isFile), or says which
// limit it breaks. Every path counts against MaxFiles: files, directories
// and the paths not replicated alike.
func (t *totals) add(root, p string, isFile bool, size int64) error {
	if isFile && size > t.lim.MaxFileSize {
		return fmt.Errorf("root %s: file %q is %s, above max_file_mib (%s)", root, p, sizeText(size), sizeText(t.lim.MaxFileSize))
	}
	t.files++
	if t.files > t.lim.MaxFiles {
		return fmt.Errorf("the roots hold more than %d paths, above max_files (%d)", t.lim.MaxFiles, t.lim.MaxFiles)
	}
	if !isFile {
		return nil
	}
	t.bytes += size
	if t.bytes > t.lim.MaxTotalSize {
		return fmt.Errorf("the roots hold more than %s, above max_total_mib (%s)", sizeText(t.lim.MaxTotalSize), sizeText(t.lim.MaxTotalSize))
	}
	return nil
}

// buildTree walks r and builds its manifest: directories, regular files
// with their SHA-256, and other paths (symlinks, sockets...) as typeOther,
// which are not replicated. Paths checkPath refuses are skipped and listed
// in skipped. The caller closes tree.dir.
func buildTree(r Root, cache *hashCache, tot *totals, skipped *[]string) (*tree, error) {
	fi, err := os.Stat(r.Path)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", r.Name, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("root %s: %s is not a directory", r.Name, r.Path)
	}
	dir, err := os.OpenRoot(r.Path)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", r.Name, err)
	}
	t := &tree{root: r, dir: dir, files: map[string]*entry{}}
	keep := map[string]bool{}
	err = fs.WalkDir(dir.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if strings.HasPrefix(d.Name(), tempPrefix) {
			// A temp file of this node's receiver: never replicated.
			return skipDir(d)
		}
		if err := checkPath(p); err != nil {
			*skipped = append(*skipped, fmt.Sprintf("%s: %v", r.Name, err))
			return skipDir(d)
		}
		switch {
		case d.IsDir():
			info, err := d.Info()
			if err != nil {
				return err
			}
			if err := tot.add(r.Name, p, false, 0); err != nil {
				return errLimit{err}
			}
			t.entries = append(t.entries, entry{Path: p, Type: typeDir, Mode: uint32(info.Mode().Perm())})
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			if err := tot.add(r.Name, p, true, info.Size()); err != nil {
				return errLimit{err}
			}
			sum, err := hashFile(dir, p, info, cache)
			if err != nil {
				return err
			}
			keep[p] = true
			t.entries = append(t.entries, entry{Path: p, Type: typeFile, Size: info.Size(), SHA256: sum,
				Mode: uint32(info.Mode().Perm()), MTime: info.ModTime().UnixNano()})
		default:
			if err := tot.add(r.Name, p, false, 0); err != nil {
				return errLimit{err}
			}
			*skipped = append(*skipped, fmt.Sprintf("%s: %q is a %s, not replicated", r.Name, p, typeName(d.Type())))
			t.entries = append(t.entries, entry{Path: p, Type: typeOther})
		}
		return nil
	})
	if err != nil {
		dir.Close()
		var lim errLimit
		if errors.As(err, &lim) {
			return nil, lim.error
		}
		return nil, fmt.Errorf("root %s: walk %s: %w", r.Name, r.Path, err)
	}
	cache.prune(func(p string) bool { return keep[p] })
	for i := range t.entries {
		if t.entries[i].Type == typeFile {
			t.files[t.entries[i].Path] = &t.entries[i]
		}
	}
	return t, nil
}

// errLimit carries a limit error out of a walk unwrapped.
type errLimit struct{ error }

func skipDir(d fs.DirEntry) error {
	if d.IsDir() {
		return fs.SkipDir
	}
	return nil
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}
