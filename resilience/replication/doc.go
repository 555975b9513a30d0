// Package replication copies data from the Active Main to the Standby, as
// one safe and visible action instead of XiVO's silent hourly copy.
//
// Two kinds of jobs run on the Main (the runtime runs them only while the
// Main is the Active node):
//
//   - exec jobs run the admin's command (a database dump piped into a load
//     on the Standby over SSH, say) with a timeout; on timeout the whole
//     process group is killed. The exit status and the tail of the output
//     are kept as the job's last result.
//   - files jobs copy directory trees to the Standby over the resman API
//     itself (bearer token, the peer's api URL), with no SSH: the sender
//     (Runner) builds a manifest of each root (relative path, type, size,
//     mode, mtime, SHA-256), the receiver (Receiver, mounted on the
//     Standby's API) answers which files it lacks or holds different, and
//     only those are uploaded, in chunks that fit one API request. The
//     receiver verifies each file's hash into a temp file in the same
//     directory and applies the transfer whole at its commit (rename over
//     the target, fsync of the directory; with delete, removal of what the
//     manifest does not list), or nothing of it: a refused request poisons
//     its session, and every request checks again that the node is
//     Inactive. It writes only under its own configured roots: paths with
//     "..", absolute paths, NUL and control characters are refused, no
//     symlink is followed or created, the roots never grow past
//     max_total_mib as counted on disk, and a temp file never outlives a
//     failed transfer.
//
// Every run ends in a Result: start, duration, ok or failed, error, bytes
// sent, files changed. The Runner keeps the last Result of each job in a
// JSON file of its data dir, so status and staleness (a job whose last
// success is older than its MaxAge) survive a restart; the Receiver records
// when it last received each job, so the Standby knows how fresh its copy
// is. Both export Prometheus metrics and api.Replication entries for the
// node's status.
package replication
