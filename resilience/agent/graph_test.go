package agent

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// The components of resman: each one job, none reaching into another.
// Only the agent (this package) and the command assemble them.
var components = map[string]bool{
	"cc": true, "edge": true, "xds": true, "services": true,
	"resilience/node": true, "resilience/web": true, "resilience/fleet": true,
}

// component names the component a package belongs to ("" for shared
// packages: the core, the API types, the client with its node watcher
// (resilience/client/watch, used by cc and edge) and its fake node for
// tests (resilience/client/clienttest), config, the libraries the
// components share).
func component(pkg string) string {
	for c := range components {
		if pkg == c || strings.HasPrefix(pkg, c+"/") {
			return c
		}
	}
	return ""
}

// shared are the packages under a component's directory that other
// components may use: libraries with no part of the component's job.
var shared = map[string]bool{
	"services/hysteresis": true, // the rise/fall counter of services, XDS and the Edge
	"resilience/procexec": true, // running a command: hooks, replication, services
	"xds/registrar":       true, // a test and demo registrar, used by edge/sippeers
}

// TestNoComponentReachesIntoAnother reads the module's package graph (go
// list) and fails on any import from one component into another, except
// of the shared libraries above, and the CC's use of services: a CC
// follower runs its services with the same supervisor as a node.
func TestNoComponentReachesIntoAnother(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: reads the whole module's package graph with go list")
	}
	out, err := exec.Command("go", "list", "-json", "github.com/resman-pbx/resman/...").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/resman-pbx/resman/"
	allowed := map[[2]string]bool{{"cc", "services"}: true}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		from := component(strings.TrimPrefix(p.ImportPath, mod))
		if from == "" {
			continue
		}
		for _, imp := range p.Imports {
			rel, ok := strings.CutPrefix(imp, mod)
			if !ok || shared[rel] {
				continue
			}
			if to := component(rel); to != "" && to != from && !allowed[[2]string{from, to}] {
				t.Errorf("%s (component %s) imports %s (component %s): go through a shared package or the agent", p.ImportPath, from, imp, to)
			}
		}
	}
	if seen < len(components) {
		t.Fatalf("go list gave %d packages: the graph was not read", seen)
	}
}
