package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/api"
)

// Triggers of a run.
const (
	// TriggerSchedule: the scheduler ran it.
	TriggerSchedule = "schedule"
	// TriggerManual: RunNow or RunAll ran it (the API, a switchover).
	TriggerManual = "manual"
)

// reportTimeout bounds telling the peer an exec job succeeded.
const reportTimeout = 30 * time.Second

// Errors of RunNow.
var (
	// ErrUnknownJob: no job of that name.
	ErrUnknownJob = errors.New("unknown replication job")
	// ErrFailed: the job ran and failed; the Result says why.
	ErrFailed = errors.New("replication job failed")
)

// Options configure a Runner.
type Options struct {
	// Jobs to run.
	Jobs []Job
	// PeerURL is the base URL of the peer's API (peer.api). Required with
	// a files job; exec jobs report their successes there when set.
	PeerURL string
	// Token is the bearer token of the peer's API (api.token).
	Token string
	// DataDir holds replication.json, the last result of each job.
	// Empty keeps them in memory only.
	DataDir string
	// Logger gets the logs, tagged component=replication; nil discards.
	Logger *slog.Logger
	// Registerer receives the metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// OnResult is called after each run, once the result is recorded (for
	// the audit log). It runs on the job's goroutine: keep it short.
	OnResult func(Result)
	// HTTPClient calls the peer; nil is a default client.
	HTTPClient *http.Client
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// MaxRequestBytes is the largest request body sent (manifest page,
	// file chunk). Default: DefaultMaxRequestBytes, the node API's limit;
	// the receiver may ask for less.
	MaxRequestBytes int
	// RequestTimeout bounds one request to the peer. Default:
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
}

// Result is the outcome of one run of a job.
type Result struct {
	Job     string    `json:"job"`
	Kind    string    `json:"kind"`
	Trigger string    `json:"trigger"`
	Start   time.Time `json:"start"`
	// Duration of the run.
	Duration time.Duration `json:"duration"`
	OK       bool          `json:"ok"`
	Error    string        `json:"error,omitempty"`
	// Output is the tail of an exec job's output (stdout and stderr).
	Output string `json:"output,omitempty"`
	// Warning is a problem that did not fail the run (the peer could
	// not be told an exec job succeeded).
	Warning string `json:"warning,omitempty"`
	// BytesSent counts the request bodies a files job sent: manifest
	// pages and file chunks.
	BytesSent int64 `json:"bytes_sent"`
	// Files counts the paths of a files job's manifest.
	Files int `json:"files"`
	// FilesSent counts the files uploaded.
	FilesSent int `json:"files_sent"`
	// FilesChanged counts the paths the peer wrote, fixed or deleted.
	FilesChanged int `json:"files_changed"`
	// FilesDeleted counts the paths the peer deleted (delete: true).
	FilesDeleted int `json:"files_deleted"`
	// Skipped counts the paths not replicated (symlinks, special files,
	// names that are not valid UTF-8 or hold control characters).
	Skipped int `json:"skipped"`
}

// End is when the run ended.
func (r Result) End() time.Time { return r.Start.Add(r.Duration) }

// Runner runs the jobs of the Main: on demand (RunNow, RunAll) and on
// schedule (Schedule), never two runs of one job at once. It is safe for
// concurrent use.
type Runner struct {
	jobs     []*jobState
	byName   map[string]*jobState
	log      *slog.Logger
	metrics  *metrics
	client   *pushClient
	peerURL  string
	onResult func(Result)
	now      func() time.Time
	maxReq   int
	// saver persists the records (nil without a data dir).
	saver *saver

	// Test hooks: the scheduler's timer, and a call before each upload.
	after        func(time.Duration) <-chan time.Time
	beforeUpload func(root, path string)

	// mu guards the fields of every jobState marked so, and the state
	// file.
	mu sync.Mutex
}

// jobState is one job and its record.
type jobState struct {
	job Job
	log *slog.Logger
	// sem holds the token of the run under way.
	sem chan struct{}
	// caches of the roots' hashes, used under sem.
	caches map[string]*hashCache

	// Guarded by Runner.mu.
	last        *Result
	lastSuccess time.Time
	failures    int
	jitter      float64
	running     bool
	nextRun     time.Time
	// progress of the files run under way; nil when none.
	progress *api.ReplicationProgress
}

type runnerState struct {
	Version int                  `json:"version"`
	Jobs    map[string]jobRecord `json:"jobs"`
}

type jobRecord struct {
	Last        *Result   `json:"last,omitempty"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	Failures    int       `json:"failures,omitempty"`
}

// New checks opts, registers the metrics and loads the last results.
func New(opts Options) (*Runner, error) {
	jobs, err := normalizeJobs(opts.Jobs)
	if err != nil {
		return nil, fmt.Errorf("replication: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Runner{
		byName:   map[string]*jobState{},
		log:      logger.With("component", "replication"),
		peerURL:  strings.TrimRight(opts.PeerURL, "/"),
		onResult: opts.OnResult,
		now:      opts.Now,
		maxReq:   opts.MaxRequestBytes,
		after:    time.After,
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.maxReq == 0 {
		r.maxReq = DefaultMaxRequestBytes
	}
	if r.maxReq < MinMaxRequestBytes {
		return nil, fmt.Errorf("replication: MaxRequestBytes must be at least %d, got %d", MinMaxRequestBytes, r.maxReq)
	}
	for _, j := range jobs {
		if j.Kind == KindFiles && r.peerURL == "" {
			return nil, fmt.Errorf("replication: job %s: a files job needs the peer's API URL (peer.api)", j.Name)
		}
		if j.Kind == KindExec && len(j.Run) == 0 {
			return nil, fmt.Errorf("replication: job %s: an exec job needs a command (run)", j.Name)
		}
	}
	if r.peerURL != "" {
		hc := opts.HTTPClient
		if hc == nil {
			hc = &http.Client{}
		}
		timeout := opts.RequestTimeout
		if timeout == 0 {
			timeout = DefaultRequestTimeout
		}
		r.client = &pushClient{base: r.peerURL, token: opts.Token, hc: hc, timeout: timeout}
	}
	if r.metrics, err = newMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	var st runnerState
	if opts.DataDir != "" {
		if err := ensureDir(opts.DataDir); err != nil {
			return nil, fmt.Errorf("replication: %w", err)
		}
		r.saver = &saver{path: filepath.Join(opts.DataDir, runnerStateFile)}
		if err := loadJSON(r.saver.path, &st); err != nil {
			// Forgetting only makes the jobs look stale: visible, and
			// mended by the next success.
			r.log.Error("cannot load the last results; every job counts as never run", "err", err)
		}
	}
	for _, j := range jobs {
		js := &jobState{job: j, log: r.log.With("job", j.Name), sem: make(chan struct{}, 1),
			caches: map[string]*hashCache{}, jitter: jitter()}
		for _, root := range j.Roots {
			js.caches[root.Name] = newHashCache()
		}
		if rec, ok := st.Jobs[j.Name]; ok {
			js.last, js.lastSuccess, js.failures = rec.Last, rec.LastSuccess, rec.Failures
		}
		r.jobs = append(r.jobs, js)
		r.byName[j.Name] = js
		m := r.metrics
		m.maxAge.WithLabelValues(j.Name).Set(j.MaxAge.Seconds())
		m.runs.WithLabelValues(j.Name, resultOK)
		m.runs.WithLabelValues(j.Name, resultFailed)
		m.bytesSent.WithLabelValues(j.Name)
		if !js.lastSuccess.IsZero() {
			m.lastSuccess.WithLabelValues(j.Name).Set(float64(js.lastSuccess.UnixNano()) / 1e9)
		}
	}
	return r, nil
}

// jitter draws the spread of one job's next run: ±10% of its period.
func jitter() float64 { return (rand.Float64()*2 - 1) / 10 }

// Jobs lists the job names in order.
func (r *Runner) Jobs() []string {
	out := make([]string, len(r.jobs))
	for i, js := range r.jobs {
		out[i] = js.job.Name
	}
	return out
}

// RunNow runs job now and returns its result. If a run of job is under
// way, it waits for it to end first (ctx bounds the wait) and then runs:
// the result reflects the data as of this call. The error wraps
// ErrUnknownJob, ErrFailed (with the Result filled), or ctx's error when
// it ended during the wait.
func (r *Runner) RunNow(ctx context.Context, job string) (Result, error) {
	js := r.byName[job]
	if js == nil {
		return Result{}, fmt.Errorf("%w %q", ErrUnknownJob, job)
	}
	select {
	case js.sem <- struct{}{}:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("replication job %s: waiting for the run under way: %w", job, ctx.Err())
	}
	defer func() { <-js.sem }()
	res := r.run(ctx, js, TriggerManual)
	if !res.OK {
		return res, fmt.Errorf("%w: %s: %s", ErrFailed, job, res.Error)
	}
	return res, nil
}

// RunAll runs every job in order, as RunNow does (a switchover's final
// sync), and returns their results. It stops at the first job whose wait
// ctx ends. The error joins those of the jobs that failed.
func (r *Runner) RunAll(ctx context.Context) ([]Result, error) {
	var out []Result
	var errs []error
	for _, js := range r.jobs {
		res, err := r.RunNow(ctx, js.job.Name)
		if err != nil {
			errs = append(errs, err)
			if !errors.Is(err, ErrFailed) {
				break
			}
		}
		out = append(out, res)
	}
	return out, errors.Join(errs...)
}

// run runs js once; the caller holds js.sem.
func (r *Runner) run(ctx context.Context, js *jobState, trigger string) Result {
	job := &js.job
	res := Result{Job: job.Name, Kind: job.Kind, Trigger: trigger, Start: r.now()}
	r.mu.Lock()
	js.running = true
	r.mu.Unlock()
	js.log.Info("replication run begins", "trigger", trigger)
	t0 := time.Now()
	rctx, cancel := context.WithTimeout(ctx, job.Timeout)
	var err error
	switch job.Kind {
	case KindExec:
		err = r.runExec(rctx, js, &res)
	case KindFiles:
		err = r.runFiles(rctx, js, &res)
		if err != nil && errors.Is(rctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %s: %w", job.Timeout, err)
		}
	}
	cancel()
	res.Duration = time.Since(t0)
	if err != nil {
		res.Error = err.Error()
	} else {
		res.OK = true
	}
	if res.OK && job.Kind == KindExec && r.client != nil {
		// The Standby learns when it was last replicated.
		tctx, cancel := context.WithTimeout(ctx, reportTimeout)
		err := r.client.postJSON(tctx, PathReport, nil, reportRequest{Job: job.Name, Start: res.Start,
			DurationSeconds: res.Duration.Seconds()}, nil, nil)
		cancel()
		if err != nil {
			res.Warning = "the peer was not told of this success, it will count its copy as older: " + err.Error()
		}
	}
	r.record(js, res)
	return res
}

// record stores res, persists the records, updates the metrics, logs and
// calls OnResult.
func (r *Runner) record(js *jobState, res Result) {
	name := js.job.Name
	r.mu.Lock()
	js.last = &res
	js.running, js.progress = false, nil
	js.jitter = jitter()
	if res.OK {
		js.lastSuccess = res.End()
		js.failures = 0
	} else {
		js.failures++
	}
	var st runnerState
	var seq uint64
	if r.saver != nil {
		st = runnerState{Version: stateVersion, Jobs: map[string]jobRecord{}}
		for _, o := range r.jobs {
			st.Jobs[o.job.Name] = jobRecord{Last: o.last, LastSuccess: o.lastSuccess, Failures: o.failures}
		}
		seq = r.saver.next()
	}
	r.mu.Unlock()
	if r.saver != nil {
		if err := r.saver.save(seq, st); err != nil {
			js.log.Error("cannot persist the last result; a restart will forget it", "err", err)
		}
	}

	m := r.metrics
	result := resultFailed
	if res.OK {
		result = resultOK
		m.lastSuccess.WithLabelValues(name).Set(float64(res.End().UnixNano()) / 1e9)
	}
	m.runs.WithLabelValues(name, result).Inc()
	m.duration.WithLabelValues(name).Observe(res.Duration.Seconds())
	m.bytesSent.WithLabelValues(name).Add(float64(res.BytesSent))

	attrs := []any{"trigger", res.Trigger, "duration", res.Duration, "bytes_sent", res.BytesSent,
		"files_sent", res.FilesSent, "files_changed", res.FilesChanged}
	switch {
	case !res.OK:
		js.log.Error("replication run failed", append(attrs, "err", res.Error)...)
	case res.Warning != "":
		js.log.Warn("replication run done", append(attrs, "warning", res.Warning)...)
	default:
		js.log.Info("replication run done", attrs...)
	}
	if r.onResult != nil {
		r.onResult(res)
	}
}

// Last returns the last result of job, if it ran.
func (r *Runner) Last(job string) (Result, bool) {
	js := r.byName[job]
	if js == nil {
		return Result{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if js.last == nil {
		return Result{}, false
	}
	return *js.last, true
}

// Status lists every job as this node runs it, for /api/v1/status and the
// page.
func (r *Runner) Status(now time.Time) []api.Replication {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]api.Replication, 0, len(r.jobs))
	for _, js := range r.jobs {
		j := &js.job
		st := api.Replication{
			Name: j.Name, Kind: j.Kind, Direction: DirectionSend, Running: js.running,
			LastSuccess: js.lastSuccess, MaxAgeSeconds: j.MaxAge.Seconds(),
			Stale: Stale(js.lastSuccess, now, j.MaxAge), NextRun: js.nextRun,
		}
		if !js.lastSuccess.IsZero() {
			st.AgeSeconds = max(0, now.Sub(js.lastSuccess).Seconds())
		}
		if js.running && js.progress != nil {
			p := *js.progress
			st.Progress = &p
		}
		if l := js.last; l != nil {
			st.LastRun, st.OK, st.Error = l.Start, l.OK, l.Error
			st.DurationSeconds = l.Duration.Seconds()
			st.BytesSent, st.FilesChanged = l.BytesSent, l.FilesChanged
			if !l.OK {
				st.Output = l.Output
			}
		} else {
			st.Error = "never run"
		}
		out = append(out, st)
	}
	return out
}

// StaleJobs names the jobs whose last success is older than their MaxAge,
// or that never succeeded: what makes the pair not HA-ready.
func (r *Runner) StaleJobs(now time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, js := range r.jobs {
		if Stale(js.lastSuccess, now, js.job.MaxAge) {
			out = append(out, js.job.Name)
		}
	}
	return out
}
