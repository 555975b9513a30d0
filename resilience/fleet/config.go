package fleet

import (
	"fmt"
	"net/url"
	"path"
	"time"

	"github.com/resman-pbx/resman/config/confcheck"
)

// This file is the fleet section of the config file: its keys, defaults
// and checks, and the checks of the pairs the aggregator reads from the
// files of fleet.pairs_dir. Package config composes it into the file's
// Config and orders its problems by the file's schema among the others'.

// Defaults and bounds of the fleet section.
const (
	DefaultInterval    = 2 * time.Second
	DefaultConcurrency = 32
	// MaxConcurrency bounds fleet.concurrency: each unit is one status
	// request in flight at once.
	MaxConcurrency = 1024
	// MaxPairNameLen bounds a pair's name (a Prometheus label value and a
	// row of the fleet page).
	MaxPairNameLen = 128
)

// Config is the fleet aggregator: it reads the status of many pairs with
// GET /api/v1/status, read-only, and serves them at a glance. The pairs
// never depend on it.
type Config struct {
	// Pairs watched, listed in this file. Not env-overridable.
	Pairs []PairConfig `mapstructure:"pairs"`
	// PairsDir is an absolute directory of YAML files (*.yaml, *.yml),
	// each listing one or more pairs under "pairs:", read at start and at
	// each reload (a reload applies a changed list of pairs): for
	// large fleets. Optional.
	PairsDir string `mapstructure:"pairs_dir"`
	// Interval between two reads of a node's status. Default: 2s.
	Interval time.Duration `mapstructure:"interval"`
	// Timeout bounds one read; at most Interval. Default: Interval.
	Timeout time.Duration `mapstructure:"timeout"`
	// Concurrency is the most status reads in flight at once, 1 to
	// MaxConcurrency. Default: 32.
	Concurrency int `mapstructure:"concurrency"`
}

// PairConfig is one pair the aggregator watches.
type PairConfig struct {
	// Name is unique in the fleet, no spaces. Required.
	Name string `mapstructure:"name" yaml:"name"`
	// Nodes are the two nodes' API base URLs (http(s)://host:port).
	Nodes []string `mapstructure:"nodes" yaml:"nodes"`
	// Token is the pair's api.token, used for GET /api/v1/status only.
	// Secret. It must differ from the aggregator's own api.token, which
	// only lets one read the fleet.
	Token string `mapstructure:"token" yaml:"token" secret:"true" secretkind:"token"`
}

// PairList is a list of pairs and where it was read, for messages: Key is
// the list's key ("fleet.pairs", or "pairs" in a file of fleet.pairs_dir)
// and File the file's name when it is not the config file.
type PairList struct {
	File  string
	Key   string
	Pairs []PairConfig
}

// ApplyDefaults fills the section's defaults for the keys given reports
// absent. The aggregator (New, LoadPairs) passes confcheck.NothingGiven: a
// zero key there takes its default.
func (c *Config) ApplyDefaults(given confcheck.Given) {
	confcheck.Default(given, "fleet.interval", &c.Interval, DefaultInterval)
	confcheck.Default(given, "fleet.timeout", &c.Timeout, c.Interval)
	confcheck.Default(given, "fleet.concurrency", &c.Concurrency, DefaultConcurrency)
}

// Validate records in ps the problems of the section, its defaults
// filled, and of the pairs listed in it (not those of PairsDir: CheckPairs
// checks them all once read), keyed fleet.*, in the order of the section's
// keys. apiToken is the aggregator's api.token.
func (c *Config) Validate(ps *confcheck.Problems, apiToken string) {
	if len(c.Pairs) == 0 && c.PairsDir == "" {
		ps.Add("fleet.pairs", "list at least one pair, or set fleet.pairs_dir")
	}
	*ps = append(*ps, CheckPairs([]PairList{{Key: "fleet.pairs", Pairs: c.Pairs}}, apiToken)...)
	if c.PairsDir != "" && !path.IsAbs(c.PairsDir) {
		ps.Add("fleet.pairs_dir", "must be an absolute directory, like /etc/resman/fleet.d, got %q", c.PairsDir)
	}
	if c.Interval <= 0 {
		ps.Add("fleet.interval", "must be a duration above 0, like 2s, got %s", c.Interval)
	}
	switch {
	case c.Timeout <= 0:
		ps.Add("fleet.timeout", "must be a duration above 0, like 2s, got %s", c.Timeout)
	case c.Interval > 0 && c.Timeout > c.Interval:
		ps.Add("fleet.timeout", "must not exceed fleet.interval (%s), got %s", c.Interval, c.Timeout)
	}
	if c.Concurrency < 1 || c.Concurrency > MaxConcurrency {
		ps.Add("fleet.concurrency", "must be 1 to %d, got %d", MaxConcurrency, c.Concurrency)
	}
}

// CheckPairs checks pairs read from several lists together: each pair
// alone, and names unique across the lists. apiToken, when set, is the
// aggregator's own token, which no pair may share. The problems come list
// by list, pair by pair, key by key.
func CheckPairs(lists []PairList, apiToken string) confcheck.Problems {
	var ps confcheck.Problems
	type where struct{ file, key string }
	seen := map[string]where{}
	for _, l := range lists {
		add := func(key, format string, args ...any) {
			ps = append(ps, confcheck.Problem{File: l.File, Key: key, Msg: fmt.Sprintf(format, args...)})
		}
		for i, p := range l.Pairs {
			key := fmt.Sprintf("%s[%d]", l.Key, i)
			switch {
			case p.Name == "":
				add(key+".name", "required: the pair's name, unique in the fleet, like paris-1")
			case !validPairName(p.Name):
				add(key+".name", "must be 1 to %d letters, digits, '.', '_' or '-', got %q", MaxPairNameLen, p.Name)
			default:
				if w, dup := seen[p.Name]; dup {
					in := w.key
					if w.file != "" {
						in = w.file + ": " + w.key
					}
					add(key+".name", "duplicate of %s.name %q", in, p.Name)
				} else {
					seen[p.Name] = where{l.File, key}
				}
			}
			if len(p.Nodes) != 2 {
				add(key+".nodes", "must list the pair's 2 nodes' API base URLs, like [http://10.0.0.1:9440, http://10.0.0.2:9440], got %d", len(p.Nodes))
			}
			for j, n := range p.Nodes {
				nk := fmt.Sprintf("%s.nodes[%d]", key, j)
				u, err := url.Parse(n)
				switch {
				case n == "":
					add(nk, "required: an http(s) URL, like http://10.0.0.1:9440")
				case !confcheck.ValidHTTPURL(n) || err != nil:
					add(nk, "must be an http(s) URL with a host, like http://10.0.0.1:9440, got %q", n)
				case u.User != nil:
					add(nk, "must not hold a user or password: the token is in %s.token", key)
				case u.RawQuery != "" || u.Fragment != "":
					add(nk, "must be a base URL, without query or fragment, got %q", n)
				}
			}
			if len(p.Nodes) == 2 && p.Nodes[0] != "" && p.Nodes[0] == p.Nodes[1] {
				add(key+".nodes[1]", "must differ from %s.nodes[0], both are %q", key, p.Nodes[0])
			}
			switch {
			case p.Token == "":
				add(key+".token", "required: the pair's api.token, at least %d characters", confcheck.MinTokenLen)
			case len(p.Token) < confcheck.MinTokenLen:
				add(key+".token", "must be at least %d characters, got %d", confcheck.MinTokenLen, len(p.Token))
			case apiToken != "" && p.Token == apiToken:
				// Whoever may read the fleet must not be able to act on a pair.
				add(key+".token", "must differ from api.token: api.token lets one read the fleet view, the pair's token lets one start and stop its services")
			}
		}
	}
	return ps
}

func validPairName(s string) bool {
	if s == "" || len(s) > MaxPairNameLen {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
