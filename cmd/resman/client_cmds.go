package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
	"github.com/resman-pbx/resman/resilience/pairaudit"
)

// apiFlags are the flags of every command that talks to a node's API.
type apiFlags struct {
	node    string
	token   string
	json    bool
	timeout time.Duration
}

func (f *apiFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.node, "node", "", "node API URL (env RESMAN_NODE, default http://127.0.0.1:9440)")
	cmd.Flags().StringVar(&f.token, "token", "", "API bearer token (env RESMAN_TOKEN)")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the node's JSON answer")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 60*time.Second, "how long to wait for the node")
}

func (f *apiFlags) client() (*client.Client, error) {
	base := firstNonEmpty(f.node, os.Getenv("RESMAN_NODE"), "http://127.0.0.1:9440")
	token := firstNonEmpty(f.token, os.Getenv("RESMAN_TOKEN"))
	if token == "" {
		return nil, usageErr("no API token: pass --token or set RESMAN_TOKEN")
	}
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, usageErr("--node %q: want a URL like http://127.0.0.1:9440", base)
	}
	return client.New(base, token, client.WithTimeout(f.timeout), client.WithActor(actor())), nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// apiErr turns a client error into an exit code and a one-line reason.
func apiErr(err error) error {
	var ae *client.Error
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return err // already carries its exit code

	case errors.As(err, &ae):
		switch ae.StatusCode {
		case http.StatusConflict, http.StatusPreconditionFailed:
			return withCode(exitRefused, fmt.Errorf("refused: %s", ae.Message))
		case http.StatusUnauthorized:
			return withCode(exitFailed, fmt.Errorf("unauthorized: check --token or RESMAN_TOKEN"))
		case http.StatusBadRequest:
			return withCode(exitUsage, fmt.Errorf("bad request: %s", ae.Message))
		}
		// 500 (carried out and failed), 503 (not carried out: the node
		// cannot persist its decision) and any other answer: failed, with
		// the node's message, on one line.
		return withCode(exitFailed, errors.New(oneLine(ae.Message)))
	case errors.Is(err, client.ErrUnreachable):
		return withCode(exitUnreachable, err)
	}
	return withCode(exitFailed, err)
}

// oneLine keeps a message on the one line the CLI prints.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(strings.TrimSpace(s))
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newStatusCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a node's status: Active or Inactive, epoch, peer, HA readiness, services",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			st, err := c.Status(ctx)
			if err != nil {
				return apiErr(err)
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), st)
			}
			printStatus(cmd.OutOrStdout(), st, time.Now())
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

// printStatus renders a status for a human.
func printStatus(w io.Writer, st api.Status, now time.Time) {
	fmt.Fprintf(w, "%s (%s, %s mode)  %s  epoch %d  since %s (%s ago)\n", st.Node, st.Role, st.Mode,
		strings.ToUpper(st.Status), st.Epoch, st.Since.Local().Format("2006-01-02 15:04:05"), now.Sub(st.Since).Round(time.Second))
	health := "healthy"
	if !st.Healthy {
		health = "UNHEALTHY"
	}
	if st.Version != "" {
		health = "version " + st.Version + ", " + health
	}
	fmt.Fprintln(w, health)
	if st.HA.Ready {
		fmt.Fprintln(w, "HA: ready")
	} else {
		fmt.Fprintln(w, "HA: not ready")
		for _, r := range st.HA.Reasons {
			fmt.Fprintf(w, "  - %s\n", r)
		}
	}
	if st.Role == "witness" {
		var seen []string
		for _, m := range st.Sees {
			seen = append(seen, m.Name+" ("+m.Role+")")
		}
		if len(seen) == 0 {
			seen = []string{"no node"}
		}
		fmt.Fprintf(w, "sees over gossip: %s\n", strings.Join(seen, ", "))
	}
	if p := st.Peer; p != nil {
		switch {
		case p.Reachable && p.Error == "" && p.Via == api.ViaSecondPath:
			fmt.Fprintf(w, "peer %s: %s, epoch %d (gossip lost it; it answers over the second path, so it is not taken as lost)\n", p.Name, p.Status, p.Epoch)
		case p.Reachable && p.Error == "":
			fmt.Fprintf(w, "peer %s: %s, epoch %d, version %s\n", p.Name, p.Status, p.Epoch, p.Version)
		case p.Reachable:
			fmt.Fprintf(w, "peer %s: answers, status unreadable (%s)\n", p.Name, p.Error)
		default:
			fmt.Fprintf(w, "peer %s: unreachable (%s)\n", p.Name, p.Error)
		}
		// What the peer waits for, as its own status would say it.
		if u := p.FailoverUntil; u != nil && u.After(now) {
			fmt.Fprintf(w, "  manual failover: %s held Inactive until %s (in %s)\n", p.Name, clock(*u), u.Sub(now).Round(time.Second))
		}
		if p.HeldByAdmin {
			fmt.Fprintf(w, "  %s held Inactive by an admin's Stop services: Start services on it to release\n", p.Name)
		}
	}
	if len(st.Services) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tSTATE\tHEALTH\tERROR")
		for _, s := range st.Services {
			h := "unhealthy"
			if s.Healthy {
				h = "healthy"
			}
			if s.Critical {
				h += " (critical)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.State, h, s.Error)
		}
		tw.Flush()
	}
	printReplications(w, st)
	for _, x := range st.XDS {
		state := "not registered"
		if x.Registered {
			state = "registered"
		}
		fmt.Fprintf(w, "mds %s: %s %s\n", x.MDS, state, x.Error)
	}
	if f := st.Failover; f.FailbackAt != nil && f.FailbackAt.After(now) {
		peer := "the Main"
		if st.Peer != nil {
			peer = st.Peer.Name
		}
		fmt.Fprintf(w, "failback: hands the Active role back to %s at %s (in %s), if it stays up and ready\n", peer, clock(*f.FailbackAt),
			f.FailbackAt.Sub(now).Round(time.Second))
	}
	if f := st.Failover; f.BootGraceUntil != nil && f.BootGraceUntil.After(now) {
		fmt.Fprintf(w, "boot grace: does not take over for a lost peer before %s (in %s), unless it sees the peer first\n",
			clock(*f.BootGraceUntil), f.BootGraceUntil.Sub(now).Round(time.Second))
	}
	if f := st.Failover; f.Manual && f.Until != nil {
		fmt.Fprintf(w, "MANUAL FAILOVER until %s (in %s): this node holds Inactive\n", clock(*f.Until), f.Until.Sub(now).Round(time.Second))
	} else if f.HeldByAdmin {
		fmt.Fprintln(w, "held Inactive by an admin's Stop services (auto mode): Start services to release")
	} else if f.Switchover != "" {
		fmt.Fprintf(w, "held Inactive by switchover %s until it ends\n", f.Switchover)
	}
	printSwitchoverRun(w, st, now)
	if lc := st.LastChange; lc != nil {
		fmt.Fprintf(w, "last change: %s -> %s at %s: %s\n", lc.From, lc.To, lc.At.Local().Format("15:04:05"), lc.Cause)
	}
}

// printSwitchoverRun shows the switchover this node runs, step by step,
// or how the last one went (for a while after its end).
func printSwitchoverRun(w io.Writer, st api.Status, now time.Time) {
	run := st.SwitchoverRun
	if run == nil {
		return
	}
	state := "RUNNING since " + clock(run.Started)
	if !run.Ended.IsZero() {
		state = fmt.Sprintf("%s at %s (%s ago, took %s)", run.Outcome, clock(run.Ended), now.Sub(run.Ended).Round(time.Second),
			run.Ended.Sub(run.Started).Round(time.Millisecond))
	}
	fmt.Fprintf(w, "switchover %s to %s by %s: %s\n", run.ID, run.To, run.Who, state)
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	for _, s := range run.Steps {
		detail := s.Detail
		if s.Name == api.StepSync && s.State == api.StepRunning {
			detail = syncProgress(st.Replication)
		}
		took := ""
		if !s.Started.IsZero() && !s.Ended.IsZero() {
			took = s.Ended.Sub(s.Started).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.Name, s.State, took, detail)
	}
	tw.Flush()
	for line := range strings.Lines(table.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
}

// syncProgress says how far the replication runs under way have come.
func syncProgress(rs []api.Replication) string {
	var parts []string
	for _, r := range rs {
		if !r.Running || r.Direction != "send" {
			continue
		}
		p := r.Progress
		switch {
		case p == nil:
			parts = append(parts, r.Name+": running")
		case p.Phase == "uploading":
			parts = append(parts, fmt.Sprintf("%s: uploading, %d of %d files sent (%s)", r.Name, p.Sent, p.ToSend, humanBytes(p.BytesSent)))
		default:
			parts = append(parts, fmt.Sprintf("%s: %s (%d files, %s)", r.Name, p.Phase, p.Files, humanBytes(p.Bytes)))
		}
	}
	return strings.Join(parts, "; ")
}

// humanBytes writes n bytes in B, KiB, MiB or GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 2 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMG"[i])
}

func newServicesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "services start|stop",
		Short: "Start or stop a node's services (what makes it Active or Inactive)",
	}
	for _, verb := range []string{"start", "stop"} {
		var f apiFlags
		var reason string
		var force bool
		sub := &cobra.Command{
			Use:  verb,
			Args: cobra.NoArgs,
			RunE: writeCommand(&f, &reason, printServices(verb), func(ctx context.Context, c *client.Client) (servicesResult, error) {
				// Read first, to say "already" rather than print a bare
				// status when nothing was to be done.
				before, err := c.Status(ctx)
				if err != nil {
					return servicesResult{}, err
				}
				var after api.Status
				if verb == "start" {
					after, err = c.StartServices(ctx, api.StartRequest{Reason: reason, Force: force})
				} else {
					after, err = c.StopServices(ctx, api.StopRequest{Reason: reason})
				}
				return servicesResult{Status: after, already: before.Status == after.Status &&
					after.Status == map[string]string{"start": "active", "stop": "inactive"}[verb]}, err
			}),
		}
		if verb == "start" {
			sub.Short = "Start services: make this node Active (refused while the peer is Active, unless --force)"
			sub.Flags().BoolVar(&force, "force", false, "start even though the peer is seen Active (two Active nodes)")
		} else {
			sub.Short = "Stop services: make this node Inactive"
		}
		sub.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the audit log)")
		f.register(sub)
		cmd.AddCommand(sub)
	}
	return cmd
}

// writeCommand is the shape of every command that changes a node: a
// required reason, one call, and its answer printed by show (or as JSON).
// call gets the client and a context bounded by --timeout.
func writeCommand[T any](f *apiFlags, reason *string, show func(io.Writer, T),
	call func(ctx context.Context, c *client.Client) (T, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if strings.TrimSpace(*reason) == "" {
			return usageErr("--reason is required: say why, it goes to the audit log")
		}
		c, err := f.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
		defer cancel()
		st, err := call(ctx, c)
		if err != nil {
			return apiErr(err)
		}
		if f.json {
			return printJSON(cmd.OutOrStdout(), st)
		}
		show(cmd.OutOrStdout(), st)
		return nil
	}
}

// servicesResult is a services command's answer, and whether the node
// already was where it was asked to go. --json prints the status alone.
type servicesResult struct {
	api.Status
	already bool
}

// printServices prints the one line of a services command: node, status,
// epoch, and "already" when nothing changed.
func printServices(verb string) func(io.Writer, servicesResult) {
	return func(w io.Writer, r servicesResult) {
		if r.already {
			fmt.Fprintf(w, "%s: already %s (epoch %d): nothing to %s\n", r.Node, r.Status.Status, r.Epoch, verb)
			return
		}
		fmt.Fprintf(w, "%s: %s (epoch %d)\n", r.Node, r.Status.Status, r.Epoch)
	}
}

// printFull is the whole status, for commands whose effect spans both nodes.
func printFull(w io.Writer, st api.Status) { printStatus(w, st, time.Now()) }

func newAuditCmd() *cobra.Command {
	var f apiFlags
	var limit int
	var before uint64
	var pair bool
	var peerURL string
	var filter auditFilter
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show a node's audit log, newest first: who did what, why, and how it ended",
		Long: `Shows a node's audit log, newest first. With --pair, both nodes' entries on one
time axis, with how long the pair had no Active node and two Active nodes; the
peer is read at the address the node knows it by (or --peer URL), with the same
token. --only keeps admin actions, automatic transitions or failures; with
--pair, routine entries (a scheduled replication that went well) are folded
unless --routine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > 1000 {
				return usageErr("--limit must be between 1 and 1000, got %d", limit)
			}
			if err := filter.check(); err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			if pair {
				return auditPair(ctx, cmd.OutOrStdout(), &f, c, peerURL, limit, filter)
			}
			entries, err := c.Audit(ctx, limit, before)
			if err != nil {
				return apiErr(err)
			}
			if filter.only != "" && filter.only != "all" {
				entries = slices.DeleteFunc(entries, func(e api.AuditEntry) bool { return !filter.keep(e) })
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), entries)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTIME\tWHO\tACTION\tOUTCOME\tCHANGE\tEPOCH\tREASON / CAUSE")
			for _, e := range entries {
				change := ""
				if e.From != e.To {
					change = e.From + "->" + e.To
				}
				why := e.Cause
				if e.Reason != "" {
					why = fmt.Sprintf("%q: %s", e.Reason, e.Cause)
				}
				if e.Detail != "" {
					why += " (" + e.Detail + ")"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.ID, e.Time.Local().Format("2006-01-02 15:04:05"),
					e.Who, e.Action, e.Outcome, change, e.Epoch, why)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "how many entries (of each node with --pair)")
	cmd.Flags().Uint64Var(&before, "before", 0, "only entries older than this ID (paging; not with --pair)")
	cmd.Flags().BoolVar(&pair, "pair", false, "both nodes' entries on one time axis, with the windows of no and two Active nodes")
	cmd.Flags().StringVar(&peerURL, "peer", "", "the peer's API URL for --pair (default: the address the node knows it by)")
	cmd.Flags().StringVar(&filter.only, "only", "all", "all, admin, auto or failures")
	cmd.Flags().BoolVar(&filter.routine, "routine", false, "with --pair, show the routine entries too")
	f.register(cmd)
	return cmd
}

// auditPair reads both nodes' audit logs and prints them on one axis.
func auditPair(ctx context.Context, out io.Writer, f *apiFlags, c *client.Client, peerURL string, limit int, filter auditFilter) error {
	st, err := c.Status(ctx)
	if err != nil {
		return apiErr(err)
	}
	if st.Peer == nil || st.Peer.Name == "" {
		return usageErr("%s has no peer: --pair needs one", st.Node)
	}
	if peerURL == "" {
		if peerURL = st.Peer.URL; peerURL == "" {
			return usageErr("%s does not say its peer's address: pass --peer URL", st.Node)
		}
	}
	pf := *f
	pf.node = peerURL
	pc, err := pf.client()
	if err != nil {
		return err
	}
	mine, err := c.Audit(ctx, limit, 0)
	if err != nil {
		return apiErr(err)
	}
	theirs, err := pc.Audit(ctx, limit, 0)
	if err != nil {
		return fmt.Errorf("the peer %s at %s: %w", st.Peer.Name, peerURL, apiErr(err))
	}
	rows := pairaudit.Merge(map[string][]api.AuditEntry{st.Node: mine, st.Peer.Name: theirs})
	if f.json {
		js := make([]pairaudit.Row, 0, len(rows))
		for _, r := range rows {
			if filter.keep(r.AuditEntry) {
				js = append(js, r)
			}
		}
		return printJSON(out, js)
	}
	return printPairAudit(out, rows, []string{st.Node, st.Peer.Name}, filter, time.Now())
}

// clock shows an instant with its zone, so that it reads the same next to
// a page in another zone.
func clock(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05 MST") }

// printReplications prints the replication jobs as this node answers for
// them now: the Active node for what it sends, the other for what it
// receives. The other direction's rows are this node's past (it received
// while it was Inactive, or sent while Active): shown as such, never as
// stale, since readiness does not count them.
func printReplications(w io.Writer, st api.Status) {
	sending := st.Status == api.StatusActive || st.Status == api.StatusActivating
	for _, r := range st.Replication {
		if (r.Direction == "send") == sending || r.Direction == "" {
			printReplication(w, r)
			continue
		}
		if r.LastSuccess.IsZero() {
			continue // nothing to say: the other side's job, never done here
		}
		verb := "received"
		if r.Direction == "send" {
			verb = "sent"
		}
		fmt.Fprintf(w, "replication %s (%s, %s): not this node's side now; last %s %s\n", r.Name, r.Kind, r.Direction,
			verb, r.LastSuccess.Local().Format("2006-01-02 15:04:05"))
	}
}

func printReplication(w io.Writer, r api.Replication) {
	state := "never succeeded"
	if !r.LastSuccess.IsZero() {
		state = "last success " + r.LastSuccess.Local().Format("2006-01-02 15:04:05")
	}
	if r.Stale {
		state += ", STALE"
	}
	if r.Error != "" {
		state += ": " + r.Error
	}
	fmt.Fprintf(w, "replication %s (%s, %s): %s\n", r.Name, r.Kind, r.Direction, state)
}

func newReplicationCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "replication", Short: "Replication jobs (Active node to the other)"}
	var f apiFlags
	var reason, job string
	run := &cobra.Command{
		Use:   "run",
		Short: "Run one replication job (--job) or all now, from the Active node",
		Args:  cobra.NoArgs,
		RunE: writeCommand(&f, &reason, func(w io.Writer, rs []api.Replication) {
			for _, r := range rs {
				printReplication(w, r)
			}
		}, func(ctx context.Context, c *client.Client) ([]api.Replication, error) {
			return c.RunReplication(ctx, api.ReplicationRunRequest{Reason: reason, Job: job})
		}),
	}
	run.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the audit log)")
	run.Flags().StringVar(&job, "job", "", "the job to run (default: all)")
	f.register(run)
	cmd.AddCommand(run)
	return cmd
}

func newFailoverCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "failover start|stop",
		Short: "Manual HA failover (auto mode, on the Main): hand over to the Standby for a while",
	}
	for _, verb := range []string{"start", "stop"} {
		var f apiFlags
		var reason, forDur string
		sub := &cobra.Command{
			Use:  verb,
			Args: cobra.NoArgs,
			RunE: writeCommand(&f, &reason, printFull, func(ctx context.Context, c *client.Client) (api.Status, error) {
				if verb == "stop" {
					return c.StopFailover(ctx, api.StopRequest{Reason: reason})
				}
				if forDur == "" {
					return api.Status{}, usageErr("--for is required: how long the Standby carries the load, like 30m")
				}
				return c.StartFailover(ctx, api.FailoverRequest{Reason: reason, For: forDur})
			}),
		}
		if verb == "start" {
			sub.Short = "Step the Main down and hold it Inactive for --for (refused unless HA is ready)"
			sub.Flags().StringVar(&forDur, "for", "", "how long the Main stays held, like 30m (10s to 168h); failback then follows failover.failback_hold")
		} else {
			sub.Short = "End a manual HA failover early (failback follows the policy)"
		}
		sub.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the audit log)")
		f.register(sub)
		cmd.AddCommand(sub)
	}
	return cmd
}

func newSwitchoverCmd() *cobra.Command {
	var f apiFlags
	var reason string
	var sync bool
	cmd := &cobra.Command{
		Use:   "switchover",
		Short: "Planned, ordered swap of the Active side (run on the Active node; --sync copies data first)",
		Long: `Stops the services on this (Active) node, then starts them on its peer, with a
final replication run first when --sync is given. Refused, with every missing
precondition listed, unless this node is Active and its peer answers Inactive.
If the peer does not start, this node starts again and the rollback is reported.`,
		Args: cobra.NoArgs,
		RunE: writeCommand(&f, &reason, printFull, func(ctx context.Context, c *client.Client) (api.Status, error) {
			return c.Switchover(ctx, api.SwitchoverRequest{Reason: reason, Sync: sync})
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the audit log)")
	cmd.Flags().BoolVar(&sync, "sync", false, "run every replication job toward the peer first")
	f.register(cmd)
	return cmd
}
