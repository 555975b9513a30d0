package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// TestFleetRunsFromAConfigFile: resman run with a fleet section watches a
// real node and serves the pair on /api/v1/fleet with its own token.
func TestFleetRunsFromAConfigFile(t *testing.T) {
	apiPort, fleetPort := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	nodeURL := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	cfg := writeNodeConfig(t, nodeSpec{name: "xivo-main", role: "main", peer: "xivo-standby", host: "127.0.0.1",
		peerURL: "http://127.0.0.1:1", dataDir: t.TempDir(), apiPort: apiPort, sipPort: freePort(t, "127.0.0.1")})
	startProc(t, "xivo-main", cfg, nodeURL)

	const fleetToken = "fleet-view-token-5b2e9d41c7a3"
	fleetCfg := filepath.Join(t.TempDir(), "fleet.yaml")
	body := fmt.Sprintf(`api: {listen: "127.0.0.1:%d", token: %s}
fleet:
  interval: 200ms
  pairs:
    - {name: paris-1, nodes: ["%s", "http://127.0.0.1:1"], token: %s}
log: {level: debug}
`, fleetPort, fleetToken, nodeURL, testToken)
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
	waitFor(t, "the pair on /api/v1/fleet, its Main read", func() bool {
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
	})
	if p := pairs[0]; p.Name != "paris-1" || p.Ready || p.Nodes[1].Reachable {
		t.Errorf("the pair: %+v; want paris-1, not ready (its Standby does not answer)", p)
	}
	// The pair's token does not read the fleet.
	req, _ := http.NewRequest("GET", fleetURL+"/api/v1/fleet", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the fleet read with a pair's token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}
