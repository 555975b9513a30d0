package cc

import (
	"strings"
	"time"

	"github.com/resman-pbx/resman/config/confcheck"
	"github.com/resman-pbx/resman/services"
)

// This file is the cc section of the config file: its keys, defaults and
// checks. Package config composes it into the file's Config and keeps the
// rules that span sections: cc.name differs from node.name, and the
// default of cc.data_dir is under node.data_dir when a node runs in the
// same file.

// DefaultDataDir is cc.data_dir when no node runs in the same file.
const DefaultDataDir = "/var/lib/resman/cc"

// Config follows its paired node and runs the contact-center services.
type Config struct {
	// Name of this follower. Required, no spaces.
	Name string `mapstructure:"name"`
	// Follow is the base URL of the node it follows. Required.
	Follow string `mapstructure:"follow"`
	// Token is the followed node's api.token. Required. Secret.
	Token string `mapstructure:"token" secret:"true" secretkind:"token"`
	// Services run while the followed node is Active. Not env-overridable.
	Services []services.Service `mapstructure:"services"`
	// DataDir holds the follower's audit log. Default: cc/ under
	// node.data_dir when a node runs in the same file, else
	// DefaultDataDir.
	DataDir string `mapstructure:"data_dir"`
	// CheckInterval is how often the followed node is polled when its
	// event stream is down. Default: 1s.
	CheckInterval time.Duration `mapstructure:"check_interval"`
}

// ApplyDefaults fills the section's defaults for the keys given reports
// absent; dataDir is the default of cc.data_dir (it depends on the node).
func (c *Config) ApplyDefaults(given confcheck.Given, dataDir string) {
	services.ApplyDefaults(given, "cc.services", c.Services)
	confcheck.Default(given, "cc.data_dir", &c.DataDir, dataDir)
	confcheck.Default(given, "cc.check_interval", &c.CheckInterval, DefaultCheckInterval)
}

// Validate checks the section, defaults filled, and records its problems
// in ps.
func (c *Config) Validate(ps *confcheck.Problems) {
	ps.Name("cc.name", c.Name, "this follower's name, like cc-main")
	ps.URL("cc.follow", c.Follow, true, "http://127.0.0.1:9440")
	ps.Token("cc.token", c.Token, "the api.token of the node it follows")
	if !strings.HasPrefix(c.DataDir, "/") {
		ps.Add("cc.data_dir", "must be an absolute path, like %s, got %q", DefaultDataDir, c.DataDir)
	}
	ps.Positive("cc.check_interval", c.CheckInterval)
	services.Validate(ps, "cc.services", c.Services)
}
