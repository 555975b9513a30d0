package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Defaults, also documented on each field and in README.md.
const (
	DefaultDataDir   = "/var/lib/resman"
	DefaultAPIListen = "127.0.0.1:9440"
	DefaultBind      = "0.0.0.0:7946"
)

// ApplyDefaults fills every empty field that has a default, for a Config
// built in code. Parse and Load fill defaults themselves, and only for keys
// absent from the file, so that an explicit 0 is kept (and validated);
// ApplyDefaults cannot tell the two apart and treats a zero as absent.
func (c *Config) ApplyDefaults() {
	c.applyDefaults(func(string) bool { return false })
}

// def sets *dst to val when key was not given and *dst is still zero.
func def[T comparable](given func(string) bool, key string, dst *T, val T) {
	var zero T
	if *dst == zero && !given(key) {
		*dst = val
	}
}

func (c *Config) applyDefaults(given func(string) bool) {
	if n := c.Node; n != nil {
		def(given, "node.mode", &n.Mode, ModeManual)
		def(given, "node.data_dir", &n.DataDir, DefaultDataDir)
	}
	def(given, "api.listen", &c.API.Listen, DefaultAPIListen)
	for i := range c.API.Users {
		def(given, fmt.Sprintf("api.users[%d].role", i), &c.API.Users[i].Role, UserRoleAdmin)
	}
	if p := c.Peer; p != nil {
		def(given, "peer.check_interval", &p.CheckInterval, 2*time.Second)
		def(given, "peer.timeout", &p.Timeout, 2*time.Second)
	}

	g := &c.Gossip
	def(given, "gossip.bind", &g.Bind, DefaultBind)
	def(given, "gossip.probe_interval", &g.ProbeInterval, 200*time.Millisecond)
	def(given, "gossip.probe_timeout", &g.ProbeTimeout, 100*time.Millisecond)
	def(given, "gossip.suspicion_mult", &g.SuspicionMult, 1)
	def(given, "gossip.rejoin_interval", &g.RejoinInterval, time.Second)
	// A witness has no peer: its join list must be written out.
	if len(g.Join) == 0 && c.Node != nil && c.Node.Role != RoleWitness {
		g.Join = nil
		if c.Peer != nil && c.Peer.Gossip != "" {
			g.Join = append(g.Join, c.Peer.Gossip)
		}
		if c.Failover.Witness != "" {
			g.Join = append(g.Join, c.Failover.Witness)
		}
	}

	f := &c.Failover
	def(given, "failover.failback", &f.Failback, FailbackAuto)
	def(given, "failover.failback_hold", &f.FailbackHold, 30*time.Second)
	def(given, "failover.boot_grace", &f.BootGrace, 30*time.Second)
	def(given, "failover.lost_after", &f.LostAfter, 100*time.Millisecond)
	if f.Calls != nil {
		def(given, "failover.calls.interval", &f.Calls.Interval, 2*time.Second)
	}
	def(given, "failover.confirm.every", &f.Confirm.Every, 20*time.Millisecond)
	def(given, "failover.confirm.window", &f.Confirm.Window, 300*time.Millisecond)
	def(given, "failover.confirm.listen", &f.Confirm.Listen, c.API.Listen)
	if c.Peer != nil {
		def(given, "failover.confirm.peer", &f.Confirm.Peer, urlHostPort(c.Peer.API))
	}

	serviceDefaults(given, "services", c.Services)
	for i := range c.Replication {
		r := &c.Replication[i]
		key := fmt.Sprintf("replication[%d]", i)
		if r.Every > 0 {
			def(given, key+".max_age", &r.MaxAge, 2*r.Every)
		}
		def(given, key+".timeout", &r.Timeout, 30*time.Minute)
		if f := r.Files; f != nil {
			def(given, key+".files.max_files", &f.MaxFiles, 100000)
			def(given, key+".files.max_file_mib", &f.MaxFileMiB, 1024)
			def(given, key+".files.max_total_mib", &f.MaxTotalMiB, 10240)
		}
	}
	if x := c.XDS; x != nil {
		for i := range x.MDS {
			m := &x.MDS[i]
			key := fmt.Sprintf("xds.mds[%d]", i)
			def(given, key+".transport", &m.Transport, "udp")
			def(given, key+".expires", &m.Expires, 120)
		}
	}
	if cc := c.CC; cc != nil {
		serviceDefaults(given, "cc.services", cc.Services)
		dir := DefaultDataDir + "/cc"
		if c.Node != nil && c.Node.DataDir != "" {
			dir = strings.TrimRight(c.Node.DataDir, "/") + "/cc"
		}
		def(given, "cc.data_dir", &cc.DataDir, dir)
		def(given, "cc.check_interval", &cc.CheckInterval, time.Second)
	}
	if e := c.Edge; e != nil {
		def(given, "edge.check.interval", &e.Check.Interval, 500*time.Millisecond)
		def(given, "edge.check.timeout", &e.Check.Timeout, e.Check.Interval)
		def(given, "edge.check.rise", &e.Check.Rise, 2)
		def(given, "edge.check.fall", &e.Check.Fall, 2)
		if sp := e.SIP; sp != nil {
			def(given, "edge.sip.expires", &sp.Expires, 60)
			def(given, "edge.sip.register_rate", &sp.RegisterRate, 500)
		}
	}
	if f := c.Fleet; f != nil {
		def(given, "fleet.interval", &f.Interval, DefaultFleetInterval)
		def(given, "fleet.timeout", &f.Timeout, f.Interval)
		def(given, "fleet.concurrency", &f.Concurrency, DefaultFleetConcurrency)
	}
	if d := c.Switchover.Drain; d != nil {
		def(given, "switchover.drain.timeout", &d.Timeout, 2*time.Minute)
		def(given, "switchover.drain.interval", &d.Interval, 2*time.Second)
	}
	def(given, "hooks.timeout", &c.Hooks.Timeout, 10*time.Second)
	for _, phase := range c.Hooks.phases() {
		for i := range phase.hooks {
			def(given, fmt.Sprintf("%s[%d].timeout", phase.key, i), &phase.hooks[i].Timeout, c.Hooks.Timeout)
		}
	}
	def(given, "log.level", &c.Log.Level, "info")
	def(given, "log.format", &c.Log.Format, "text")
}

func serviceDefaults(given func(string) bool, list string, ss []Service) {
	for i := range ss {
		s := &ss[i]
		key := fmt.Sprintf("%s[%d]", list, i)
		def(given, key+".timeout", &s.Timeout, 30*time.Second)
		if ch := s.Check; ch != nil {
			def(given, key+".check.interval", &ch.Interval, time.Second)
			timeout := time.Second
			if ch.Interval > 0 && ch.Interval < timeout {
				timeout = ch.Interval // a probe never outlives its interval
			}
			def(given, key+".check.timeout", &ch.Timeout, timeout)
			def(given, key+".check.rise", &ch.Rise, 2)
			def(given, key+".check.fall", &ch.Fall, 2)
		}
	}
}

// urlHostPort is the host:port of a base URL, with the scheme's port when
// it names none ("" when it cannot be read: validation says why).
func urlHostPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
