package node

import (
	"context"
	"fmt"
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
