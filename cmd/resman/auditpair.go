package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/pairaudit"
)

// auditFilter keeps the entries an admin asked for (see pairaudit.Filter):
// only is all, admin, auto or failures; routine shows the routine entries
// that all folds.
type auditFilter struct {
	only    string
	routine bool
}

func (f auditFilter) check() error {
	if !pairaudit.ValidOnly(f.only) {
		return usageErr("--only must be all, admin, auto or failures, got %q", f.only)
	}
	return nil
}

func (f auditFilter) pf() pairaudit.Filter { return pairaudit.Filter{Only: f.only, Routine: f.routine} }

func (f auditFilter) keep(e api.AuditEntry) bool { return f.pf().Keep(e) }

// printPairAudit prints the merged timeline (pairaudit.Merge) and the
// windows.
func printPairAudit(out io.Writer, rows []pairaudit.Row, nodes []string, f auditFilter, now time.Time) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tNODE\tWHO\tACTION\tOUTCOME\tCHANGE\tEPOCH\tREASON / CAUSE")
	folded := 0
	for _, r := range rows {
		if !f.keep(r.AuditEntry) {
			if f.pf().Folds() {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Time.Local().Format("2006-01-02 15:04:05 MST"), r.Node,
			r.Who, r.Action, r.Outcome, change, r.Epoch, why)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if folded > 0 {
		fmt.Fprintf(out, "(%d routine replication entries folded: --routine shows them)\n", folded)
	}
	w := pairaudit.ComputeWindows(rows, nodes, now)
	if w.From.IsZero() {
		fmt.Fprintln(out, "pair: not enough transitions in these entries to tell when a node was Active (--limit reads more)")
		return nil
	}
	span := w.To.Sub(w.From).Round(time.Second)
	fmt.Fprintf(out, "pair, over the %s since %s: no Active node for %s", span, w.From.Local().Format("2006-01-02 15:04:05 MST"),
		w.None.Round(time.Second))
	if !w.LastNone.IsZero() {
		fmt.Fprintf(out, " (last at %s, %s)", w.LastNone.Local().Format("15:04:05 MST"), w.LastNoneD.Round(time.Second))
	}
	fmt.Fprintf(out, "; two Active nodes for %s", w.Two.Round(time.Second))
	if !w.LastTwo.IsZero() {
		fmt.Fprintf(out, " (last at %s, %s)", w.LastTwo.Local().Format("15:04:05 MST"), w.LastTwoD.Round(time.Second))
	}
	fmt.Fprintln(out, " (to the second: the audit log's precision)")
	return nil
}
