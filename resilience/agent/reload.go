package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/config/confcheck"
	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/fleet"
	"github.com/resman-pbx/resman/resilience/node"
	"github.com/resman-pbx/resman/resilience/web"
)

// reload re-reads the config file at path and applies it by the reload
// policy: the node's part (reloadNode) when the agent runs a node, the
// fleet's pairs (fleet.pairs and the files of fleet.pairs_dir, read again)
// when it runs a fleet aggregator, and log.level given the logger's
// level. A file that does not load or validate, holds placeholder or
// weak secrets, drops the node, or whose fleet pairs have problems changes
// nothing (it may be half-written). It returns the config now in force,
// what was applied (appliedChanges, and fleet.pairs when the list
// changed), what needs a restart (restartOnlyChanges), and why nothing
// was applied, if so.
func (a *Agent) reload(ctx context.Context, path string, cur *config.Config) (*config.Config, []string, []string, error) {
	next, pairs, err := a.loadForReload(path, cur)
	if err != nil {
		component := "fleet"
		if a.node != nil {
			component = "node"
			a.node.node.Note("reload config", resilience.OutcomeFailed,
				"the file does not load or validate, holds placeholder or weak secrets, or its fleet pairs have problems: kept the last good config", err.Error())
		}
		a.logger.Error("config reload refused: keeping the last good config", "component", component, "path", path, "err", err)
		return cur, nil, nil, err
	}
	var inForce *config.Config
	var needRestart []string
	if a.node != nil {
		inForce, needRestart, err = reloadNode(ctx, next, cur, a.node, a.srv, a.logger, a.opts.LogLevel, a.fleet != nil)
		if err != nil {
			return cur, nil, needRestart, err
		}
	} else {
		inForce = reloadLogLevel(cur, next, a.opts.LogLevel)
		needRestart = restartOnlyChanges(cur, next, a.opts.LogLevel != nil, a.fleet != nil)
		if len(needRestart) > 0 {
			a.logger.Warn("config reload: these changes need a restart and were not applied", "component", "fleet",
				"changes", strings.Join(needRestart, ", "))
		}
		a.logger.Info("config reloaded", "component", "fleet")
	}
	applied := appliedChanges(cur, inForce)
	if pairs != nil {
		ch, err := a.fleet.SetPairs(pairs)
		if err != nil { // checked by loadForReload: not expected
			a.logger.Error("fleet pairs not reloaded: kept the pairs watched", "component", "fleet", "err", err)
			return inForce, applied, append(needRestart, "fleet.pairs"), nil
		}
		a.logger.Info("fleet pairs reloaded: "+ch.String(), "component", "fleet", "pairs", ch.Pairs)
		f := *inForce.Fleet
		f.Pairs, f.PairsDir = next.Fleet.Pairs, next.Fleet.PairsDir
		inForce.Fleet = &f
		if !ch.Empty() {
			applied = append(applied, "fleet.pairs")
		}
	}
	return inForce, applied, needRestart, nil
}

// loadForReload loads and checks the file at path for a reload of an
// agent whose config in force is cur: it must load and validate, hold no
// placeholder or weak secrets, keep the node if the agent runs one, and,
// when the agent runs a fleet aggregator and the file still has a fleet
// section, name pairs without problems (the files of fleet.pairs_dir are
// read now). It returns the file and those pairs (nil without a fleet to
// reload).
func (a *Agent) loadForReload(path string, cur *config.Config) (*config.Config, []fleet.PairConfig, error) {
	next, err := config.Load(path)
	if err == nil {
		err = next.RequireStrongSecrets(path)
	}
	if err != nil {
		return nil, nil, err
	}
	if a.node != nil && next.Node == nil {
		return nil, nil, errors.New("the file configures no node: a node is removed by a restart, not a reload")
	}
	if a.fleet == nil || next.Fleet == nil {
		return next, nil, nil
	}
	// The aggregator's token is the api.token in force (api is restart-only).
	pairs, err := fleet.LoadPairs(*next.Fleet, cur.API.Token)
	if err != nil {
		return nil, nil, fmt.Errorf("fleet: %w", err)
	}
	return next, pairs, nil
}

// reloadLogLevel applies next's log.level to level (nil: restart-only)
// and returns the config in force: cur with that level.
func reloadLogLevel(cur, next *config.Config, level *slog.LevelVar) *config.Config {
	applied := *cur
	if level != nil && cur.Log.Level != next.Log.Level {
		level.Set(LogLevel(next.Log.Level))
		applied.Log.Level = next.Log.Level
	}
	return &applied
}

// reloadNode applies the node's part of a reload of next, a file loaded and
// checked: node.mode (starting or stopping the heartbeat), the failover
// settings, the hooks (for the transitions from then on), the gossip keys
// (gossip.key and gossip.extra_keys, into the running keyring: a key
// rotation), the web users and read tokens (api.users, api.read_tokens,
// into srv: see applyAPIAccess) and, given the logger's level, log.level.
// Other changes are audited as needing a restart (fleetLive: the agent
// runs a fleet aggregator, whose pairs reload applies). It returns the
// config now in force, the sections that need a restart
// (restartOnlyChanges), and why nothing was applied, if so.
func reloadNode(ctx context.Context, next, cur *config.Config, p *nodeParts, srv *web.Server, logger *slog.Logger, level *slog.LevelVar, fleetLive bool) (*config.Config, []string, error) {
	const who = "resman (config reload)"
	others := restartOnlyChanges(cur, next, level != nil, fleetLive)
	if len(others) > 0 {
		p.node.Note("reload config", resilience.OutcomeFailed, "these changes need a restart and were not applied: "+
			strings.Join(others, ", "), "")
	}
	wantAuto := next.Node.Mode == config.ModeAuto
	var m node.Membership
	started := false
	switch cl := p.gossip.running(); {
	case wantAuto && cl != nil:
		m = cl
	case wantAuto:
		cl, err := p.gossip.start(context.Background(), next)
		if err != nil {
			p.node.Note("reload config", resilience.OutcomeFailed, "cannot start the heartbeat: kept the last good config", err.Error())
			return cur, others, err
		}
		m, started = cl, true
	}
	if err := p.node.Reconfigure(ctx, who, coreConfig(next), m); err != nil {
		if started {
			p.gossip.shutdown()
		}
		logger.Error("config reload refused", "component", "node", "err", err)
		return cur, others, err
	}
	if !wantAuto {
		p.gossip.shutdown()
	}
	// A heartbeat just started has the new keys already.
	keysInForce := next.Gossip
	if !started && !gossipKeysEqual(cur.Gossip, next.Gossip) {
		var cl *cluster.Cluster
		if wantAuto {
			cl = p.gossip.running()
		}
		if !applyGossipKeys(p.node, cl, next) {
			keysInForce = cur.Gossip
		} else if primary, extra, err := next.GossipKeys(); err == nil {
			p.gossip.setEchoKeys(primary, extra)
		}
	}
	if !reflect.DeepEqual(cur.Hooks, next.Hooks) {
		p.node.SetHooks(hookSet(next.Hooks))
		h := next.Hooks
		p.node.Note("reload config", resilience.OutcomeOK, fmt.Sprintf(
			"hooks replaced for the next transitions: %d before_activate, %d after_activate, %d after_deactivate",
			len(h.BeforeActivate), len(h.AfterActivate), len(h.AfterDeactivate)), "")
	}
	applied := *cur
	if srv != nil {
		applied.API.Users, applied.API.ReadTokens = applyAPIAccess(p.node, srv, cur.API, next.API)
	}
	if level != nil && cur.Log.Level != next.Log.Level {
		level.Set(LogLevel(next.Log.Level))
		applied.Log.Level = next.Log.Level
		p.node.Note("reload config", resilience.OutcomeOK, fmt.Sprintf("log level %s -> %s", cur.Log.Level, next.Log.Level), "")
	}
	nodeCopy := *cur.Node
	nodeCopy.Mode = next.Node.Mode
	applied.Node, applied.Failover, applied.Hooks = &nodeCopy, next.Failover, next.Hooks
	applied.Failover.Confirm = cur.Failover.Confirm // restart-only: the second path keeps its sockets
	applied.Gossip.Key, applied.Gossip.ExtraKeys = keysInForce.Key, keysInForce.ExtraKeys
	logger.Info("config reloaded", "component", "node", "mode", next.Node.Mode)
	return &applied, others, nil
}

// applyAPIAccess puts next's web users and read tokens into srv when they
// differ from cur's (the file was validated: bcrypt hashes, roles, read
// tokens' lengths and count) and audits each change: the users added,
// removed and changed by name, with the sessions ended, and the read
// tokens by count, never a token or a hash. It returns the users and read
// tokens now in force.
func applyAPIAccess(n *node.Node, srv *web.Server, cur, next config.API) ([]config.User, []string) {
	usersSame, tokensSame := usersEqual(cur.Users, next.Users), slices.Equal(cur.ReadTokens, next.ReadTokens)
	if usersSame && tokensSame {
		return cur.Users, cur.ReadTokens
	}
	ch := srv.SetAccess(next.ReadTokens, next.Users)
	if !ch.Empty() {
		var parts []string
		for _, p := range []struct {
			what  string
			names []string
		}{{"added", ch.Added}, {"removed", ch.Removed}, {"password or role changed", ch.Changed}} {
			if len(p.names) > 0 {
				parts = append(parts, p.what+" "+strings.Join(p.names, ", "))
			}
		}
		ended := fmt.Sprintf("%d sessions ended", ch.SessionsEnded)
		if ch.SessionsEnded == 1 {
			ended = "1 session ended"
		}
		n.Note("reload config", resilience.OutcomeOK, "web users applied live: "+strings.Join(parts, "; ")+"; "+ended, "")
	}
	if !tokensSame {
		added, removed := 0, 0
		for _, t := range next.ReadTokens {
			if !slices.Contains(cur.ReadTokens, t) {
				added++
			}
		}
		for _, t := range cur.ReadTokens {
			if !slices.Contains(next.ReadTokens, t) {
				removed++
			}
		}
		n.Note("reload config", resilience.OutcomeOK, fmt.Sprintf("read tokens applied live: %d in force (%d added, %d removed)",
			len(next.ReadTokens), added, removed), "")
	}
	return next.Users, next.ReadTokens
}

// usersEqual reports whether two lists of web users let in the same users
// the same way: names, hashes and roles, in any order.
func usersEqual(a, b []config.User) bool {
	key := func(us []config.User) map[string]config.User {
		m := map[string]config.User{}
		for _, u := range us {
			u.Role = strconv.FormatBool(u.Viewer())
			m[u.Name] = u
		}
		return m
	}
	return len(a) == len(b) && reflect.DeepEqual(key(a), key(b))
}

// LogLevel is the slog level of a log.level value (validated: debug, info,
// warn or error; anything else is info).
func LogLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// gossipKeysEqual reports whether two gossip sections have the same keys.
func gossipKeysEqual(a, b config.Gossip) bool {
	return a.Key == b.Key && slices.Equal(a.ExtraKeys, b.ExtraKeys)
}

// applyGossipKeys puts next's gossip keys into the running keyring cl (nil
// when no heartbeat runs: they are then only recorded, for when auto mode
// starts) and audits it, naming the keys by fingerprint only. It returns
// false when the keys could not be applied.
func applyGossipKeys(n *node.Node, cl *cluster.Cluster, next *config.Config) bool {
	primary, extra, err := next.GossipKeys()
	if err != nil { // the file was validated: not expected
		n.Note("reload config", resilience.OutcomeFailed, "gossip keys not applied", err.Error())
		return false
	}
	if cl == nil {
		now := cluster.KeyInfo{Primary: cluster.Fingerprint(primary)}
		for _, k := range extra {
			now.Extra = append(now.Extra, cluster.Fingerprint(k))
		}
		n.Note("reload config", resilience.OutcomeOK, "gossip keys recorded (no heartbeat runs; used when auto mode starts): "+now.String(), "")
		return true
	}
	before := cl.Keys()
	if _, err := cl.SetKeys(primary, extra); err != nil {
		n.Note("reload config", resilience.OutcomeFailed, "gossip keys not applied: the keyring is unchanged or partly changed", err.Error())
		return false
	}
	n.Note("reload config", resilience.OutcomeOK, "gossip keys applied live: "+keysChange(before, cl.Keys()), "")
	return true
}

// keysChange describes a keyring change by fingerprints: the ring now, and
// what was added, removed, or made primary.
func keysChange(before, after cluster.KeyInfo) string {
	all := func(k cluster.KeyInfo) []string { return append([]string{k.Primary}, k.Extra...) }
	var added, removed []string
	for _, fp := range all(after) {
		if !slices.Contains(all(before), fp) {
			added = append(added, fp)
		}
	}
	for _, fp := range all(before) {
		if !slices.Contains(all(after), fp) {
			removed = append(removed, fp)
		}
	}
	s := after.String()
	if before.Primary != after.Primary {
		s += " (primary was " + before.Primary + ")"
	}
	if len(added) > 0 {
		s += "; added " + strings.Join(added, ", ")
	}
	if len(removed) > 0 {
		s += "; removed " + strings.Join(removed, ", ")
	}
	return s
}

// restartOnlyChanges names the top-level sections that differ between two
// configs beyond what a reload applies: with a node in both, node.mode,
// failover (but failover.confirm), hooks, the gossip keys and the web
// users and read tokens (api.users, api.read_tokens); log.level when
// levelLive; a change in the api section is named by key (api.listen,
// api.token, ...); and when fleetLive (the agent runs a fleet aggregator)
// and both have a fleet section, the pairs (fleet.pairs, fleet.pairs_dir):
// a change of its other keys is named by key (fleet.interval,
// fleet.timeout, fleet.concurrency, with their defaults filled).
func restartOnlyChanges(a, b *config.Config, levelLive, fleetLive bool) []string {
	x, y := *a, *b
	if levelLive {
		x.Log.Level, y.Log.Level = "", ""
	}
	var out []string
	if a.Node != nil && b.Node != nil {
		xn, yn := *a.Node, *b.Node
		xn.Mode, yn.Mode = "", ""
		x.Node, y.Node = &xn, &yn
		x.Failover, y.Failover = config.Failover{}, config.Failover{}
		x.Hooks, y.Hooks = config.Hooks{}, config.Hooks{}
		x.Gossip.Key, y.Gossip.Key = "", ""
		x.Gossip.ExtraKeys, y.Gossip.ExtraKeys = nil, nil
		if !reflect.DeepEqual(a.Failover.Confirm, b.Failover.Confirm) {
			out = append(out, "failover.confirm")
		}
	}
	apiKeys := apiChanges(a.API, b.API, a.Node != nil && b.Node != nil)
	x.API, y.API = config.API{}, config.API{}
	var fleetKeys []string
	if fleetLive && a.Fleet != nil && b.Fleet != nil {
		xf, yf := *a.Fleet, *b.Fleet
		xf.ApplyDefaults(confcheck.NothingGiven)
		yf.ApplyDefaults(confcheck.NothingGiven)
		if xf.Interval != yf.Interval {
			fleetKeys = append(fleetKeys, "fleet.interval")
		}
		if xf.Timeout != yf.Timeout {
			fleetKeys = append(fleetKeys, "fleet.timeout")
		}
		if xf.Concurrency != yf.Concurrency {
			fleetKeys = append(fleetKeys, "fleet.concurrency")
		}
		x.Fleet, y.Fleet = nil, nil
	}
	xv, yv := reflect.ValueOf(x), reflect.ValueOf(y)
	for i := range xv.NumField() {
		if xv.Type().Field(i).Name == "API" {
			out = append(out, apiKeys...)
			continue
		}
		if !reflect.DeepEqual(xv.Field(i).Interface(), yv.Field(i).Interface()) {
			out = append(out, strings.ToLower(xv.Type().Field(i).Name))
		}
	}
	return append(out, fleetKeys...)
}

// apiChanges names by key (api.listen, api.token, ...) the keys of the api
// section that differ between a and b, but api.users and api.read_tokens
// when usersLive (a reload applies them to a node).
func apiChanges(a, b config.API, usersLive bool) []string {
	if usersLive {
		a.Users, b.Users = nil, nil
		a.ReadTokens, b.ReadTokens = nil, nil
	}
	var out []string
	av, bv := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range av.NumField() {
		if !reflect.DeepEqual(av.Field(i).Interface(), bv.Field(i).Interface()) {
			f := av.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			out = append(out, "api."+name)
		}
	}
	return out
}

// appliedChanges names what a reload changed of the config in force, in
// the terms of reloadNode: node.mode, failover, hooks, gossip keys,
// api.users, api.read_tokens, log.level (the fleet's pairs are named by
// reload).
func appliedChanges(before, after *config.Config) []string {
	var out []string
	if before.Node != nil && after.Node != nil && before.Node.Mode != after.Node.Mode {
		out = append(out, "node.mode")
	}
	if !reflect.DeepEqual(before.Failover, after.Failover) {
		out = append(out, "failover")
	}
	if !reflect.DeepEqual(before.Hooks, after.Hooks) {
		out = append(out, "hooks")
	}
	if !gossipKeysEqual(before.Gossip, after.Gossip) {
		out = append(out, "gossip keys")
	}
	if !usersEqual(before.API.Users, after.API.Users) {
		out = append(out, "api.users")
	}
	if !slices.Equal(before.API.ReadTokens, after.API.ReadTokens) {
		out = append(out, "api.read_tokens")
	}
	if before.Log.Level != after.Log.Level {
		out = append(out, "log.level")
	}
	return out
}
