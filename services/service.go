package services

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/procexec"
	"github.com/resman-pbx/resman/services/hysteresis"
)

// kind is how a service is driven.
type kind int

const (
	kindCommands kind = iota // start/stop commands
	kindUnit                 // a systemd unit via systemctl
	kindRun                  // a foreground process resman owns
)

const (
	// runGrace is how long a run: process of a service that does not
	// await its check must stay up for its start to count: most
	// misconfigurations (bad flag, port in use) exit at once. A critical
	// service with a check waits for its check instead.
	runGrace = 50 * time.Millisecond
	// killWait bounds the wait for a process to die after SIGKILL.
	killWait = 5 * time.Second
	// unitStateTimeout bounds `systemctl is-active` at New.
	unitStateTimeout = 5 * time.Second
)

// service is one supervised service and its state.
type service struct {
	spec  Service
	kind  kind
	check *checker // nil without a health check
	log   *slog.Logger

	mu       sync.Mutex
	state    string
	err      string                // why the last start or stop failed, or the process exited
	health   hysteresis.Hysteresis // Counted; reset at every new life
	checkErr string                // the probe failure that made health fall
	// gen changes at every start and stop so that a probe begun before
	// the change does not count for the service's new life.
	gen  uint64
	proc *process // run: only; the current process
}

func newService(spec Service, log *slog.Logger) (*service, error) {
	svc := &service{
		spec:  spec,
		log:   log.With("service", spec.Name),
		state: StateStopped,
	}
	if svc.spec.Timeout <= 0 {
		svc.spec.Timeout = defaultTimeout
	}
	switch {
	case len(spec.Run) > 0:
		svc.kind = kindRun
	case spec.Unit != "":
		svc.kind = kindUnit
	default:
		svc.kind = kindCommands
	}
	if spec.Check != nil {
		c, err := newChecker(*spec.Check)
		if err != nil {
			return nil, fmt.Errorf("check: %w", err)
		}
		svc.check = c
		svc.health = hysteresis.New(c.rise, c.fall, hysteresis.Counted)
	}
	return svc, nil
}

// snapshotLocked is the service's visible status; svc.mu must be held (or
// the service not yet shared).
func (svc *service) snapshotLocked() api.Service {
	out := api.Service{
		Name:     svc.spec.Name,
		State:    svc.state,
		Critical: svc.spec.Critical,
		Error:    svc.err,
	}
	if svc.state == StateRunning {
		if svc.check == nil {
			out.Healthy = true
		} else {
			out.Healthy = svc.health.State() == hysteresis.Up
			if svc.health.State() == hysteresis.Down && out.Error == "" {
				out.Error = svc.checkErr
			}
		}
	}
	return out
}

// enterLocked moves svc to a new life (starting or stopping): its health
// check starts over and probes already under way no longer count.
func (svc *service) enterLocked(state string) {
	svc.state = state
	svc.err = ""
	svc.gen++
	svc.health.Reset()
	svc.checkErr = ""
}

// awaitsCheck reports whether a start of svc waits for its check to pass:
// only critical services with a check do.
func (svc *service) awaitsCheck() bool {
	return svc.spec.Critical && svc.check != nil
}

// start starts svc unless it is running. A service that awaitsCheck is
// running only once its check has passed rise times in a row, within its
// timeout counted from the beginning of the start.
func (s *Supervisor) start(ctx context.Context, svc *service) error {
	svc.mu.Lock()
	running := svc.state == StateRunning
	svc.mu.Unlock()
	if running {
		return nil
	}
	s.update(svc, func() { svc.enterLocked(StateStarting) })
	begin := time.Now()
	deadline := begin.Add(svc.spec.Timeout)
	var err error
	switch svc.kind {
	case kindCommands:
		err = s.runCommand(ctx, svc.spec.Timeout, svc.spec.Start)
	case kindUnit:
		err = s.runCommand(ctx, svc.spec.Timeout, []string{"systemctl", "start", svc.spec.Unit})
	case kindRun:
		err = s.startRun(ctx, svc, deadline)
	}
	if err == nil && svc.kind != kindRun && svc.awaitsCheck() {
		// startRun has waited already, watching its process.
		err = s.awaitCheck(ctx, svc, deadline, nil)
	}
	if err != nil {
		// A run: process whose start was cancelled (resman stopping) has
		// been killed and reaped: it is stopped, not failed.
		cancelled := svc.kind == kindRun && ctx.Err() != nil
		s.update(svc, func() {
			if cancelled {
				svc.state, svc.err, svc.proc = StateStopped, "", nil
				return
			}
			svc.state = StateFailed
			svc.err = err.Error()
		})
		return err
	}
	if svc.kind != kindRun { // startRun has set it already
		s.update(svc, func() { svc.state = StateRunning })
	}
	s.metrics.observeStart(svc.spec.Name, time.Since(begin))
	return nil
}

// stop stops svc unless it is stopped.
func (s *Supervisor) stop(ctx context.Context, svc *service) error {
	svc.mu.Lock()
	stopped := svc.state == StateStopped
	svc.mu.Unlock()
	if stopped {
		return nil
	}
	s.update(svc, func() { svc.enterLocked(StateStopping) })
	var err error
	switch svc.kind {
	case kindCommands:
		err = s.runCommand(ctx, svc.spec.Timeout, svc.spec.Stop)
	case kindUnit:
		err = s.runCommand(ctx, svc.spec.Timeout, []string{"systemctl", "stop", svc.spec.Unit})
	case kindRun:
		err = s.stopRun(ctx, svc)
	}
	s.update(svc, func() {
		if err != nil {
			svc.state = StateFailed
			svc.err = err.Error()
			return
		}
		svc.state = StateStopped
		svc.proc = nil
	})
	return err
}

// process is one run: process.
type process struct {
	cmd  *exec.Cmd
	pgid int
	out  *procexec.Tail
	logs [2]*lineLogger
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // cmd.Wait's result; read only after done
	// stopping is set (under service.mu) when resman stops the process, so
	// that its exit is not taken for a failure.
	stopping bool
}

// exitError describes how p ended; during is "" or " during start".
func (p *process) exitError(during string) error {
	err := p.err
	if err == nil {
		err = errors.New("exit status 0")
	}
	return fmt.Errorf("process %q exited%s: %w%s", p.cmd.Args[0], during, err, quote(p.out.Line(0)))
}

// startRun spawns svc's run: process and waits until it counts as started:
// for a service that awaitsCheck, until its check has passed (see
// awaitCheck) before deadline; for the others, until it has outlived the
// grace period. A process that exits meanwhile has failed to start. A
// process still alive when its check did not pass in time is stopped, so
// that the next start does not spawn a second one.
func (s *Supervisor) startRun(ctx context.Context, svc *service, deadline time.Time) error {
	argv := svc.spec.Run
	out := procexec.NewTail(tailSize)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = s.environ()
	cmd.SysProcAttr = runProcAttr()
	stdout := newLineLogger(svc.log, "stdout", out)
	stderr := newLineLogger(svc.log, "stderr", out)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// A child that keeps the output pipes open must not keep Wait (and so
	// the exit report) waiting forever.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("spawn %q: %w", argv[0], err)
	}
	p := &process{
		cmd:  cmd,
		pgid: cmd.Process.Pid, // Setpgid makes it the group leader
		out:  out,
		logs: [2]*lineLogger{stdout, stderr},
		done: make(chan struct{}),
	}
	svc.mu.Lock()
	svc.proc = p
	svc.mu.Unlock()
	go s.waitRun(svc, p)
	svc.log.Debug("spawned", "pid", p.pgid, "argv", argv)

	if svc.awaitsCheck() {
		err := s.awaitCheck(ctx, svc, deadline, p.done)
		switch {
		case errors.Is(err, errExitedDuringStart):
			<-p.done
			return p.exitError(" during start")
		case err != nil && ctx.Err() != nil:
			procexec.KillGroup(p.pgid, syscall.SIGKILL)
			<-p.done
			return err
		case err != nil:
			// Alive but not working: stopped as Stop would, within the
			// caller's ctx; the start fails for the check either way.
			if serr := s.stopRun(ctx, svc); serr != nil {
				return fmt.Errorf("%w; stopping it: %w", err, serr)
			}
			return err
		}
	} else {
		grace := time.NewTimer(min(s.runGrace, svc.spec.Timeout))
		defer grace.Stop()
		select {
		case <-p.done:
		case <-grace.C:
		case <-ctx.Done():
			procexec.KillGroup(p.pgid, syscall.SIGKILL)
			<-p.done
			return fmt.Errorf("wait for %q to settle: %w", argv[0], ctx.Err())
		}
	}
	var err error
	s.update(svc, func() {
		// Checked under the lock: waitRun reports an exit only once the
		// state is running, so exactly one of us sees it.
		select {
		case <-p.done:
			err = p.exitError(" during start")
		default:
			svc.state = StateRunning
		}
	})
	return err
}

// waitRun reaps p and, if it was meant to be running, marks svc failed.
// There is no automatic restart: a later Start starts it again.
func (s *Supervisor) waitRun(svc *service, p *process) {
	p.err = p.cmd.Wait()
	for _, l := range p.logs {
		l.flush()
	}
	// Take down what is left of its process group: the service lives and
	// dies as a whole.
	procexec.KillGroup(p.pgid, syscall.SIGKILL)
	close(p.done)
	s.update(svc, func() {
		if svc.proc != p || p.stopping || svc.state != StateRunning {
			return
		}
		svc.state = StateFailed
		svc.err = p.exitError("").Error()
		svc.gen++
		svc.health.Reset()
	})
}

// stopRun sends SIGTERM (and SIGCONT) to svc's process group, then SIGKILL after the
// service's timeout or once ctx is done.
func (s *Supervisor) stopRun(ctx context.Context, svc *service) error {
	svc.mu.Lock()
	p := svc.proc
	if p != nil {
		p.stopping = true
	}
	svc.mu.Unlock()
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := procexec.KillGroup(p.pgid, syscall.SIGTERM); err != nil {
		svc.log.Warn("cannot send SIGTERM", "pid", p.pgid, "error", err)
	}
	// As systemd does: a stopped (frozen) process only acts on SIGTERM
	// once continued; without this it would hold the stop for the whole
	// timeout.
	_ = procexec.KillGroup(p.pgid, syscall.SIGCONT)
	timer := time.NewTimer(svc.spec.Timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
		svc.log.Warn("still running after SIGTERM; sending SIGKILL", "pid", p.pgid, "timeout", svc.spec.Timeout)
	case <-ctx.Done():
		// Cancelled is resman stopping mid-stop: the process goes with
		// it, as planned; a deadline is a caller that gave up waiting.
		level := slog.LevelWarn
		if errors.Is(ctx.Err(), context.Canceled) {
			level = slog.LevelInfo
		}
		svc.log.Log(context.Background(), level, "stop cancelled; sending SIGKILL", "pid", p.pgid, "error", ctx.Err())
	}
	if err := procexec.KillGroup(p.pgid, syscall.SIGKILL); err != nil {
		svc.log.Warn("cannot send SIGKILL", "pid", p.pgid, "error", err)
	}
	wait := time.NewTimer(killWait)
	defer wait.Stop()
	select {
	case <-p.done:
		return nil
	case <-wait.C:
		return fmt.Errorf("process %d still running %s after SIGKILL", p.pgid, killWait)
	}
}

// readUnitState sets svc's initial state from `systemctl is-active`.
func (s *Supervisor) readUnitState(svc *service, systemctl string) {
	ctx, cancel := context.WithTimeout(context.Background(), min(unitStateTimeout, svc.spec.Timeout))
	defer cancel()
	// is-active exits non-zero for every state but active; its output
	// still names the state.
	cmd := exec.CommandContext(ctx, systemctl, "is-active", svc.spec.Unit)
	cmd.Env = s.environ()
	out, err := cmd.Output()
	state := parseActiveState(string(out))
	if len(out) == 0 && err != nil {
		svc.log.Warn("cannot read unit state; assuming stopped", "unit", svc.spec.Unit, "error", err)
	}
	svc.state = state
	if state == StateFailed {
		svc.err = fmt.Sprintf("unit %s is failed", svc.spec.Unit)
	}
	svc.log.Debug("initial unit state", "unit", svc.spec.Unit, "state", state)
}
