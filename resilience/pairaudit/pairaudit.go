// Package pairaudit puts the audit logs of the two nodes of a pair on one
// time axis and reads what the pair went through from their transitions:
// the periods of each node's status and the windows with no Active node
// and with two Active nodes.
//
// It is pure: it reads []api.AuditEntry, however they were fetched, and
// does no I/O. `resman audit --pair` prints what it computes; the node's
// GET /api/v1/audit/pair answers it as an api.PairAudit for the pair
// timeline of the Resilience Management page. The entries say when each
// decision was taken by its node's clock: the windows are as precise as
// those times, and as the two clocks agree.
package pairaudit

import (
	"slices"
	"strings"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
)

// Row is an audit entry and the node that wrote it.
type Row = api.PairAuditEntry

// Merge puts the entries of both nodes on one time axis, newest first;
// entries at the same instant are ordered by node name.
func Merge(lists map[string][]api.AuditEntry) []Row {
	var rows []Row
	for node, es := range lists {
		for _, e := range es {
			rows = append(rows, Row{Node: node, AuditEntry: e})
		}
	}
	slices.SortStableFunc(rows, func(a, b Row) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		// One node's entries at one second: the later ID first.
		switch {
		case a.ID > b.ID:
			return -1
		case a.ID < b.ID:
			return 1
		}
		return 0
	})
	return rows
}

// Filter values (Filter.Only).
const (
	OnlyAll      = "all"
	OnlyAdmin    = "admin"
	OnlyAuto     = "auto"
	OnlyFailures = "failures"
)

// ValidOnly says whether only is a Filter.Only value ("" is all).
func ValidOnly(only string) bool {
	switch only {
	case "", OnlyAll, OnlyAdmin, OnlyAuto, OnlyFailures:
		return true
	}
	return false
}

// Filter keeps the entries an admin asked for: all, admin (actions of
// people and scripts), auto (transitions resman decided) or failures
// (failed or refused). With all, routine entries are folded unless Routine
// is set.
type Filter struct {
	Only    string
	Routine bool
}

// Routine says whether e is a scheduled replication that went well: half
// of a busy log, and rarely what an admin looks for.
func Routine(e api.AuditEntry) bool {
	return e.Action == "replication" && e.Outcome == api.OutcomeOK && e.From == e.To
}

// Admin says whether e is the action of a person or a script (through the
// API or the page).
func Admin(e api.AuditEntry) bool {
	return strings.HasPrefix(e.Who, "api:") || strings.HasPrefix(e.Who, "web:") || e.Who == "api" || e.Who == "web"
}

// Keep says whether the filter shows e.
func (f Filter) Keep(e api.AuditEntry) bool {
	switch f.Only {
	case OnlyAdmin:
		return Admin(e)
	case OnlyAuto:
		return e.Who == "resman" && e.From != e.To
	case OnlyFailures:
		return e.Outcome != api.OutcomeOK
	}
	return f.Routine || !Routine(e)
}

// Folds says whether the filter folds the entries it does not keep into
// a count (all: the routine ones) rather than leaving them out.
func (f Filter) Folds() bool { return f.Only == "" || f.Only == OnlyAll }

// Windows are how long the pair had no Active node and two, from the first
// moment both nodes' status is known (From; zero when the entries never
// tell it) to To, with the last window of each kind and every window.
type Windows struct {
	From, To            time.Time
	None, Two           time.Duration
	LastNone, LastTwo   time.Time // start of the last window, zero if none
	LastNoneD, LastTwoD time.Duration
	// List holds every window, oldest first (adjacent spans of one kind
	// joined).
	List []api.PairWindow
}

// statusRows are the rows that tell a node's status, oldest first: its
// transitions, and the entries recorded in a status that they did not
// change (a boot that found the node Inactive, a registration), which
// tell it as well.
func statusRows(rows []Row) []Row {
	var out []Row
	for i := len(rows) - 1; i >= 0; i-- {
		r := rows[i]
		if r.To == "" {
			continue
		}
		out = append(out, r)
	}
	return out
}

// ComputeWindows reads the nodes' statuses in rows (as Merge returns
// them, newest first) up to now.
func ComputeWindows(rows []Row, nodes []string, now time.Time) Windows {
	var w Windows
	status := map[string]string{}
	var since time.Time
	count := func(until time.Time) {
		if len(status) < len(nodes) || since.IsZero() || !until.After(since) {
			return
		}
		active := 0
		for _, s := range status {
			if s == api.StatusActive {
				active++
			}
		}
		kind := ""
		d := until.Sub(since)
		switch {
		case active == 0:
			kind = api.WindowNoActive
			if w.LastNone.IsZero() || !since.Equal(w.LastNone.Add(w.LastNoneD)) {
				w.LastNone, w.LastNoneD = since, 0
			}
			w.None += d
			w.LastNoneD += d
		case active > 1:
			kind = api.WindowTwoActive
			if w.LastTwo.IsZero() || !since.Equal(w.LastTwo.Add(w.LastTwoD)) {
				w.LastTwo, w.LastTwoD = since, 0
			}
			w.Two += d
			w.LastTwoD += d
		default:
			return
		}
		if n := len(w.List); n > 0 && w.List[n-1].Kind == kind && w.List[n-1].End.Equal(since) {
			w.List[n-1].End = until
			return
		}
		w.List = append(w.List, api.PairWindow{Kind: kind, Start: since, End: until})
	}
	for _, r := range statusRows(rows) {
		count(r.Time)
		status[r.Node] = r.To
		if len(status) == len(nodes) && w.From.IsZero() {
			w.From = r.Time
		}
		since = r.Time
	}
	count(now)
	w.To = now
	return w
}

// Periods are each node's statuses, oldest first, from the first entry in
// rows that tells it (newest first, as Merge returns them) to now.
func Periods(rows []Row, nodes []string, now time.Time) []api.PairPeriod {
	open := map[string]int{} // node: index of its current period
	var out []api.PairPeriod
	for _, r := range statusRows(rows) {
		if !slices.Contains(nodes, r.Node) {
			continue
		}
		if i, ok := open[r.Node]; ok {
			if out[i].Status == r.To {
				continue
			}
			out[i].End = r.Time
		}
		open[r.Node] = len(out)
		out = append(out, api.PairPeriod{Node: r.Node, Status: r.To, Start: r.Time, End: now})
	}
	return out
}

// Build is the pair timeline of node and its peer: the entries read from
// each (peer's nil, with peerErr saying why, when the peer could not be
// read), merged newest first, with the periods and the windows up to now.
// Without the peer's entries, the windows are not computed: one node's log
// cannot tell whether the pair had an Active node.
func Build(node, peer string, mine, theirs []api.AuditEntry, peerErr string, limit int, now time.Time) api.PairAudit {
	lists := map[string][]api.AuditEntry{node: mine}
	nodes := []string{node}
	if peer != "" && peerErr == "" {
		lists[peer] = theirs
		nodes = append(nodes, peer)
	}
	rows := Merge(lists)
	if rows == nil {
		rows = []Row{}
	}
	pa := api.PairAudit{Node: node, Peer: peer, PeerError: peerErr, Limit: limit, Now: now, Entries: rows,
		Periods: Periods(rows, nodes, now), Windows: []api.PairWindow{}}
	if pa.Periods == nil {
		pa.Periods = []api.PairPeriod{}
	}
	pa.Summary.To = now
	if len(nodes) < 2 {
		return pa
	}
	w := ComputeWindows(rows, nodes, now)
	if w.List != nil {
		pa.Windows = w.List
	}
	pa.Summary = api.PairSummary{From: w.From, To: w.To, NoActiveSeconds: w.None.Seconds(), TwoActiveSeconds: w.Two.Seconds()}
	if !w.LastNone.IsZero() {
		pa.Summary.LastNoActive = &api.PairWindow{Kind: api.WindowNoActive, Start: w.LastNone, End: w.LastNone.Add(w.LastNoneD)}
	}
	if !w.LastTwo.IsZero() {
		pa.Summary.LastTwoActive = &api.PairWindow{Kind: api.WindowTwoActive, Start: w.LastTwo, End: w.LastTwo.Add(w.LastTwoD)}
	}
	return pa
}
