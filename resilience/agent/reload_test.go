package agent

import (
	"slices"
	"testing"
	"time"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/fleet"
)

// A reload that changes only the gossip keys needs no restart; another
// gossip change still does.
func TestRestartOnlyChangesIgnoresGossipKeys(t *testing.T) {
	base := config.Config{Node: &config.Node{Name: "main", Mode: "auto"},
		Gossip: config.Gossip{Key: "a", ProbeInterval: time.Second}}
	keys := base
	keys.Gossip.Key, keys.Gossip.ExtraKeys = "b", []string{"a"}
	if got := restartOnlyChanges(&base, &keys, false, false); len(got) != 0 {
		t.Errorf("a change of keys needs a restart: %v", got)
	}
	other := keys
	other.Gossip.ProbeInterval = 2 * time.Second
	if got := restartOnlyChanges(&base, &other, false, false); !slices.Equal(got, []string{"gossip"}) {
		t.Errorf("a change of gossip.probe_interval: %v, want [gossip]", got)
	}
	if !gossipKeysEqual(keys.Gossip, other.Gossip) || gossipKeysEqual(base.Gossip, keys.Gossip) {
		t.Error("gossipKeysEqual compares more or less than the keys")
	}
}

// log.level is applied at run time when the agent holds the logger's
// level; log.format never is.
func TestRestartOnlyChangesLogLevel(t *testing.T) {
	base := config.Config{Node: &config.Node{Name: "main"}, Log: config.Log{Level: "info", Format: "text"}}
	debug := base
	debug.Log.Level = "debug"
	if got := restartOnlyChanges(&base, &debug, true, false); len(got) != 0 {
		t.Errorf("a change of log.level with a live level needs a restart: %v", got)
	}
	if got := restartOnlyChanges(&base, &debug, false, false); !slices.Equal(got, []string{"log"}) {
		t.Errorf("a change of log.level without a live level: %v, want [log]", got)
	}
	json := debug
	json.Log.Format = "json"
	if got := restartOnlyChanges(&base, &json, true, false); !slices.Equal(got, []string{"log"}) {
		t.Errorf("a change of log.format: %v, want [log]", got)
	}
}

func TestKeysChange(t *testing.T) {
	for _, tt := range []struct {
		before, after cluster.KeyInfo
		want          string
	}{
		{cluster.KeyInfo{Primary: "o"}, cluster.KeyInfo{Primary: "o", Extra: []string{"n"}}, "primary o, also accepted [n]; added n"},
		{cluster.KeyInfo{Primary: "o", Extra: []string{"n"}}, cluster.KeyInfo{Primary: "n", Extra: []string{"o"}}, "primary n, also accepted [o] (primary was o)"},
		{cluster.KeyInfo{Primary: "n", Extra: []string{"o"}}, cluster.KeyInfo{Primary: "n"}, "primary n; removed o"},
		{cluster.KeyInfo{Primary: "o"}, cluster.KeyInfo{Primary: "n"}, "primary n (primary was o); added n; removed o"},
	} {
		if got := keysChange(tt.before, tt.after); got != tt.want {
			t.Errorf("keysChange(%s, %s) = %q, want %q", tt.before, tt.after, got, tt.want)
		}
	}
}

// With a fleet aggregator running, a change of its pairs is reloaded and
// one of its other keys is named; without one, the section is.
// Without a node, the node's sections are not reloaded.
func TestRestartOnlyChangesFleet(t *testing.T) {
	pair := fleet.PairConfig{Name: "p", Nodes: []string{"http://a:1", "http://b:1"}, Token: "t"}
	base := config.Config{Fleet: &fleet.Config{PairsDir: "/etc/resman/fleet.d"}}
	pairs := base
	pairs.Fleet = &fleet.Config{PairsDir: "/srv/fleet.d", Pairs: []fleet.PairConfig{pair}}
	if got := restartOnlyChanges(&base, &pairs, false, true); len(got) != 0 {
		t.Errorf("a change of the pairs with a live fleet needs a restart: %v", got)
	}
	if got := restartOnlyChanges(&base, &pairs, false, false); !slices.Equal(got, []string{"fleet"}) {
		t.Errorf("a change of the pairs without a live fleet: %v, want [fleet]", got)
	}
	defaults := base
	defaults.Fleet = &fleet.Config{PairsDir: "/etc/resman/fleet.d", Interval: fleet.DefaultInterval,
		Concurrency: fleet.DefaultConcurrency}
	if got := restartOnlyChanges(&base, &defaults, false, true); len(got) != 0 {
		t.Errorf("the defaults written out need a restart: %v", got)
	}
	more := base
	more.Fleet = &fleet.Config{PairsDir: "/etc/resman/fleet.d", Concurrency: 64}
	if got := restartOnlyChanges(&base, &more, false, true); !slices.Equal(got, []string{"fleet.concurrency"}) {
		t.Errorf("a change of fleet.concurrency: %v, want [fleet.concurrency]", got)
	}
	gone := base
	gone.Fleet = nil
	if got := restartOnlyChanges(&base, &gone, false, true); !slices.Equal(got, []string{"fleet"}) {
		t.Errorf("the fleet section removed: %v, want [fleet]", got)
	}
	hooks := base
	hooks.Hooks = config.Hooks{AfterActivate: []config.Hook{{Name: "h", Run: []string{"true"}}}}
	if got := restartOnlyChanges(&base, &hooks, false, true); !slices.Equal(got, []string{"hooks"}) {
		t.Errorf("hooks without a node: %v, want [hooks]", got)
	}
	level := base
	level.Log.Level = "debug"
	if got := appliedChanges(&base, &level); !slices.Equal(got, []string{"log.level"}) {
		t.Errorf("applied without a node: %v, want [log.level]", got)
	}
}

// With a node, api.users and api.read_tokens are reloaded; the other keys
// of the api section are named one by one as needing a restart. Without a
// node, every api key is named.
func TestRestartOnlyChangesAPI(t *testing.T) {
	base := config.Config{Node: &config.Node{Name: "main"}, API: config.API{Listen: "127.0.0.1:9440", Token: "t1",
		ReadTokens: []string{"r1"}, Users: []config.User{{Name: "alice", PasswordHash: "h1", Role: config.UserRoleAdmin}}}}
	access := base
	access.API.ReadTokens = []string{"r2"}
	access.API.Users = []config.User{{Name: "bob", PasswordHash: "h2", Role: config.UserRoleViewer}}
	if got := restartOnlyChanges(&base, &access, false, false); len(got) != 0 {
		t.Errorf("a change of api.users and api.read_tokens with a node needs a restart: %v", got)
	}
	if got := appliedChanges(&base, &access); !slices.Equal(got, []string{"api.users", "api.read_tokens"}) {
		t.Errorf("applied: %v, want [api.users api.read_tokens]", got)
	}
	more := access
	more.API.Listen, more.API.Token, more.API.TrustedProxies = "127.0.0.1:9441", "t2", []string{"10.0.0.1"}
	if got := restartOnlyChanges(&base, &more, false, false); !slices.Equal(got, []string{"api.listen", "api.token", "api.trusted_proxies"}) {
		t.Errorf("a change of the other api keys: %v, want [api.listen api.token api.trusted_proxies]", got)
	}
	noNode, noNodeAccess := base, access
	noNode.Node, noNodeAccess.Node = nil, nil
	if got := restartOnlyChanges(&noNode, &noNodeAccess, false, false); !slices.Equal(got, []string{"api.read_tokens", "api.users"}) {
		t.Errorf("api.users and api.read_tokens without a node: %v, want [api.read_tokens api.users]", got)
	}
}

// Users are equal whatever their order, an empty role being an admin; a
// changed hash or role, or a user more or less, differs.
func TestUsersEqual(t *testing.T) {
	a := config.User{Name: "alice", PasswordHash: "h1", Role: config.UserRoleAdmin}
	b := config.User{Name: "bob", PasswordHash: "h2", Role: config.UserRoleViewer}
	withRole := func(u config.User, r string) config.User { u.Role = r; return u }
	withHash := func(u config.User, h string) config.User { u.PasswordHash = h; return u }
	for _, tc := range []struct {
		x, y []config.User
		want bool
	}{
		{[]config.User{a, b}, []config.User{b, a}, true},
		{[]config.User{a}, []config.User{withRole(a, "")}, true},
		{nil, []config.User{}, true},
		{[]config.User{a, b}, []config.User{a}, false},
		{[]config.User{a}, []config.User{withHash(a, "h3")}, false},
		{[]config.User{a}, []config.User{withRole(a, config.UserRoleViewer)}, false},
	} {
		if got := usersEqual(tc.x, tc.y); got != tc.want {
			t.Errorf("usersEqual(%v, %v) = %v, want %v", tc.x, tc.y, got, tc.want)
		}
	}
}
