package config

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/resman-pbx/resman/xds"
)

// File is one config file of a deployment: Name, as messages show it (the
// path given, or the base name), and its loaded Config.
type File struct {
	Name   string
	Config *Config
}

// CheckDeployment checks that the files of one deployment agree where a
// running deployment needs them to: one main and one standby that point at
// each other with the same settings, a witness they name and that joins
// both, CC followers and an Edge that reach the nodes with their token.
// Each file must have passed Load (or Parse) alone first.
//
// errs are what would break the deployment; warnings are what may be
// meant (a shared xds.contact, versions that differ in a minor part, a
// failover.witness whose file is not among files). Each problem names its
// File and Key, and the other file and key it disagrees with; secret
// values are never shown, only that they differ.
//
// The rules, between the main M and the standby S (both required):
//   - the same node.mode, node.version (a warning when only the minor part
//     differs: an upgrade), api.token, failover (each key), replication
//     (job names and kinds, root names, delete; the commands of run jobs,
//     a warning), xds set on both or neither, xds.mds (by name, each key);
//   - M: peer.name is S: node.name, M: peer.api reaches S: api.listen, in
//     auto mode M: peer.gossip reaches S: gossip.bind; and the other way;
//   - the same xds.contact on both: a warning (calls follow a failover
//     only if the contact is an address that moves with the Active node);
//   - xds.contact_epoch alike on both: else a warning;
//   - M: xds.peer_contact is S: xds.contact, and the other way; unset or
//     another: a warning (the new Active could not remove the contact a
//     node killed while Active left at the MDS);
//   - every gossip member (M, S, a witness) accepts every other's
//     gossip.key, as its own gossip.key or in its gossip.extra_keys (so a
//     key rotation in progress passes);
//   - a witness W: each node's failover.witness reaches W: gossip.bind, and
//     W: gossip.join reaches both nodes' gossip.bind; without a witness
//     file, a failover.witness set is a warning;
//   - each CC follower's cc.follow reaches a node's api.listen, its
//     cc.token is that node's api.token or one of its api.read_tokens,
//     and no node is followed twice;
//   - each Edge: edge.token is the nodes' api.token or a read token both
//     list in api.read_tokens (the Edge asks both), each side's node
//     reaches a node's api.listen, the sides reach both nodes, and a
//     route to a CC follower's host goes to the one following that side's
//     node.
func CheckDeployment(files []File) (errs, warnings Problems) {
	d := &deployment{}
	var mains, standbys, witnesses []File
	for _, f := range files {
		if f.Config == nil {
			continue
		}
		if n := f.Config.Node; n != nil {
			switch n.Role {
			case RoleMain:
				mains = append(mains, f)
			case RoleStandby:
				standbys = append(standbys, f)
			case RoleWitness:
				witnesses = append(witnesses, f)
			}
		}
		if f.Config.CC != nil {
			d.ccs = append(d.ccs, f)
		}
		if f.Config.Edge != nil {
			d.edges = append(d.edges, f)
		}
	}
	for _, r := range []struct {
		role  string
		files []File
		need  bool
	}{{RoleMain, mains, true}, {RoleStandby, standbys, true}, {RoleWitness, witnesses, false}} {
		if len(r.files) == 0 && r.need {
			d.err(File{}, "", "none of the files is a %s node (node.role %s): give every file of the deployment", r.role, r.role)
		}
		for _, f := range r.files[min(1, len(r.files)):] {
			d.err(f, "node.role", "%s, as in %s: a deployment has one %s", r.role, r.files[0].Name, r.role)
		}
	}
	if len(mains) == 0 || len(standbys) == 0 {
		return d.result()
	}
	d.m, d.s = mains[0], standbys[0]
	if len(witnesses) > 0 {
		d.w = &witnesses[0]
	}
	d.pair()
	d.gossipKeys()
	d.witness()
	d.followers()
	d.edge()
	return d.result()
}

type deployment struct {
	m, s        File  // the main and the standby
	w           *File // the witness, if any
	ccs, edges  []File
	errs, warns Problems
}

func (d *deployment) err(f File, key, format string, args ...any) {
	d.errs = append(d.errs, Problem{File: f.Name, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (d *deployment) warn(f File, key, format string, args ...any) {
	d.warns = append(d.warns, Problem{File: f.Name, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (d *deployment) result() (Problems, Problems) {
	d.errs.sort()
	d.warns.sort()
	return d.errs, d.warns
}

// differs reports on f, key, a value unlike ref's (refKey). A secret is
// not shown.
func (d *deployment) differs(warning bool, f File, key string, ref File, refKey, got, want, why string, secret bool) {
	msg := fmt.Sprintf("differs from %s: %s", ref.Name, refKey)
	if !secret {
		msg += fmt.Sprintf(" (%q here, %q there)", got, want)
	}
	msg += ": " + why
	if warning {
		d.warns = append(d.warns, Problem{File: f.Name, Key: key, Msg: msg})
	} else {
		d.errs = append(d.errs, Problem{File: f.Name, Key: key, Msg: msg})
	}
}

// same reports on the standby each key whose value is not the main's.
func (d *deployment) same(key, why string, get func(*Config) string) {
	if a, b := get(d.m.Config), get(d.s.Config); a != b {
		d.differs(false, d.s, key, d.m, key, b, a, why, false)
	}
}

func (d *deployment) pair() {
	m, s := d.m.Config, d.s.Config
	d.same("node.mode", "set both nodes alike", func(c *Config) string { return c.Node.Mode })
	if a, b := m.Node.Version, s.Node.Version; a != b {
		major := func(v string) string { // as resilience.Major
			mj, _, _ := strings.Cut(strings.TrimSpace(v), ".")
			return mj
		}
		if major(a) == major(b) {
			d.differs(true, d.s, "node.version", d.m, "node.version", b, a,
				"the pair stays HA-ready while the major versions match (an upgrade in progress)", false)
		} else {
			d.differs(false, d.s, "node.version", d.m, "node.version", b, a,
				"the pair is not HA-ready while the major versions differ", false)
		}
	}
	if m.API.Token != s.API.Token {
		d.differs(false, d.s, "api.token", d.m, "api.token", "", "",
			"each node reads the other's status with it: use one token in every file of the deployment", true)
	}
	why := "set failover alike on both nodes: either may be the one that applies it"
	dur := func(x time.Duration) string { return x.String() }
	d.same("failover.failback", why, func(c *Config) string { return c.Failover.Failback })
	d.same("failover.failback_hold", why, func(c *Config) string { return dur(c.Failover.FailbackHold) })
	d.same("failover.boot_grace", why, func(c *Config) string { return dur(c.Failover.BootGrace) })
	d.same("failover.lost_after", why, func(c *Config) string { return dur(c.Failover.LostAfter) })
	d.same("failover.witness", why, func(c *Config) string { return c.Failover.Witness })
	d.same("failover.confirm.enabled", why, func(c *Config) string { return fmt.Sprint(c.Failover.Confirm.On()) })
	d.same("failover.confirm.window", why, func(c *Config) string { return dur(c.Failover.Confirm.Window) })
	d.replication()
	d.xds()

	for _, p := range [][2]File{{d.m, d.s}, {d.s, d.m}} {
		a, b := p[0], p[1]
		ac, bc := a.Config, b.Config
		if ac.Peer.Name != bc.Node.Name {
			d.err(a, "peer.name", "%q is not %s: node.name %q", ac.Peer.Name, b.Name, bc.Node.Name)
		}
		if !reaches(ac.Peer.API, bc.API.Listen) {
			d.err(a, "peer.api", "%q does not reach %s: api.listen %q", ac.Peer.API, b.Name, bc.API.Listen)
		}
		if ac.Node.Mode == ModeAuto && !reaches(ac.Peer.Gossip, bc.Gossip.Bind) {
			d.err(a, "peer.gossip", "%q does not reach %s: gossip.bind %q", ac.Peer.Gossip, b.Name, bc.Gossip.Bind)
		}
		if ac.Node.Mode == ModeAuto && ac.Failover.Confirm.On() && !reaches(ac.Failover.Confirm.Peer, bc.Failover.Confirm.Listen) {
			d.err(a, "failover.confirm.peer", "%q does not reach %s: failover.confirm.listen %q (the second path: a takeover would wait for it in vain)",
				ac.Failover.Confirm.Peer, b.Name, bc.Failover.Confirm.Listen)
		}
	}
}

// replication compares the jobs by name: the same jobs, kinds, root names
// and delete on both nodes (the roots' paths are each node's own).
func (d *deployment) replication() {
	m, s := d.m.Config.Replication, d.s.Config.Replication
	index := func(rs []Replication, name string) int {
		return slices.IndexFunc(rs, func(r Replication) bool { return r.Name == name })
	}
	for i, r := range m {
		if index(s, r.Name) < 0 {
			d.err(d.m, fmt.Sprintf("replication[%d].name", i), "job %q is not in %s: replication: list the same jobs on both nodes", r.Name, d.s.Name)
		}
	}
	for j, r := range s {
		i := index(m, r.Name)
		if i < 0 {
			d.err(d.s, fmt.Sprintf("replication[%d].name", j), "job %q is not in %s: replication: list the same jobs on both nodes", r.Name, d.m.Name)
			continue
		}
		ref, key, refKey := m[i], fmt.Sprintf("replication[%d]", j), fmt.Sprintf("replication[%d]", i)
		kind := func(r Replication) string {
			if r.Files != nil {
				return "files"
			}
			return "run"
		}
		switch {
		case kind(r) != kind(ref):
			d.err(d.s, key, "is a %s job, but %s: %s is a %s job: set each job alike on both nodes", kind(r), d.m.Name, refKey, kind(ref))
		case r.Files == nil:
			if a, b := strings.Join(ref.Run, " "), strings.Join(r.Run, " "); a != b {
				d.differs(true, d.s, key+".run", d.m, refKey+".run", b, a, "fine if each node has the program at its own path", false)
			}
		default:
			names := func(f *ReplicationFiles) []string {
				var ns []string
				for _, root := range f.Roots {
					ns = append(ns, root.Name)
				}
				return ns
			}
			if a, b := names(ref.Files), names(r.Files); !slices.Equal(a, b) {
				d.err(d.s, key+".files.roots", "names %v, but %s: %s.files.roots names %v: the Active node sends each tree by its name, the same on both nodes",
					b, d.m.Name, refKey, a)
			}
			if ref.Files.Delete != r.Files.Delete {
				d.differs(false, d.s, key+".files.delete", d.m, refKey+".files.delete",
					fmt.Sprint(r.Files.Delete), fmt.Sprint(ref.Files.Delete), "set it alike on both nodes", false)
			}
		}
	}
}

// xds compares the media servers by name: both nodes register to the same
// ones with the same account; each node its own contact.
func (d *deployment) xds() {
	m, s := d.m.Config.XDS, d.s.Config.XDS
	switch {
	case m == nil && s == nil:
		return
	case m == nil:
		d.err(d.m, "xds", "is not set, but %s: xds is: calls would not follow the Main when it is Active", d.s.Name)
		return
	case s == nil:
		d.err(d.s, "xds", "is not set, but %s: xds is: calls would not follow the Standby when it takes over", d.m.Name)
		return
	}
	if m.Contact == s.Contact {
		d.warn(d.s, "xds.contact", "%q is also %s: xds.contact: calls follow a failover only if it is an address that moves to the Active node; else each node names its own",
			s.Contact, d.m.Name)
	}
	// Each node names the other's contact as its peer_contact, so that the
	// new Active removes the binding a node killed while Active left.
	for _, p := range []struct {
		f, other File
		x, ox    *xds.Config
	}{{d.m, d.s, m, s}, {d.s, d.m, s, m}} {
		switch {
		case p.x.PeerContact == "":
			d.warn(p.f, "xds.peer_contact", "is not set, but %s: xds is: set it to %s: xds.contact %q, so that after a failover the new Active removes the contact the old one left at the MDS (else it stays until it lapses, xds.mds[].expires)",
				p.other.Name, p.other.Name, p.ox.Contact)
		case p.x.PeerContact != p.ox.Contact:
			d.warn(p.f, "xds.peer_contact", "%q is not %s: xds.contact %q: the new Active would remove a contact nobody registers and leave the peer's",
				p.x.PeerContact, p.other.Name, p.ox.Contact)
		}
	}
	if m.ContactEpoch != s.ContactEpoch {
		d.differs(true, d.s, "xds.contact_epoch", d.m, "xds.contact_epoch", fmt.Sprint(s.ContactEpoch), fmt.Sprint(m.ContactEpoch),
			"an MDS forking by q would rank the node without it by another rule", false)
	}
	index := func(ms []xds.MDS, name string) int {
		return slices.IndexFunc(ms, func(x xds.MDS) bool { return x.Name == name })
	}
	for i, x := range m.MDS {
		if index(s.MDS, x.Name) < 0 {
			d.err(d.m, fmt.Sprintf("xds.mds[%d].name", i), "media server %q is not in %s: xds.mds: list the same ones on both nodes", x.Name, d.s.Name)
		}
	}
	for j, x := range s.MDS {
		i := index(m.MDS, x.Name)
		if i < 0 {
			d.err(d.s, fmt.Sprintf("xds.mds[%d].name", j), "media server %q is not in %s: xds.mds: list the same ones on both nodes", x.Name, d.m.Name)
			continue
		}
		ref := m.MDS[i]
		why := "both nodes register to it as one account, so that the binding moves"
		for _, k := range []struct {
			name      string
			got, want string
			secret    bool
		}{
			{"registrar", x.Registrar, ref.Registrar, false},
			{"transport", x.Transport, ref.Transport, false},
			{"tls_server_name", x.TLSServerName, ref.TLSServerName, false},
			{"user", x.User, ref.User, false},
			{"password", x.Password, ref.Password, true},
			{"expires", fmt.Sprint(x.Expires), fmt.Sprint(ref.Expires), false},
		} {
			if k.got != k.want {
				d.differs(false, d.s, fmt.Sprintf("xds.mds[%d].%s", j, k.name), d.m, fmt.Sprintf("xds.mds[%d].%s", i, k.name), k.got, k.want, why, k.secret)
			}
		}
	}
}

// gossipKeys: every gossip member accepts every other's primary key.
func (d *deployment) gossipKeys() {
	members := []File{d.m, d.s}
	if d.w != nil {
		members = append(members, *d.w)
	}
	for i, a := range members {
		for _, b := range members[i+1:] {
			if accepts(b.Config.Gossip, a.Config.Gossip.Key) && accepts(a.Config.Gossip, b.Config.Gossip.Key) {
				continue
			}
			d.differs(false, b, "gossip.key", a, "gossip.key", "", "",
				"neither is in the other's gossip.extra_keys, so the two cannot read each other's gossip: use one gossip.key on every member "+
					"(to change it, see Rotating the gossip key in the config reference)", true)
		}
	}
}

// accepts reports whether a member with gossip g reads gossip encrypted
// with key: key is its own gossip.key or among its gossip.extra_keys
// (compared decoded). No key is accepted by no key.
func accepts(g Gossip, key string) bool {
	if key == "" {
		return g.Key == ""
	}
	return slices.ContainsFunc(append([]string{g.Key}, g.ExtraKeys...), func(k string) bool { return sameGossipKey(k, key) })
}

func sameGossipKey(a, b string) bool {
	da, err1 := decodeGossipKey(a)
	db, err2 := decodeGossipKey(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return bytes.Equal(da, db)
}

func (d *deployment) witness() {
	nodes := []File{d.m, d.s}
	if d.w == nil {
		for _, n := range nodes {
			if w := n.Config.Failover.Witness; w != "" {
				d.warn(n, "failover.witness", "%q is set, but none of the files is a witness: its gossip.bind, gossip.join and gossip.key were not checked", w)
			}
		}
		return
	}
	w := *d.w
	for _, n := range nodes {
		if !reaches(n.Config.Failover.Witness, w.Config.Gossip.Bind) {
			d.err(n, "failover.witness", "%q does not reach %s: gossip.bind %q", n.Config.Failover.Witness, w.Name, w.Config.Gossip.Bind)
		}
	}
	for _, n := range nodes {
		if !slices.ContainsFunc(w.Config.Gossip.Join, func(j string) bool { return reaches(j, n.Config.Gossip.Bind) }) {
			d.err(w, "gossip.join", "%q does not reach %s: gossip.bind %q: a witness joins both nodes", w.Config.Gossip.Join, n.Name, n.Config.Gossip.Bind)
		}
	}
}

// nodeAt returns the node whose api.listen the URL reaches.
func (d *deployment) nodeAt(u string) (File, bool) {
	for _, n := range []File{d.m, d.s} {
		if reaches(u, n.Config.API.Listen) {
			return n, true
		}
	}
	return File{}, false
}

func (d *deployment) neither(f File, key, u string) {
	d.err(f, key, "%q reaches neither %s: api.listen %q nor %s: api.listen %q", u,
		d.m.Name, d.m.Config.API.Listen, d.s.Name, d.s.Config.API.Listen)
}

// followers: each CC follower follows a node of the pair, with its token;
// no node is followed twice.
func (d *deployment) followers() {
	followed := map[string]string{}
	for _, f := range d.ccs {
		cc := f.Config.CC
		n, ok := d.nodeAt(cc.Follow)
		if !ok {
			d.neither(f, "cc.follow", cc.Follow)
			continue
		}
		if !acceptsToken(n.Config.API, cc.Token) {
			d.differs(false, f, "cc.token", n, "api.token and from each of its api.read_tokens", "", "",
				"it must be a token of the node it follows (one of its api.read_tokens is enough: the follower only reads), or it cannot read its status", true)
		}
		if other, dup := followed[n.Name]; dup {
			d.err(f, "cc.follow", "follows %s, as %s does: each node has at most one CC follower", n.Name, other)
		}
		followed[n.Name] = f.Name
	}
}

// acceptsToken reports whether a node with api a accepts token for reads:
// its api.token or one of its api.read_tokens.
func acceptsToken(a API, token string) bool {
	return token != "" && (token == a.Token || slices.Contains(a.ReadTokens, token))
}

// edge: each Edge asks both nodes with their token, one side each, and
// sends a side's traffic to that side's CC follower.
func (d *deployment) edge() {
	for _, f := range d.edges {
		e := f.Config.Edge
		switch m, s := acceptsToken(d.m.Config.API, e.Token), acceptsToken(d.s.Config.API, e.Token); {
		case !m && !s:
			d.differs(false, f, "edge.token", d.m, "api.token", "", "",
				"the nodes' token (or a read token both list in api.read_tokens: the Edge only reads): it cannot ask them which is Active", true)
		case !m || !s:
			other := d.s
			if !m {
				other = d.m
			}
			d.differs(false, f, "edge.token", other, "api.token and from each of its api.read_tokens", "", "",
				"the Edge asks both nodes which is Active: list the read token in both nodes' api.read_tokens", true)
		}
		sides := map[string]bool{}
		for i, side := range e.Sides {
			n, ok := d.nodeAt(side.Node)
			if !ok {
				d.neither(f, fmt.Sprintf("edge.sides[%d].node", i), side.Node)
				continue
			}
			sides[n.Name] = true
			for j, r := range side.Routes {
				u, err := url.Parse(r.Upstream)
				if err != nil {
					continue
				}
				for _, c := range d.ccs {
					if h, _, _ := net.SplitHostPort(c.Config.API.Listen); h == u.Hostname() && !reaches(c.Config.CC.Follow, n.Config.API.Listen) {
						d.err(f, fmt.Sprintf("edge.sides[%d].routes[%d].upstream", i, j),
							"goes to %s, which does not follow %s, this side's node: the side's traffic must go where its services run", c.Name, n.Name)
					}
				}
			}
		}
		if len(sides) != 2 {
			d.err(f, "edge.sides", "reach %d of the 2 nodes: one side per node", len(sides))
		}
	}
}

// reaches reports whether addr, a URL or a host:port that a client dials,
// reaches listen, a host:port that a server binds (an empty or unspecified
// host binds every address: then only the ports are compared).
func reaches(addr, listen string) bool {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	ah, ap, err1 := net.SplitHostPort(addr)
	lh, lp, err2 := net.SplitHostPort(listen)
	if err1 != nil || err2 != nil || ap != lp {
		return false
	}
	if ip := net.ParseIP(lh); lh == "" || ip != nil && ip.IsUnspecified() {
		return true
	}
	return sameHostPort(net.JoinHostPort(ah, ap), listen)
}
