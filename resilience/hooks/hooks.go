// Package hooks runs the commands an admin attaches to a node's own
// transitions, as keepalived's notify scripts do, without their races:
//
//   - before_activate hooks run, in order, before the node starts its
//     services to become Active. The first one that exits non-zero or times
//     out vetoes the activation (Runner.Before returns its *Failure); the
//     runtime then treats the activation as a failed start.
//   - after_activate hooks run, in order, once the node is Active;
//     after_deactivate hooks once it is Inactive with its services stopped.
//     Their failures never change the status: they are logged, counted and
//     handed to Options.OnFailure (the runtime audits them).
//
// One queue runs every hook, one at a time, in the order they were asked
// for: the after hooks of one transition end (or time out) before any hook
// of the next transition starts, and no two hooks ever run at once. Each
// hook runs in its own process group; on timeout the whole group is killed
// with SIGKILL, and whatever the hook left running in its group when it
// exits is killed too, so nothing of a hook outlives it.
//
// A hook gets the node's environment without its RESMAN_* variables (some
// of them are config overrides holding secrets, like RESMAN_API_TOKEN),
// plus RESMAN_HOOK (the phase), RESMAN_NODE, RESMAN_ROLE, RESMAN_MODE,
// RESMAN_FROM, RESMAN_TO, RESMAN_EPOCH, RESMAN_CAUSE and
// RESMAN_TRANSITION_ID (see Transition).
package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/procexec"
)

// Phase is when a hook runs; its value is the config key and RESMAN_HOOK.
type Phase string

// The phases, in the order of one activation and one deactivation.
const (
	BeforeActivate  Phase = "before_activate"
	AfterActivate   Phase = "after_activate"
	AfterDeactivate Phase = "after_deactivate"
)

const (
	// DefaultTimeout bounds a hook without a timeout of its own.
	DefaultTimeout = 10 * time.Second
	// ErrorTail is how much of a failed hook's output its Failure quotes.
	ErrorTail = 512
	// LogTail is how much of a hook's output goes to the log.
	LogTail = 4096
	// waitDelay: a hook that has exited but left a child holding its
	// output counts as done after this long (the child is then killed).
	waitDelay = time.Second
)

// Hook is one command: Run is an argv list, no shell.
type Hook struct {
	Name    string
	Run     []string
	Timeout time.Duration // DefaultTimeout when 0
}

// Set is the hooks of each phase, each list in the order they run.
type Set struct {
	BeforeActivate  []Hook
	AfterActivate   []Hook
	AfterDeactivate []Hook
}

func (s Set) of(p Phase) []Hook {
	switch p {
	case BeforeActivate:
		return s.BeforeActivate
	case AfterActivate:
		return s.AfterActivate
	case AfterDeactivate:
		return s.AfterDeactivate
	}
	return nil
}

// Transition is what a hook is told of the transition it runs for. The
// before and after hooks of one transition get the same one.
type Transition struct {
	// ID names the transition: the runtime uses the ID of the audit entry
	// that began it, so `resman audit` shows what the hook ran for.
	ID string
	// Node, Role and Mode of this node (mode at the time).
	Node, Role, Mode string
	// From is the status the transition began in; To is where it goes
	// (active or inactive).
	From, To string
	// Epoch of the transition (of the activation, or the one the node
	// leaves).
	Epoch uint64
	// Cause is why the transition happened, as in the audit log.
	Cause string
}

// Failure is a hook that did not exit 0 within its timeout.
type Failure struct {
	Phase Phase
	Hook  string
	// Status says how it ended: "exit status 3", "timed out after 5s,
	// process group killed", "cannot run: ...".
	Status string
	// Output is the end of its output (stdout and stderr), at most
	// ErrorTail bytes, on one line.
	Output string
}

func (f *Failure) Error() string {
	verb := "failed"
	if f.Phase == BeforeActivate {
		verb = "vetoed the activation"
	}
	s := fmt.Sprintf("%s hook %s %s: %s", f.Phase, f.Hook, verb, f.Status)
	if f.Output != "" {
		s += "; output: " + f.Output
	}
	return s
}

// Options configure a Runner.
type Options struct {
	Hooks  Set
	Logger *slog.Logger
	// Registerer, when set, gets the resman_hook_* metrics.
	Registerer prometheus.Registerer
	// OnFailure, when set, is called for each after hook that failed, from
	// the queue's goroutine (the next hook waits for it).
	OnFailure func(Phase, Transition, *Failure)
}

// Runner runs hooks through one queue. Its methods are safe for concurrent
// use.
type Runner struct {
	log       *slog.Logger
	metrics   *metrics
	onFailure func(Phase, Transition, *Failure)

	mu      sync.Mutex
	set     Set
	queue   []func()
	running bool // a goroutine drains the queue
}

// New returns a Runner of o.Hooks.
func New(o Options) *Runner {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{
		log:       o.Logger.With("component", "hooks"),
		metrics:   newMetrics(o.Registerer),
		onFailure: o.OnFailure,
		set:       o.Hooks,
	}
}

// SetHooks replaces the hooks (a config reload). Transitions asked for
// from now on run the new ones; hooks already queued run as they were.
func (r *Runner) SetHooks(s Set) {
	r.mu.Lock()
	r.set = s
	r.mu.Unlock()
}

// Hooks returns the hooks in force.
func (r *Runner) Hooks() Set {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.set
}

// Before runs the before_activate hooks in order, once every hook queued
// before them has ended, and stops at the first failure: it returns that
// *Failure (the veto), nil when all passed, or ctx's error when ctx ends
// first. Without before_activate hooks it returns nil at once, without
// waiting for the queue.
func (r *Runner) Before(ctx context.Context, t Transition) error {
	done := make(chan error, 1)
	if !r.enqueue(BeforeActivate, func(hs []Hook) {
		for _, h := range hs {
			if f := r.run(ctx, BeforeActivate, h, t); f != nil {
				done <- f
				return
			}
		}
		done <- nil
	}) {
		return nil
	}
	select {
	case err := <-done:
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr // a hook cut by ctx is no verdict
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// After queues the hooks of phase p (AfterActivate or AfterDeactivate) and
// returns at once. They run in order after the hooks queued before them;
// every one runs, whether the one before it failed or not. When ctx ends,
// the hook running is killed and those not started are dropped.
func (r *Runner) After(ctx context.Context, p Phase, t Transition) {
	r.enqueue(p, func(hs []Hook) {
		for _, h := range hs {
			f := r.run(ctx, p, h, t)
			if f != nil && r.onFailure != nil && ctx.Err() == nil {
				r.onFailure(p, t, f)
			}
		}
	})
}

// Wait returns once every hook queued before the call has ended, or with
// ctx's error.
func (r *Runner) Wait(ctx context.Context) error {
	done := make(chan struct{})
	r.push(func() { close(done) })
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enqueue queues job with the hooks of p in force now; false when there
// are none (nothing is queued).
func (r *Runner) enqueue(p Phase, job func([]Hook)) bool {
	r.mu.Lock()
	hs := r.set.of(p)
	r.mu.Unlock()
	if len(hs) == 0 {
		return false
	}
	r.push(func() { job(hs) })
	return true
}

// push appends job to the queue, starting its goroutine if none runs.
func (r *Runner) push(job func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queue = append(r.queue, job)
	if !r.running {
		r.running = true
		go r.drain()
	}
}

// drain runs the queued jobs one at a time, in order, until none is left.
func (r *Runner) drain() {
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		job := r.queue[0]
		r.queue[0] = nil
		r.queue = r.queue[1:]
		r.mu.Unlock()
		job()
	}
}

// run runs one hook to its end and reports it: nil when it exited 0.
func (r *Runner) run(ctx context.Context, p Phase, h Hook, t Transition) *Failure {
	log := r.log.With("phase", string(p), "hook", h.Name, "transition", t.ID)
	if err := ctx.Err(); err != nil {
		log.Info("hook not run: resman is stopping")
		return &Failure{Phase: p, Hook: h.Name, Status: "not run: resman is stopping"}
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	log.Debug("hook starts", "run", h.Run, "timeout", timeout)
	res, err := procexec.Run(ctx, procexec.Command{
		Argv:          h.Run,
		Env:           environ(os.Environ(), p, t),
		Timeout:       timeout,
		WaitDelay:     waitDelay,
		KillLeftovers: true, // what the hook left in its group ends with it
		OutputLimit:   LogTail,
	})
	took := res.Duration

	outcome, status := "ok", ""
	var perr *procexec.Error
	switch {
	case err == nil:
	case !errors.As(err, &perr):
		outcome, status = "failed", "cannot run: "+err.Error()
	case perr.Reason == procexec.TimedOut:
		outcome, status = "timeout", perr.Status()
	case perr.Reason == procexec.Cancelled:
		outcome, status = "failed", "cancelled (resman is stopping), process group killed"
	default: // the exit status, or "cannot run: ..."
		outcome, status = "failed", perr.Status()
	}
	r.metrics.observe(p, h.Name, outcome, took)

	level := slog.LevelDebug
	if outcome != "ok" {
		level = slog.LevelInfo
	}
	if res.Output != "" {
		log.Log(ctx, level, "hook output", "output", res.Output, "dropped_bytes", res.Dropped)
	}
	if outcome == "ok" {
		log.Info("hook done", "duration", took.Round(time.Millisecond))
		return nil
	}
	f := &Failure{Phase: p, Hook: h.Name, Status: status, Output: res.Line(ErrorTail)}
	if perr != nil && perr.Reason == procexec.Cancelled {
		// resman is stopping: expected, not a warning.
		log.Info("hook cancelled", "status", status, "duration", took.Round(time.Millisecond), "to", t.To)
		return f
	}
	log.Warn("hook failed", "status", status, "duration", took.Round(time.Millisecond), "to", t.To)
	return f
}

// environ is base without its RESMAN_* variables, plus the hook's.
func environ(base []string, p Phase, t Transition) []string {
	env := make([]string, 0, len(base)+9)
	for _, kv := range base {
		if !strings.HasPrefix(kv, "RESMAN_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"RESMAN_HOOK="+string(p),
		"RESMAN_NODE="+t.Node,
		"RESMAN_ROLE="+t.Role,
		"RESMAN_MODE="+t.Mode,
		"RESMAN_FROM="+t.From,
		"RESMAN_TO="+t.To,
		"RESMAN_EPOCH="+strconv.FormatUint(t.Epoch, 10),
		"RESMAN_CAUSE="+t.Cause,
		"RESMAN_TRANSITION_ID="+t.ID,
	)
}
