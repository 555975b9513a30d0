package node

import (
	"slices"
	"sync"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
)

// switchoverShownFor is how long a switchover's steps stay in the status
// after it ended: long enough for the page and `resman status` to show how
// it went, short enough not to read as news the next day.
const switchoverShownFor = 10 * time.Minute

// switchoverProgress keeps the steps of the switchover this node runs or
// ran last, for the status. Safe for concurrent use.
type switchoverProgress struct {
	mu  sync.Mutex
	now func() time.Time // the node's clock
	run *api.SwitchoverProgress
}

// begin starts a new run with its steps pending.
func (sp *switchoverProgress) begin(id, to, who, reason string, steps []string) {
	run := &api.SwitchoverProgress{ID: id, To: to, Who: who, Reason: reason, Started: sp.now().UTC()}
	for _, name := range steps {
		run.Steps = append(run.Steps, api.SwitchoverStep{Name: name, State: api.StepPending})
	}
	sp.mu.Lock()
	sp.run = run
	sp.mu.Unlock()
}

// step sets a step's state (adding it when the run did not plan it: the
// rollback), with what it says.
func (sp *switchoverProgress) step(name, state, detail string) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.run == nil {
		return
	}
	i := slices.IndexFunc(sp.run.Steps, func(s api.SwitchoverStep) bool { return s.Name == name })
	if i < 0 {
		sp.run.Steps = append(sp.run.Steps, api.SwitchoverStep{Name: name})
		i = len(sp.run.Steps) - 1
	}
	s := &sp.run.Steps[i]
	now := sp.now().UTC()
	switch state {
	case api.StepRunning:
		s.Started = now
	case api.StepDone, api.StepFailed:
		if s.Started.IsZero() {
			s.Started = now
		}
		s.Ended = now
	}
	s.State, s.Detail = state, detail
}

// end closes the run with its outcome; steps still pending are skipped.
func (sp *switchoverProgress) end(outcome string) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.run == nil {
		return
	}
	for i := range sp.run.Steps {
		if sp.run.Steps[i].State == api.StepPending {
			sp.run.Steps[i].State = api.StepSkipped
		}
	}
	sp.run.Outcome, sp.run.Ended = outcome, sp.now().UTC()
}

// shown is a copy of the run for the status, or nil when there is none or
// it ended more than switchoverShownFor ago.
func (sp *switchoverProgress) shown(now time.Time) *api.SwitchoverProgress {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.run == nil || (!sp.run.Ended.IsZero() && now.Sub(sp.run.Ended) > switchoverShownFor) {
		return nil
	}
	c := *sp.run
	c.Steps = slices.Clone(sp.run.Steps)
	return &c
}
