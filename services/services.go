// Package services supervises the local services of a PBX node: it starts
// them in config order, stops them in reverse order, and probes the health of
// those that run.
//
// A service is driven in one of three ways:
//
//   - start/stop commands, run to completion within the service's timeout;
//   - a systemd unit, through systemctl; such a service outlives resman;
//   - a foreground process (run:) that resman spawns and owns. It lives and
//     dies with resman: it is killed if resman dies, even by SIGKILL, as a
//     dead host takes its services with it. Use unit: for a service that
//     must outlive resman.
//
// Health checks (sip, exec, tcp, http) run only while a service is running
// and flip its health with HAProxy-like rise/fall hysteresis (counted by
// services/hysteresis, shared with xds and edge). The start of a
// critical service with a check also waits for that check to pass rise
// times in a row: an active node's critical services work, not merely run.
package services

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/services/hysteresis"
)

// States of a service, as reported in api.Service.State.
const (
	StateStopped  = "stopped"
	StateStarting = "starting"
	StateRunning  = "running"
	StateStopping = "stopping"
	StateFailed   = "failed"
)

// Fallbacks for a spec that skipped config's defaults; config normally
// fills these, so they only guard against a zero that would never time out.
const (
	defaultTimeout       = 30 * time.Second
	defaultCheckInterval = time.Second
	defaultCheckTimeout  = time.Second
)

// Options configure a Supervisor.
type Options struct {
	// Logger receives the supervisor's logs with component=services;
	// nil discards them.
	Logger *slog.Logger
	// OnChange is called after any service's state, health or error
	// changes. It may be called from any goroutine and must not block.
	OnChange func()
	// Registerer, if set, receives the resman_service_* metrics.
	Registerer prometheus.Registerer
	// Env is added to the environment of every command, run: process and
	// exec check (KEY=VALUE entries, after resman's own environment).
	Env []string
}

// Supervisor starts, stops and probes the services of one config.
// Its methods are safe for concurrent use.
type Supervisor struct {
	log      *slog.Logger
	onChange func()
	env      []string
	metrics  *metrics // nil without a Registerer
	services []*service
	// runGrace is runGrace; a test of a start cancelled within the grace
	// lengthens it so the cancel cannot come after the grace on a slow
	// machine.
	runGrace time.Duration

	// ops serialises Start and Stop: a transition runs to its end before
	// the next one begins.
	ops sync.Mutex

	// shared are the probers of Run and of the checks Start waits for,
	// made by the first user and closed by the last (see acquireProbers).
	probeMu    sync.Mutex
	shared     *probers
	sharedRefs int
}

// New returns a Supervisor of specs, which config has validated and
// defaulted. Services driven by a systemd unit take their initial state from
// `systemctl is-active` when systemctl exists; the others start as stopped.
func New(specs []Service, opts Options) (*Supervisor, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{
		log:      log.With("component", "services"),
		onChange: opts.OnChange,
		env:      append([]string(nil), opts.Env...),
		runGrace: runGrace,
	}
	if opts.Registerer != nil {
		m, err := newMetrics(opts.Registerer)
		if err != nil {
			return nil, err
		}
		s.metrics = m
	}
	seen := make(map[string]bool, len(specs))
	for _, spec := range specs {
		if seen[spec.Name] {
			return nil, fmt.Errorf("service %q: name used twice", spec.Name)
		}
		seen[spec.Name] = true
		svc, err := newService(spec, s.log)
		if err != nil {
			return nil, fmt.Errorf("service %q: %w", spec.Name, err)
		}
		s.services = append(s.services, svc)
		if svc.awaitsCheck() {
			// The first probe runs at once, the others at the fast interval.
			if least := time.Duration(svc.check.rise-1) * startProbeInterval(svc.check.interval); svc.spec.Timeout <= least {
				s.log.Warn("the check cannot pass rise times within the service's timeout: every start will fail",
					"service", spec.Name, "timeout", svc.spec.Timeout, "rise", svc.check.rise, "interval", svc.check.interval)
			}
		}
	}
	if systemctl, err := exec.LookPath("systemctl"); err == nil {
		for _, svc := range s.services {
			if svc.kind == kindUnit {
				s.readUnitState(svc, systemctl)
			}
		}
	}
	for _, svc := range s.services {
		s.metrics.set(svc.snapshotLocked())
	}
	return s, nil
}

// Start starts every service in config order. It stops at the first
// failure and returns an error naming that service; the services before it
// keep running (the caller rolls back with Stop) and the services after it
// are left as they were. Running services are left alone and failed ones
// are started again.
//
// A critical service with a check counts as started only once its check
// has passed rise times in a row, within the service's timeout (from the
// beginning of its start); until then it is starting. Its run: process
// exiting meanwhile, or the timeout passing first, fails the start (and a
// run: process still alive is stopped). Other services count as started as
// soon as their start command succeeds, their unit is started or their
// run: process has outlived a short grace period.
func (s *Supervisor) Start(ctx context.Context) error {
	s.ops.Lock()
	defer s.ops.Unlock()
	for _, svc := range s.services {
		if err := s.start(ctx, svc); err != nil {
			return fmt.Errorf("start service %q: %w", svc.spec.Name, err)
		}
	}
	return nil
}

// Stop stops every service in reverse config order. It keeps going past
// failures and returns them joined. Stopped services are left alone.
func (s *Supervisor) Stop(ctx context.Context) error {
	s.ops.Lock()
	defer s.ops.Unlock()
	var errs []error
	for i := len(s.services) - 1; i >= 0; i-- {
		svc := s.services[i]
		if err := s.stop(ctx, svc); err != nil {
			errs = append(errs, fmt.Errorf("stop service %q: %w", svc.spec.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Status is a snapshot of every service, in config order. It never blocks
// on I/O.
func (s *Supervisor) Status() []api.Service {
	out := make([]api.Service, 0, len(s.services))
	for _, svc := range s.services {
		svc.mu.Lock()
		out = append(out, svc.snapshotLocked())
		svc.mu.Unlock()
	}
	return out
}

// Unhealthy names the critical services that have failed or whose health
// check has fallen. A check that has not yet decided (health unknown) does
// not count.
func (s *Supervisor) Unhealthy() []string {
	var out []string
	for _, svc := range s.services {
		svc.mu.Lock()
		bad := svc.spec.Critical && (svc.state == StateFailed || svc.health.State() == hysteresis.Down)
		svc.mu.Unlock()
		if bad {
			out = append(out, svc.spec.Name)
		}
	}
	return out
}

// update applies f to svc under its lock, then reports the change, if the
// visible status changed: metrics, a log line and OnChange.
func (s *Supervisor) update(svc *service, f func()) {
	svc.mu.Lock()
	before := svc.snapshotLocked()
	f()
	after := svc.snapshotLocked()
	if before != after {
		// Under the lock so that two updates cannot set gauges out of order.
		s.metrics.set(after)
	}
	svc.mu.Unlock()
	if before == after {
		return
	}
	if before.State != after.State {
		attrs := []any{"service", after.Name, "from", before.State, "to", after.State}
		if after.State == StateFailed {
			s.log.Error("service failed", append(attrs, "error", after.Error)...)
		} else {
			s.log.Info("service state", attrs...)
		}
	}
	if s.onChange != nil {
		s.onChange()
	}
}

// environ is the environment of every command resman runs.
func (s *Supervisor) environ() []string {
	return append(os.Environ(), s.env...)
}
