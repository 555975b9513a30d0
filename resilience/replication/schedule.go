package replication

import (
	"context"
	"sync"
	"time"
)

const (
	// inactivePoll is how often a job checks whether its node became
	// Active (at most its period).
	inactivePoll = 5 * time.Second
	// minRetry and maxRetry bound the first retry after a failure.
	minRetry = 10 * time.Second
	maxRetry = 5 * time.Minute
)

// Schedule runs each job every Every (±10%, drawn anew after each run)
// while active says so, until ctx ends; it waits for the runs under way
// (which ctx cancels) before it returns. A failed run is retried sooner:
// after an eighth of Every (10s to 5min), doubling at each failure up to
// Every. A job whose last run is older than Every (a restart, a node just
// Active) runs at once. A run in progress from RunNow is never doubled:
// the scheduler waits for it, then counts from it.
//
// A node that is not Active runs nothing: pass active as "this node is
// the Active Main".
func (r *Runner) Schedule(ctx context.Context, active func() bool) {
	var wg sync.WaitGroup
	for _, js := range r.jobs {
		wg.Go(func() { r.scheduleJob(ctx, js, active) })
	}
	wg.Wait()
	r.mu.Lock()
	for _, js := range r.jobs {
		js.nextRun = time.Time{}
	}
	r.mu.Unlock()
}

func (r *Runner) scheduleJob(ctx context.Context, js *jobState, active func() bool) {
	poll := min(inactivePoll, js.job.Every)
	for {
		wait := poll
		var next time.Time
		if active() {
			now := r.now()
			next = r.nextDue(js)
			if next.Before(now) {
				next = now
			}
			wait = next.Sub(now)
		}
		r.mu.Lock()
		js.nextRun = next
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-r.after(wait):
		}
		if !active() || r.now().Before(r.nextDue(js)) {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case js.sem <- struct{}{}:
		}
		// A manual run may have ended while we waited for the token.
		if active() && !r.now().Before(r.nextDue(js)) {
			r.run(ctx, js, TriggerSchedule)
		}
		<-js.sem
	}
}

// nextDue is when js is due: its last start plus its period (or retry
// delay) with its jitter; zero (at once) if it never ran.
func (r *Runner) nextDue(js *jobState) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if js.last == nil {
		return time.Time{}
	}
	every := js.job.Every
	interval := every
	if js.failures > 0 {
		interval = min(max(every/8, minRetry), maxRetry)
		for i := 1; i < js.failures && interval < every; i++ {
			interval *= 2
		}
		interval = min(interval, every)
	}
	return js.last.Start.Add(interval + time.Duration(float64(interval)*js.jitter))
}
