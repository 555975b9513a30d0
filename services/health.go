package services

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/resman-pbx/resman/services/hysteresis"
)

// Run probes the health of every service with a check until ctx is done:
// each every Interval, concurrently, and only while it is running. It holds
// one SIP user agent for all sip checks and closes it before returning.
// Call it once per Supervisor.
func (s *Supervisor) Run(ctx context.Context) {
	p, release := s.acquireProbers()
	defer release()
	var wg sync.WaitGroup
	for _, svc := range s.services {
		if svc.check != nil {
			wg.Go(func() { s.probeLoop(ctx, svc, p) })
		}
	}
	wg.Wait()
}

// probeLoop probes svc now and then every Interval. One loop per service,
// so that a slow probe delays no other service's.
func (s *Supervisor) probeLoop(ctx context.Context, svc *service, p *probers) {
	ticker := time.NewTicker(svc.check.interval)
	defer ticker.Stop()
	for {
		s.probeOnce(ctx, svc, p)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// probeOnce runs one probe of svc if it is running and counts the result,
// unless svc was stopped or restarted meanwhile.
func (s *Supervisor) probeOnce(ctx context.Context, svc *service, p *probers) {
	svc.mu.Lock()
	running, gen := svc.state == StateRunning, svc.gen
	svc.mu.Unlock()
	if !running {
		return
	}
	err := s.runProbe(ctx, svc, p, svc.check.timeout)
	if ctx.Err() != nil {
		return // shutting down: not the service's fault
	}
	flipped, now := false, hysteresis.Unknown
	s.update(svc, func() {
		if svc.gen != gen || svc.state != StateRunning {
			return
		}
		flipped = svc.health.Observe(err == nil)
		now = svc.health.State()
		if !flipped {
			return
		}
		if now == hysteresis.Down {
			svc.checkErr = "check: " + err.Error()
		} else {
			svc.checkErr = ""
		}
	})
	switch {
	case !flipped:
	case now == hysteresis.Down:
		svc.log.Warn("service unhealthy", "check", svc.check.kind, "error", err)
	default:
		svc.log.Info("service healthy", "check", svc.check.kind)
	}
}

// runProbe runs one probe of svc's check, bounded by timeout and ctx, and
// counts a failure in the metrics unless ctx is done (then the failure is
// not the service's).
func (s *Supervisor) runProbe(ctx context.Context, svc *service, p *probers, timeout time.Duration) error {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	err := svc.check.probe(pctx, p)
	cancel()
	if err != nil && ctx.Err() == nil {
		s.metrics.checkFailed(svc.spec.Name)
		svc.log.Debug("check failed", "check", svc.check.kind, "error", err)
	}
	return err
}

// acquireProbers returns the probers shared by Run and the starts waiting
// for a check, making them if nobody holds them; release gives them back,
// and the last release closes them. One SIP user agent serves them all.
func (s *Supervisor) acquireProbers() (p *probers, release func()) {
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	if s.shared == nil {
		s.shared = s.newProbers()
	}
	s.sharedRefs++
	p = s.shared
	return p, sync.OnceFunc(func() {
		s.probeMu.Lock()
		s.sharedRefs--
		last := s.sharedRefs == 0
		if last {
			s.shared = nil
		}
		s.probeMu.Unlock()
		if last {
			p.close()
		}
	})
}

// errExitedDuringStart is awaitCheck's answer when the run: process it
// watches has exited; the caller knows how it exited.
var errExitedDuringStart = errors.New("process exited during start")

// awaitCheck probes svc, which is starting, until its check has passed rise
// times in a row: at once, then at the fast interval (see
// startProbeInterval), each probe bounded by the check's timeout and by
// deadline, up to maxStartProbes at once. Failures while starting do not make the
// service unhealthy; they only break the run of passes. It fails when
// deadline passes first (quoting the last probe error), when ctx is done,
// or, with errExitedDuringStart, as soon as exited is closed (nil for a
// service without a process of its own). On success svc's health is
// already up: no further rise period is needed once it is running.
func (s *Supervisor) awaitCheck(ctx context.Context, svc *service, deadline time.Time, exited <-chan struct{}) error {
	c := svc.check
	svc.mu.Lock()
	gen := svc.gen
	svc.mu.Unlock()
	p, release := s.acquireProbers()
	defer release()
	// Probes may overlap: one sent before the service listened can wait
	// out its whole timeout (a UDP request nobody answers), and the next
	// ones must not wait behind it. Each is counted in the order it was
	// sent: a result older than a pass already counted says nothing new.
	pctx, cancel := context.WithCancel(ctx)
	type result struct {
		seq int
		err error
	}
	results := make(chan result, maxStartProbes)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // before release: the probes use p
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	// While a service comes up, probe at the fast interval, as HAProxy's
	// fastinter does for servers in transition: the activation waits for
	// the service, not for the check's period.
	ticker := time.NewTicker(startProbeInterval(c.interval))
	defer ticker.Stop()
	seq, inflight, lastPass := 0, 0, -1
	launch := func() {
		remaining := time.Until(deadline)
		if remaining <= 0 || inflight >= maxStartProbes {
			return
		}
		n := seq
		seq++
		inflight++
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- result{n, s.runProbe(pctx, svc, p, min(c.timeout, remaining))}
		}()
	}
	launch()
	var lastErr error
	for {
		select {
		case r := <-results:
			inflight--
			select {
			case <-exited:
				return errExitedDuringStart
			default:
			}
			if ctx.Err() != nil {
				return fmt.Errorf("wait for check %s: %w", c.describe(), ctx.Err())
			}
			if r.seq < lastPass {
				continue
			}
			if r.err == nil {
				lastPass = r.seq
			} else {
				lastErr = r.err
			}
			up := false
			s.update(svc, func() {
				if svc.gen == gen && svc.state == StateStarting {
					svc.health.ObserveStarting(r.err == nil)
					up = svc.health.State() == hysteresis.Up
				}
			})
			if up {
				svc.log.Info("service healthy", "check", c.kind)
				return nil
			}
		case <-ticker.C:
			launch()
		case <-ctx.Done():
			return fmt.Errorf("wait for check %s: %w", c.describe(), ctx.Err())
		case <-exited:
			return errExitedDuringStart
		case <-timer.C:
			why := "too few probes in time"
			if lastErr != nil {
				why = lastErr.Error()
			}
			return fmt.Errorf("check %s did not pass %d times in a row within %s: %s",
				c.describe(), c.rise, svc.spec.Timeout, why)
		}
	}
}

// maxStartProbes bounds the probes of a starting service under way at once.
const maxStartProbes = 4

// fastInterval bounds the time between two probes of a service that is
// starting.
const fastInterval = 100 * time.Millisecond

// startProbeInterval is the time between two probes while a service
// starts: the check's interval, at most fastInterval.
func startProbeInterval(interval time.Duration) time.Duration { return min(interval, fastInterval) }

// checker is a parsed health check.
type checker struct {
	kind              string // sip, exec, tcp or http
	target            string // the URI or address, for messages
	exec              []string
	sip               sipTarget
	interval, timeout time.Duration
	rise, fall        int
}

func newChecker(c Check) (*checker, error) {
	ch := &checker{
		interval: c.Interval,
		timeout:  c.Timeout,
		rise:     c.Rise,
		fall:     c.Fall,
	}
	if ch.interval <= 0 {
		ch.interval = defaultCheckInterval
	}
	if ch.timeout <= 0 {
		ch.timeout = min(defaultCheckTimeout, ch.interval)
	}
	if ch.rise <= 0 {
		ch.rise = hysteresis.DefaultRise
	}
	if ch.fall <= 0 {
		ch.fall = hysteresis.DefaultFall
	}
	switch {
	case c.SIP != "":
		t, err := parseSIPTarget(c.SIP)
		if err != nil {
			return nil, err
		}
		ch.kind, ch.target, ch.sip = KindSIP, c.SIP, t
	case len(c.Exec) > 0:
		ch.kind, ch.exec = KindExec, c.Exec
	case c.TCP != "":
		ch.kind, ch.target = KindTCP, c.TCP
	case c.HTTP != "":
		ch.kind, ch.target = KindHTTP, c.HTTP
	default:
		return nil, errNoCheck
	}
	return ch, nil
}

// describe names the check in messages: its URI or URL, "tcp HOST:PORT" or
// "exec CMD ARG...".
func (c *checker) describe() string {
	switch c.kind {
	case KindTCP:
		return "tcp " + c.target
	case KindExec:
		return "exec " + strings.Join(c.exec, " ")
	}
	return c.target
}
