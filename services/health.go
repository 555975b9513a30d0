package services

import (
	"context"
	"sync"
	"time"

	"github.com/resman-pbx/resman/config"
)

// health is the verdict of a service's check.
type health int

const (
	healthUnknown health = iota // not yet Rise passes nor Fall failures
	healthUp
	healthDown
)

func (h health) String() string {
	switch h {
	case healthUp:
		return "healthy"
	case healthDown:
		return "unhealthy"
	default:
		return "unknown"
	}
}

// hysteresis is the rise/fall counter of a check, as in HAProxy: from
// unknown, rise passes in a row make it up and fall failures in a row make
// it down; afterwards it flips only after rise passes (to up) or fall
// failures (to down) in a row. It knows nothing of time.
type hysteresis struct {
	rise, fall int
	state      health
	passes     int // consecutive passes
	fails      int // consecutive failures
}

func newHysteresis(rise, fall int) hysteresis {
	return hysteresis{rise: max(rise, 1), fall: max(fall, 1)}
}

// observe counts one probe result and reports whether the state changed.
func (h *hysteresis) observe(pass bool) bool {
	before := h.state
	if pass {
		h.passes++
		h.fails = 0
		if h.passes >= h.rise {
			h.state = healthUp
		}
	} else {
		h.fails++
		h.passes = 0
		if h.fails >= h.fall {
			h.state = healthDown
		}
	}
	return h.state != before
}

// reset forgets all results: the service starts a new life.
func (h *hysteresis) reset() {
	h.state, h.passes, h.fails = healthUnknown, 0, 0
}

// Run probes the health of every service with a check until ctx is done:
// each every Interval, concurrently, and only while it is running. It holds
// one SIP user agent for all sip checks and closes it before returning.
// Call it once per Supervisor.
func (s *Supervisor) Run(ctx context.Context) {
	p := s.newProbers()
	defer p.close()
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
	pctx, cancel := context.WithTimeout(ctx, svc.check.timeout)
	err := svc.check.probe(pctx, p)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: not the service's fault
	}
	if err != nil {
		s.metrics.checkFailed(svc.spec.Name)
		svc.log.Debug("check failed", "check", svc.check.kind, "error", err)
	}
	flipped, now := false, healthUnknown
	s.update(svc, func() {
		if svc.gen != gen || svc.state != StateRunning {
			return
		}
		flipped = svc.health.observe(err == nil)
		now = svc.health.state
		if !flipped {
			return
		}
		if now == healthDown {
			svc.checkErr = "check: " + err.Error()
		} else {
			svc.checkErr = ""
		}
	})
	switch {
	case !flipped:
	case now == healthDown:
		svc.log.Warn("service unhealthy", "check", svc.check.kind, "error", err)
	default:
		svc.log.Info("service healthy", "check", svc.check.kind)
	}
}

// checker is a parsed health check.
type checker struct {
	kind              string // sip, exec, tcp or http
	target            string // the URI or address, for messages
	exec              []string
	sip               sipTarget
	interval, timeout time.Duration
	rise, fall        int
}

func newChecker(c config.Check) (*checker, error) {
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
		ch.rise = defaultRiseFall
	}
	if ch.fall <= 0 {
		ch.fall = defaultRiseFall
	}
	switch {
	case c.SIP != "":
		t, err := parseSIPTarget(c.SIP)
		if err != nil {
			return nil, err
		}
		ch.kind, ch.target, ch.sip = config.KindSIP, c.SIP, t
	case len(c.Exec) > 0:
		ch.kind, ch.exec = config.KindExec, c.Exec
	case c.TCP != "":
		ch.kind, ch.target = config.KindTCP, c.TCP
	case c.HTTP != "":
		ch.kind, ch.target = config.KindHTTP, c.HTTP
	default:
		return nil, errNoCheck
	}
	return ch, nil
}
