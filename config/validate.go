package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/resman-pbx/resman/config/confcheck"
	"github.com/resman-pbx/resman/edge"
	"github.com/resman-pbx/resman/services"
	"golang.org/x/crypto/bcrypt"
)

// MinTokenLen is the shortest accepted bearer token.
const MinTokenLen = confcheck.MinTokenLen

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
	v.OneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.OneOf("log.format", c.Log.Format, "text", "json")
	if len(v.Problems) == 0 {
		return nil
	}
	ps := Problems(v.Problems)
	ps.sort()
	return ps
}

// checker checks a whole file: the sections of the node and the rules
// across sections here, each component's section with its own Validate.
// It records problems with the field checks of confcheck.
type checker struct {
	c *Config
	confcheck.Problems
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
		v.Add("node", "a config needs at least one of node, cc, edge or fleet, found none")
	}
}

func (v *checker) node() {
	n := v.c.Node
	if n == nil {
		return
	}
	v.Name("node.name", n.Name, "this node's unique name, like xivo-main")
	v.OneOf("node.role", n.Role, RoleMain, RoleStandby, RoleWitness)
	v.OneOf("node.mode", n.Mode, ModeAuto, ModeManual)
	if n.Role == RoleWitness && n.Mode != ModeAuto && n.Mode != "" {
		v.Add("node.mode", "a witness only takes part in gossip, so it must be auto, got %q", n.Mode)
	}
	if v.pairNode() {
		v.Name("node.version", n.Version, `the PBX stack version, like "2025.10.3"`)
	}
	switch {
	case n.DataDir == "":
		v.Add("node.data_dir", "required: an absolute directory, like %s", DefaultDataDir)
	case !path.IsAbs(n.DataDir):
		v.Add("node.data_dir", "must be an absolute path, like %s, got %q", DefaultDataDir, n.DataDir)
	}
}

func (v *checker) api() {
	a := v.c.API
	v.Required("api.listen", a.Listen, "host:port, like "+DefaultAPIListen)
	v.HostPort("api.listen", a.Listen, false, DefaultAPIListen)
	if v.c.Node != nil || v.c.CC != nil || v.c.Edge != nil || v.c.Fleet != nil {
		v.Token("api.token", a.Token, "the bearer token scripts, peers, CC and Edge present")
	}
	if len(a.ReadTokens) > 0 && v.c.Node == nil {
		// Listed and ignored, they would mislead: refuse them.
		v.Add("api.read_tokens", "only a node (a file with a node section) accepts read tokens: the CC follower's, the Edge's and the fleet's APIs only read, with api.token")
	}
	if len(a.ReadTokens) > MaxReadTokens {
		v.Add("api.read_tokens", "at most %d tokens, got %d", MaxReadTokens, len(a.ReadTokens))
	}
	seenRead := map[string]int{}
	for i, rt := range a.ReadTokens {
		key := fmt.Sprintf("api.read_tokens[%d]", i)
		v.Token(key, rt, "a token that may only read")
		switch j, dup := seenRead[rt]; {
		case rt == "":
		case rt == a.Token:
			v.Add(key, "must differ from api.token: the full token may write, a read token may only read")
		case dup:
			v.Add(key, "duplicate of api.read_tokens[%d]", j)
		default:
			seenRead[rt] = i
		}
	}
	for i, tp := range a.TrustedProxies {
		if _, err := parseProxy(tp); err != nil {
			v.Add(fmt.Sprintf("api.trusted_proxies[%d]", i), "must be an IP address or a CIDR prefix, like 10.0.0.5 or 10.0.0.0/24, got %q", tp)
		}
	}
	seen := map[string]int{}
	for i, u := range a.Users {
		key := fmt.Sprintf("api.users[%d]", i)
		v.NameIn(seen, "api.users", i, u.Name, "a login name")
		switch {
		case u.PasswordHash == "":
			v.Add(key+".password_hash", "required: a bcrypt hash, as printed by resman hash-password")
		case !validBcrypt(u.PasswordHash):
			// The value is not echoed: it may be a password pasted by mistake.
			v.Add(key+".password_hash", "must be a bcrypt hash like $2a$10$..., as printed by resman hash-password")
		}
		v.OneOf(key+".role", u.Role, UserRoleAdmin, UserRoleViewer)
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
			v.Add("peer", "required for a %s node: the other node's name, api and gossip", v.role())
		}
		return
	case v.c.Node == nil:
		v.Add("peer", "only a node has a peer: add a node section or remove peer")
		return
	case v.role() == RoleWitness:
		v.Add("peer", "a witness has no peer: list both nodes in gossip.join instead")
		return
	}
	v.Name("peer.name", p.Name, "the other node's node.name")
	if n := v.c.Node; n != nil && p.Name != "" && p.Name == n.Name {
		v.Add("peer.name", "must differ from node.name, both are %q", p.Name)
	}
	v.URL("peer.api", p.API, true, "http://10.0.0.2:9440")
	if p.Gossip == "" && v.auto() {
		v.Add("peer.gossip", "required in auto mode: the other node's gossip host:port, like 10.0.0.2:7946")
	} else {
		v.HostPort("peer.gossip", p.Gossip, true, "10.0.0.2:7946")
	}
	v.Positive("peer.check_interval", p.CheckInterval)
	v.Positive("peer.timeout", p.Timeout)
	if p.CheckInterval > 0 && p.Timeout > p.CheckInterval {
		v.Add("peer.timeout", "must not exceed peer.check_interval (%s), got %s", p.CheckInterval, p.Timeout)
	}
}

func (v *checker) gossip() {
	g := v.c.Gossip
	switch {
	case g.Key == "" && v.auto():
		v.Add("gossip.key", "required in auto mode: base64 of 16, 24 or 32 random bytes (openssl rand -base64 32)")
	case g.Key == "" && len(g.ExtraKeys) > 0:
		v.Add("gossip.key", "required with gossip.extra_keys: the key gossip is encrypted with (extra keys are only accepted)")
	case g.Key != "":
		if _, err := decodeGossipKey(g.Key); err != nil {
			v.Add("gossip.key", "%v", err)
		}
	}
	v.extraGossipKeys(g)
	v.Required("gossip.bind", g.Bind, "host:port, like "+DefaultBind)
	v.HostPort("gossip.bind", g.Bind, false, DefaultBind)
	v.Positive("gossip.probe_interval", g.ProbeInterval)
	v.Positive("gossip.probe_timeout", g.ProbeTimeout)
	if g.ProbeInterval > 0 && g.ProbeTimeout >= g.ProbeInterval {
		v.Add("gossip.probe_timeout", "must be shorter than gossip.probe_interval (%s), got %s", g.ProbeInterval, g.ProbeTimeout)
	}
	if g.SuspicionMult < 1 {
		v.Add("gossip.suspicion_mult", "must be at least 1, got %d", g.SuspicionMult)
	}
	v.Positive("gossip.rejoin_interval", g.RejoinInterval)
	if len(g.Join) == 0 && v.role() == RoleWitness {
		v.Add("gossip.join", "required for a witness: the gossip host:port of both nodes, like [10.0.0.1:7946, 10.0.0.2:7946]")
	}
	for i, j := range g.Join {
		key := fmt.Sprintf("gossip.join[%d]", i)
		if j == "" {
			v.Add(key, "must be a host:port, got an empty value")
		} else {
			v.HostPort(key, j, true, "10.0.0.2:7946")
		}
	}
}

// extraGossipKeys checks gossip.extra_keys like gossip.key, each by its
// index, and refuses repeats (compared decoded). No value is echoed.
func (v *checker) extraGossipKeys(g Gossip) {
	if n := len(g.ExtraKeys); n > MaxExtraGossipKeys {
		v.Add("gossip.extra_keys", "at most %d keys, got %d: keep only the keys some member still encrypts with", MaxExtraGossipKeys, n)
	}
	primary, _ := decodeGossipKey(g.Key)
	seen := map[string]int{}
	for i, k := range g.ExtraKeys {
		key := fmt.Sprintf("gossip.extra_keys[%d]", i)
		b, err := decodeGossipKey(k)
		switch {
		case k == "":
			v.Add(key, "must be base64 of 16, 24 or 32 random bytes (openssl rand -base64 32), got an empty value")
		case err != nil:
			v.Add(key, "%v", err)
		case primary != nil && bytes.Equal(b, primary):
			v.Add(key, "is gossip.key itself: the primary key is always accepted, list only the other keys here")
		default:
			if j, dup := seen[string(b)]; dup {
				v.Add(key, "duplicate of gossip.extra_keys[%d]", j)
			} else {
				seen[string(b)] = i
			}
		}
	}
}

func (v *checker) failover() {
	f := v.c.Failover
	v.OneOf("failover.failback", f.Failback, FailbackAuto, FailbackManual)
	if f.FailbackHold < 0 {
		v.Add("failover.failback_hold", "must not be negative, got %s", f.FailbackHold)
	}
	if f.BootGrace < 0 {
		v.Add("failover.boot_grace", "must not be negative, got %s", f.BootGrace)
	}
	v.Positive("failover.lost_after", f.LostAfter)
	v.HostPort("failover.witness", f.Witness, true, "10.0.0.3:7946")
	if f.Witness != "" && sameHostPort(f.Witness, v.c.Gossip.Bind) {
		v.Add("failover.witness", "is this node's own gossip.bind (%q): name the witness's gossip.bind, a third host", v.c.Gossip.Bind)
	}
	v.confirm(f.Confirm)
	if c := f.Calls; c != nil {
		if len(c.Exec) == 0 || c.Exec[0] == "" {
			v.Add("failover.calls.exec", "required: a command that prints the calls in progress, like [asterisk, -rx, \"core show calls\"]")
		}
		v.Positive("failover.calls.interval", c.Interval)
	}
}

// confirm checks the second path's keys (failover.confirm).
func (v *checker) confirm(c Confirm) {
	if !c.On() {
		return
	}
	v.Positive("failover.confirm.every", c.Every)
	v.Positive("failover.confirm.window", c.Window)
	if c.Every > 0 && c.Window > 0 && c.Window < 3*c.Every {
		v.Add("failover.confirm.window", "must be at least 3 × failover.confirm.every (%s), so that one lost packet does not confirm a loss; got %s", 3*c.Every, c.Window)
	}
	if c.Window > 10*time.Second {
		v.Add("failover.confirm.window", "must be at most 10s: a takeover waits up to this long for a dead host; got %s", c.Window)
	}
	if c.Every > 0 && c.Every < 5*time.Millisecond {
		v.Add("failover.confirm.every", "must be at least 5ms; got %s", c.Every)
	}
	if c.Listen != v.c.API.Listen { // else api.listen's own check says it
		v.HostPort("failover.confirm.listen", c.Listen, false, "10.0.0.1:9440")
	}
	if v.c.Node != nil && v.role() != RoleWitness {
		v.HostPort("failover.confirm.peer", c.Peer, true, "10.0.0.2:9440")
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

// services checks a list of services: which files may list them here,
// each item in package services.
func (v *checker) services(list string, ss []services.Service) {
	if len(ss) > 0 && list == "services" {
		switch {
		case v.c.Node == nil:
			v.Add(list, "only a node runs services: add a node section, or put contact-center services under cc.services")
		case v.role() == RoleWitness:
			v.Add(list, "a witness runs no services: remove this list")
		}
	}
	services.Validate(&v.Problems, list, ss)
}

func (v *checker) replication() {
	rs := v.c.Replication
	if len(rs) > 0 {
		switch {
		case v.c.Node == nil:
			v.Add("replication", "only a main or standby node runs replication: add a node section or remove this list")
		case v.role() == RoleWitness:
			v.Add("replication", "a witness runs no replication: remove this list")
		}
	}
	seen := map[string]int{}
	roots := map[string]string{} // path -> key, to refuse overlapping roots
	for i, r := range rs {
		key := fmt.Sprintf("replication[%d]", i)
		v.NameIn(seen, "replication", i, r.Name, "a job name, like db")
		switch {
		case len(r.Run) > 0 && r.Files != nil:
			v.Add(key+".run", "set one of run or files, got both")
		case len(r.Run) > 0:
			v.Command(key+".run", r.Run)
		case r.Files != nil:
			v.replicationFiles(key+".files", r.Files, roots)
		default:
			v.Add(key+".run", "required: a command, like [/usr/local/bin/sync-db], unless files (trees to copy) is set")
		}
		v.Positive(key+".every", r.Every)
		v.Positive(key+".timeout", r.Timeout)
		if r.Every > 0 && r.MaxAge < r.Every {
			v.Add(key+".max_age", "must be at least replication[%d].every (%s), got %s", i, r.Every, r.MaxAge)
		}
	}
}

func (v *checker) switchover() {
	d := v.c.Switchover.Drain
	if d == nil {
		return
	}
	if len(d.Exec) == 0 {
		v.Add("switchover.drain.exec", "required: a command that exits 0 when no call is active")
	} else {
		v.Command("switchover.drain.exec", d.Exec)
	}
	v.Positive("switchover.drain.timeout", d.Timeout)
	v.Positive("switchover.drain.interval", d.Interval)
	if d.Interval > d.Timeout && d.Timeout > 0 {
		v.Add("switchover.drain.interval", "must be at most switchover.drain.timeout (%s), got %s", d.Timeout, d.Interval)
	}
}

func (v *checker) hooks() {
	h := v.c.Hooks
	if h.Any() {
		switch {
		case v.c.Node == nil:
			v.Add("hooks", "only a main or standby node runs hooks: add a node section or remove the hooks")
		case v.role() == RoleWitness:
			v.Add("hooks", "a witness is never Active and runs no hooks: remove them")
		}
	}
	defaultOK := h.Timeout > 0 && h.Timeout <= MaxHookTimeout
	if !defaultOK {
		v.Add("hooks.timeout", "must be a duration above 0 and at most %s, like 10s, got %s", MaxHookTimeout, h.Timeout)
	}
	for _, phase := range h.phases() {
		seen := map[string]int{}
		for i, hk := range phase.hooks {
			key := fmt.Sprintf("%s[%d]", phase.key, i)
			v.NameIn(seen, phase.key, i, hk.Name, "a hook name, like page-oncall")
			if len(hk.Run) == 0 {
				v.Add(key+".run", "required: a command, like [/usr/local/bin/notify, active]")
			} else {
				v.Command(key+".run", hk.Run)
			}
			// A timeout inherited from a wrong hooks.timeout is that
			// key's problem, reported once.
			if (hk.Timeout <= 0 || hk.Timeout > MaxHookTimeout) && (defaultOK || hk.Timeout != h.Timeout) {
				v.Add(key+".timeout", "must be a duration above 0 and at most %s, like 5s, got %s", MaxHookTimeout, hk.Timeout)
			}
		}
	}
}

func (v *checker) replicationFiles(key string, f *ReplicationFiles, roots map[string]string) {
	if len(f.Roots) == 0 {
		v.Add(key+".roots", "required: at least one root, like - {name: asterisk, path: /etc/asterisk}")
	}
	names := map[string]int{}
	for k, r := range f.Roots {
		rk := fmt.Sprintf("%s.roots[%d]", key, k)
		v.NameIn(names, key+".roots", k, r.Name, "a root name, the same on both nodes, like asterisk")
		clean := filepath.Clean(r.Path)
		if !filepath.IsAbs(r.Path) {
			v.Add(rk+".path", "must be an absolute path, got %q", r.Path)
			continue
		}
		for other, okey := range roots {
			if clean == other || strings.HasPrefix(clean, other+"/") || strings.HasPrefix(other, clean+"/") {
				v.Add(rk+".path", "overlaps %s (%s)", okey, other)
			}
		}
		roots[clean] = rk + ".path"
	}
	v.AtLeastOne(key+".max_files", f.MaxFiles)
	v.AtLeastOne(key+".max_file_mib", f.MaxFileMiB)
	v.AtLeastOne(key+".max_total_mib", f.MaxTotalMiB)
	if f.MaxFileMiB > f.MaxTotalMiB && f.MaxTotalMiB > 0 {
		v.Add(key+".max_file_mib", "must not exceed max_total_mib (%d), got %d", f.MaxTotalMiB, f.MaxFileMiB)
	}
}

// xds checks that only a main or standby node registers; the section
// itself checks in package xds.
func (v *checker) xds() {
	x := v.c.XDS
	if x == nil {
		return
	}
	switch {
	case v.c.Node == nil:
		v.Add("xds", "only a main or standby node registers to media servers: add a node section or remove xds")
	case v.role() == RoleWitness:
		v.Add("xds", "a witness never registers to media servers: remove xds")
	}
	x.Validate(&v.Problems)
}

// cc checks the cc section (package cc) and that its name is not the
// node's.
func (v *checker) cc() {
	f := v.c.CC
	if f == nil {
		return
	}
	f.Validate(&v.Problems)
	if n := v.c.Node; n != nil && f.Name != "" && f.Name == n.Name {
		v.Add("cc.name", "must differ from node.name, both are %q", f.Name)
	}
}

// edge checks the edge section (package edge), then that no two TCP
// listeners of the file share an address: api.listen and the Edge's.
func (v *checker) edge() {
	e := v.c.Edge
	if e == nil {
		return
	}
	e.Validate(&v.Problems)
	if e.Listen != "" && e.Listen == v.c.API.Listen {
		v.Add("edge.listen", "must differ from api.listen, both are %q", e.Listen)
	}
	if e.SIP == nil {
		return
	}
	// api.listen, edge.listen, edge.sip.listen, then the SIP front's
	// other listeners: none twice. The first two are checked apart, above.
	tcp := append([]edge.Listener{{Key: "api.listen", Addr: v.c.API.Listen}}, e.Listeners()...)
	for i := 3; i < len(tcp); i++ {
		for j := 0; j < i; j++ {
			if tcp[i].Addr != "" && tcp[i].Addr == tcp[j].Addr {
				v.Add(tcp[i].Key, "must differ from %s (both TCP), both are %q", tcp[j].Key, tcp[i].Addr)
				break
			}
		}
	}
	for _, other := range tcp[:2] {
		if sp := e.SIP; sp.Listen != "" && sp.Listen == other.Addr {
			v.Add("edge.sip.listen", "must differ from %s (both TCP), both are %q", other.Key, sp.Listen)
		}
	}
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

// fleet checks the fleet section (package fleet), whose pairs may not
// share the file's api.token.
func (v *checker) fleet() {
	if f := v.c.Fleet; f != nil {
		f.Validate(&v.Problems, v.c.API.Token)
	}
}
