package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/resman-pbx/resman/cc"
	"github.com/resman-pbx/resman/config/confcheck"
	"github.com/resman-pbx/resman/services"
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

func (c *Config) applyDefaults(given confcheck.Given) {
	if n := c.Node; n != nil {
		confcheck.Default(given, "node.mode", &n.Mode, ModeManual)
		confcheck.Default(given, "node.data_dir", &n.DataDir, DefaultDataDir)
	}
	confcheck.Default(given, "api.listen", &c.API.Listen, DefaultAPIListen)
	for i := range c.API.Users {
		confcheck.Default(given, fmt.Sprintf("api.users[%d].role", i), &c.API.Users[i].Role, UserRoleAdmin)
	}
	if p := c.Peer; p != nil {
		confcheck.Default(given, "peer.check_interval", &p.CheckInterval, 2*time.Second)
		confcheck.Default(given, "peer.timeout", &p.Timeout, 2*time.Second)
	}

	g := &c.Gossip
	confcheck.Default(given, "gossip.bind", &g.Bind, DefaultBind)
	confcheck.Default(given, "gossip.probe_interval", &g.ProbeInterval, 200*time.Millisecond)
	confcheck.Default(given, "gossip.probe_timeout", &g.ProbeTimeout, 100*time.Millisecond)
	confcheck.Default(given, "gossip.suspicion_mult", &g.SuspicionMult, 1)
	confcheck.Default(given, "gossip.rejoin_interval", &g.RejoinInterval, time.Second)
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
	confcheck.Default(given, "failover.failback", &f.Failback, FailbackAuto)
	confcheck.Default(given, "failover.failback_hold", &f.FailbackHold, 30*time.Second)
	confcheck.Default(given, "failover.boot_grace", &f.BootGrace, 30*time.Second)
	confcheck.Default(given, "failover.lost_after", &f.LostAfter, 100*time.Millisecond)
	if f.Calls != nil {
		confcheck.Default(given, "failover.calls.interval", &f.Calls.Interval, 2*time.Second)
	}
	confcheck.Default(given, "failover.confirm.every", &f.Confirm.Every, 20*time.Millisecond)
	confcheck.Default(given, "failover.confirm.window", &f.Confirm.Window, 300*time.Millisecond)
	confcheck.Default(given, "failover.confirm.listen", &f.Confirm.Listen, c.API.Listen)
	if c.Peer != nil {
		confcheck.Default(given, "failover.confirm.peer", &f.Confirm.Peer, urlHostPort(c.Peer.API))
	}

	services.ApplyDefaults(given, "services", c.Services)
	for i := range c.Replication {
		r := &c.Replication[i]
		key := fmt.Sprintf("replication[%d]", i)
		if r.Every > 0 {
			confcheck.Default(given, key+".max_age", &r.MaxAge, 2*r.Every)
		}
		confcheck.Default(given, key+".timeout", &r.Timeout, 30*time.Minute)
		if f := r.Files; f != nil {
			confcheck.Default(given, key+".files.max_files", &f.MaxFiles, 100000)
			confcheck.Default(given, key+".files.max_file_mib", &f.MaxFileMiB, 1024)
			confcheck.Default(given, key+".files.max_total_mib", &f.MaxTotalMiB, 10240)
		}
	}
	if x := c.XDS; x != nil {
		x.ApplyDefaults(given)
	}
	if f := c.CC; f != nil {
		// A CC follower in a node's file keeps its audit log beside the
		// node's data.
		dir := cc.DefaultDataDir
		if c.Node != nil && c.Node.DataDir != "" {
			dir = strings.TrimRight(c.Node.DataDir, "/") + "/cc"
		}
		f.ApplyDefaults(given, dir)
	}
	if e := c.Edge; e != nil {
		e.ApplyDefaults(given)
	}
	if f := c.Fleet; f != nil {
		f.ApplyDefaults(given)
	}
	if d := c.Switchover.Drain; d != nil {
		confcheck.Default(given, "switchover.drain.timeout", &d.Timeout, 2*time.Minute)
		confcheck.Default(given, "switchover.drain.interval", &d.Interval, 2*time.Second)
	}
	confcheck.Default(given, "hooks.timeout", &c.Hooks.Timeout, 10*time.Second)
	for _, phase := range c.Hooks.phases() {
		for i := range phase.hooks {
			confcheck.Default(given, fmt.Sprintf("%s[%d].timeout", phase.key, i), &phase.hooks[i].Timeout, c.Hooks.Timeout)
		}
	}
	confcheck.Default(given, "log.level", &c.Log.Level, "info")
	confcheck.Default(given, "log.format", &c.Log.Format, "text")
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
