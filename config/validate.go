package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/crypto/bcrypt"
)

// MinTokenLen is the shortest accepted bearer token.
const MinTokenLen = 16

// MaxReadTokens bounds api.read_tokens: every request with a token is
// compared with each of them.
const MaxReadTokens = 16

// Validate checks c as it is (call it after defaults are filled) and returns
// Problems listing every problem found, or nil.
func (c *Config) Validate() error {
	if c == nil {
		return Problems{{Key: "node", Msg: "no config"}}
	}
	v := &checker{c: c}
	v.components()
	v.node()
	v.api()
	v.peer()
	v.gossip()
	v.failover()
	v.services("services", c.Services)
	v.replication()
	v.switchover()
	v.hooks()
	v.xds()
	v.cc()
	v.edge()
	v.fleet()
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")
	if len(v.ps) == 0 {
		return nil
	}
	v.ps.sort()
	return v.ps
}

type checker struct {
	c  *Config
	ps Problems
}

func (v *checker) add(key, format string, args ...any) {
	v.ps = append(v.ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (v *checker) role() string {
	if v.c.Node == nil {
		return ""
	}
	return v.c.Node.Role
}

func (v *checker) pairNode() bool { return v.role() == RoleMain || v.role() == RoleStandby }

func (v *checker) auto() bool { return v.c.Node != nil && v.c.Node.Mode == ModeAuto }

func (v *checker) components() {
	if v.c.Node == nil && v.c.CC == nil && v.c.Edge == nil && v.c.Fleet == nil {
		v.add("node", "a config needs at least one of node, cc, edge or fleet, found none")
	}
}

func (v *checker) node() {
	n := v.c.Node
	if n == nil {
		return
	}
	v.name("node.name", n.Name, "this node's unique name, like xivo-main")
	v.oneOf("node.role", n.Role, RoleMain, RoleStandby, RoleWitness)
	v.oneOf("node.mode", n.Mode, ModeAuto, ModeManual)
	if n.Role == RoleWitness && n.Mode != ModeAuto && n.Mode != "" {
		v.add("node.mode", "a witness only takes part in gossip, so it must be auto, got %q", n.Mode)
	}
	if v.pairNode() {
		v.name("node.version", n.Version, `the PBX stack version, like "2025.10.3"`)
	}
	switch {
	case n.DataDir == "":
		v.add("node.data_dir", "required: an absolute directory, like %s", DefaultDataDir)
	case !path.IsAbs(n.DataDir):
		v.add("node.data_dir", "must be an absolute path, like %s, got %q", DefaultDataDir, n.DataDir)
	}
}

func (v *checker) api() {
	a := v.c.API
	v.required("api.listen", a.Listen, "host:port, like "+DefaultAPIListen)
	v.hostPort("api.listen", a.Listen, false, DefaultAPIListen)
	if v.c.Node != nil || v.c.CC != nil || v.c.Edge != nil || v.c.Fleet != nil {
		v.token("api.token", a.Token, "the bearer token scripts, peers, CC and Edge present")
	}
	if len(a.ReadTokens) > 0 && v.c.Node == nil {
		// Listed and ignored, they would mislead: refuse them.
		v.add("api.read_tokens", "only a node (a file with a node section) accepts read tokens: the CC follower's, the Edge's and the fleet's APIs only read, with api.token")
	}
	if len(a.ReadTokens) > MaxReadTokens {
		v.add("api.read_tokens", "at most %d tokens, got %d", MaxReadTokens, len(a.ReadTokens))
	}
	seenRead := map[string]int{}
	for i, rt := range a.ReadTokens {
		key := fmt.Sprintf("api.read_tokens[%d]", i)
		v.token(key, rt, "a token that may only read")
		switch j, dup := seenRead[rt]; {
		case rt == "":
		case rt == a.Token:
			v.add(key, "must differ from api.token: the full token may write, a read token may only read")
		case dup:
			v.add(key, "duplicate of api.read_tokens[%d]", j)
		default:
			seenRead[rt] = i
		}
	}
	for i, tp := range a.TrustedProxies {
		if _, err := parseProxy(tp); err != nil {
			v.add(fmt.Sprintf("api.trusted_proxies[%d]", i), "must be an IP address or a CIDR prefix, like 10.0.0.5 or 10.0.0.0/24, got %q", tp)
		}
	}
	seen := map[string]int{}
	for i, u := range a.Users {
		key := fmt.Sprintf("api.users[%d]", i)
		v.name(key+".name", u.Name, "a login name")
		if j, dup := seen[u.Name]; dup && u.Name != "" {
			v.add(key+".name", "duplicate of api.users[%d].name %q", j, u.Name)
		} else {
			seen[u.Name] = i
		}
		switch {
		case u.PasswordHash == "":
			v.add(key+".password_hash", "required: a bcrypt hash, as printed by resman hash-password")
		case !validBcrypt(u.PasswordHash):
			// The value is not echoed: it may be a password pasted by mistake.
			v.add(key+".password_hash", "must be a bcrypt hash like $2a$10$..., as printed by resman hash-password")
		}
		v.oneOf(key+".role", u.Role, UserRoleAdmin, UserRoleViewer)
	}
}

func validBcrypt(h string) bool {
	_, err := bcrypt.Cost([]byte(h))
	// Cost only reads the prefix; a full hash is always 60 characters.
	return err == nil && len(h) == 60
}

func (v *checker) peer() {
	p := v.c.Peer
	switch {
	case p == nil:
		if v.pairNode() {
			v.add("peer", "required for a %s node: the other node's name, api and gossip", v.role())
		}
		return
	case v.c.Node == nil:
		v.add("peer", "only a node has a peer: add a node section or remove peer")
		return
	case v.role() == RoleWitness:
		v.add("peer", "a witness has no peer: list both nodes in gossip.join instead")
		return
	}
	v.name("peer.name", p.Name, "the other node's node.name")
	if n := v.c.Node; n != nil && p.Name != "" && p.Name == n.Name {
		v.add("peer.name", "must differ from node.name, both are %q", p.Name)
	}
	v.url("peer.api", p.API, true, "http://10.0.0.2:9440")
	if p.Gossip == "" && v.auto() {
		v.add("peer.gossip", "required in auto mode: the other node's gossip host:port, like 10.0.0.2:7946")
	} else {
		v.hostPort("peer.gossip", p.Gossip, true, "10.0.0.2:7946")
	}
	v.positive("peer.check_interval", p.CheckInterval)
	v.positive("peer.timeout", p.Timeout)
	if p.CheckInterval > 0 && p.Timeout > p.CheckInterval {
		v.add("peer.timeout", "must not exceed peer.check_interval (%s), got %s", p.CheckInterval, p.Timeout)
	}
}

func (v *checker) gossip() {
	g := v.c.Gossip
	switch {
	case g.Key == "" && v.auto():
		v.add("gossip.key", "required in auto mode: base64 of 16, 24 or 32 random bytes (openssl rand -base64 32)")
	case g.Key == "" && len(g.ExtraKeys) > 0:
		v.add("gossip.key", "required with gossip.extra_keys: the key gossip is encrypted with (extra keys are only accepted)")
	case g.Key != "":
		if _, err := decodeGossipKey(g.Key); err != nil {
			v.add("gossip.key", "%v", err)
		}
	}
	v.extraGossipKeys(g)
	v.required("gossip.bind", g.Bind, "host:port, like "+DefaultBind)
	v.hostPort("gossip.bind", g.Bind, false, DefaultBind)
	v.positive("gossip.probe_interval", g.ProbeInterval)
	v.positive("gossip.probe_timeout", g.ProbeTimeout)
	if g.ProbeInterval > 0 && g.ProbeTimeout >= g.ProbeInterval {
		v.add("gossip.probe_timeout", "must be shorter than gossip.probe_interval (%s), got %s", g.ProbeInterval, g.ProbeTimeout)
	}
	if g.SuspicionMult < 1 {
		v.add("gossip.suspicion_mult", "must be at least 1, got %d", g.SuspicionMult)
	}
	v.positive("gossip.rejoin_interval", g.RejoinInterval)
	if len(g.Join) == 0 && v.role() == RoleWitness {
		v.add("gossip.join", "required for a witness: the gossip host:port of both nodes, like [10.0.0.1:7946, 10.0.0.2:7946]")
	}
	for i, j := range g.Join {
		key := fmt.Sprintf("gossip.join[%d]", i)
		if j == "" {
			v.add(key, "must be a host:port, got an empty value")
		} else {
			v.hostPort(key, j, true, "10.0.0.2:7946")
		}
	}
}

// extraGossipKeys checks gossip.extra_keys like gossip.key, each by its
// index, and refuses repeats (compared decoded). No value is echoed.
func (v *checker) extraGossipKeys(g Gossip) {
	if n := len(g.ExtraKeys); n > MaxExtraGossipKeys {
		v.add("gossip.extra_keys", "at most %d keys, got %d: keep only the keys some member still encrypts with", MaxExtraGossipKeys, n)
	}
	primary, _ := decodeGossipKey(g.Key)
	seen := map[string]int{}
	for i, k := range g.ExtraKeys {
		key := fmt.Sprintf("gossip.extra_keys[%d]", i)
		b, err := decodeGossipKey(k)
		switch {
		case k == "":
			v.add(key, "must be base64 of 16, 24 or 32 random bytes (openssl rand -base64 32), got an empty value")
		case err != nil:
			v.add(key, "%v", err)
		case primary != nil && bytes.Equal(b, primary):
			v.add(key, "is gossip.key itself: the primary key is always accepted, list only the other keys here")
		default:
			if j, dup := seen[string(b)]; dup {
				v.add(key, "duplicate of gossip.extra_keys[%d]", j)
			} else {
				seen[string(b)] = i
			}
		}
	}
}

func (v *checker) failover() {
	f := v.c.Failover
	v.oneOf("failover.failback", f.Failback, FailbackAuto, FailbackManual)
	if f.FailbackHold < 0 {
		v.add("failover.failback_hold", "must not be negative, got %s", f.FailbackHold)
	}
	if f.BootGrace < 0 {
		v.add("failover.boot_grace", "must not be negative, got %s", f.BootGrace)
	}
	v.positive("failover.lost_after", f.LostAfter)
	v.hostPort("failover.witness", f.Witness, true, "10.0.0.3:7946")
	if f.Witness != "" && sameHostPort(f.Witness, v.c.Gossip.Bind) {
		v.add("failover.witness", "is this node's own gossip.bind (%q): name the witness's gossip.bind, a third host", v.c.Gossip.Bind)
	}
	v.confirm(f.Confirm)
	if c := f.Calls; c != nil {
		if len(c.Exec) == 0 || c.Exec[0] == "" {
			v.add("failover.calls.exec", "required: a command that prints the calls in progress, like [asterisk, -rx, \"core show calls\"]")
		}
		v.positive("failover.calls.interval", c.Interval)
	}
}

// confirm checks the second path's keys (failover.confirm).
func (v *checker) confirm(c Confirm) {
	if !c.On() {
		return
	}
	v.positive("failover.confirm.every", c.Every)
	v.positive("failover.confirm.window", c.Window)
	if c.Every > 0 && c.Window > 0 && c.Window < 3*c.Every {
		v.add("failover.confirm.window", "must be at least 3 × failover.confirm.every (%s), so that one lost packet does not confirm a loss; got %s", 3*c.Every, c.Window)
	}
	if c.Window > 10*time.Second {
		v.add("failover.confirm.window", "must be at most 10s: a takeover waits up to this long for a dead host; got %s", c.Window)
	}
	if c.Every > 0 && c.Every < 5*time.Millisecond {
		v.add("failover.confirm.every", "must be at least 5ms; got %s", c.Every)
	}
	if c.Listen != v.c.API.Listen { // else api.listen's own check says it
		v.hostPort("failover.confirm.listen", c.Listen, false, "10.0.0.1:9440")
	}
	if v.c.Node != nil && v.role() != RoleWitness {
		v.hostPort("failover.confirm.peer", c.Peer, true, "10.0.0.2:9440")
	}
}

// sameHostPort reports whether a and b are the same host:port: the same
// port, and the same name (in any case) or IP address.
func sameHostPort(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || ap != bp {
		return false
	}
	if ia, ib := net.ParseIP(ah), net.ParseIP(bh); ia != nil && ib != nil {
		return ia.Equal(ib)
	}
	return strings.EqualFold(ah, bh)
}

func (v *checker) services(list string, ss []Service) {
	if len(ss) > 0 && list == "services" {
		switch {
		case v.c.Node == nil:
			v.add(list, "only a node runs services: add a node section, or put contact-center services under cc.services")
		case v.role() == RoleWitness:
			v.add(list, "a witness runs no services: remove this list")
		}
	}
	seen := map[string]int{}
	for i, s := range ss {
		key := fmt.Sprintf("%s[%d]", list, i)
		v.name(key+".name", s.Name, "a service name, like asterisk")
		if j, dup := seen[s.Name]; dup && s.Name != "" {
			v.add(key+".name", "duplicate of %s[%d].name %q", list, j, s.Name)
		} else {
			seen[s.Name] = i
		}

		var kinds []string
		if len(s.Start) > 0 || len(s.Stop) > 0 {
			kinds = append(kinds, "start+stop")
			if len(s.Start) == 0 {
				v.add(key+".start", "required with stop: the command that starts the service")
			}
			if len(s.Stop) == 0 {
				v.add(key+".stop", "required with start: the command that stops the service")
			}
			v.command(key+".start", s.Start)
			v.command(key+".stop", s.Stop)
		}
		if s.Unit != "" {
			kinds = append(kinds, "unit")
			if strings.ContainsFunc(s.Unit, unicode.IsSpace) {
				v.add(key+".unit", "must be one systemd unit name without spaces, got %q", s.Unit)
			}
		}
		if len(s.Run) > 0 {
			kinds = append(kinds, "run")
			v.command(key+".run", s.Run)
		}
		switch len(kinds) {
		case 0:
			v.add(key, "needs one of start+stop, unit or run to say how the service is driven")
		case 1:
		default:
			v.add(key, "set only one of start+stop, unit or run, got %s", strings.Join(kinds, " and "))
		}
		v.positive(key+".timeout", s.Timeout)
		if s.Check != nil {
			v.check(key+".check", *s.Check)
		}
	}
}

func (v *checker) check(key string, ch Check) {
	var kinds []string
	if ch.SIP != "" {
		kinds = append(kinds, "sip")
		if !validSIP(ch.SIP) {
			v.add(key+".sip", "must be a sip: or sips: URI with a host, like sip:127.0.0.1:5060, got %q", ch.SIP)
		}
	}
	if len(ch.Exec) > 0 {
		kinds = append(kinds, "exec")
		v.command(key+".exec", ch.Exec)
	}
	if ch.TCP != "" {
		kinds = append(kinds, "tcp")
		v.hostPort(key+".tcp", ch.TCP, true, "127.0.0.1:5432")
	}
	if ch.HTTP != "" {
		kinds = append(kinds, "http")
		v.url(key+".http", ch.HTTP, false, "http://127.0.0.1:8080/health")
	}
	switch len(kinds) {
	case 0:
		v.add(key, "needs one of sip, exec, tcp or http")
	case 1:
	default:
		v.add(key, "set only one of sip, exec, tcp or http, got %s", strings.Join(kinds, " and "))
	}
	v.positive(key+".interval", ch.Interval)
	v.positive(key+".timeout", ch.Timeout)
	if ch.Interval > 0 && ch.Timeout > ch.Interval {
		v.add(key+".timeout", "must not exceed %s.interval (%s), got %s", key, ch.Interval, ch.Timeout)
	}
	v.atLeastOne(key+".rise", ch.Rise)
	v.atLeastOne(key+".fall", ch.Fall)
}

func (v *checker) replication() {
	rs := v.c.Replication
	if len(rs) > 0 {
		switch {
		case v.c.Node == nil:
			v.add("replication", "only a main or standby node runs replication: add a node section or remove this list")
		case v.role() == RoleWitness:
			v.add("replication", "a witness runs no replication: remove this list")
		}
	}
	seen := map[string]int{}
	roots := map[string]string{} // path -> key, to refuse overlapping roots
	for i, r := range rs {
		key := fmt.Sprintf("replication[%d]", i)
		v.name(key+".name", r.Name, "a job name, like db")
		if j, dup := seen[r.Name]; dup && r.Name != "" {
			v.add(key+".name", "duplicate of replication[%d].name %q", j, r.Name)
		} else {
			seen[r.Name] = i
		}
		switch {
		case len(r.Run) > 0 && r.Files != nil:
			v.add(key+".run", "set one of run or files, got both")
		case len(r.Run) > 0:
			v.command(key+".run", r.Run)
		case r.Files != nil:
			v.replicationFiles(key+".files", r.Files, roots)
		default:
			v.add(key+".run", "required: a command, like [/usr/local/bin/sync-db], unless files (trees to copy) is set")
		}
		v.positive(key+".every", r.Every)
		v.positive(key+".timeout", r.Timeout)
		if r.Every > 0 && r.MaxAge < r.Every {
			v.add(key+".max_age", "must be at least replication[%d].every (%s), got %s", i, r.Every, r.MaxAge)
		}
	}
}

func (v *checker) switchover() {
	d := v.c.Switchover.Drain
	if d == nil {
		return
	}
	if len(d.Exec) == 0 {
		v.add("switchover.drain.exec", "required: a command that exits 0 when no call is active")
	} else {
		v.command("switchover.drain.exec", d.Exec)
	}
	v.positive("switchover.drain.timeout", d.Timeout)
	v.positive("switchover.drain.interval", d.Interval)
	if d.Interval > d.Timeout && d.Timeout > 0 {
		v.add("switchover.drain.interval", "must be at most switchover.drain.timeout (%s), got %s", d.Timeout, d.Interval)
	}
}

func (v *checker) hooks() {
	h := v.c.Hooks
	if h.Any() {
		switch {
		case v.c.Node == nil:
			v.add("hooks", "only a main or standby node runs hooks: add a node section or remove the hooks")
		case v.role() == RoleWitness:
			v.add("hooks", "a witness is never Active and runs no hooks: remove them")
		}
	}
	defaultOK := h.Timeout > 0 && h.Timeout <= MaxHookTimeout
	if !defaultOK {
		v.add("hooks.timeout", "must be a duration above 0 and at most %s, like 10s, got %s", MaxHookTimeout, h.Timeout)
	}
	for _, phase := range h.phases() {
		seen := map[string]int{}
		for i, hk := range phase.hooks {
			key := fmt.Sprintf("%s[%d]", phase.key, i)
			v.name(key+".name", hk.Name, "a hook name, like page-oncall")
			if j, dup := seen[hk.Name]; dup && hk.Name != "" {
				v.add(key+".name", "duplicate of %s[%d].name %q", phase.key, j, hk.Name)
			} else {
				seen[hk.Name] = i
			}
			if len(hk.Run) == 0 {
				v.add(key+".run", "required: a command, like [/usr/local/bin/notify, active]")
			} else {
				v.command(key+".run", hk.Run)
			}
			// A timeout inherited from a wrong hooks.timeout is that
			// key's problem, reported once.
			if (hk.Timeout <= 0 || hk.Timeout > MaxHookTimeout) && (defaultOK || hk.Timeout != h.Timeout) {
				v.add(key+".timeout", "must be a duration above 0 and at most %s, like 5s, got %s", MaxHookTimeout, hk.Timeout)
			}
		}
	}
}

func (v *checker) replicationFiles(key string, f *ReplicationFiles, roots map[string]string) {
	if len(f.Roots) == 0 {
		v.add(key+".roots", "required: at least one root, like - {name: asterisk, path: /etc/asterisk}")
	}
	names := map[string]int{}
	for k, r := range f.Roots {
		rk := fmt.Sprintf("%s.roots[%d]", key, k)
		v.name(rk+".name", r.Name, "a root name, the same on both nodes, like asterisk")
		if j, dup := names[r.Name]; dup && r.Name != "" {
			v.add(rk+".name", "duplicate of %s.roots[%d].name %q", key, j, r.Name)
		} else {
			names[r.Name] = k
		}
		clean := filepath.Clean(r.Path)
		if !filepath.IsAbs(r.Path) {
			v.add(rk+".path", "must be an absolute path, got %q", r.Path)
			continue
		}
		for other, okey := range roots {
			if clean == other || strings.HasPrefix(clean, other+"/") || strings.HasPrefix(other, clean+"/") {
				v.add(rk+".path", "overlaps %s (%s)", okey, other)
			}
		}
		roots[clean] = rk + ".path"
	}
	v.atLeastOne(key+".max_files", f.MaxFiles)
	v.atLeastOne(key+".max_file_mib", f.MaxFileMiB)
	v.atLeastOne(key+".max_total_mib", f.MaxTotalMiB)
	if f.MaxFileMiB > f.MaxTotalMiB && f.MaxTotalMiB > 0 {
		v.add(key+".max_file_mib", "must not exceed max_total_mib (%d), got %d", f.MaxTotalMiB, f.MaxFileMiB)
	}
}

func (v *checker) xds() {
	x := v.c.XDS
	if x == nil {
		return
	}
	switch {
	case v.c.Node == nil:
		v.add("xds", "only a main or standby node registers to media servers: add a node section or remove xds")
	case v.role() == RoleWitness:
		v.add("xds", "a witness never registers to media servers: remove xds")
	}
	if x.Contact == "" {
		v.add("xds.contact", "required: the sip: URI media servers send calls to, like sip:xivo@10.0.0.1:5060")
	} else if !validSIP(x.Contact) || strings.HasPrefix(x.Contact, "sips:") {
		v.add("xds.contact", "must be a sip: URI with a host, like sip:xivo@10.0.0.1:5060, got %q", x.Contact)
	}
	if x.PeerContact != "" && (!validSIP(x.PeerContact) || strings.HasPrefix(x.PeerContact, "sips:")) {
		v.add("xds.peer_contact", "must be a sip: URI with a host, the peer node's xds.contact, like sip:xivo@10.0.0.2:5060, got %q", x.PeerContact)
	}
	if x.SourceAddress != "" && net.ParseIP(strings.Trim(x.SourceAddress, "[]")) == nil {
		v.add("xds.source_address", "must be an IP address of this host (or 0.0.0.0 for the routes' choice), like 10.0.0.1, got %q", x.SourceAddress)
	}
	if x.OutboundProxy != "" && (!validSIP(x.OutboundProxy) || strings.HasPrefix(x.OutboundProxy, "sips:")) {
		v.add("xds.outbound_proxy", "must be a sip: URI with a host, like sip:10.0.0.5:5060, got %q", x.OutboundProxy)
	}
	if x.TLSCAFile != "" && !filepath.IsAbs(x.TLSCAFile) {
		v.add("xds.tls_ca_file", "must be an absolute path, like /etc/resman/mds-ca.pem, got %q", x.TLSCAFile)
	}
	if len(x.MDS) == 0 {
		v.add("xds.mds", "list at least one media server (name, registrar)")
	}
	seen := map[string]int{}
	for i, m := range x.MDS {
		key := fmt.Sprintf("xds.mds[%d]", i)
		v.name(key+".name", m.Name, "a media server name, like mds1")
		if j, dup := seen[m.Name]; dup && m.Name != "" {
			v.add(key+".name", "duplicate of xds.mds[%d].name %q", j, m.Name)
		} else {
			seen[m.Name] = i
		}
		if m.Registrar == "" {
			v.add(key+".registrar", "required: a sip: URI like sip:10.0.0.11:5060")
		} else if !validSIP(m.Registrar) || strings.HasPrefix(m.Registrar, "sips:") {
			v.add(key+".registrar", "must be a sip: URI with a host, like sip:10.0.0.11:5060, got %q", m.Registrar)
		}
		v.oneOf(key+".transport", m.Transport, "udp", "tcp", "tls")
		if m.TLSServerName != "" {
			switch {
			case m.Transport != "tls":
				v.add(key+".tls_server_name", "applies only with transport tls (transport is %q): remove it or set transport: tls", m.Transport)
			case strings.ContainsFunc(m.TLSServerName, unicode.IsSpace) || strings.ContainsAny(m.TLSServerName, "/@[]") ||
				strings.Contains(m.TLSServerName, ":") && net.ParseIP(m.TLSServerName) == nil:
				v.add(key+".tls_server_name", "must be a host name, like mds1.example.com, got %q", m.TLSServerName)
			}
		}
		if m.Expires < 10 || m.Expires > 3600 {
			v.add(key+".expires", "must be between 10 and 3600 seconds, got %d", m.Expires)
		}
		if m.User != "" && m.Password == "" {
			v.add(key+".password", "required when user is set")
		}
	}
}

func (v *checker) cc() {
	cc := v.c.CC
	if cc == nil {
		return
	}
	v.name("cc.name", cc.Name, "this follower's name, like cc-main")
	if n := v.c.Node; n != nil && cc.Name != "" && cc.Name == n.Name {
		v.add("cc.name", "must differ from node.name, both are %q", cc.Name)
	}
	v.url("cc.follow", cc.Follow, true, "http://127.0.0.1:9440")
	v.token("cc.token", cc.Token, "the api.token of the node it follows")
	if !strings.HasPrefix(cc.DataDir, "/") {
		v.add("cc.data_dir", "must be an absolute path, like %s/cc, got %q", DefaultDataDir, cc.DataDir)
	}
	v.positive("cc.check_interval", cc.CheckInterval)
	v.services("cc.services", cc.Services)
}

func (v *checker) edge() {
	e := v.c.Edge
	if e == nil {
		return
	}
	v.required("edge.listen", e.Listen, "the proxy's host:port, like 0.0.0.0:8443")
	v.hostPort("edge.listen", e.Listen, false, "0.0.0.0:8443")
	if e.Listen != "" && e.Listen == v.c.API.Listen {
		v.add("edge.listen", "must differ from api.listen, both are %q", e.Listen)
	}
	v.token("edge.token", e.Token, "the nodes' api.token")
	v.positive("edge.check.interval", e.Check.Interval)
	if e.Check.Interval > 0 { // else the timeout's default is wrong too: one error is enough
		v.positive("edge.check.timeout", e.Check.Timeout)
	}
	if e.Check.Timeout > e.Check.Interval && e.Check.Interval > 0 {
		v.add("edge.check.timeout", "must be at most edge.check.interval (%s), got %s", e.Check.Interval, e.Check.Timeout)
	}
	if t := e.TLS; t != nil {
		if t.Cert == "" {
			v.add("edge.tls.cert", "required: the PEM file of the certificate, like /etc/resman/edge.crt")
		}
		if t.Key == "" {
			v.add("edge.tls.key", "required: the PEM file of the private key, like /etc/resman/edge.key")
		}
	}
	v.atLeastOne("edge.check.rise", e.Check.Rise)
	v.atLeastOne("edge.check.fall", e.Check.Fall)
	if n := len(e.Sides); n < 1 || n > 2 {
		v.add("edge.sides", "must list 1 or 2 sides (main, standby), got %d", n)
	}
	seen := map[string]int{}
	for i, s := range e.Sides {
		key := fmt.Sprintf("edge.sides[%d]", i)
		v.name(key+".name", s.Name, "a side name, like main")
		if j, dup := seen[s.Name]; dup && s.Name != "" {
			v.add(key+".name", "duplicate of edge.sides[%d].name %q", j, s.Name)
		} else {
			seen[s.Name] = i
		}
		v.url(key+".node", s.Node, true, "http://10.0.0.1:9440")
		if len(s.Routes) == 0 {
			v.add(key+".routes", "list at least one route (path, upstream)")
		}
		paths := map[string]int{}
		for j, r := range s.Routes {
			rkey := fmt.Sprintf("%s.routes[%d]", key, j)
			switch {
			case !strings.HasPrefix(r.Path, "/"):
				v.add(rkey+".path", "must start with /, like /api, got %q", r.Path)
			case strings.ContainsFunc(r.Path, unicode.IsSpace):
				v.add(rkey+".path", "must not contain spaces, got %q", r.Path)
			default:
				if k, dup := paths[r.Path]; dup {
					v.add(rkey+".path", "duplicate of %s.routes[%d].path %q", key, k, r.Path)
				}
				paths[r.Path] = j
			}
			v.url(rkey+".upstream", r.Upstream, true, "http://10.0.0.21:8080")
		}
		v.upstreamTLS(key+".upstream_tls", s)
		v.sideSIP(key+".sip", s.SIP, e.SIP != nil)
	}
	v.edgeSIP()
}

// edgeSIP checks edge.sip, the SIP front.
func (v *checker) edgeSIP() {
	sp := v.c.Edge.SIP
	if sp == nil {
		return
	}
	v.required("edge.sip.listen", sp.Listen, "the SIP front's host:port (UDP and TCP), like 0.0.0.0:5060")
	v.hostPort("edge.sip.listen", sp.Listen, false, "0.0.0.0:5060")
	// Every TCP listener of the Edge and the API: none twice.
	tcp := []struct{ key, addr string }{{"api.listen", v.c.API.Listen}, {"edge.listen", v.c.Edge.Listen}, {"edge.sip.listen", sp.Listen}}
	if t := sp.TLS; t != nil {
		if t.Listen != "" {
			v.hostPort("edge.sip.tls.listen", t.Listen, false, "0.0.0.0:5061")
			tcp = append(tcp, struct{ key, addr string }{"edge.sip.tls.listen", t.Listen})
		} else if sp.WSS == nil {
			v.add("edge.sip.tls.listen", "required unless edge.sip.wss is set: the host:port of SIP over TLS, like 0.0.0.0:5061")
		}
		if t.Cert == "" {
			v.add("edge.sip.tls.cert", "required: the PEM file of the certificate phones check, like /etc/resman/sip.crt")
		}
		if t.Key == "" {
			v.add("edge.sip.tls.key", "required: the PEM file of the private key, like /etc/resman/sip.key")
		}
	}
	for _, w := range []struct {
		key string
		l   *EdgeSIPListen
		ex  string
	}{{"edge.sip.ws", sp.WS, "0.0.0.0:8088"}, {"edge.sip.wss", sp.WSS, "0.0.0.0:8089"}} {
		if w.l == nil {
			continue
		}
		v.required(w.key+".listen", w.l.Listen, "the host:port of SIP over WebSocket, like "+w.ex)
		v.hostPort(w.key+".listen", w.l.Listen, false, w.ex)
		tcp = append(tcp, struct{ key, addr string }{w.key + ".listen", w.l.Listen})
	}
	if sp.WSS != nil && sp.TLS == nil {
		v.add("edge.sip.wss", "needs edge.sip.tls (its cert and key; its listen is optional): the certificate of secure WebSocket")
	}
	for i := 3; i < len(tcp); i++ { // api.listen and edge.listen are checked apart
		for j := 0; j < i; j++ {
			if tcp[i].addr != "" && tcp[i].addr == tcp[j].addr {
				v.add(tcp[i].key, "must differ from %s (both TCP), both are %q", tcp[j].key, tcp[i].addr)
				break
			}
		}
	}
	for _, other := range tcp[:2] {
		if sp.Listen != "" && sp.Listen == other.addr {
			v.add("edge.sip.listen", "must differ from %s (both TCP), both are %q", other.key, sp.Listen)
		}
	}
	host, _, err := net.SplitHostPort(sp.Listen)
	unspecified := err == nil && (host == "" || net.ParseIP(strings.Trim(host, "[]")) != nil && net.ParseIP(strings.Trim(host, "[]")).IsUnspecified())
	switch {
	case sp.Advertise == "" && unspecified:
		v.add("edge.sip.advertise", "required when edge.sip.listen (%q) names no host: the address phones and PBXs reach the Edge at, like 10.0.0.5 or 10.0.0.5:5060", sp.Listen)
	case sp.Advertise != "" && !validAdvertise(sp.Advertise):
		v.add("edge.sip.advertise", "must be a host or host:port with a port from 1 to 65535, like 10.0.0.5 or 10.0.0.5:5060, got %q", sp.Advertise)
	}
	if sp.Expires < 10 || sp.Expires > 3600 {
		v.add("edge.sip.expires", "must be between 10 and 3600 seconds (30 to 60 keeps re-homing short), got %d", sp.Expires)
	}
	if sp.RegisterRate < 1 || sp.RegisterRate > 100000 {
		v.add("edge.sip.register_rate", "must be a whole number of REGISTERs per second from 1 to 100000, like 50, got %d", sp.RegisterRate)
	}
}

// sideSIP checks edge.sides[i].sip: required with edge.sip, refused
// without.
func (v *checker) sideSIP(key, got string, front bool) {
	switch {
	case got == "" && front:
		v.add(key, "required when edge.sip is set: the side's PBX SIP address, like sip:10.0.0.1:5060")
	case got == "":
	case !front:
		v.add(key, "applies only with edge.sip (the SIP front): add edge.sip or remove it")
	case !validSIP(got) || strings.HasPrefix(got, "sips:"):
		v.add(key, "must be a sip: URI with a host, like sip:10.0.0.1:5060, got %q", got)
	default:
		if i := strings.Index(got, ";transport="); i >= 0 {
			t := strings.ToLower(got[i+len(";transport="):])
			if j := strings.IndexAny(t, ";?"); j >= 0 {
				t = t[:j]
			}
			if t != "udp" && t != "tcp" {
				v.add(key, "transport must be udp or tcp, like sip:10.0.0.1:5060;transport=tcp, got %q", got)
			}
		}
	}
}

// validAdvertise accepts host or host:port without spaces.
func validAdvertise(s string) bool {
	if s == "" || strings.ContainsFunc(s, unicode.IsSpace) || strings.ContainsAny(s, "/@;?") {
		return false
	}
	if host, port, err := net.SplitHostPort(s); err == nil {
		n, perr := strconv.Atoi(port)
		return host != "" && perr == nil && n >= 1 && n <= 65535
	}
	return !strings.Contains(strings.Trim(s, "[]"), ":") || net.ParseIP(strings.Trim(s, "[]")) != nil
}

// Field checks.

func (v *checker) oneOf(key, got string, allowed ...string) {
	if slices.Contains(allowed, got) {
		return
	}
	want := allowed[0]
	if n := len(allowed); n > 1 {
		want = strings.Join(allowed[:n-1], ", ") + " or " + allowed[n-1]
	}
	if got == "" {
		v.add(key, "required: must be %s", want)
		return
	}
	v.add(key, "must be %s, got %q", want, got)
}

func (v *checker) required(key, got, what string) {
	if got == "" {
		v.add(key, "required: %s", what)
	}
}

// name checks a required identifier-like value.
func (v *checker) name(key, got, what string) {
	switch {
	case got == "":
		v.add(key, "required: %s", what)
	case strings.ContainsFunc(got, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		v.add(key, "must not contain spaces, got %q", got)
	}
}

func (v *checker) token(key, got, what string) {
	switch {
	case got == "":
		v.add(key, "required: %s, at least %d characters (openssl rand -hex 24)", what, MinTokenLen)
	case strings.ContainsFunc(got, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		v.add(key, "must not contain spaces or control characters")
	case len(got) < MinTokenLen:
		// The length, not the value: it is a secret.
		v.add(key, "must be at least %d characters, got %d", MinTokenLen, len(got))
	}
}

func (v *checker) positive(key string, d time.Duration) {
	if d <= 0 {
		v.add(key, "must be a duration above 0, like 1s, got %s", d)
	}
}

func (v *checker) atLeastOne(key string, n int) {
	if n < 1 {
		v.add(key, "must be at least 1, got %d", n)
	}
}

func (v *checker) command(key string, argv []string) {
	if len(argv) == 0 {
		return
	}
	if strings.TrimSpace(argv[0]) == "" {
		v.add(key, "the program (first item) must not be empty")
	}
}

// hostPort checks host:port; an empty value is accepted (the caller
// decides whether the key is required). wantHost rejects ":7946".
func (v *checker) hostPort(key, got string, wantHost bool, example string) {
	if got == "" {
		return
	}
	host, port, err := net.SplitHostPort(got)
	n, perr := strconv.Atoi(port)
	switch {
	case err != nil, perr != nil, n < 1, n > 65535,
		strings.ContainsFunc(host, unicode.IsSpace):
		v.add(key, "must be host:port with a port from 1 to 65535, like %s, got %q", example, got)
	case wantHost && host == "":
		v.add(key, "must name a host, like %s, got %q", example, got)
	}
}

func (v *checker) url(key, got string, required bool, example string) {
	if got == "" {
		if required {
			v.add(key, "required: an http(s) URL, like %s", example)
		}
		return
	}
	if !validHTTPURL(got) {
		v.add(key, "must be an http(s) URL with a host, like %s, got %q", example, got)
	}
}

func validHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() != "" &&
		!strings.ContainsFunc(s, unicode.IsSpace)
}

// validSIP accepts sip: and sips: URIs with a host and optional user and
// port: sip:host, sip:user@host:port;transport=tcp.
func validSIP(s string) bool {
	rest, ok := strings.CutPrefix(s, "sip:")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "sips:"); !ok {
			return false
		}
	}
	if strings.ContainsFunc(rest, unicode.IsSpace) {
		return false
	}
	if i := strings.IndexAny(rest, ";?"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = rest[i+1:]
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") { // [IPv6]:port
		end := strings.Index(rest, "]")
		if end < 0 {
			return false
		}
		host, port = rest[1:end], strings.TrimPrefix(rest[end+1:], ":")
		if rest[end+1:] != "" && !strings.HasPrefix(rest[end+1:], ":") {
			return false
		}
	} else if h, p, found := strings.Cut(rest, ":"); found {
		host, port = h, p
	}
	if host == "" || strings.ContainsAny(host, "/[]:@") && net.ParseIP(host) == nil {
		return false
	}
	if port != "" || strings.HasSuffix(rest, ":") {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return false
		}
	}
	return true
}

func decodeGossipKey(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("not set")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("must be base64 of 16, 24 or 32 random bytes (openssl rand -base64 32): %w", err)
	}
	switch len(b) {
	case 16, 24, 32:
		return b, nil
	}
	return nil, fmt.Errorf("must be base64 of 16, 24 or 32 bytes, got %d bytes", len(b))
}

// fleet checks the fleet section (config/fleet.go).
func (v *checker) fleet() {
	if err := v.c.Fleet.Validate(v.c.API.Token); err != nil {
		var ps Problems
		if errors.As(err, &ps) {
			v.ps = append(v.ps, ps...)
		} else {
			v.add("fleet", "%v", err)
		}
	}
}
