package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// fleetReadToken is the read token (api.read_tokens) the node of
// TestFleetRunsFromAConfigFile gives the fleet.
const fleetReadToken = "fleet-read-token-8c1f4e7a2b9d"

// writeFleetNodeConfig is a manual Main whose peer does not answer, with
// api.token (testToken) and fleetReadToken as its only read token.
func writeFleetNodeConfig(t *testing.T, apiPort, sipPort int) string {
	t.Helper()
	cfg := fmt.Sprintf(`node:
  name: xivo-main
  role: main
  mode: manual
  version: "2025.10.3"
  data_dir: %s
api:
  listen: 127.0.0.1:%d
  token: %s
  read_tokens: [%s]
peer:
  name: xivo-standby
  api: http://127.0.0.1:1
  check_interval: 1s
  timeout: 1s
services:
  - name: asterisk
    run: [%s, standin, sip, --listen, "127.0.0.1:%d"]
    check: {sip: "sip:127.0.0.1:%d", interval: 500ms, timeout: 400ms, rise: 1, fall: 2}
    critical: true
    timeout: 5s
log: {level: debug}
`, t.TempDir(), apiPort, testToken, fleetReadToken, binary, sipPort, sipPort)
	path := filepath.Join(t.TempDir(), "xivo-main.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFleetRunsFromAConfigFile: resman run with a fleet section watches a
// real node, with a token the node knows only as a read token, and serves
// the pair on /api/v1/fleet with its own token.
func TestFleetRunsFromAConfigFile(t *testing.T) {
	apiPort, fleetPort := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	nodeURL := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	cfg := writeFleetNodeConfig(t, apiPort, freePort(t, "127.0.0.1"))
	startProc(t, "xivo-main", cfg, nodeURL)

	// The read token may not write on the node.
	stop, _ := http.NewRequest("POST", nodeURL+"/api/v1/services/stop", strings.NewReader(`{"reason":"r"}`))
	stop.Header.Set("Authorization", "Bearer "+fleetReadToken)
	stop.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(stop); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a write with the node's read token: %v %v, want 403", resp, err)
	} else {
		resp.Body.Close()
	}

	const fleetToken = "fleet-view-token-5b2e9d41c7a3"
	fleetCfg := filepath.Join(t.TempDir(), "fleet.yaml")
	body := fmt.Sprintf(`api: {listen: "127.0.0.1:%d", token: %s}
fleet:
  interval: 200ms
  pairs:
    - {name: paris-1, nodes: ["%s", "http://127.0.0.1:1"], token: %s}
log: {level: debug}
`, fleetPort, fleetToken, nodeURL, fleetReadToken)
	if err := os.WriteFile(fleetCfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	fleetURL := fmt.Sprintf("http://127.0.0.1:%d", fleetPort)
	startProc(t, "fleet", fleetCfg, fleetURL)

	var pairs []struct {
		Name  string `json:"name"`
		Ready bool   `json:"ready"`
		Nodes []struct {
			URL       string `json:"url"`
			Reachable bool   `json:"reachable"`
			Status    string `json:"status"`
		} `json:"nodes"`
	}
	testkit.Eventually(t, func() bool {
		req, _ := http.NewRequest("GET", fleetURL+"/api/v1/fleet", nil)
		req.Header.Set("Authorization", "Bearer "+fleetToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&pairs) != nil || len(pairs) != 1 || len(pairs[0].Nodes) != 2 {
			return false
		}
		return pairs[0].Nodes[0].Reachable && pairs[0].Nodes[0].Status == "active"
	}, "the pair on /api/v1/fleet, its Main read")
	if p := pairs[0]; p.Name != "paris-1" || p.Ready || p.Nodes[1].Reachable {
		t.Errorf("the pair: %+v; want paris-1, not ready (its Standby does not answer)", p)
	}
	// The pair's tokens do not read the fleet.
	for _, tok := range []string{testToken, fleetReadToken} {
		req, _ := http.NewRequest("GET", fleetURL+"/api/v1/fleet", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("the fleet read with a pair's token: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
	}
}
