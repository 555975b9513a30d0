package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
)

// The manual HA failover of an auto-mode pair.

// Manual HA failover bounds: shorter is a blip, longer should be a
// switchover or a config change.
const (
	minFailover = 10 * time.Second
	maxFailover = 7 * 24 * time.Hour
)

// StartFailover is a manual HA failover (auto mode, on the Active Main):
// it steps down and holds Inactive for req.For so the Standby carries the
// load; refused unless HA is ready. Blocks until this node is Inactive.
func (n *Node) StartFailover(ctx context.Context, who string, req api.FailoverRequest) (api.Status, error) {
	if strings.TrimSpace(req.Reason) == "" {
		return api.Status{}, fmt.Errorf("%w: reason is required", resilience.ErrInvalid)
	}
	d, err := time.ParseDuration(req.For)
	if err != nil || d < minFailover || d > maxFailover {
		return api.Status{}, fmt.Errorf("%w: for must be a duration from %s to %s, like 30m, got %q",
			resilience.ErrInvalid, minFailover, maxFailover, req.For)
	}
	notReady := ""
	if st := n.Status(); !st.HA.Ready {
		notReady = strings.Join(st.HA.Reasons, "; ")
	}
	return n.command(ctx, "manual failover", resilience.Inactive, resilience.AdminFailover{
		Who: who, Reason: req.Reason, ForTicks: int(d / n.d.TickEvery), For: d.String(), NotReady: notReady})
}

// StopFailover ends a manual HA failover early; failback then follows the
// policy.
func (n *Node) StopFailover(ctx context.Context, who string, req api.StopRequest) (api.Status, error) {
	if strings.TrimSpace(req.Reason) == "" {
		return api.Status{}, fmt.Errorf("%w: reason is required", resilience.ErrInvalid)
	}
	return n.command(ctx, "stop manual failover", "", resilience.AdminFailoverStop{Who: who, Reason: req.Reason})
}

// failoverTime is the end of a manual failover as readiness shows it, the
// same on both nodes (UTC: the two nodes' time zones may differ).
func failoverTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// failoverMarkFile keeps the end of a manual HA failover under way, so
// that a restart, which ends it (the core keeps it in memory only), says
// so in the audit log instead of ending it silently.
const failoverMarkFile = "manual-failover.json"

// markFailover writes the end of the manual failover that just began, or
// removes the mark when until is zero. Best effort: the mark only serves
// the audit log.
func (n *Node) markFailover(until time.Time) {
	path := filepath.Join(n.d.DataDir, failoverMarkFile)
	if until.IsZero() {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			n.log.Warn("cannot remove the manual failover's mark", "path", path, "err", err)
		}
		return
	}
	raw, _ := json.Marshal(struct {
		Until time.Time `json:"until"`
	}{until})
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		n.log.Warn("cannot mark the manual failover: a restart would end it without an audit entry", "path", path, "err", err)
	}
}

// failoverEndedByRestart audits a manual failover that the previous run
// left under way: a restart ends it. Called once, at boot.
func (n *Node) failoverEndedByRestart() {
	path := filepath.Join(n.d.DataDir, failoverMarkFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return
	}
	defer os.Remove(path)
	var m struct {
		Until time.Time `json:"until"`
	}
	if json.Unmarshal(raw, &m) != nil || m.Until.IsZero() {
		return
	}
	cause := fmt.Sprintf("resman restarted during the manual failover that was to last until %s: it has ended; failback follows the policy",
		failoverTime(m.Until))
	if !m.Until.After(n.now()) {
		cause = fmt.Sprintf("the manual failover ended at %s while resman was stopped; failback follows the policy", failoverTime(m.Until))
	}
	st := n.m.Status()
	n.record(resilience.Record{Who: resilience.Self, Action: "manual failover ended", Cause: cause, Outcome: resilience.OutcomeOK,
		Epoch: n.m.Epoch(), From: st, To: st})
}
