package node

import (
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
)

// switchoverShownFor is how long a switchover's steps stay in the status
// after it ended: long enough for the page and `resman status` to show how
// it went, short enough not to read as news the next day.
const switchoverShownFor = 10 * time.Minute

// switchoverName is the file in node.data_dir that keeps the last
// switchover's steps across a restart.
const switchoverName = "switchover.json"

// switchoverProgress keeps the steps of the switchover this node runs or
// ran last, for the status, and in a file of the data directory: after a
// restart (a crash in the middle of one included) the page and `resman
// status` still say how the last one went. Safe for concurrent use.
type switchoverProgress struct {
	mu   sync.Mutex
	now  func() time.Time // the node's clock
	run  *api.SwitchoverProgress
	path string       // empty: kept in memory only
	log  *slog.Logger // a file that cannot be written or read is logged
}

// load reads the last run from path, if any. A run the node did not end
// was cut by the restart: its running step failed, the others were
// skipped, and its outcome is "interrupted", ended now.
func (sp *switchoverProgress) load(path string, log *slog.Logger) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.path, sp.log = path, log
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var run api.SwitchoverProgress
	if err == nil {
		err = json.Unmarshal(raw, &run)
	}
	if err != nil {
		log.Warn("the last switchover's steps cannot be read: not shown", "file", path, "err", err)
		return
	}
	if run.Outcome == "" {
		now := sp.now().UTC()
		for i := range run.Steps {
			switch run.Steps[i].State {
			case api.StepRunning:
				run.Steps[i].State, run.Steps[i].Ended = api.StepFailed, now
				run.Steps[i].Detail = "interrupted: the node restarted"
			case api.StepPending:
				run.Steps[i].State = api.StepSkipped
			}
		}
		run.Outcome, run.Ended = api.SwitchoverInterrupted, now
	}
	sp.run = &run
	sp.saveLocked()
}

// saveLocked writes the run to the file, without a disk flush: it is
// shown, not relied on (a file a crash left empty is not shown), and a
// switchover must not wait for the disk at each step. A failure is only
// logged. Under mu.
func (sp *switchoverProgress) saveLocked() {
	if sp.path == "" || sp.run == nil {
		return
	}
	raw, err := json.MarshalIndent(sp.run, "", "  ")
	if err == nil {
		err = writeFileAtomic(sp.path, append(raw, '\n'), false)
	}
	if err != nil {
		sp.log.Warn("cannot keep the switchover's steps on disk", "file", sp.path, "err", err)
	}
}

// begin starts a new run with its steps pending.
func (sp *switchoverProgress) begin(id, to, who, reason string, steps []string) {
	run := &api.SwitchoverProgress{ID: id, To: to, Who: who, Reason: reason, Started: sp.now().UTC()}
	for _, name := range steps {
		run.Steps = append(run.Steps, api.SwitchoverStep{Name: name, State: api.StepPending})
	}
	sp.mu.Lock()
	sp.run = run
	sp.saveLocked()
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
	sp.saveLocked()
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
	sp.saveLocked()
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
