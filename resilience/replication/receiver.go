package replication

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/auth"
)

// DefaultSessionIdle is how long a transfer session may stay without a
// request before the receiver drops it and its temp files.
const DefaultSessionIdle = 10 * time.Minute

// ReceiverOptions configure a Receiver.
type ReceiverOptions struct {
	// Jobs are this node's replication jobs: a files job's Roots are where
	// this node keeps the copies; MaxAge says when a receive is stale.
	Jobs []Job
	// Token is the bearer token the sender presents (api.token). An
	// empty Token refuses every request.
	Token string
	// DataDir holds replication-received.json, the last receive of each
	// job. Empty keeps it in memory only.
	DataDir string
	// Logger gets the logs, tagged component=replication; nil discards.
	Logger *slog.Logger
	// Registerer receives the receiver's metrics; nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// MaxRequestBytes is the largest request body accepted. Default:
	// DefaultMaxRequestBytes, the node API's own limit.
	MaxRequestBytes int
	// SessionIdle drops a session left without a request that long.
	// Default: DefaultSessionIdle.
	SessionIdle time.Duration
	// Accept, when set, is asked at every request (begin, manifest,
	// chunk, commit, abort, report), and again before each change a
	// commit applies; an error refuses the request (409) with that
	// message and ends its session, which then applies nothing more.
	// Wire it to refuse unless this node is Inactive, so that the Main
	// never overwrites a node that serves calls; and call EndSessions
	// when the node leaves Inactive.
	Accept func() error
}

// Receiver is the Standby's side of files jobs: an http.Handler under
// Prefix that writes what the sender pushes under this node's roots, and
// the record of the last receive of each job. It is safe for concurrent
// use.
type Receiver struct {
	jobs    []Job
	byName  map[string]*Job
	log     *slog.Logger
	metrics *receiverMetrics
	now     func() time.Time
	maxReq  int
	idle    time.Duration
	accept  func() error
	// saver persists the receives (nil without a data dir).
	saver *saver
	token auth.Token

	// applyMu is held while a session changes what its roots hold (the
	// changes of a commit, the directories made for a temp file), each
	// change checked against Accept and EndSessions under it:
	// EndSessions takes it to wait for the change in progress.
	applyMu sync.Mutex
	// Test hooks: beforeApply runs before each change of a commit, with
	// its index; endWaiting when EndSessions has marked the sessions and
	// waits for applyMu.
	beforeApply func(step int)
	endWaiting  func()

	mu sync.Mutex
	// ends counts the calls of EndSessions: a begin that raced with one
	// is refused.
	ends      uint64
	endReason string
	sessions  map[string]*session // by id
	byJob     map[string]*session
	state     map[string]Received
	caches    map[string]*hashCache // by job "/" root
}

// Received is the last successful receive of one job.
type Received struct {
	// At is when the receive ended (this node's clock).
	At time.Time `json:"at"`
	// Kind of the job.
	Kind string `json:"kind"`
	// FilesChanged counts the paths written, fixed or deleted (files jobs).
	FilesChanged int `json:"files_changed"`
	// BytesReceived counts the file bytes received (files jobs).
	BytesReceived int64 `json:"bytes_received"`
}

type receiverState struct {
	Version int                 `json:"version"`
	Jobs    map[string]Received `json:"jobs"`
}

// NewReceiver checks opts, loads the persisted receives and removes the
// temp files a crash may have left under the roots.
func NewReceiver(opts ReceiverOptions) (*Receiver, error) {
	jobs, err := normalizeJobs(opts.Jobs)
	if err != nil {
		return nil, fmt.Errorf("replication receiver: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rc := &Receiver{
		jobs:     jobs,
		byName:   map[string]*Job{},
		log:      logger.With("component", "replication"),
		now:      opts.Now,
		maxReq:   opts.MaxRequestBytes,
		idle:     opts.SessionIdle,
		accept:   opts.Accept,
		sessions: map[string]*session{},
		byJob:    map[string]*session{},
		state:    map[string]Received{},
		caches:   map[string]*hashCache{},
	}
	for i := range rc.jobs {
		rc.byName[rc.jobs[i].Name] = &rc.jobs[i]
	}
	if rc.now == nil {
		rc.now = time.Now
	}
	if rc.maxReq == 0 {
		rc.maxReq = DefaultMaxRequestBytes
	}
	if rc.maxReq < MinMaxRequestBytes {
		return nil, fmt.Errorf("replication receiver: MaxRequestBytes must be at least %d, got %d", MinMaxRequestBytes, rc.maxReq)
	}
	if rc.idle <= 0 {
		rc.idle = DefaultSessionIdle
	}
	if opts.Token != "" {
		rc.token = auth.NewToken(opts.Token)
	} else {
		rc.log.Warn("no API token: every replication push will be refused")
	}
	if rc.metrics, err = newReceiverMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	if opts.DataDir != "" {
		if err := ensureDir(opts.DataDir); err != nil {
			return nil, fmt.Errorf("replication receiver: %w", err)
		}
		rc.saver = &saver{path: filepath.Join(opts.DataDir, receiverStateFile)}
		var st receiverState
		if err := loadJSON(rc.saver.path, &st); err != nil {
			// Forgetting only makes the jobs look stale: visible, and
			// mended by the next receive.
			rc.log.Error("cannot load the last receives; every job counts as never received", "err", err)
		}
		for name, got := range st.Jobs {
			if _, ok := rc.byName[name]; ok {
				rc.state[name] = got
			}
		}
	}
	for _, j := range rc.jobs {
		if got, ok := rc.state[j.Name]; ok {
			rc.metrics.lastReceived.WithLabelValues(j.Name).Set(float64(got.At.UnixNano()) / 1e9)
		}
		rc.metrics.bytesReceived.WithLabelValues(j.Name)
		for _, root := range j.Roots {
			rc.caches[j.Name+"/"+root.Name] = newHashCache()
			if n, err := removeTemps(root.Path, 0, rc.now()); err != nil {
				rc.log.Warn("cannot clean temp files", "job", j.Name, "root", root.Name, "path", root.Path, "err", err)
			} else if n > 0 {
				rc.log.Info("removed temp files of an interrupted transfer", "job", j.Name, "root", root.Name, "count", n)
			}
		}
	}
	return rc, nil
}

// LastReceived is when job was last received successfully; zero if never.
func (rc *Receiver) LastReceived(job string) time.Time {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.state[job].At
}

// Status lists every job as this node received it: LastRun and
// LastSuccess are the last receive, Stale says whether it is older than
// the job's MaxAge (or never happened).
func (rc *Receiver) Status(now time.Time) []api.Replication {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]api.Replication, 0, len(rc.jobs))
	for _, j := range rc.jobs {
		got, ok := rc.state[j.Name]
		st := api.Replication{
			Name: j.Name, Kind: j.Kind, Direction: DirectionReceive,
			LastRun: got.At, OK: ok, LastSuccess: got.At,
			MaxAgeSeconds: j.MaxAge.Seconds(),
			Stale:         Stale(got.At, now, j.MaxAge),
			FilesChanged:  got.FilesChanged,
		}
		if !ok {
			st.Error = "never received"
		} else {
			st.AgeSeconds = max(0, now.Sub(got.At).Seconds())
		}
		out = append(out, st)
	}
	return out
}

// StaleJobs names the jobs last received longer ago than their MaxAge, or
// never: what makes the Standby not ready to take over.
func (rc *Receiver) StaleJobs(now time.Time) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, j := range rc.jobs {
		if Stale(rc.state[j.Name].At, now, j.MaxAge) {
			out = append(out, j.Name)
		}
	}
	return out
}

// statusError is an answer other than 2xx.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func errStatus(code int, format string, args ...any) error {
	return &statusError{code: code, msg: fmt.Sprintf(format, args...)}
}

// Handler serves the receiver's routes (see Prefix). Every request needs
// the bearer token; a wrong one gets 401 and changes nothing.
func (rc *Receiver) Handler() http.Handler {
	return http.HandlerFunc(rc.serve)
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	method := http.MethodPost
	switch r.URL.Path {
	case PathBegin, PathManifest, PathCommit, PathAbort, PathReport:
	case PathChunk:
		method = http.MethodPut
	default:
		writeJSON(w, http.StatusNotFound, api.Error{Error: "not found"})
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		writeJSON(w, http.StatusMethodNotAllowed, api.Error{Error: fmt.Sprintf("method %s not allowed; allowed: %s", r.Method, method)})
		return
	}
	if !rc.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="resman"`)
		writeJSON(w, http.StatusUnauthorized, api.Error{Error: "a valid bearer token is required"})
		return
	}
	rc.sweep()
	var out any
	var err error
	switch r.URL.Path {
	case PathBegin:
		out, err = rc.begin(w, r)
	case PathReport:
		if err = rc.acceptErr(""); err == nil {
			out, err = rc.report(w, r)
		}
	default:
		out, err = rc.withSession(r, func(s *session) (any, error) {
			switch r.URL.Path {
			case PathManifest:
				return rc.manifest(w, r, s)
			case PathChunk:
				return rc.chunk(w, r, s)
			case PathCommit:
				return rc.commit(s)
			default:
				return rc.abort(s)
			}
		}, r.URL.Path == PathAbort)
	}
	if err != nil {
		code := http.StatusInternalServerError
		var se *statusError
		if errors.As(err, &se) {
			code = se.code
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			code = http.StatusRequestEntityTooLarge
			err = fmt.Errorf("request body above %d bytes", mbe.Limit)
		}
		if code >= 500 {
			rc.log.Error("replication push failed", "path", r.URL.Path, "err", err)
		} else {
			rc.log.Warn("replication push refused", "path", r.URL.Path, "code", code, "err", err)
		}
		writeJSON(w, code, api.Error{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (rc *Receiver) authorized(r *http.Request) bool { return rc.token.Allows(r) }

// decodeBody reads a JSON body of at most maxReq bytes.
func (rc *Receiver) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, int64(rc.maxReq))
	if err := json.NewDecoder(body).Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errStatus(http.StatusBadRequest, "invalid JSON body: %v", err)
	}
	return nil
}

func (rc *Receiver) begin(w http.ResponseWriter, r *http.Request) (any, error) {
	var req beginRequest
	if err := rc.decodeBody(w, r, &req); err != nil {
		return nil, err
	}
	job, ok := rc.byName[req.Job]
	if !ok {
		return nil, errStatus(http.StatusNotFound, "unknown job %q: this node has no replication job of that name", req.Job)
	}
	if job.Kind != KindFiles {
		return nil, errStatus(http.StatusUnprocessableEntity, "job %s is a %s job on this node, not a files job", job.Name, job.Kind)
	}
	rc.mu.Lock()
	ends := rc.ends
	rc.mu.Unlock()
	if err := rc.acceptErr(job.Name); err != nil {
		return nil, err
	}
	if req.Delete != job.Delete {
		return nil, errStatus(http.StatusUnprocessableEntity,
			"job %s: the sender has delete %t, this node has delete %t: set delete alike on both nodes", job.Name, req.Delete, job.Delete)
	}
	if len(req.Roots) == 0 {
		return nil, errStatus(http.StatusBadRequest, "job %s: no roots", job.Name)
	}
	lim := job.Limits
	if req.Files > lim.MaxFiles {
		return nil, errStatus(http.StatusUnprocessableEntity, "job %s: the sender's roots hold %d paths, above this node's max_files (%d)", job.Name, req.Files, lim.MaxFiles)
	}
	if req.Bytes > lim.MaxTotalSize {
		return nil, errStatus(http.StatusUnprocessableEntity, "job %s: the sender's roots hold %s, above this node's max_total_mib (%s)", job.Name, sizeText(req.Bytes), sizeText(lim.MaxTotalSize))
	}
	s := rc.newSession(job)
	for _, name := range req.Roots {
		if _, dup := s.roots[name]; dup {
			s.close()
			return nil, errStatus(http.StatusBadRequest, "job %s: root %q listed twice", job.Name, name)
		}
		i := indexRoot(job.Roots, name)
		if i < 0 {
			s.close()
			return nil, errStatus(http.StatusUnprocessableEntity, "job %s: root %q is not configured on this node", job.Name, name)
		}
		root := job.Roots[i]
		dir, err := openRootDir(root.Path)
		if err != nil {
			s.close()
			return nil, errStatus(http.StatusUnprocessableEntity, "job %s: root %s: %v", job.Name, root.Name, err)
		}
		s.addRoot(root, dir)
	}
	id := make([]byte, 16)
	rand.Read(id)
	s.id = hex.EncodeToString(id)
	s.lastUse.Store(rc.now().UnixNano())

	rc.mu.Lock()
	if rc.ends != ends {
		reason := rc.endReason
		rc.mu.Unlock()
		s.close()
		return nil, errStatus(http.StatusConflict, "this node refuses to receive job %s: %s", job.Name, reason)
	}
	old := rc.byJob[job.Name]
	if old != nil {
		delete(rc.sessions, old.id)
	}
	rc.sessions[s.id] = s
	rc.byJob[job.Name] = s
	rc.mu.Unlock()
	if old != nil {
		old.mu.Lock()
		old.close()
		old.mu.Unlock()
		rc.log.Info("a new transfer replaced an unfinished one", "job", job.Name)
	}
	rc.log.Debug("transfer begins", "job", job.Name, "roots", req.Roots, "files", req.Files, "bytes", req.Bytes)
	return beginResponse{Session: s.id, MaxRequestBytes: rc.maxReq}, nil
}

func indexRoot(roots []Root, name string) int {
	for i, r := range roots {
		if r.Name == name {
			return i
		}
	}
	return -1
}

// newSession makes a session of job, without roots yet.
func (rc *Receiver) newSession(job *Job) *session {
	return &session{rc: rc, job: job, delete: job.Delete, roots: map[string]*sessRoot{}, need: map[string]*entry{},
		tot: totals{lim: job.Limits}, quota: quota{limit: job.Limits.MaxTotalSize}}
}

// addRoot adds root, open as dir, to s.
func (s *session) addRoot(root Root, dir *os.Root) {
	s.rc.mu.Lock()
	cache := s.rc.caches[s.job.Name+"/"+root.Name]
	s.rc.mu.Unlock()
	s.roots[root.Name] = &sessRoot{name: root.Name, path: root.Path, dir: dir, seen: map[string]uint8{}, cache: cache,
		dirModes: map[string]fs.FileMode{}}
}

// measure counts, for the quota, what the job's roots hold on disk: the
// roots left out of the transfer, and (without delete) the transfer's own.
// It runs once, when the first file is asked for: a transfer without one
// adds no byte.
func (s *session) measure() error {
	if s.measured {
		return nil
	}
	s.measured = true
	for _, root := range s.job.Roots {
		sr := s.roots[root.Name]
		if sr != nil && s.delete {
			continue
		}
		dir := (*os.Root)(nil)
		if sr != nil {
			dir = sr.dir
		} else {
			d, err := openRootDir(root.Path)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("job %s: root %s: %w", s.job.Name, root.Name, err)
			}
			defer d.Close()
			dir = d
		}
		n, err := diskBytes(dir)
		if err != nil {
			return fmt.Errorf("job %s: root %s: measure what it holds: %w", s.job.Name, root.Name, err)
		}
		if sr != nil {
			s.quota.disk += n
		} else {
			s.quota.other += n
		}
	}
	return nil
}

// acceptErr asks Accept: an error is the 409 refusing the request.
func (rc *Receiver) acceptErr(job string) error {
	if rc.accept == nil {
		return nil
	}
	err := rc.accept()
	if err == nil {
		return nil
	}
	if job == "" {
		return errStatus(http.StatusConflict, "this node refuses to receive: %v", err)
	}
	return errStatus(http.StatusConflict, "this node refuses to receive job %s: %v", job, err)
}

// withSession runs fn on the session named by ?session=, locked, once
// Accept agreed. A refusal, by Accept or by fn (any error), refuses the
// session: it applies nothing, its temp files are removed, and its
// further requests are answered 409 (but abort, which drops it).
func (rc *Receiver) withSession(r *http.Request, fn func(*session) (any, error), abort bool) (any, error) {
	id := r.URL.Query().Get("session")
	rc.mu.Lock()
	s := rc.sessions[id]
	rc.mu.Unlock()
	if s == nil {
		return nil, errStatus(http.StatusNotFound, "no transfer session %q: it ended, expired or was replaced", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed && s.refused == "" {
		return nil, errStatus(http.StatusNotFound, "no transfer session %q: it ended, expired or was replaced", id)
	}
	if s.refused == "" {
		if reason := s.stop.Load(); reason != nil {
			s.end(*reason)
		} else if err := rc.acceptErr(s.job.Name); err != nil {
			s.end(err.Error())
			return nil, err
		}
	}
	if s.refused != "" {
		if abort {
			rc.drop(s)
			return struct{}{}, nil
		}
		return nil, errStatus(http.StatusConflict, "this transfer was refused and applies nothing (%s): begin another", s.refused)
	}
	s.lastUse.Store(rc.now().UnixNano())
	out, err := fn(s)
	if err != nil {
		s.end(err.Error())
		return nil, err
	}
	if reason := s.stop.Load(); reason != nil && !s.closed {
		// Ended while this request was served: what it took is dropped.
		s.end(*reason)
		return nil, errStatus(http.StatusConflict, "%s", *reason)
	}
	return out, nil
}

// drop removes s from the maps (s is locked) and closes it.
func (rc *Receiver) drop(s *session) {
	rc.mu.Lock()
	if rc.sessions[s.id] == s {
		delete(rc.sessions, s.id)
	}
	if rc.byJob[s.job.Name] == s {
		delete(rc.byJob, s.job.Name)
	}
	rc.mu.Unlock()
	s.close()
}

// EndSessions ends every transfer session at once, for reason: each
// applies nothing more, its temp files are removed, its next request is
// answered 409 with reason. Call it when this node leaves Inactive, once
// Accept refuses (then no session can begin again before the node is
// Inactive again).
//
// It returns once no session changes what the roots hold: a commit
// applying its changes checks, before each one, under applyMu, that its
// session was not ended and that Accept agrees; EndSessions marks the
// sessions, then waits for applyMu. So after it returns, nothing more is
// written under the roots, and the only change that may land after the
// node left Inactive is the one a commit had begun when it did: one
// rename, mkdir, chmod, chtimes or removal of a single path (a directory
// delete removes is removed path by path). Bytes of a chunk being read
// when EndSessions runs still go to its temp file, which is removed when
// that request ends.
func (rc *Receiver) EndSessions(reason string) {
	msg := "the transfer was ended by this node: " + reason
	rc.mu.Lock()
	rc.ends++
	rc.endReason = reason
	list := make([]*session, 0, len(rc.sessions))
	for _, s := range rc.sessions {
		list = append(list, s)
	}
	rc.mu.Unlock()
	for _, s := range list {
		s.stop.Store(&msg)
	}
	if rc.endWaiting != nil {
		rc.endWaiting()
	}
	// Empty: waiting for the change in progress is the point.
	rc.applyMu.Lock()
	rc.applyMu.Unlock()
	for _, s := range list {
		if s.mu.TryLock() {
			s.end(msg)
			s.mu.Unlock()
			continue
		}
		// A request holds it (a chunk being read, a commit answering):
		// it is ended as soon as that request lets it go.
		go func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.end(msg)
		}()
	}
	if len(list) > 0 {
		rc.log.Warn("transfers ended", "count", len(list), "reason", reason)
	}
}

// sweep drops the sessions idle longer than rc.idle.
func (rc *Receiver) sweep() {
	limit := rc.now().Add(-rc.idle).UnixNano()
	var expired []*session
	rc.mu.Lock()
	for id, s := range rc.sessions {
		if s.lastUse.Load() < limit && s.mu.TryLock() {
			delete(rc.sessions, id)
			if rc.byJob[s.job.Name] == s {
				delete(rc.byJob, s.job.Name)
			}
			expired = append(expired, s)
		}
	}
	rc.mu.Unlock()
	for _, s := range expired {
		rc.log.Warn("dropped an idle transfer", "job", s.job.Name, "idle_for", rc.idle)
		s.close()
		s.mu.Unlock()
	}
}

func (rc *Receiver) manifest(w http.ResponseWriter, r *http.Request, s *session) (any, error) {
	var req manifestRequest
	if err := rc.decodeBody(w, r, &req); err != nil {
		return nil, err
	}
	sr := s.roots[req.Root]
	if sr == nil {
		return nil, errStatus(http.StatusUnprocessableEntity, "root %q is not part of this transfer", req.Root)
	}
	resp := manifestResponse{Need: []string{}}
	for i := range req.Entries {
		e := req.Entries[i]
		need, changed, err := s.apply(sr, &e)
		if err != nil {
			return nil, err
		}
		if need {
			resp.Need = append(resp.Need, e.Path)
		}
		if changed {
			resp.Changed++
		}
	}
	return resp, nil
}

func (rc *Receiver) chunk(w http.ResponseWriter, r *http.Request, s *session) (any, error) {
	q := r.URL.Query()
	offset, err := parseOffset(q.Get("offset"))
	if err != nil {
		return nil, err
	}
	body := http.MaxBytesReader(w, r.Body, int64(rc.maxReq))
	got, done, err := s.receive(q.Get("root"), q.Get("path"), offset, body)
	if got > 0 {
		rc.metrics.bytesReceived.WithLabelValues(s.job.Name).Add(float64(got))
	}
	if err != nil {
		return nil, err
	}
	return chunkResponse{Received: s.progress, Done: done}, nil
}

// commit applies the session: the roots are walked first, and a result
// above max_total_mib is refused before anything changes; then, under
// applyMu, each change (directories, staged files renamed into place,
// modes and mtimes, deletions) is made after checking that the session
// was not ended and that Accept still agrees. If it stops part way, what
// was applied stays (each change is whole) and the rest is dropped.
func (rc *Receiver) commit(s *session) (any, error) {
	if n := len(s.need); n > 0 {
		var first string
		for k := range s.need {
			if first == "" || k < first {
				first = k
			}
		}
		root, p, _ := strings.Cut(first, "\x00")
		return nil, errStatus(http.StatusConflict, "%d requested files were not received (the first: %s/%s); nothing was applied", n, root, p)
	}
	// Without a file to put in place the roots grow by no byte; without
	// delete nothing else is to be found: no walk.
	var plans []rootPlan
	if s.delete || len(s.staged) > 0 {
		if err := s.measure(); err != nil {
			return nil, err
		}
		var held int64
		var err error
		if plans, held, err = s.plan(); err != nil {
			return nil, err
		}
		if total := s.quota.other + held; total > s.quota.limit {
			return nil, errStatus(http.StatusUnprocessableEntity,
				"on this node: the job's roots would hold %s after this transfer, above max_total_mib (%s); nothing was applied",
				sizeText(total), sizeText(s.quota.limit))
		}
	}
	changed, deleted, err := rc.apply(s, plans)
	if serr := s.syncDirty(); err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	s.made = nil // they hold the files now
	for _, sr := range s.roots {
		sr.cache.prune(func(p string) bool { return sr.seen[p] == seenEntry })
	}
	resp := commitResponse{Changed: changed, Deleted: deleted, BytesReceived: s.bytes}
	rc.record(s.job, Received{At: rc.now(), Kind: KindFiles, FilesChanged: changed, BytesReceived: s.bytes})
	rc.drop(s)
	rc.log.Info("received", "job", s.job.Name, "files_changed", changed, "deleted", deleted, "bytes", s.bytes)
	return resp, nil
}

// apply makes the changes of a commit under applyMu, each after step (see
// commit), and counts the paths changed and deleted.
func (rc *Receiver) apply(s *session, plans []rootPlan) (changed, deleted int, err error) {
	rc.applyMu.Lock()
	defer rc.applyMu.Unlock()
	steps := len(s.dirs) + len(s.staged) + len(s.metas)
	for _, rp := range plans {
		steps += len(rp.temps)
		for _, x := range rp.extra {
			steps += len(x)
		}
	}
	done := 0
	// stopped says how far the commit went, when it went part way.
	stopped := func(err error, applied int) error {
		if applied == 0 {
			return err
		}
		code := http.StatusInternalServerError
		var se *statusError
		if errors.As(err, &se) {
			code = se.code
		}
		return errStatus(code, "%v; the commit stopped after %d of %d changes, the rest is not applied", err, applied, steps)
	}
	step := func() error {
		if rc.beforeApply != nil {
			rc.beforeApply(done)
		}
		if err := s.mayWrite(); err != nil {
			return stopped(err, done)
		}
		done++
		return nil
	}
	// failed is an error of the change under way: not applied.
	failed := func(err error) error { return stopped(err, done-1) }
	// Accept agrees under the lock even when there is nothing to change:
	// a node no longer Inactive records no receive.
	if err := s.mayWrite(); err != nil {
		return 0, 0, err
	}
	sort.SliceStable(s.dirs, func(i, j int) bool {
		a, b := s.dirs[i], s.dirs[j]
		if a.root.name != b.root.name {
			return a.root.name < b.root.name
		}
		return a.path < b.path // parents first
	})
	for _, op := range s.dirs {
		if err := step(); err != nil {
			return changed, deleted, err
		}
		c, err := s.applyDir(op)
		if err != nil {
			return changed, deleted, failed(err)
		}
		if c {
			changed++
		}
	}
	for len(s.staged) > 0 {
		if err := step(); err != nil {
			return changed, deleted, err
		}
		u := s.staged[0]
		if err := s.place(u); err != nil {
			return changed, deleted, failed(err)
		}
		s.staged = s.staged[1:]
		changed++
	}
	for _, op := range s.metas {
		if err := step(); err != nil {
			return changed, deleted, err
		}
		if err := s.applyMeta(op); err != nil {
			return changed, deleted, failed(err)
		}
		changed++
	}
	for _, rp := range plans {
		for _, x := range rp.extra {
			if err := s.remove(rp.sr, x, step, failed); err != nil {
				return changed, deleted, err
			}
			changed++
			deleted++
		}
		for _, p := range rp.temps {
			if err := step(); err != nil {
				return changed, deleted, err
			}
			rp.sr.dir.Remove(p)
		}
	}
	return changed, deleted, nil
}

func (rc *Receiver) abort(s *session) (any, error) {
	rc.drop(s)
	rc.log.Info("transfer aborted by the sender", "job", s.job.Name)
	return struct{}{}, nil
}

func (rc *Receiver) report(w http.ResponseWriter, r *http.Request) (any, error) {
	var req reportRequest
	if err := rc.decodeBody(w, r, &req); err != nil {
		return nil, err
	}
	job, ok := rc.byName[req.Job]
	if !ok {
		return nil, errStatus(http.StatusNotFound, "unknown job %q: this node has no replication job of that name", req.Job)
	}
	if job.Kind != KindExec {
		return nil, errStatus(http.StatusUnprocessableEntity, "job %s is a %s job on this node: only exec jobs are reported", job.Name, job.Kind)
	}
	rc.record(job, Received{At: rc.now(), Kind: KindExec})
	rc.log.Info("exec job reported done by the sender", "job", job.Name, "start", req.Start, "duration_seconds", req.DurationSeconds)
	return struct{}{}, nil
}

// record stores and persists a successful receive.
func (rc *Receiver) record(job *Job, got Received) {
	rc.mu.Lock()
	rc.state[job.Name] = got
	st := receiverState{Version: stateVersion, Jobs: make(map[string]Received, len(rc.state))}
	for k, v := range rc.state {
		st.Jobs[k] = v
	}
	var seq uint64
	if rc.saver != nil {
		seq = rc.saver.next()
	}
	rc.mu.Unlock()
	rc.metrics.lastReceived.WithLabelValues(job.Name).Set(float64(got.At.UnixNano()) / 1e9)
	if rc.saver != nil {
		if err := rc.saver.save(seq, st); err != nil {
			rc.log.Error("cannot persist the last receive; a restart will forget it", "job", job.Name, "err", err)
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
