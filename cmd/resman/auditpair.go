package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
)

// auditRow is an audit entry and the node that wrote it.
type auditRow struct {
	node string
	api.AuditEntry
}

// auditFilter keeps the entries an admin asked for: all, admin (actions of
// people and scripts), auto (transitions resman decided) or failures
// (failed or refused). Routine entries (a scheduled replication that went
// well) are folded unless routine is set.
type auditFilter struct {
	only    string
	routine bool
}

func (f auditFilter) check() error {
	switch f.only {
	case "", "all", "admin", "auto", "failures":
		return nil
	}
	return usageErr("--only must be all, admin, auto or failures, got %q", f.only)
}

// routineEntry is a scheduled replication that went well: half of a busy
// log, and rarely what an admin looks for.
func routineEntry(e api.AuditEntry) bool {
	return e.Action == "replication" && e.Outcome == api.OutcomeOK && e.From == e.To
}

func (f auditFilter) keep(e api.AuditEntry) bool {
	switch f.only {
	case "admin":
		return strings.HasPrefix(e.Who, "api:") || strings.HasPrefix(e.Who, "web:")
	case "auto":
		return e.Who == "resman" && e.From != e.To
	case "failures":
		return e.Outcome != api.OutcomeOK
	}
	return f.routine || !routineEntry(e)
}

// mergeAudit puts the entries of both nodes on one time axis, newest first.
func mergeAudit(lists map[string][]api.AuditEntry) []auditRow {
	var rows []auditRow
	for node, es := range lists {
		for _, e := range es {
			rows = append(rows, auditRow{node, e})
		}
	}
	slices.SortStableFunc(rows, func(a, b auditRow) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(a.node, b.node)
	})
	return rows
}

// pairWindows reads the nodes' transitions (oldest first) and returns how
// long the pair had no Active node and two, from the first moment both
// nodes' status is known, and the last window of each. The entries say
// when each decision was taken, to the second: windows are as precise.
type pairWindows struct {
	from, to            time.Time
	none, two           time.Duration
	lastNone, lastTwo   time.Time // start of the last window, zero if none
	lastNoneD, lastTwoD time.Duration
}

func windows(rows []auditRow, nodes []string, now time.Time) pairWindows {
	var w pairWindows
	status := map[string]string{}
	ordered := slices.Clone(rows)
	slices.Reverse(ordered)
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
		d := until.Sub(since)
		switch {
		case active == 0:
			if w.lastNone.IsZero() || !since.Equal(w.lastNone.Add(w.lastNoneD)) {
				w.lastNone, w.lastNoneD = since, 0
			}
			w.none += d
			w.lastNoneD += d
		case active > 1:
			if w.lastTwo.IsZero() || !since.Equal(w.lastTwo.Add(w.lastTwoD)) {
				w.lastTwo, w.lastTwoD = since, 0
			}
			w.two += d
			w.lastTwoD += d
		}
	}
	for _, r := range ordered {
		if r.From == r.To || r.To == "" {
			continue
		}
		count(r.Time)
		status[r.node] = r.To
		if len(status) == len(nodes) && w.from.IsZero() {
			w.from = r.Time
		}
		since = r.Time
	}
	count(now)
	w.to = now
	return w
}

// printPairAudit prints the merged timeline and the windows.
func printPairAudit(out io.Writer, rows []auditRow, nodes []string, f auditFilter, now time.Time) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tNODE\tWHO\tACTION\tOUTCOME\tCHANGE\tEPOCH\tREASON / CAUSE")
	folded := 0
	for _, r := range rows {
		if !f.keep(r.AuditEntry) {
			if f.only == "" || f.only == "all" {
				folded++
			}
			continue
		}
		change := ""
		if r.From != r.To {
			change = r.From + "->" + r.To
		}
		why := r.Cause
		if r.Reason != "" {
			why = fmt.Sprintf("%q: %s", r.Reason, r.Cause)
		}
		if r.Detail != "" {
			why += " (" + r.Detail + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Time.Local().Format("2006-01-02 15:04:05 MST"), r.node,
			r.Who, r.Action, r.Outcome, change, r.Epoch, why)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if folded > 0 {
		fmt.Fprintf(out, "(%d routine replication entries folded: --routine shows them)\n", folded)
	}
	w := windows(rows, nodes, now)
	if w.from.IsZero() {
		fmt.Fprintln(out, "pair: not enough transitions in these entries to tell when a node was Active (--limit reads more)")
		return nil
	}
	span := w.to.Sub(w.from).Round(time.Second)
	fmt.Fprintf(out, "pair, over the %s since %s: no Active node for %s", span, w.from.Local().Format("2006-01-02 15:04:05 MST"),
		w.none.Round(time.Second))
	if !w.lastNone.IsZero() {
		fmt.Fprintf(out, " (last at %s, %s)", w.lastNone.Local().Format("15:04:05 MST"), w.lastNoneD.Round(time.Second))
	}
	fmt.Fprintf(out, "; two Active nodes for %s", w.two.Round(time.Second))
	if !w.lastTwo.IsZero() {
		fmt.Fprintf(out, " (last at %s, %s)", w.lastTwo.Local().Format("15:04:05 MST"), w.lastTwoD.Round(time.Second))
	}
	fmt.Fprintln(out, " (to the second: the audit log's precision)")
	return nil
}
