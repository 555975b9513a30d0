package agent

import (
	"testing"

	"github.com/resman-pbx/resman/config"
)

// failover.boot_grace reaches the core in ticks: 30 s by default, 0 is no
// grace at all (not the one tick other durations round up to).
func TestCoreConfigBootGrace(t *testing.T) {
	const base = `
node: {name: xivo-standby, role: standby, mode: auto, version: "2025.10.3"}
api: {token: 0123456789abcdef0123}
peer: {name: xivo-main, api: "http://127.0.0.1:9440", gossip: "127.0.0.1:7946"}
gossip: {key: "ixRkyckRn2MAzPkiERpX1Q=="}
`
	for _, tc := range []struct {
		failover string
		want     int
	}{
		{"", int(30e9 / coreTick)},
		{"failover: {boot_grace: 0s}\n", 0},
		{"failover: {boot_grace: 1ms}\n", 1},
		{"failover: {boot_grace: 2s}\n", int(2e9 / coreTick)},
	} {
		cfg, err := config.Parse([]byte(base+tc.failover), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatalf("%q: %v", tc.failover, err)
		}
		if got := coreConfig(cfg).BootGraceTicks; got != tc.want {
			t.Errorf("%q: BootGraceTicks = %d, want %d", tc.failover, got, tc.want)
		}
		if err := coreConfig(cfg).Validate(); err != nil {
			t.Errorf("%q: %v", tc.failover, err)
		}
	}
}

func TestParseCalls(t *testing.T) {
	for _, c := range []struct {
		out  string
		want int
		err  bool
	}{
		{"12 active channels\n5 active calls\n1234 calls processed\n", 5, false},
		{"1 active call\n", 1, false},
		{"0 active calls\n", 0, false},
		{"7\n", 7, false},
		{"calls: 3 (peak 9)\n", 3, false},
		{"no asterisk here\n", 0, true},
		{"99999999999999999999 active calls", 0, true},
	} {
		got, err := parseCalls(c.out)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("parseCalls(%q) = %d, %v; want %d, error %t", c.out, got, err, c.want, c.err)
		}
	}
}
