package replication

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Kinds of job.
const (
	// KindExec runs a command.
	KindExec = "exec"
	// KindFiles copies directory trees over the resman API.
	KindFiles = "files"
)

// Defaults of a Job and of the transfer.
const (
	// DefaultTimeout bounds one run of a job.
	DefaultTimeout = 30 * time.Minute
	// DefaultMaxFiles is the default Limits.MaxFiles.
	DefaultMaxFiles = 100_000
	// DefaultMaxFileSize is the default Limits.MaxFileSize: 1 GiB.
	DefaultMaxFileSize = 1 << 30
	// DefaultMaxTotalSize is the default Limits.MaxTotalSize: 10 GiB.
	DefaultMaxTotalSize = 10 << 30
	// DefaultMaxRequestBytes is the largest request body the sender sends
	// and the receiver accepts: the node API's body limit (64 KiB, the
	// BodyLimit of resilience/web). A chunk of a file is that large.
	DefaultMaxRequestBytes = 64 << 10
	// MinMaxRequestBytes is the smallest accepted MaxRequestBytes: one
	// manifest entry with the longest path must fit.
	MinMaxRequestBytes = 16 << 10
	// DefaultRequestTimeout bounds one request of a files job (a manifest
	// page may make the receiver hash large files).
	DefaultRequestTimeout = 5 * time.Minute
)

// Limits bound what a files job copies. A zero field takes its default.
// The sender refuses to start beyond them and the receiver refuses to take
// more, each with an error naming the limit by its config key.
type Limits struct {
	// MaxFiles is the most paths (files, directories, symlinks...) the
	// roots of the job may hold (max_files).
	MaxFiles int
	// MaxFileSize is the largest single file, in bytes (max_file_mib).
	MaxFileSize int64
	// MaxTotalSize is the most bytes the roots may hold in all
	// (max_total_mib).
	MaxTotalSize int64
}

// Root is one directory tree of a files job. Name identifies the tree on
// both nodes; Path, an absolute directory, may differ between them.
type Root struct {
	Name string
	Path string
}

// Job is one replication job.
type Job struct {
	// Name is unique among jobs, the same on both nodes.
	Name string
	// Kind is KindExec or KindFiles; empty means KindFiles when Roots is
	// set, else KindExec.
	Kind string
	// Run is the command of an exec job (argv). On the receiver it may be
	// empty.
	Run []string
	// Every is the period between scheduled runs; above 0.
	Every time.Duration
	// MaxAge is the age of the last success beyond which the job is
	// stale; at least Every. Default: twice Every.
	MaxAge time.Duration
	// Timeout bounds one run. Default: DefaultTimeout.
	Timeout time.Duration
	// Roots are the trees of a files job, at least one.
	Roots []Root
	// Delete removes, on the receiver, what the sender's roots do not
	// hold. Both nodes must agree on it.
	Delete bool
	// Limits of a files job.
	Limits Limits
}

// normalize fills the defaults of a copy of j and checks it.
func (j Job) normalize() (Job, error) {
	if err := checkName(j.Name); err != nil {
		return j, fmt.Errorf("job name: %w", err)
	}
	wrap := func(format string, args ...any) error {
		return fmt.Errorf("job %s: "+format, append([]any{j.Name}, args...)...)
	}
	if j.Kind == "" {
		j.Kind = KindExec
		if len(j.Roots) > 0 {
			j.Kind = KindFiles
		}
	}
	switch j.Kind {
	case KindExec:
		if len(j.Roots) > 0 {
			return j, wrap("an exec job has no roots")
		}
	case KindFiles:
		if len(j.Run) > 0 {
			return j, wrap("a files job has no run command")
		}
		if len(j.Roots) == 0 {
			return j, wrap("a files job needs at least one root")
		}
	default:
		return j, wrap("kind must be %s or %s, got %q", KindExec, KindFiles, j.Kind)
	}
	if j.Every <= 0 {
		return j, wrap("every must be above 0, got %s", j.Every)
	}
	if j.MaxAge == 0 {
		j.MaxAge = 2 * j.Every
	}
	if j.MaxAge < j.Every {
		return j, wrap("max_age (%s) must be at least every (%s)", j.MaxAge, j.Every)
	}
	if j.Timeout == 0 {
		j.Timeout = DefaultTimeout
	}
	if j.Timeout < 0 {
		return j, wrap("timeout must be above 0, got %s", j.Timeout)
	}
	seen := map[string]bool{}
	roots := make([]Root, len(j.Roots))
	for i, r := range j.Roots {
		if err := checkName(r.Name); err != nil {
			return j, wrap("root %d name: %w", i, err)
		}
		if seen[r.Name] {
			return j, wrap("duplicate root name %q", r.Name)
		}
		seen[r.Name] = true
		if !filepath.IsAbs(r.Path) {
			return j, wrap("root %s: path must be absolute, got %q", r.Name, r.Path)
		}
		roots[i] = Root{Name: r.Name, Path: filepath.Clean(r.Path)}
	}
	j.Roots = roots
	j.Run = append([]string(nil), j.Run...)
	l := &j.Limits
	if l.MaxFiles == 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	if l.MaxFileSize == 0 {
		l.MaxFileSize = DefaultMaxFileSize
	}
	if l.MaxTotalSize == 0 {
		l.MaxTotalSize = DefaultMaxTotalSize
	}
	if l.MaxFiles < 0 || l.MaxFileSize < 0 || l.MaxTotalSize < 0 {
		return j, wrap("limits must not be negative")
	}
	return j, nil
}

// normalizeJobs normalizes jobs and checks their names are unique.
func normalizeJobs(jobs []Job) ([]Job, error) {
	out := make([]Job, 0, len(jobs))
	seen := map[string]bool{}
	for _, j := range jobs {
		n, err := j.normalize()
		if err != nil {
			return nil, err
		}
		if seen[n.Name] {
			return nil, fmt.Errorf("duplicate job name %q", n.Name)
		}
		seen[n.Name] = true
		out = append(out, n)
	}
	return out, nil
}

// checkName accepts a job or root name: 1 to 64 characters among letters,
// digits, '-', '_' and '.', not starting with '.'.
func checkName(s string) error {
	if s == "" {
		return errors.New("required")
	}
	if len(s) > 64 {
		return fmt.Errorf("at most 64 characters, got %d", len(s))
	}
	if strings.HasPrefix(s, ".") {
		return fmt.Errorf("must not start with '.', got %q", s)
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return fmt.Errorf("only letters, digits, '-', '_' and '.', got %q", s)
		}
	}
	return nil
}

// Stale says whether a job whose last success was at last is stale at now
// with maxAge: it never succeeded, or longer ago than maxAge.
func Stale(last, now time.Time, maxAge time.Duration) bool {
	return last.IsZero() || now.Sub(last) > maxAge
}

// sizeText prints a byte count for error messages.
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
