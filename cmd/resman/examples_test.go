package main

// The example deployments (examples/): each directory holds a README.md and
// every config file the deployment needs; each file passes `resman config
// check` run as the real CLI, and the files of one directory agree with each
// other where a running deployment needs them to (the same token and gossip
// key, a pair whose peers point at each other, followers and an Edge that
// point at the nodes).

import (
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/resman-pbx/resman/config"
)

const examplesDir = "../../examples"

// exampleFile is one loaded config file of an example directory.
type exampleFile struct {
	name string // base name, for messages
	cfg  *config.Config
}

func TestExamples(t *testing.T) {
	yamls := map[string][]string{} // every directory under examples/ -> its config files
	err := filepath.WalkDir(examplesDir, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			if _, ok := yamls[path]; !ok {
				yamls[path] = nil // a directory without config files is reported below
			}
		case strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml"):
			yamls[filepath.Dir(path)] = append(yamls[filepath.Dir(path)], path)
		}
		return nil
	})
	if err != nil || len(yamls) < 2 {
		t.Fatalf("no example directories under %s: %v", examplesDir, err)
	}
	dirs := make([]string, 0, len(yamls))
	for d := range yamls {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		rel, _ := filepath.Rel(examplesDir, dir)
		t.Run(rel, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
				t.Errorf("%s has no README.md (topology, files, how to check and start, failover and failback)", dir)
			}
			if dir != examplesDir && len(yamls[dir]) == 0 {
				t.Errorf("%s holds no config file", dir)
			}
			var files []exampleFile
			for _, f := range yamls[dir] {
				out, stderr, code := cli(t, "config", "check", f)
				if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), ": ok") {
					t.Errorf("resman config check %s: exit %d\n%s%s", f, code, out, stderr)
					continue
				}
				cfg, err := config.Load(f)
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				files = append(files, exampleFile{filepath.Base(f), cfg})
			}
			if len(files) > 0 && !t.Failed() {
				checkDeployment(t, files)
			}
		})
	}
}

// checkDeployment checks that the files of one deployment agree.
func checkDeployment(t *testing.T, files []exampleFile) {
	var mains, standbys, witnesses, ccs, edges []exampleFile
	for _, f := range files {
		if n := f.cfg.Node; n != nil {
			switch n.Role {
			case config.RoleMain:
				mains = append(mains, f)
			case config.RoleStandby:
				standbys = append(standbys, f)
			case config.RoleWitness:
				witnesses = append(witnesses, f)
			}
		}
		if f.cfg.CC != nil {
			ccs = append(ccs, f)
		}
		if f.cfg.Edge != nil {
			edges = append(edges, f)
		}
	}
	if len(mains) != 1 || len(standbys) != 1 || len(witnesses) > 1 {
		t.Errorf("want one main, one standby and at most one witness file; got %d, %d and %d",
			len(mains), len(standbys), len(witnesses))
		return
	}
	m, s := mains[0], standbys[0]
	nodes := []exampleFile{m, s}

	// The pair: the same settings, each pointing at the other.
	same(t, m, s, "node.mode", func(c *config.Config) any { return c.Node.Mode })
	same(t, m, s, "node.version", func(c *config.Config) any { return c.Node.Version })
	same(t, m, s, "api.token", func(c *config.Config) any { return c.API.Token })
	same(t, m, s, "gossip.key", func(c *config.Config) any { return c.Gossip.Key })
	same(t, m, s, "failover", func(c *config.Config) any { return c.Failover })
	same(t, m, s, "replication (jobs, kinds, root names, delete)", replicationShape)
	same(t, m, s, "xds.mds", func(c *config.Config) any {
		if c.XDS == nil {
			return nil
		}
		return c.XDS.MDS
	})
	for _, pair := range [][2]exampleFile{{m, s}, {s, m}} {
		a, b := pair[0], pair[1]
		if a.cfg.Peer.Name != b.cfg.Node.Name {
			t.Errorf("%s: peer.name %q, but %s: node.name %q", a.name, a.cfg.Peer.Name, b.name, b.cfg.Node.Name)
		}
		if !reaches(a.cfg.Peer.API, b.cfg.API.Listen) {
			t.Errorf("%s: peer.api %q does not reach %s: api.listen %q", a.name, a.cfg.Peer.API, b.name, b.cfg.API.Listen)
		}
		if a.cfg.Node.Mode == config.ModeAuto && !reaches(a.cfg.Peer.Gossip, b.cfg.Gossip.Bind) {
			t.Errorf("%s: peer.gossip %q does not reach %s: gossip.bind %q", a.name, a.cfg.Peer.Gossip, b.name, b.cfg.Gossip.Bind)
		}
	}
	if m.cfg.XDS != nil && s.cfg.XDS != nil && m.cfg.XDS.Contact == s.cfg.XDS.Contact {
		t.Errorf("both nodes register xds.contact %q: each must name its own node, or calls do not move", m.cfg.XDS.Contact)
	}

	// The witness: the nodes name it, it joins both, the same key.
	switch {
	case len(witnesses) == 1:
		w := witnesses[0]
		same(t, m, w, "gossip.key", func(c *config.Config) any { return c.Gossip.Key })
		if !reaches(m.cfg.Failover.Witness, w.cfg.Gossip.Bind) {
			t.Errorf("%s: failover.witness %q does not reach %s: gossip.bind %q", m.name, m.cfg.Failover.Witness, w.name, w.cfg.Gossip.Bind)
		}
		for _, n := range nodes {
			if !slices.ContainsFunc(w.cfg.Gossip.Join, func(j string) bool { return reaches(j, n.cfg.Gossip.Bind) }) {
				t.Errorf("%s: gossip.join %q does not reach %s: gossip.bind %q", w.name, w.cfg.Gossip.Join, n.name, n.cfg.Gossip.Bind)
			}
		}
	case m.cfg.Failover.Witness != "":
		t.Errorf("%s names failover.witness %q, but the directory has no witness file", m.name, m.cfg.Failover.Witness)
	}

	// CC followers: each follows a node of the pair, with its token; no
	// node followed twice.
	followed := map[string]string{}
	for _, f := range ccs {
		n, ok := nodeAt(nodes, f.cfg.CC.Follow)
		if !ok {
			t.Errorf("%s: cc.follow %q reaches neither node's api.listen", f.name, f.cfg.CC.Follow)
			continue
		}
		if f.cfg.CC.Token != n.cfg.API.Token {
			t.Errorf("%s: cc.token is not the api.token of %s, the node it follows", f.name, n.name)
		}
		if other, dup := followed[n.name]; dup {
			t.Errorf("%s and %s both follow %s", other, f.name, n.name)
		}
		followed[n.name] = f.name
	}

	// Edges: one side per node, with the nodes' token.
	for _, f := range edges {
		if f.cfg.Edge.Token != m.cfg.API.Token {
			t.Errorf("%s: edge.token is not the nodes' api.token", f.name)
		}
		sides := map[string]bool{}
		for i, side := range f.cfg.Edge.Sides {
			n, ok := nodeAt(nodes, side.Node)
			if !ok {
				t.Errorf("%s: edge.sides[%d].node %q reaches neither node's api.listen", f.name, i, side.Node)
				continue
			}
			sides[n.name] = true
			// A route to a CC server goes to the one that follows this
			// side's node: the one whose services run while it is Active.
			for j, r := range side.Routes {
				u, _ := url.Parse(r.Upstream)
				for _, c := range ccs {
					if h, _, _ := net.SplitHostPort(c.cfg.API.Listen); h == u.Hostname() && !reaches(c.cfg.CC.Follow, n.cfg.API.Listen) {
						t.Errorf("%s: edge.sides[%d].routes[%d] goes to %s, which does not follow %s", f.name, i, j, c.name, n.name)
					}
				}
			}
		}
		if len(sides) != 2 {
			t.Errorf("%s: the sides reach %d of the 2 nodes", f.name, len(sides))
		}
	}
}

// same fails when get gives different values for files a and b.
func same(t *testing.T, a, b exampleFile, what string, get func(*config.Config) any) {
	t.Helper()
	if va, vb := fmt.Sprintf("%+v", get(a.cfg)), fmt.Sprintf("%+v", get(b.cfg)); va != vb {
		t.Errorf("%s differs: %s has %s, %s has %s", what, a.name, va, b.name, vb)
	}
}

// replicationShape is what both nodes must list alike: jobs, kinds, root
// names and delete (the root paths are each node's own).
func replicationShape(c *config.Config) any {
	var jobs []string
	for _, r := range c.Replication {
		j := r.Name + " run " + strings.Join(r.Run, " ")
		if f := r.Files; f != nil {
			var roots []string
			for _, root := range f.Roots {
				roots = append(roots, root.Name)
			}
			j = fmt.Sprintf("%s files %v delete=%v", r.Name, roots, f.Delete)
		}
		jobs = append(jobs, j)
	}
	return jobs
}

// nodeAt returns the node whose api.listen the URL reaches.
func nodeAt(nodes []exampleFile, u string) (exampleFile, bool) {
	for _, n := range nodes {
		if reaches(u, n.cfg.API.Listen) {
			return n, true
		}
	}
	return exampleFile{}, false
}

// reaches reports whether addr, a URL or a host:port that a client dials,
// reaches listen, a host:port that a server binds (an empty or unspecified
// host binds every address: then only the ports are compared).
func reaches(addr, listen string) bool {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	ah, ap, err1 := net.SplitHostPort(addr)
	lh, lp, err2 := net.SplitHostPort(listen)
	if err1 != nil || err2 != nil || ap != lp {
		return false
	}
	if ip := net.ParseIP(lh); lh == "" || ip != nil && ip.IsUnspecified() {
		return true
	}
	return ah == lh
}
