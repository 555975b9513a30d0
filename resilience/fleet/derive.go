package fleet

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
)

// Severities, worst first. A pair's severity is the worst of its classes.
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
	SeverityInfo     = "info"
	SeverityOK       = "ok"
)

// SeverityRank orders severities: 3 critical, 2 warning, 1 info, 0 ok
// (also the value of resman_fleet_pair_severity).
func SeverityRank(s string) int {
	switch s {
	case SeverityCritical:
		return 3
	case SeverityWarning:
		return 2
	case SeverityInfo:
		return 1
	}
	return 0
}

// Classes of what is wrong with a pair, each with its severity.
const (
	// ClassSplitBrain: both nodes are Active (critical).
	ClassSplitBrain = "split_brain"
	// ClassNoActive: no node that answers is Active or activating
	// (critical).
	ClassNoActive = "no_active"
	// ClassUnreachable: no node answers (critical), or one does not
	// (warning: the pair is not redundant as far as the aggregator sees).
	ClassUnreachable = "unreachable"
	// ClassNotPolled: a node has not been read yet since the aggregator
	// started (warning).
	ClassNotPolled = "not_polled"
	// ClassHANotReady: a node says HA is not ready, with its reasons
	// (warning).
	ClassHANotReady = "ha_not_ready"
	// ClassReplicationStale: a replication job has no success within its
	// max_age (warning).
	ClassReplicationStale = "replication_stale"
	// ClassTransition: a node is activating or deactivating (info).
	ClassTransition = "transition"
	// ClassManualFailover: a manual HA failover holds the Main Inactive
	// until a time (info: asked for, but the pair is not redundant).
	ClassManualFailover = "manual_failover"
	// ClassVersionMismatch: the nodes run different versions (info: the
	// nodes themselves judge whether that breaks HA).
	ClassVersionMismatch = "version_mismatch"
)

var classSeverity = map[string]string{
	ClassSplitBrain:       SeverityCritical,
	ClassNoActive:         SeverityCritical,
	ClassNotPolled:        SeverityWarning,
	ClassHANotReady:       SeverityWarning,
	ClassReplicationStale: SeverityWarning,
	ClassTransition:       SeverityInfo,
	ClassManualFailover:   SeverityInfo,
	ClassVersionMismatch:  SeverityInfo,
}

// Pair is one pair as GET /api/v1/fleet shows it.
type Pair struct {
	Name string `json:"name"`
	// Ready: every node answers, exactly one is Active, HA is ready, the
	// replication is fresh: nothing worse than info.
	Ready bool `json:"ready"`
	// Severity is critical, warning, info or ok.
	Severity string `json:"severity"`
	// Classes are what is wrong, worst first (see the Class* constants).
	Classes []string `json:"classes"`
	// Reasons say it in words, worst first; empty when ok.
	Reasons []string `json:"reasons"`
	Nodes   []Node   `json:"nodes"`
	// Active names the Active nodes (by node name, or URL when unknown).
	Active []string `json:"active"`
	// ManualFailoverUntil: a manual HA failover is under way until then.
	ManualFailoverUntil *time.Time `json:"manual_failover_until,omitempty"`
	// VersionMismatch: the nodes that answered run different versions.
	VersionMismatch bool `json:"version_mismatch"`
	// ReplicationAgeSeconds is the age of the oldest job's newest success
	// (either node), when the pair has replication jobs and each has
	// succeeded once; ReplicationNever lists the jobs without a success.
	ReplicationAgeSeconds *float64 `json:"replication_age_seconds,omitempty"`
	ReplicationNever      []string `json:"replication_never,omitempty"`
	ReplicationStale      bool     `json:"replication_stale"`
	// LastChange is the newest status change of either node.
	LastChange *Change `json:"last_change,omitempty"`
	// LastFailover is when a node of the pair last became Active.
	LastFailover *time.Time `json:"last_failover,omitempty"`
	// Epoch is the highest epoch of the nodes that answered.
	Epoch uint64 `json:"epoch"`

	// replSuccess is the oldest of the jobs' newest successes.
	replSuccess time.Time
	// reasonClasses and reasonSeverities are each reason's class and
	// severity (for the events).
	reasonClasses, reasonSeverities []string
}

// Node is one node of a pair as last read.
type Node struct {
	URL       string `json:"url"`
	Reachable bool   `json:"reachable"`
	// Error says why it could not be read (reachable false).
	Error   string `json:"error,omitempty"`
	Name    string `json:"name,omitempty"`
	Role    string `json:"role,omitempty"`
	Mode    string `json:"mode,omitempty"`
	Status  string `json:"status,omitempty"`
	Epoch   uint64 `json:"epoch"`
	Version string `json:"version,omitempty"`
	Healthy bool   `json:"healthy"`
	HAReady bool   `json:"ha_ready"`
	// CheckedAt is when it was last read (zero: not yet).
	CheckedAt time.Time `json:"checked_at,omitzero"`
}

// Change is a node's status change.
type Change struct {
	Node  string    `json:"node"`
	From  string    `json:"from"`
	To    string    `json:"to"`
	Cause string    `json:"cause"`
	At    time.Time `json:"at"`
}

// withAge fills the ages as of now.
func (p Pair) withAge(now time.Time) Pair {
	if !p.replSuccess.IsZero() {
		age := max(now.Sub(p.replSuccess).Seconds(), 0)
		p.ReplicationAgeSeconds = &age
	}
	return p
}

// SortPairs sorts by severity, worst first, then by name.
func SortPairs(ps []Pair) {
	slices.SortFunc(ps, func(a, b Pair) int {
		if c := cmp.Compare(SeverityRank(b.Severity), SeverityRank(a.Severity)); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
}

// derive computes the pair's view from its nodes' last reads; the caller
// holds ps.mu (or owns ps).
func (a *Aggregator) derive(ps *pairState) Pair {
	reads := make([]read, len(ps.nodes))
	for i, t := range ps.nodes {
		reads[i] = read{url: t.url, polled: t.polled, st: t.st, err: t.err, checkedAt: t.checkedAt}
	}
	return derivePair(ps.name, reads)
}

// read is one node's last read.
type read struct {
	url       string
	polled    bool
	st        api.Status
	err       error
	checkedAt time.Time
}

// derivePair is the pure part of derive.
func derivePair(name string, reads []read) Pair {
	p := Pair{Name: name, Classes: []string{}, Reasons: []string{}, Active: []string{}}
	type finding struct{ class, reason string }
	var found []finding
	add := func(class, format string, args ...any) {
		found = append(found, finding{class, fmt.Sprintf(format, args...)})
	}
	label := func(r read) string {
		if r.st.Node != "" {
			return r.st.Node
		}
		return r.url
	}

	reachable, notPolled := 0, 0
	var transitioning []string
	versions := map[string]bool{}
	for _, r := range reads {
		n := Node{URL: r.url, CheckedAt: r.checkedAt}
		switch {
		case !r.polled:
			notPolled++
		case r.err != nil:
			n.Error = describeErr(r.err)
		default:
			reachable++
			st := r.st
			n.Reachable = true
			n.Name, n.Role, n.Mode, n.Status = st.Node, st.Role, st.Mode, st.Status
			n.Epoch, n.Version, n.Healthy, n.HAReady = st.Epoch, st.Version, st.Healthy, st.HA.Ready
			p.Epoch = max(p.Epoch, st.Epoch)
			versions[st.Version] = true
			switch st.Status {
			case api.StatusActive:
				p.Active = append(p.Active, label(r))
			case api.StatusActivating, api.StatusDeactivating:
				transitioning = append(transitioning, fmt.Sprintf("%s is %s", label(r), st.Status))
			}
			if lc := st.LastChange; lc != nil {
				if p.LastChange == nil || lc.At.After(p.LastChange.At) {
					p.LastChange = &Change{Node: label(r), From: lc.From, To: lc.To, Cause: lc.Cause, At: lc.At}
				}
				if lc.To == api.StatusActive && (p.LastFailover == nil || lc.At.After(*p.LastFailover)) {
					at := lc.At
					p.LastFailover = &at
				}
			}
		}
		p.Nodes = append(p.Nodes, n)
	}

	// Reachability.
	switch {
	case notPolled > 0:
		add(ClassNotPolled, "not read yet since the aggregator started")
	}
	for _, r := range reads {
		if r.polled && r.err != nil {
			add(ClassUnreachable, "%s unreachable: %s", r.url, describeErr(r.err))
		}
	}
	unreachable := len(reads) - reachable - notPolled

	// Who is Active.
	switch {
	case len(p.Active) >= 2:
		add(ClassSplitBrain, "two Active nodes: %s", strings.Join(p.Active, " and "))
	case len(p.Active) == 0 && reachable > 0 && len(transitioning) == 0:
		if unreachable > 0 {
			add(ClassNoActive, "no Active node among those that answer")
		} else {
			add(ClassNoActive, "no Active node")
		}
	}
	for _, s := range transitioning {
		add(ClassTransition, "%s", s)
	}

	// What the nodes say of their HA.
	for _, r := range reads {
		if !r.polled || r.err != nil {
			continue
		}
		if !r.st.HA.Ready {
			if len(r.st.HA.Reasons) == 0 {
				add(ClassHANotReady, "%s: HA not ready", label(r))
			}
			for _, why := range r.st.HA.Reasons {
				add(ClassHANotReady, "%s: %s", label(r), why)
			}
		}
		if f := r.st.Failover; f.Manual {
			if f.Until != nil {
				u := *f.Until
				if p.ManualFailoverUntil == nil || u.After(*p.ManualFailoverUntil) {
					p.ManualFailoverUntil = &u
				}
				add(ClassManualFailover, "manual HA failover on %s until %s", label(r), u.UTC().Format(time.RFC3339))
			} else {
				add(ClassManualFailover, "manual HA failover on %s", label(r))
			}
		}
	}
	if len(versions) > 1 {
		p.VersionMismatch = true
		var vs []string
		for _, r := range reads {
			if r.polled && r.err == nil {
				vs = append(vs, fmt.Sprintf("%s runs %q", label(r), r.st.Version))
			}
		}
		add(ClassVersionMismatch, "versions differ: %s", strings.Join(vs, ", "))
	}

	// Replication: per job, the newest success on either node.
	newest := map[string]time.Time{}
	var jobs []string
	stale := map[string]string{}
	for _, r := range reads {
		if !r.polled || r.err != nil {
			continue
		}
		for _, j := range r.st.Replication {
			if _, ok := newest[j.Name]; !ok {
				jobs = append(jobs, j.Name)
				newest[j.Name] = time.Time{}
			}
			if j.LastSuccess.After(newest[j.Name]) {
				newest[j.Name] = j.LastSuccess
			}
			if j.Stale {
				stale[j.Name] = label(r)
			}
		}
	}
	for _, j := range jobs {
		if newest[j].IsZero() {
			p.ReplicationNever = append(p.ReplicationNever, j)
		} else if p.replSuccess.IsZero() || newest[j].Before(p.replSuccess) {
			p.replSuccess = newest[j]
		}
		if on, ok := stale[j]; ok {
			p.ReplicationStale = true
			add(ClassReplicationStale, "replication job %s is stale on %s", j, on)
		}
	}
	if len(p.ReplicationNever) > 0 {
		p.replSuccess = time.Time{} // the age is unknown, not the others'
	}

	// Unreachable is critical when nobody answers.
	sev := func(c string) string {
		if c == ClassUnreachable {
			if reachable == 0 {
				return SeverityCritical
			}
			return SeverityWarning
		}
		return classSeverity[c]
	}
	slices.SortStableFunc(found, func(x, y finding) int {
		return cmp.Compare(SeverityRank(sev(y.class)), SeverityRank(sev(x.class)))
	})
	p.Severity = SeverityOK
	for _, f := range found {
		if SeverityRank(sev(f.class)) > SeverityRank(p.Severity) {
			p.Severity = sev(f.class)
		}
		if !slices.Contains(p.Classes, f.class) {
			p.Classes = append(p.Classes, f.class)
		}
		p.Reasons = append(p.Reasons, f.reason)
		p.reasonClasses = append(p.reasonClasses, f.class)
		p.reasonSeverities = append(p.reasonSeverities, sev(f.class))
	}
	p.Ready = SeverityRank(p.Severity) <= SeverityRank(SeverityInfo)
	return p
}

// describeErr says why a node could not be read, without the URL (the
// row already names it).
func describeErr(err error) string {
	var ce *client.Error
	switch {
	case errors.As(err, &ce) && (ce.StatusCode == 401 || ce.StatusCode == 403):
		return fmt.Sprintf("it refused the fleet's token for this pair (%d)", ce.StatusCode)
	case errors.As(err, &ce):
		return fmt.Sprintf("it answered %d: %s", ce.StatusCode, ce.Message)
	case errors.Is(err, client.ErrUnreachable):
		return err.Error()
	}
	return err.Error()
}
