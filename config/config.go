// Package config is the only importer of viper. It turns a YAML file plus
// RESMAN_* environment overrides into a typed Config, fills defaults, and
// validates the result, naming the key path of every problem it finds.
package config

import "time"

// Config is one resman config file. A file may configure any combination of
// a node, a CC follower and an Edge proxy; API serves whichever run.
type Config struct {
	Node        *Node         `mapstructure:"node"`
	API         API           `mapstructure:"api"`
	Peer        *Peer         `mapstructure:"peer"`
	Gossip      Gossip        `mapstructure:"gossip"`
	Failover    Failover      `mapstructure:"failover"`
	Services    []Service     `mapstructure:"services"`
	Replication []Replication `mapstructure:"replication"`
	XDS         *XDS          `mapstructure:"xds"`
	CC          *CC           `mapstructure:"cc"`
	Edge        *Edge         `mapstructure:"edge"`
	Log         Log           `mapstructure:"log"`
}

// Node describes this PBX host.
type Node struct {
	// Name is unique in the deployment; it appears in status, audit and gossip.
	Name string `mapstructure:"name"`
	// Role is the configured role: main, standby or witness. The runtime
	// status (active or inactive) is separate.
	Role string `mapstructure:"role"`
	// Mode is auto (heartbeat and automatic failover) or manual (no heartbeat,
	// the admin decides). Default: manual, the mode that never moves by itself.
	Mode string `mapstructure:"mode"`
	// Version of the PBX stack; majors must match for HA readiness.
	Version string `mapstructure:"version"`
	// DataDir holds the persisted status, epoch and audit log.
	// Default: /var/lib/resman.
	DataDir string `mapstructure:"data_dir"`
}

// API is the HTTP listener of whichever components this file runs.
type API struct {
	// Listen is host:port. Default: 127.0.0.1:9440.
	Listen string `mapstructure:"listen"`
	// Token is the bearer token scripts, peers, CC and Edge present. Secret.
	Token string `mapstructure:"token"`
	// Users may log in to the web page.
	Users []User `mapstructure:"users"`
}

// User is a web login; PasswordHash is a bcrypt hash (resman hash-password).
type User struct {
	Name         string `mapstructure:"name"`
	PasswordHash string `mapstructure:"password_hash"`
}

// Peer is the other node of the pair.
type Peer struct {
	Name string `mapstructure:"name"`
	// API is the peer's base URL (http://host:port), used with api.token.
	API string `mapstructure:"api"`
	// Gossip is the peer's gossip host:port (auto mode).
	Gossip string `mapstructure:"gossip"`
	// CheckInterval is how often the peer's API is polled. Default: 2s.
	CheckInterval time.Duration `mapstructure:"check_interval"`
	// Timeout bounds one call to the peer's API. Default: 2s.
	Timeout time.Duration `mapstructure:"timeout"`
}

// Gossip configures the heartbeat (auto mode only).
type Gossip struct {
	Bind string `mapstructure:"bind"`
	// Key is base64 of 16, 24 or 32 bytes. Secret.
	Key            string        `mapstructure:"key"`
	ProbeInterval  time.Duration `mapstructure:"probe_interval"`
	ProbeTimeout   time.Duration `mapstructure:"probe_timeout"`
	SuspicionMult  int           `mapstructure:"suspicion_mult"`
	Join           []string      `mapstructure:"join"`
	RejoinInterval time.Duration `mapstructure:"rejoin_interval"`
}

// Failover sets the automatic failover and failback policy.
type Failover struct {
	// Failback is auto (the Main takes back after FailbackHold of stable
	// health) or manual (the admin decides). Default: auto.
	Failback     string        `mapstructure:"failback"`
	FailbackHold time.Duration `mapstructure:"failback_hold"`
	// LostAfter is how long the Main must be lost or unhealthy before the
	// Standby activates. Default: 1s.
	LostAfter time.Duration `mapstructure:"lost_after"`
	// Witness is the gossip address of the optional third member.
	Witness string `mapstructure:"witness"`
}

// Service is one local service, started in order and stopped in reverse.
// Exactly one of Start/Stop (commands), Unit (a systemd unit) or Run (a
// foreground process resman supervises) says how it is driven.
type Service struct {
	Name  string   `mapstructure:"name"`
	Start []string `mapstructure:"start"`
	Stop  []string `mapstructure:"stop"`
	// Unit is a systemd unit name; start/stop use systemctl.
	Unit string `mapstructure:"unit"`
	// Run is a foreground command resman starts and keeps; stop sends
	// SIGTERM, then SIGKILL after Timeout.
	Run []string `mapstructure:"run"`
	// Timeout bounds one start or stop. Default: 30s.
	Timeout time.Duration `mapstructure:"timeout"`
	Check   *Check        `mapstructure:"check"`
	// Critical: unhealthy makes the node unhealthy (failover in auto mode).
	Critical bool `mapstructure:"critical"`
}

// Check is a health probe; exactly one of SIP, Exec, TCP, HTTP is set.
type Check struct {
	SIP  string   `mapstructure:"sip"`
	Exec []string `mapstructure:"exec"`
	TCP  string   `mapstructure:"tcp"`
	HTTP string   `mapstructure:"http"`
	// Interval between probes. Default: 1s.
	Interval time.Duration `mapstructure:"interval"`
	// Timeout of one probe. Default: 1s (never above Interval).
	Timeout time.Duration `mapstructure:"timeout"`
	// Rise consecutive passes make it healthy, Fall consecutive failures
	// unhealthy. Defaults: 2 and 2.
	Rise int `mapstructure:"rise"`
	Fall int `mapstructure:"fall"`
}

// Replication is a job the Main runs to copy data to the Standby.
type Replication struct {
	Name   string        `mapstructure:"name"`
	Run    []string      `mapstructure:"run"`
	Every  time.Duration `mapstructure:"every"`
	MaxAge time.Duration `mapstructure:"max_age"`
}

// XDS registers the active PBX to the media servers.
type XDS struct {
	Contact string `mapstructure:"contact"`
	MDS     []MDS  `mapstructure:"mds"`
}

// MDS is one media server registrar.
type MDS struct {
	Name      string `mapstructure:"name"`
	Registrar string `mapstructure:"registrar"`
	Transport string `mapstructure:"transport"`
	User      string `mapstructure:"user"`
	// Password is secret.
	Password string `mapstructure:"password"`
	// Expires asked of the registrar, in seconds. Default: 120.
	Expires int `mapstructure:"expires"`
}

// CC follows its paired node and runs the contact-center services.
type CC struct {
	Name     string    `mapstructure:"name"`
	Follow   string    `mapstructure:"follow"`
	Token    string    `mapstructure:"token"`
	Services []Service `mapstructure:"services"`
}

// Edge is the reverse proxy in front of both sides.
type Edge struct {
	Listen string    `mapstructure:"listen"`
	Token  string    `mapstructure:"token"`
	Check  EdgeCheck `mapstructure:"check"`
	Sides  []Side    `mapstructure:"sides"`
}

// EdgeCheck is the Edge's health check of each side's node.
type EdgeCheck struct {
	Interval time.Duration `mapstructure:"interval"`
	Rise     int           `mapstructure:"rise"`
	Fall     int           `mapstructure:"fall"`
}

// Side is one side (main or standby) behind the Edge.
type Side struct {
	Name   string  `mapstructure:"name"`
	Node   string  `mapstructure:"node"`
	Routes []Route `mapstructure:"routes"`
}

// Route maps a path prefix to an upstream on one side.
type Route struct {
	Path     string `mapstructure:"path"`
	Upstream string `mapstructure:"upstream"`
}

// Log sets the process's log output.
type Log struct {
	// Level is debug, info, warn or error. Default: info.
	Level string `mapstructure:"level"`
	// Format is text or json. Default: text.
	Format string `mapstructure:"format"`
}
