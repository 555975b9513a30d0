// Package config is the only importer of viper. It turns a YAML file plus
// RESMAN_* environment overrides into a typed Config, fills defaults, and
// validates the result, naming the key path of every problem it finds.
//
// The sections of the components (services, xds, cc, edge, fleet) are their own
// packages' types, defaults and checks (each one's config.go); Config
// composes them, and this package keeps the node's sections and the rules
// that span sections. README.md, "Who owns what", says which is where.
//
// Fields tagged secret:"true" hold secrets; Redacted replaces them, and
// WeakSecrets checks them by their secretkind tag: token, gossip-key,
// bcrypt, password or path (a file's path, not a secret value).
package config

import (
	"net/netip"
	"strings"
	"time"

	"github.com/resman-pbx/resman/cc"
	"github.com/resman-pbx/resman/edge"
	"github.com/resman-pbx/resman/resilience/fleet"
	"github.com/resman-pbx/resman/services"
	"github.com/resman-pbx/resman/xds"
)

// Values of Node.Role, Node.Mode and Failover.Failback.
const (
	RoleMain    = "main"
	RoleStandby = "standby"
	// RoleWitness only takes part in gossip to break ties: it runs no
	// services and is never Active.
	RoleWitness = "witness"

	ModeAuto   = "auto"
	ModeManual = "manual"

	FailbackAuto   = "auto"
	FailbackManual = "manual"
)

// RedactedValue replaces every non-empty secret in Redacted.
const RedactedValue = "REDACTED"

// Config is one resman config file. A file may configure any combination of
// a node, a CC follower and an Edge proxy; API serves whichever run.
type Config struct {
	Node     *Node    `mapstructure:"node"`
	API      API      `mapstructure:"api"`
	Peer     *Peer    `mapstructure:"peer"`
	Gossip   Gossip   `mapstructure:"gossip"`
	Failover Failover `mapstructure:"failover"`
	// Services of the node, started in order and stopped in reverse. Not
	// env-overridable (a list of sections).
	Services []services.Service `mapstructure:"services"`
	// Replication jobs the Main runs. Not env-overridable.
	Replication []Replication `mapstructure:"replication"`
	Switchover  Switchover    `mapstructure:"switchover"`
	// Hooks are commands run on the node's own transitions. The lists are
	// not env-overridable.
	Hooks Hooks        `mapstructure:"hooks"`
	XDS   *xds.Config  `mapstructure:"xds"`
	CC    *cc.Config   `mapstructure:"cc"`
	Edge  *edge.Config `mapstructure:"edge"`
	Log   Log          `mapstructure:"log"`
	// Fleet is the read-only aggregator of many pairs' status (package
	// fleet). Its pairs lists are not env-overridable.
	Fleet *fleet.Config `mapstructure:"fleet"`
}

// Node describes this PBX host.
type Node struct {
	// Name is unique in the deployment; it appears in status, audit and gossip.
	// Required, no spaces.
	Name string `mapstructure:"name"`
	// Role is the configured role: main, standby or witness. The runtime
	// status (active or inactive) is separate. Required.
	Role string `mapstructure:"role"`
	// Mode is auto (heartbeat and automatic failover) or manual (no heartbeat,
	// the admin decides). Default: manual, the mode that never moves by itself.
	// A witness must be auto.
	Mode string `mapstructure:"mode"`
	// Version of the PBX stack; majors must match for HA readiness.
	// Required for main and standby.
	Version string `mapstructure:"version"`
	// DataDir holds the persisted status, epoch and audit log. An absolute
	// path. Default: /var/lib/resman.
	DataDir string `mapstructure:"data_dir"`
}

// API is the HTTP listener of whichever components this file runs.
type API struct {
	// Listen is host:port (an empty host listens on every address).
	// Default: 127.0.0.1:9440.
	Listen string `mapstructure:"listen"`
	// Token is the bearer token scripts, peers, CC and Edge present. Secret.
	// Required, at least 16 characters.
	Token string `mapstructure:"token" secret:"true" secretkind:"token"`
	// ReadTokens are bearer tokens that may only read the node's API: GET
	// /api/v1/status, /audit, /events, /peer/status (and /metrics with
	// metrics auth); a write with one is refused with 403. For the fleet
	// aggregator, the CC follower and the Edge, which only read. Secret.
	// Each at least 16 characters, none equal to Token; at most
	// MaxReadTokens.
	ReadTokens []string `mapstructure:"read_tokens" secret:"true" secretkind:"token"`
	// Users may log in to the web page. Not env-overridable.
	Users []User `mapstructure:"users"`
	// TrustedProxies are the reverse proxies in front of the page (TLS),
	// as IP addresses or CIDR prefixes: from them, X-Forwarded-For names
	// the client for the login lock-out, the stream limits and the logs.
	// Not env-overridable. Default: none (the TCP peer is the client).
	TrustedProxies []string `mapstructure:"trusted_proxies"`
}

// TrustedProxyPrefixes returns api.trusted_proxies as prefixes (an address
// alone is a /32 or /128). The config is validated: bad entries are
// skipped.
func (a API) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range a.TrustedProxies {
		if p, err := parseProxy(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parseProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// User is a web login; PasswordHash is a bcrypt hash (resman hash-password).
type User struct {
	Name         string `mapstructure:"name"`
	PasswordHash string `mapstructure:"password_hash" secret:"true" secretkind:"bcrypt"`
	// Role is UserRoleAdmin (reads and acts) or UserRoleViewer (reads
	// only: a wall screen). Default: admin.
	Role string `mapstructure:"role"`
}

// Values of User.Role.
const (
	UserRoleAdmin  = "admin"
	UserRoleViewer = "viewer"
)

// Viewer reports whether u may only read (an empty Role, from a User built
// in code, is an admin).
func (u User) Viewer() bool { return u.Role == UserRoleViewer }

// Peer is the other node of the pair. Required for main and standby, absent
// on a witness.
type Peer struct {
	// Name is the peer's node.name; it must differ from this node's.
	Name string `mapstructure:"name"`
	// API is the peer's base URL (http://host:port), used with api.token.
	API string `mapstructure:"api"`
	// Gossip is the peer's gossip host:port. Required in auto mode.
	Gossip string `mapstructure:"gossip"`
	// CheckInterval is how often the peer's API is polled. Default: 2s.
	CheckInterval time.Duration `mapstructure:"check_interval"`
	// Timeout bounds one call to the peer's API; at most CheckInterval.
	// Default: 2s.
	Timeout time.Duration `mapstructure:"timeout"`
}

// Gossip configures the heartbeat (auto mode only). In manual mode the keys
// may stay in the file, so that a reload can switch mode, and are still
// checked for form.
type Gossip struct {
	// Bind is the local gossip host:port. Default: 0.0.0.0:7946.
	Bind string `mapstructure:"bind"`
	// Key is base64 of 16, 24 or 32 bytes: the primary key, which gossip
	// is encrypted with, and which every member must accept (as its own
	// Key or among its ExtraKeys). Required in auto mode, and whenever
	// ExtraKeys is set. Secret.
	Key string `mapstructure:"key" secret:"true" secretkind:"gossip-key"`
	// ExtraKeys are further keys of the same form, accepted to decrypt
	// gossip but never used to encrypt it: the keyring of a key rotation
	// without a gap. At most MaxExtraGossipKeys, none twice, not Key
	// itself. A reload applies Key and ExtraKeys live. Secret.
	ExtraKeys []string `mapstructure:"extra_keys" secret:"true" secretkind:"gossip-key"`
	// ProbeInterval between two probes of a member. Default: 200ms.
	ProbeInterval time.Duration `mapstructure:"probe_interval"`
	// ProbeTimeout waits for one probe's ack; below ProbeInterval.
	// Default: 100ms.
	ProbeTimeout time.Duration `mapstructure:"probe_timeout"`
	// SuspicionMult scales how long a suspected member has to refute before
	// it is declared dead. At least 1. Default: 1 (the second path,
	// failover.confirm, refutes the false suspicions of a lossy link).
	SuspicionMult int `mapstructure:"suspicion_mult"`
	// Join lists the members' gossip host:port to join and rejoin.
	// Default on main and standby: peer.gossip and failover.witness.
	// Required on a witness (list both nodes).
	Join []string `mapstructure:"join"`
	// RejoinInterval between attempts to rejoin a lost member. Default: 1s.
	RejoinInterval time.Duration `mapstructure:"rejoin_interval"`
}

// Failover sets the automatic failover and failback policy.
type Failover struct {
	// Failback is auto (the Main takes back after FailbackHold of stable
	// health) or manual (the admin decides). Default: auto.
	Failback string `mapstructure:"failback"`
	// FailbackHold is how long the Main must be healthy before it takes
	// back; 0 takes back at once. Default: 30s.
	FailbackHold time.Duration `mapstructure:"failback_hold"`
	// BootGrace is how long a node that has not seen its peer since it
	// started waits before taking over for a lost peer, so that two nodes
	// powered on together, in any order, end with the Main Active; 0
	// takes over after LostAfter as usual. Default: 30s.
	BootGrace time.Duration `mapstructure:"boot_grace"`
	// LostAfter is how long the peer must stay lost, or the Active node
	// unhealthy, before the auto rules act. Both signals are already
	// confirmed upstream (memberlist's suspicion, the checks' fall count),
	// so this only rides out a flap. Default: 100ms.
	LostAfter time.Duration `mapstructure:"lost_after"`
	// Witness is the gossip host:port of the optional third member that
	// breaks ties. No default.
	Witness string `mapstructure:"witness"`
	// Confirm is the second path a gossip loss is confirmed on before a
	// takeover (auto mode).
	Confirm Confirm `mapstructure:"confirm"`
	// Calls, when set, counts the calls in progress on this node's PBX
	// while it is Active (auto mode). When a partition heals with both
	// nodes Active and exactly one has calls, that one keeps the Active
	// role whatever the epochs.
	Calls *CallsCount `mapstructure:"calls"`
}

// CallsCount is a command that prints the number of calls in progress,
// like Asterisk's `core show calls` ("3 active calls"): the number before
// "active call" when the output says it, else its first number.
type CallsCount struct {
	Exec []string `mapstructure:"exec"`
	// Interval between two counts; also bounds one run. Default: 2s.
	Interval time.Duration `mapstructure:"interval"`
}

// Confirm is the second path between the two nodes (package
// resilience/echo): a small UDP echo, signed with the gossip key, that a
// node probes the peer on all the time. A peer lost over gossip counts as
// lost only when this path says so too: its host refuses (resman is not
// running there) or it has not answered for Window.
type Confirm struct {
	// Enabled: default true. Off, a gossip loss alone makes a takeover,
	// as keepalived's missed adverts do.
	Enabled *bool `mapstructure:"enabled"`
	// Listen is the UDP host:port this node answers on. Default: the
	// host:port of api.listen (the same number, over UDP).
	Listen string `mapstructure:"listen"`
	// Peer is the peer's UDP host:port. Default: the host:port of
	// peer.api. Set it to another network's address to make the path
	// independent of the gossip network too.
	Peer string `mapstructure:"peer"`
	// Every is the time between two probes. Default: 20ms.
	Every time.Duration `mapstructure:"every"`
	// Window is how long the peer's last answer counts: the peer is
	// confirmed lost after Window without an answer. At least 3 × Every.
	// Default: 300ms.
	Window time.Duration `mapstructure:"window"`
}

// On reports whether the second path runs (it does by default).
func (c Confirm) On() bool { return c.Enabled == nil || *c.Enabled }

// Replication is a job the Main runs to copy data to the Standby.
type Replication struct {
	// Name is unique among jobs, and the same on both nodes. Required.
	Name string `mapstructure:"name"`
	// Run is an exec job's argv list (e.g. a database dump loaded on the
	// peer). Exactly one of Run and Files.
	Run []string `mapstructure:"run"`
	// Files is a built-in job copying directory trees to the peer over the
	// authenticated API. Exactly one of Run and Files.
	Files *ReplicationFiles `mapstructure:"files"`
	// Every is the period between runs. Required, above 0.
	Every time.Duration `mapstructure:"every"`
	// MaxAge is the age of the last success beyond which the copy counts
	// as stale (HA not ready); at least Every. Default: twice Every.
	MaxAge time.Duration `mapstructure:"max_age"`
	// Timeout bounds one run. Default: 30m.
	Timeout time.Duration `mapstructure:"timeout"`
}

// Switchover tunes the planned switchover.
type Switchover struct {
	// Drain, when set, is checked before the Active node stops: the
	// switchover waits until no call is active.
	Drain *Drain `mapstructure:"drain"`
}

// Drain is a check that the Active node has no active calls: a command
// that exits 0 when drained (e.g. one asking Asterisk for its channel
// count), run every Interval until Timeout.
type Drain struct {
	Exec []string `mapstructure:"exec"`
	// Timeout: past it, the switchover is abandoned and nothing changes.
	// Default: 2m.
	Timeout time.Duration `mapstructure:"timeout"`
	// Interval between checks. Default: 2s.
	Interval time.Duration `mapstructure:"interval"`
}

// MaxExtraGossipKeys bounds gossip.extra_keys: a rotation needs one; every
// key is tried on every packet that the primary does not decrypt.
const MaxExtraGossipKeys = 4

// MaxHookTimeout is the longest a hook may run: a before_activate hook
// delays the activation by as much.
const MaxHookTimeout = 5 * time.Minute

// Hooks are commands a main or standby node runs on its own transitions,
// one at a time, in list order.
type Hooks struct {
	// Timeout is the default of each hook's timeout. Default: 10s.
	Timeout time.Duration `mapstructure:"timeout"`
	// BeforeActivate hooks run before the services start; one that fails
	// or times out vetoes the activation.
	BeforeActivate []Hook `mapstructure:"before_activate"`
	// AfterActivate hooks run once the node is Active.
	AfterActivate []Hook `mapstructure:"after_activate"`
	// AfterDeactivate hooks run once the node is Inactive, services stopped.
	AfterDeactivate []Hook `mapstructure:"after_deactivate"`
}

// Hook is one command run on a transition.
type Hook struct {
	// Name is unique within its list. Required, no spaces.
	Name string `mapstructure:"name"`
	// Run is an argv list. Required.
	Run []string `mapstructure:"run"`
	// Timeout bounds one run, at most MaxHookTimeout. Default: hooks.timeout.
	Timeout time.Duration `mapstructure:"timeout"`
}

// ReplicationFiles is the built-in files job: directory trees copied from
// the Active node to the Inactive one, only what changed, atomically.
type ReplicationFiles struct {
	// Roots are the trees; the same names on both nodes (paths may differ).
	Roots []ReplicationRoot `mapstructure:"roots"`
	// Delete removes files the sender no longer has. Set it alike on both
	// nodes. Default: false.
	Delete bool `mapstructure:"delete"`
	// MaxFiles, MaxFileMiB and MaxTotalMiB refuse a run beyond them.
	// Defaults: 100000, 1024 and 10240.
	MaxFiles    int `mapstructure:"max_files"`
	MaxFileMiB  int `mapstructure:"max_file_mib"`
	MaxTotalMiB int `mapstructure:"max_total_mib"`
}

// ReplicationRoot is one replicated tree.
type ReplicationRoot struct {
	Name string `mapstructure:"name"`
	// Path is absolute, on this node.
	Path string `mapstructure:"path"`
}

// Log sets the process's log output.
type Log struct {
	// Level is debug, info, warn or error. Default: info.
	Level string `mapstructure:"level"`
	// Format is text or json. Default: text.
	Format string `mapstructure:"format"`
}
