package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
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
	"xds/registrar":       true, // a test and demo registrar, used by resilience/testkit/sippeers
}

// goPackage is what the tests read of `go list -json`: a package and what
// its non-test files import.
type goPackage struct {
	ImportPath string
	Imports    []string
}

const module = "github.com/resman-pbx/resman/"

var (
	listOnce sync.Once
	listed   []goPackage
	listErr  error
)

// modulePackages lists the module's packages once (go list), for the
// tests of the package graph.
func modulePackages(t *testing.T) []goPackage {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: reads the whole module's package graph with go list")
	}
	listOnce.Do(func() {
		out, err := exec.Command("go", "list", "-json", module+"...").Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = fmt.Errorf("go list: %w: %s", err, ee.Stderr)
			}
			listErr = err
			return
		}
		dec := json.NewDecoder(strings.NewReader(string(out)))
		for {
			var p goPackage
			if err := dec.Decode(&p); err == io.EOF {
				break
			} else if err != nil {
				listErr = err
				return
			}
			listed = append(listed, p)
		}
	})
	if listErr != nil {
		t.Fatal(listErr)
	}
	if len(listed) < len(components) {
		t.Fatalf("go list gave %d packages: the graph was not read", len(listed))
	}
	return listed
}

// TestNoComponentReachesIntoAnother reads the module's package graph (go
// list) and fails on any import from one component into another, except
// of the shared libraries above, and the CC's use of services: a CC
// follower runs its services with the same supervisor as a node.
func TestNoComponentReachesIntoAnother(t *testing.T) {
	allowed := map[[2]string]bool{{"cc", "services"}: true}
	for _, p := range modulePackages(t) {
		from := component(strings.TrimPrefix(p.ImportPath, module))
		if from == "" {
			continue
		}
		for _, imp := range p.Imports {
			rel, ok := strings.CutPrefix(imp, module)
			if !ok || shared[rel] {
				continue
			}
			if to := component(rel); to != "" && to != from && !allowed[[2]string{from, to}] {
				t.Errorf("%s (component %s) imports %s (component %s): go through a shared package or the agent", p.ImportPath, from, imp, to)
			}
		}
	}
}

// testSupport are the packages that exist for tests only: no code resman
// ships may import them, and only they may import testkit.
var testSupport = map[string]bool{
	"resilience/testkit":             true, // the waits, loggers, metric readers and fake clock of the tests
	"resilience/client/clienttest":   true, // a fake node API for what follows a node
	"resilience/testkit/timeline":    true, // the timeline pictures of the fault-injection tests
	"resilience/cluster/clustertest": true, // gossip clusters on a simulated network
	"resilience/testkit/sippeers":    true, // the real SIP peers (registrar, kamailio, sipp) of the SIP tests
	"resilience/web/browsertest":     true, // a headless browser for the page's tests
}

// TestOnlyTestsImportTestkit: testkit and the other test-support packages
// are test plumbing; only _test.go files (which go list does not count in
// Imports) and test-support packages may import them.
func TestOnlyTestsImportTestkit(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range modulePackages(t) {
		from := strings.TrimPrefix(p.ImportPath, module)
		seen[from] = true
		for _, imp := range p.Imports {
			if rel, ok := strings.CutPrefix(imp, module); ok && testSupport[rel] && !testSupport[from] {
				t.Errorf("%s imports %s: test plumbing, for _test.go files and test-support packages only", p.ImportPath, imp)
			}
		}
	}
	for pkg := range testSupport {
		if !seen[pkg] {
			t.Errorf("test-support package %s is not in the package graph: moved? (update testSupport)", pkg)
		}
	}
}
