package config

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exampleDeployment loads the files of examples/DIR, each named by its
// base name.
func exampleDeployment(t *testing.T, dir string) map[string]*Config {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join("..", "examples", dir, "*.yaml"))
	if len(paths) < 2 {
		t.Fatalf("examples/%s: %d files", dir, len(paths))
	}
	out := map[string]*Config{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse(data, nil)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[filepath.Base(p)] = c
	}
	return out
}

// filesOf lists the deployment's files in name order.
func filesOf(d map[string]*Config) []File {
	var fs []File
	for _, name := range []string{"xivo-main.yaml", "xivo-standby.yaml", "witness.yaml", "cc-main.yaml", "cc-standby.yaml", "edge.yaml"} {
		if c, ok := d[name]; ok {
			fs = append(fs, File{Name: name, Config: c})
		}
	}
	return fs
}

// matchProblems asserts ps holds exactly one problem containing each of
// want, and nothing else.
func matchProblems(t *testing.T, what string, ps Problems, want []string) {
	t.Helper()
	used := make([]bool, len(ps))
	for _, w := range want {
		found := false
		for i, p := range ps {
			if !used[i] && strings.Contains(p.String(), w) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("no %s %q in:\n%v", what, w, ps)
		}
	}
	for i, p := range ps {
		if !used[i] {
			t.Errorf("unexpected %s: %s", what, p)
		}
	}
}

func TestCheckDeploymentOfTheExamples(t *testing.T) {
	t.Parallel()
	dirs, _ := filepath.Glob("../examples/*")
	n := 0
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		n++
		errs, warns := CheckDeployment(filesOf(exampleDeployment(t, filepath.Base(dir))))
		if len(errs)+len(warns) > 0 {
			t.Errorf("examples/%s:\n%v\nwarnings:\n%v", filepath.Base(dir), errs, warns)
		}
	}
	if n < 7 {
		t.Errorf("only %d example directories", n)
	}
}

func TestCheckDeployment(t *testing.T) {
	t.Parallel()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name   string
		dir    string
		change func(d map[string]*Config)
		errs   []string
		warns  []string
	}{
		{name: "one file's token", dir: "pair", change: func(d map[string]*Config) {
			d["xivo-standby.yaml"].API.Token = "another-token-0123456789abcdef"
		}, errs: []string{"xivo-standby.yaml: api.token: differs from xivo-main.yaml: api.token"}},
		{name: "no main", dir: "pair", change: func(d map[string]*Config) { delete(d, "xivo-main.yaml") },
			errs: []string{"none of the files is a main node"}},
		{name: "two standbys", dir: "pair", change: func(d map[string]*Config) {
			d["xivo-main.yaml"].Node.Role = RoleStandby
		}, errs: []string{"xivo-standby.yaml: node.role: standby, as in xivo-main.yaml", "none of the files is a main node"}},
		{name: "peer name", dir: "pair", change: func(d map[string]*Config) { d["xivo-main.yaml"].Peer.Name = "xivo-2" },
			errs: []string{`xivo-main.yaml: peer.name: "xivo-2" is not xivo-standby.yaml: node.name "xivo-standby"`}},
		{name: "peer api", dir: "manual-pair", change: func(d map[string]*Config) { d["xivo-standby.yaml"].Peer.API = "http://10.0.0.1:9441" },
			errs: []string{`xivo-standby.yaml: peer.api: "http://10.0.0.1:9441" does not reach xivo-main.yaml: api.listen "10.0.0.1:9440"`}},
		{name: "peer gossip, in auto mode", dir: "pair", change: func(d map[string]*Config) { d["xivo-main.yaml"].Peer.Gossip = "10.0.0.9:7946" },
			errs: []string{`xivo-main.yaml: peer.gossip: "10.0.0.9:7946" does not reach xivo-standby.yaml: gossip.bind "10.0.0.2:7946"`}},
		{name: "an api.listen on every address is reached", dir: "pair", change: func(d map[string]*Config) {
			d["xivo-standby.yaml"].API.Listen = ":9440"
			d["xivo-standby.yaml"].Gossip.Bind = "0.0.0.0:7946"
		}},
		{name: "gossip key", dir: "pair", change: func(d map[string]*Config) { d["xivo-standby.yaml"].Gossip.Key = keyB },
			errs: []string{"xivo-standby.yaml: gossip.key: differs from xivo-main.yaml: gossip.key",
				"witness.yaml: gossip.key: differs from xivo-standby.yaml: gossip.key"}},
		{name: "gossip key rotation, step 1 half done", dir: "pair", change: func(d map[string]*Config) {
			d["xivo-main.yaml"].Gossip.ExtraKeys = []string{keyB}
		}},
		{name: "gossip key rotation, step 2 half done", dir: "pair", change: func(d map[string]*Config) {
			for _, f := range []string{"xivo-main.yaml", "xivo-standby.yaml", "witness.yaml"} {
				d[f].Gossip.ExtraKeys = []string{keyB}
			}
			d["xivo-main.yaml"].Gossip.Key, d["xivo-main.yaml"].Gossip.ExtraKeys = keyB, []string{d["witness.yaml"].Gossip.Key}
		}},
		{name: "gossip key, the same bytes spelt otherwise", dir: "pair", change: func(d map[string]*Config) {
			for _, f := range []string{"xivo-main.yaml", "xivo-standby.yaml"} {
				d[f].Gossip.Key = b64("0123456789abcdef")
			}
			d["witness.yaml"].Gossip.Key = b64("0123456789abcdef") + "\n"
		}},
		{name: "the witness's key", dir: "pair-cc", change: func(d map[string]*Config) { d["witness.yaml"].Gossip.Key = keyA },
			errs: []string{"witness.yaml: gossip.key: differs from xivo-main.yaml: gossip.key", "witness.yaml: gossip.key: differs from xivo-standby.yaml: gossip.key"}},
		{name: "the witness joins one node only", dir: "pair", change: func(d map[string]*Config) { d["witness.yaml"].Gossip.Join = []string{"10.0.0.1:7946"} },
			errs: []string{`witness.yaml: gossip.join: ["10.0.0.1:7946"] does not reach xivo-standby.yaml: gossip.bind "10.0.0.2:7946"`}},
		{name: "the nodes name another witness", dir: "pair", change: func(d map[string]*Config) {
			d["xivo-main.yaml"].Failover.Witness = "10.0.0.4:7946"
			d["xivo-standby.yaml"].Failover.Witness = "10.0.0.4:7946"
		}, errs: []string{`xivo-main.yaml: failover.witness: "10.0.0.4:7946" does not reach witness.yaml: gossip.bind "10.0.0.3:7946"`,
			`xivo-standby.yaml: failover.witness: "10.0.0.4:7946" does not reach witness.yaml: gossip.bind`}},
		{name: "a witness named, but not among the files", dir: "pair", change: func(d map[string]*Config) { delete(d, "witness.yaml") },
			warns: []string{`xivo-main.yaml: failover.witness: "10.0.0.3:7946" is set, but none of the files is a witness`,
				`xivo-standby.yaml: failover.witness: "10.0.0.3:7946" is set, but none of the files is a witness`}},
		{name: "mode", dir: "pair", change: func(d map[string]*Config) { d["xivo-standby.yaml"].Node.Mode = ModeManual },
			errs: []string{`xivo-standby.yaml: node.mode: differs from xivo-main.yaml: node.mode ("manual" here, "auto" there)`}},
		{name: "version, major", dir: "pair", change: func(d map[string]*Config) { d["xivo-standby.yaml"].Node.Version = "2026.1.0" },
			errs: []string{`xivo-standby.yaml: node.version: differs from xivo-main.yaml: node.version ("2026.1.0" here, "2025.10.3" there)`}},
		{name: "version, minor: an upgrade", dir: "pair", change: func(d map[string]*Config) { d["xivo-standby.yaml"].Node.Version = "2025.10.4" },
			warns: []string{`xivo-standby.yaml: node.version: differs from xivo-main.yaml: node.version ("2025.10.4" here, "2025.10.3" there)`}},
		{name: "failover", dir: "pair", change: func(d map[string]*Config) {
			d["xivo-main.yaml"].Failover.Failback = FailbackManual
			d["xivo-standby.yaml"].Failover.FailbackHold = 0
		}, errs: []string{`xivo-standby.yaml: failover.failback: differs from xivo-main.yaml: failover.failback ("auto" here, "manual" there)`,
			`xivo-standby.yaml: failover.failback_hold: differs from xivo-main.yaml: failover.failback_hold ("0s" here, "30s" there)`}},
		{name: "replication: a root's name, delete", dir: "pair", change: func(d map[string]*Config) {
			f := d["xivo-standby.yaml"].Replication[0].Files
			f.Roots = append(f.Roots[:1:1], ReplicationRoot{Name: "music", Path: "/srv/moh"})
			f.Delete = true
		}, errs: []string{`xivo-standby.yaml: replication[0].files.roots: names [extensions-extra music], but xivo-main.yaml: replication[0].files.roots names [extensions-extra moh]`,
			`xivo-standby.yaml: replication[0].files.delete: differs from xivo-main.yaml: replication[0].files.delete ("true" here, "false" there)`}},
		{name: "replication: a job on one node only", dir: "pair", change: func(d map[string]*Config) {
			d["xivo-main.yaml"].Replication = append(d["xivo-main.yaml"].Replication, Replication{Name: "db", Run: []string{"/usr/local/bin/sync-db"}})
		}, errs: []string{`xivo-main.yaml: replication[1].name: job "db" is not in xivo-standby.yaml: replication`}},
		{name: "replication: other paths are each node's own", dir: "pair", change: func(d map[string]*Config) {
			d["xivo-standby.yaml"].Replication[0].Files.Roots[0].Path = "/srv/extensions"
		}},
		{name: "xds.mds", dir: "pair-mds", change: func(d map[string]*Config) {
			d["xivo-standby.yaml"].XDS.MDS[1].Registrar = "sip:10.0.0.13:5060"
			d["xivo-standby.yaml"].XDS.MDS[0].Password = "another-password"
		}, errs: []string{`xivo-standby.yaml: xds.mds[0].password: differs from xivo-main.yaml: xds.mds[0].password:`,
			`xivo-standby.yaml: xds.mds[1].registrar: differs from xivo-main.yaml: xds.mds[1].registrar ("sip:10.0.0.13:5060" here, "sip:10.0.0.12:5060" there)`}},
		{name: "xds on one node only", dir: "manual-pair-mds-edge", change: func(d map[string]*Config) { d["xivo-standby.yaml"].XDS = nil },
			errs: []string{"xivo-standby.yaml: xds: is not set, but xivo-main.yaml: xds is"}},
		{name: "one xds.contact for both", dir: "manual-pair-mds-edge", change: func(d map[string]*Config) {
			shared := d["xivo-main.yaml"].XDS.Contact
			d["xivo-standby.yaml"].XDS.Contact = shared
			d["xivo-main.yaml"].XDS.PeerContact, d["xivo-standby.yaml"].XDS.PeerContact = shared, shared
		}, warns: []string{`xivo-standby.yaml: xds.contact: "sip:xivo@10.0.0.1:5060" is also xivo-main.yaml: xds.contact`}},
		{name: "xds.peer_contact unset on one node", dir: "pair-mds", change: func(d map[string]*Config) {
			d["xivo-main.yaml"].XDS.PeerContact = ""
		}, warns: []string{`xivo-main.yaml: xds.peer_contact: is not set, but xivo-standby.yaml: xds is: set it to xivo-standby.yaml: xds.contact "sip:xivo@10.0.0.2:5060"`}},
		{name: "xds.peer_contact not the other's contact", dir: "manual-pair-mds-edge", change: func(d map[string]*Config) {
			d["xivo-standby.yaml"].XDS.PeerContact = "sip:xivo@10.0.0.9:5060"
		}, warns: []string{`xivo-standby.yaml: xds.peer_contact: "sip:xivo@10.0.0.9:5060" is not xivo-main.yaml: xds.contact "sip:xivo@10.0.0.1:5060"`}},
		{name: "xds.contact_epoch on one node only", dir: "pair-mds", change: func(d map[string]*Config) {
			d["xivo-standby.yaml"].XDS.ContactEpoch = true
		}, warns: []string{`xivo-standby.yaml: xds.contact_epoch: differs from xivo-main.yaml: xds.contact_epoch ("true" here, "false" there)`}},
		{name: "xds.mds[].tls_server_name", dir: "pair-mds", change: func(d map[string]*Config) {
			for _, f := range []string{"xivo-main.yaml", "xivo-standby.yaml"} {
				d[f].XDS.MDS[0].Transport = "tls"
			}
			d["xivo-standby.yaml"].XDS.MDS[0].TLSServerName = "mds1.example.com"
		}, errs: []string{`xivo-standby.yaml: xds.mds[0].tls_server_name: differs from xivo-main.yaml: xds.mds[0].tls_server_name ("mds1.example.com" here, "" there)`}},
		{name: "a CC follower's token", dir: "pair-cc", change: func(d map[string]*Config) { d["cc-standby.yaml"].CC.Token = "another-token-0123456789abcdef" },
			errs: []string{"cc-standby.yaml: cc.token: differs from xivo-standby.yaml: api.token and from each of its api.read_tokens: it must be a token of the node it follows"}},
		{name: "a CC follower with a read token of its node", dir: "pair-cc", change: func(d map[string]*Config) {
			d["xivo-standby.yaml"].API.ReadTokens = []string{"read-token-standby-0123456789"}
			d["cc-standby.yaml"].CC.Token = "read-token-standby-0123456789"
		}},
		{name: "a CC follower with a read token of the other node", dir: "pair-cc", change: func(d map[string]*Config) {
			d["xivo-main.yaml"].API.ReadTokens = []string{"read-token-main-0123456789"}
			d["cc-standby.yaml"].CC.Token = "read-token-main-0123456789"
		}, errs: []string{"cc-standby.yaml: cc.token: differs from xivo-standby.yaml: api.token and from each of its api.read_tokens: it must be a token of the node it follows"}},
		{name: "the Edge with a read token of both nodes", dir: "pair-cc-edge", change: func(d map[string]*Config) {
			d["xivo-main.yaml"].API.ReadTokens = []string{"another-read-token-0123456789", "read-token-edge-0123456789"}
			d["xivo-standby.yaml"].API.ReadTokens = []string{"read-token-edge-0123456789"}
			d["edge.yaml"].Edge.Token = "read-token-edge-0123456789"
		}},
		{name: "the Edge with a read token of one node", dir: "pair-cc-edge", change: func(d map[string]*Config) {
			d["xivo-main.yaml"].API.ReadTokens = []string{"read-token-edge-0123456789"}
			d["edge.yaml"].Edge.Token = "read-token-edge-0123456789"
		}, errs: []string{"edge.yaml: edge.token: differs from xivo-standby.yaml: api.token and from each of its api.read_tokens: the Edge asks both nodes which is Active"}},
		{name: "a CC follower follows nothing", dir: "manual-pair-cc", change: func(d map[string]*Config) { d["cc-main.yaml"].CC.Follow = "http://10.0.0.5:9440" },
			errs: []string{`cc-main.yaml: cc.follow: "http://10.0.0.5:9440" reaches neither xivo-main.yaml: api.listen "10.0.0.1:9440" nor xivo-standby.yaml: api.listen "10.0.0.2:9440"`}},
		{name: "two CC followers of one node", dir: "pair-cc", change: func(d map[string]*Config) { d["cc-standby.yaml"].CC.Follow = "http://10.0.0.1:9440" },
			errs: []string{"cc-standby.yaml: cc.follow: follows xivo-main.yaml, as cc-main.yaml does"}},
		{name: "the Edge's token", dir: "manual-pair-mds-edge", change: func(d map[string]*Config) { d["edge.yaml"].Edge.Token = "another-token-0123456789abcdef" },
			errs: []string{"edge.yaml: edge.token: differs from xivo-main.yaml: api.token"}},
		{name: "the Edge's sides reach one node", dir: "pair-cc-edge", change: func(d map[string]*Config) {
			d["edge.yaml"].Edge.Sides[1].Node = "http://10.0.0.1:9440"
		}, errs: []string{"edge.yaml: edge.sides: reach 1 of the 2 nodes",
			"edge.yaml: edge.sides[1].routes[0].upstream: goes to cc-standby.yaml, which does not follow xivo-main.yaml",
			"edge.yaml: edge.sides[1].routes[1].upstream: goes to cc-standby.yaml"}},
		{name: "an Edge's side reaches no node", dir: "manual-pair-mds-edge", change: func(d map[string]*Config) {
			d["edge.yaml"].Edge.Sides[0].Node = "http://10.0.0.9:9440"
		}, errs: []string{`edge.yaml: edge.sides[0].node: "http://10.0.0.9:9440" reaches neither xivo-main.yaml: api.listen`,
			"edge.yaml: edge.sides: reach 1 of the 2 nodes"}},
		{name: "the Edge sends a side to the other side's CC", dir: "pair-cc-edge", change: func(d map[string]*Config) {
			d["edge.yaml"].Edge.Sides[0].Routes[1].Upstream = "http://10.0.0.32:8090"
		}, errs: []string{"edge.yaml: edge.sides[0].routes[1].upstream: goes to cc-standby.yaml, which does not follow xivo-main.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := exampleDeployment(t, tt.dir)
			tt.change(d)
			errs, warns := CheckDeployment(filesOf(d))
			matchProblems(t, "error", errs, tt.errs)
			matchProblems(t, "warning", warns, tt.warns)
			for _, p := range append(errs, warns...) {
				for _, secret := range []string{"another-token", "another-password", "read-token", keyA, keyB} {
					if strings.Contains(p.String(), secret) {
						t.Errorf("a secret is shown: %s", p)
					}
				}
			}
		})
	}
}

// reaches is what a client dialling addr finds: the listener's host, or
// any host when it listens on every address.
func TestReaches(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		addr, listen string
		want         bool
	}{
		{"http://10.0.0.1:9440", "10.0.0.1:9440", true},
		{"http://10.0.0.1:9440/", ":9440", true},
		{"http://10.0.0.1:9440", "0.0.0.0:9440", true},
		{"http://[::1]:9440", "[::]:9440", true},
		{"http://10.0.0.1:9440", "10.0.0.2:9440", false},
		{"http://10.0.0.1:9441", "10.0.0.1:9440", false},
		{"http://pbx", "pbx:80", true},
		{"https://pbx", "pbx:443", true},
		{"10.0.0.3:7946", "10.0.0.3:7946", true},
		{"10.0.0.3:7946", "10.0.0.3:7947", false},
		{"", "10.0.0.3:7946", false},
	} {
		if got := reaches(tt.addr, tt.listen); got != tt.want {
			t.Errorf("reaches(%q, %q) = %v, want %v", tt.addr, tt.listen, got, tt.want)
		}
	}
}
