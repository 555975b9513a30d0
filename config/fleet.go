package config

import (
	"fmt"
	"net/url"
	"path"
	"time"

	"github.com/resman-pbx/resman/config/confcheck"
)

// Defaults and bounds of the fleet section.
const (
	DefaultFleetInterval    = 2 * time.Second
	DefaultFleetConcurrency = 32
	// MaxFleetConcurrency bounds fleet.concurrency: each unit is one
	// status request in flight at once.
	MaxFleetConcurrency = 1024
	// MaxFleetPairNameLen bounds a pair's name (a Prometheus label value
	// and a row of the fleet page).
	MaxFleetPairNameLen = 128
)

// Fleet is the fleet aggregator (package fleet): it reads the status of
// many pairs with GET /api/v1/status, read-only, and serves them at a
// glance. The pairs never depend on it.
type Fleet struct {
	// Pairs watched, listed in this file. Not env-overridable.
	Pairs []FleetPair `mapstructure:"pairs"`
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
	// MaxFleetConcurrency. Default: 32.
	Concurrency int `mapstructure:"concurrency"`
}

// FleetPair is one pair the aggregator watches.
type FleetPair struct {
	// Name is unique in the fleet, no spaces. Required.
	Name string `mapstructure:"name" yaml:"name"`
	// Nodes are the two nodes' API base URLs (http(s)://host:port).
	Nodes []string `mapstructure:"nodes" yaml:"nodes"`
	// Token is the pair's api.token, used for GET /api/v1/status only.
	// Secret. It must differ from the aggregator's own api.token, which
	// only lets one read the fleet.
	Token string `mapstructure:"token" yaml:"token" secret:"true" secretkind:"token"`
}

// FleetPairList is a list of pairs and where it was read, for messages:
// Key is the list's key ("fleet.pairs", or "pairs" in a file of
// fleet.pairs_dir) and File the file's name when it is not the config file.
type FleetPairList struct {
	File  string
	Key   string
	Pairs []FleetPair
}

// ApplyDefaults fills the fleet keys left at zero. Parse does not call it
// yet (see resilience/fleet/README.md): the aggregator calls it on the section it is
// given, so that a zero means the default there.
func (f *Fleet) ApplyDefaults() {
	if f == nil {
		return
	}
	if f.Interval == 0 {
		f.Interval = DefaultFleetInterval
	}
	if f.Timeout == 0 {
		f.Timeout = f.Interval
	}
	if f.Concurrency == 0 {
		f.Concurrency = DefaultFleetConcurrency
	}
}

// Validate checks the fleet section with its defaults filled, and the
// pairs listed in it (not those of PairsDir: CheckFleetPairs checks them
// all once read). apiToken is the aggregator's api.token. It returns nil or
// Problems keyed fleet.*.
func (f *Fleet) Validate(apiToken string) error {
	if f == nil {
		return nil
	}
	var ps Problems
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if len(f.Pairs) == 0 && f.PairsDir == "" {
		add("fleet.pairs", "list at least one pair, or set fleet.pairs_dir")
	}
	if f.PairsDir != "" && !path.IsAbs(f.PairsDir) {
		add("fleet.pairs_dir", "must be an absolute directory, like /etc/resman/fleet.d, got %q", f.PairsDir)
	}
	if f.Interval <= 0 {
		add("fleet.interval", "must be a duration above 0, like 2s, got %s", f.Interval)
	}
	switch {
	case f.Timeout <= 0:
		add("fleet.timeout", "must be a duration above 0, like 2s, got %s", f.Timeout)
	case f.Interval > 0 && f.Timeout > f.Interval:
		add("fleet.timeout", "must not exceed fleet.interval (%s), got %s", f.Interval, f.Timeout)
	}
	if f.Concurrency < 1 || f.Concurrency > MaxFleetConcurrency {
		add("fleet.concurrency", "must be 1 to %d, got %d", MaxFleetConcurrency, f.Concurrency)
	}
	ps = append(ps, CheckFleetPairs([]FleetPairList{{Key: "fleet.pairs", Pairs: f.Pairs}}, apiToken)...)
	if len(ps) == 0 {
		return nil
	}
	ps.sort()
	return ps
}

// CheckFleetPairs checks pairs read from several lists together: each pair
// alone, and names unique across the lists. apiToken, when set, is the
// aggregator's own token, which no pair may share.
func CheckFleetPairs(lists []FleetPairList, apiToken string) Problems {
	var ps Problems
	type where struct{ file, key string }
	seen := map[string]where{}
	for _, l := range lists {
		add := func(key, format string, args ...any) {
			ps = append(ps, Problem{File: l.File, Key: key, Msg: fmt.Sprintf(format, args...)})
		}
		for i, p := range l.Pairs {
			key := fmt.Sprintf("%s[%d]", l.Key, i)
			switch {
			case p.Name == "":
				add(key+".name", "required: the pair's name, unique in the fleet, like paris-1")
			case !validFleetName(p.Name):
				add(key+".name", "must be 1 to %d letters, digits, '.', '_' or '-', got %q", MaxFleetPairNameLen, p.Name)
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
				add(key+".token", "required: the pair's api.token, at least %d characters", MinTokenLen)
			case len(p.Token) < MinTokenLen:
				add(key+".token", "must be at least %d characters, got %d", MinTokenLen, len(p.Token))
			case apiToken != "" && p.Token == apiToken:
				// Whoever may read the fleet must not be able to act on a pair.
				add(key+".token", "must differ from api.token: api.token lets one read the fleet view, the pair's token lets one start and stop its services")
			}
		}
	}
	return ps
}

func validFleetName(s string) bool {
	if s == "" || len(s) > MaxFleetPairNameLen {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
