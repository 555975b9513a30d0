package replication

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
)

// statKey identifies one version of a file: when any part changes, its
// content may have changed and the cached hash is dropped.
type statKey struct {
	size  int64
	mtime int64
	ctime int64
	ino   uint64
	dev   uint64
}

// hashCache remembers the SHA-256 of the files of one root by path, so
// that an unchanged file is not read again at every run.
type hashCache struct {
	mu sync.Mutex
	m  map[string]cachedHash
}

type cachedHash struct {
	key statKey
	sum string
}

func newHashCache() *hashCache { return &hashCache{m: map[string]cachedHash{}} }

func (c *hashCache) get(p string, fi fs.FileInfo) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.m[p]
	if !ok || h.key != keyOf(fi) {
		return "", false
	}
	return h.sum, true
}

func (c *hashCache) put(p string, fi fs.FileInfo, sum string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[p] = cachedHash{key: keyOf(fi), sum: sum}
}

// prune keeps only the paths keep accepts.
func (c *hashCache) prune(keep func(string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.m {
		if !keep(p) {
			delete(c.m, p)
		}
	}
}

// hashFile returns the SHA-256 (hex) of the regular file p under root,
// from the cache when its stat is unchanged. fi is the file's Lstat.
func hashFile(root *os.Root, p string, fi fs.FileInfo, cache *hashCache) (string, error) {
	if cache != nil {
		if sum, ok := cache.get(p, fi); ok {
			return sum, nil
		}
	}
	f, err := root.Open(p)
	if err != nil {
		return "", fmt.Errorf("open %q: %w", p, err)
	}
	defer f.Close()
	// The stat of the open file is the version hashed: a change during the
	// read changes its ctime, so the cache misses next time.
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("stat %q: %w", p, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%q is no longer a regular file", p)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %q: %w", p, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if cache != nil {
		cache.put(p, st, sum)
	}
	return sum, nil
}
