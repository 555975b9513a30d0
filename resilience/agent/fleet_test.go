package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client/clienttest"
	"github.com/resman-pbx/resman/resilience/fleet"
	"github.com/resman-pbx/resman/resilience/testkit"
)

const pairToken = "fleet-pair-token-0f3c9a1e5b7d2468"

// fakePair serves the two nodes of a healthy pair (a Active, b Inactive,
// HA ready) behind pairToken, and returns its pair file's text.
func fakePair(t *testing.T, name string) string {
	t.Helper()
	var urls []string
	for i, side := range []string{"a", "b"} {
		st := api.Status{Node: name + side, Role: []string{"main", "standby"}[i], Mode: "auto",
			Status: []string{api.StatusActive, api.StatusInactive}[i], Epoch: 1, Version: "2025.10.3",
			Healthy: true, HA: api.HA{Ready: true, Reasons: []string{}}}
		urls = append(urls, clienttest.New(t, st, clienttest.WithToken(pairToken)).URL())
	}
	return fmt.Sprintf("pairs:\n  - name: %s\n    nodes: [%s, %s]\n    token: %s\n", name, urls[0], urls[1], pairToken)
}

// fleetConfig is a fleet-only file: the API on 127.0.0.1:port, the pairs
// in pairsDir, read every interval.
func fleetConfig(port int, pairsDir string, interval time.Duration) string {
	return fmt.Sprintf("api:\n  listen: 127.0.0.1:%d\n  token: %s\nfleet:\n  interval: %s\n  pairs_dir: %s\n",
		port, testToken, interval, pairsDir)
}

// fleetPairs reads GET /api/v1/fleet as a client would.
func fleetPairs(t *testing.T, addr string) []fleet.Pair {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+fleet.PathAPI, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", fleet.PathAPI, resp.Status)
	}
	var ps []fleet.Pair
	if err := json.NewDecoder(resp.Body).Decode(&ps); err != nil {
		t.Fatal(err)
	}
	return ps
}

// readyPairs are the names of the pairs of the fleet view, sorted, and
// whether every one of them is ready.
func readyPairs(t *testing.T, addr string) ([]string, bool) {
	var names []string
	all := true
	for _, p := range fleetPairs(t, addr) {
		names = append(names, p.Name)
		all = all && p.Ready
	}
	slices.Sort(names)
	return names, all
}

// waitPairs waits until the fleet view holds exactly want (sorted), every
// pair read and ready.
func waitPairs(t *testing.T, addr string, want ...string) {
	t.Helper()
	testkit.Eventually(t, func() bool {
		names, ready := readyPairs(t, addr)
		return ready && slices.Equal(names, want)
	}, "the fleet view to hold %v, all ready", want)
}

// A fleet-only process reloads its pairs: a pair file dropped into
// fleet.pairs_dir is watched after a reload, a broken one is refused with
// its file and key named and the pairs watched stay, a file removed drops
// its pair, and a change of fleet.interval is reported as needing a
// restart.
func TestAgentReloadsFleetPairs(t *testing.T) {
	dir := t.TempDir()
	pairsDir := filepath.Join(dir, "fleet.d")
	if err := os.Mkdir(pairsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "fleet.yaml")
	port := testkit.Port(t)
	writeFile(t, path, fleetConfig(port, pairsDir, 100*time.Millisecond))
	writeFile(t, filepath.Join(pairsDir, "paris.yaml"), fakePair(t, "paris-1"))
	logger, logs := testkit.BufferLogger(t)
	a, evs, stop := runAgent(t, path, Options{Logger: logger})
	addr := evs.next(t, Started).Addr
	waitPairs(t, addr, "paris-1")

	// A pair file dropped in, then a reload: the new pair is watched.
	writeFile(t, filepath.Join(pairsDir, "lyon.yaml"), fakePair(t, "lyon-1"))
	if err := a.Reload(path); err != nil {
		t.Fatalf("reload with a new pair file: %v", err)
	}
	if ev := evs.next(t, Reloaded); !slices.Equal(ev.Applied, []string{"fleet.pairs"}) || len(ev.NeedRestart) != 0 {
		t.Errorf("reload of a new pair reported %+v", ev)
	}
	if !logs.Contains("fleet pairs reloaded: 2 pairs (added lyon-1)") {
		t.Errorf("no log of the pairs reloaded:\n%s", logs)
	}
	waitPairs(t, addr, "lyon-1", "paris-1")

	// A broken pair file: refused, file and key named; the pairs stay.
	bad := filepath.Join(pairsDir, "bad.yaml")
	writeFile(t, bad, "pairs:\n  - name: nice-1\n    nodes: [ftp://10.0.0.1, http://10.0.0.2:9440]\n    token: "+pairToken+"\n")
	err := a.Reload(path)
	if err == nil || !strings.Contains(err.Error(), bad+": pairs[0].nodes[0]: must be an http(s) URL") {
		t.Errorf("reload with a broken pair file: %v", err)
	}
	if ev := evs.next(t, ReloadRefused); !errors.Is(ev.Err, err) {
		t.Errorf("refused reload reported %+v", ev)
	}
	if !logs.Contains("config reload refused") || !logs.Contains("bad.yaml: pairs[0].nodes[0]") {
		t.Errorf("no log of the refused reload naming the file and key:\n%s", logs)
	}
	if strings.Contains(logs.String(), pairToken) {
		t.Error("a pair's token is in the logs")
	}
	names, _ := readyPairs(t, addr)
	if !slices.Equal(names, []string{"lyon-1", "paris-1"}) {
		t.Errorf("pairs after a refused reload: %v", names)
	}

	// A file removed and fleet.interval changed: the pair goes, the
	// interval (and the timeout, which defaults to it) needs a restart.
	for _, f := range []string{bad, filepath.Join(pairsDir, "paris.yaml")} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, path, fleetConfig(port, pairsDir, 200*time.Millisecond))
	if err := a.Reload(path); err != nil {
		t.Fatalf("reload without paris.yaml: %v", err)
	}
	if ev := evs.next(t, Reloaded); !slices.Equal(ev.Applied, []string{"fleet.pairs"}) || !slices.Equal(ev.NeedRestart, []string{"fleet.interval", "fleet.timeout"}) {
		t.Errorf("reload of a removed pair and a new interval reported %+v", ev)
	}
	if !logs.Contains("fleet pairs reloaded: 1 pair (removed paris-1)") || !logs.Contains("fleet.interval") {
		t.Errorf("no log of the pair removed and of the interval:\n%s", logs)
	}
	if names, _ := readyPairs(t, addr); !slices.Equal(names, []string{"lyon-1"}) {
		t.Errorf("pairs after paris.yaml was removed: %v", names)
	}

	stop()
}

// A node's process with a fleet section reloads both: the pairs with the
// node's settings, and a broken pair file refuses the whole file (the
// node's hooks stay as they were too); so does a file without the node.
func TestAgentReloadsNodeAndFleet(t *testing.T) {
	dir := t.TempDir()
	pairsDir := filepath.Join(dir, "fleet.d")
	if err := os.Mkdir(pairsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "node.yaml")
	port := testkit.Port(t)
	fleetSection := "fleet:\n  interval: 100ms\n  pairs_dir: " + pairsDir + "\n"
	hooks := "hooks:\n  after_activate:\n    - {name: note, run: [\"true\"]}\n"
	writeFile(t, path, nodeConfig(filepath.Join(dir, "data"), port, fleetSection))
	writeFile(t, filepath.Join(pairsDir, "paris.yaml"), fakePair(t, "paris-1"))
	a, evs, stop := runAgent(t, path, Options{Logger: testkit.FailureLogger(t)})
	addr := evs.next(t, Started).Addr
	waitPairs(t, addr, "paris-1")

	// A broken pair file with a change of the hooks: nothing applied.
	writeFile(t, filepath.Join(pairsDir, "bad.yaml"), "pairs:\n  - name: nice-1\n    nodes: [http://10.0.0.1:9440]\n    token: "+pairToken+"\n")
	writeFile(t, filepath.Join(pairsDir, "lyon.yaml"), fakePair(t, "lyon-1"))
	writeFile(t, path, nodeConfig(filepath.Join(dir, "data"), port, fleetSection+hooks))
	if err := a.Reload(path); err == nil || !strings.Contains(err.Error(), "bad.yaml: pairs[0].nodes: must list the pair's 2 nodes") {
		t.Errorf("reload with a broken pair file: %v", err)
	}
	evs.next(t, ReloadRefused)
	if names, _ := readyPairs(t, addr); !slices.Equal(names, []string{"paris-1"}) {
		t.Errorf("pairs after a refused reload: %v", names)
	}

	// Fixed: the hooks and the pairs both applied.
	if err := os.Remove(filepath.Join(pairsDir, "bad.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(path); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if ev := evs.next(t, Reloaded); !slices.Equal(ev.Applied, []string{"hooks", "fleet.pairs"}) || len(ev.NeedRestart) != 0 {
		t.Errorf("reload of the hooks and a pair reported %+v", ev)
	}
	waitPairs(t, addr, "lyon-1", "paris-1")

	// A file without the node: refused, the node and the pairs stay.
	writeFile(t, path, fleetConfig(port, pairsDir, 100*time.Millisecond))
	if err := a.Reload(path); err == nil || !strings.Contains(err.Error(), "configures no node") {
		t.Errorf("reload of a file without the node: %v", err)
	}
	evs.next(t, ReloadRefused)
	waitPairs(t, addr, "lyon-1", "paris-1")

	stop()
}
