package main

// A gossip key rotation on a real pair with its witness (tier 3: network
// namespaces, root): the three steps of docs/operations.md, each reloaded
// with SIGHUP on one member at a time, while HA readiness is sampled on
// both nodes. It must never drop, and no gossip may be refused.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/cluster"
	"github.com/resman-pbx/resman/resilience/testkit"
)

// haSampler reads the status of nodes every 100ms and keeps every sample
// where a node was not HA-ready, or did not answer (within a generous
// 10 s: a slow answer on a loaded machine is not a drop in readiness).
type haSampler struct {
	stop, done chan struct{}
	mu         sync.Mutex
	samples    int
	bad        []string
}

func sampleHA(urls ...string) *haSampler {
	s := &haSampler{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			for _, u := range urls {
				req, _ := http.NewRequest("GET", u+"/api/v1/status", nil)
				req.Header.Set("Authorization", "Bearer "+testToken)
				var st api.Status
				resp, err := client.Do(req)
				if err == nil {
					err = json.NewDecoder(resp.Body).Decode(&st)
					resp.Body.Close()
				}
				s.mu.Lock()
				s.samples++
				switch {
				case err != nil:
					s.bad = append(s.bad, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), u, err))
				case !st.HA.Ready:
					s.bad = append(s.bad, fmt.Sprintf("%s %s: not HA-ready: %s", time.Now().Format("15:04:05.000"), u, strings.Join(st.HA.Reasons, "; ")))
				}
				s.mu.Unlock()
			}
		}
	}()
	return s
}

func (s *haSampler) finish() (samples int, bad []string) {
	close(s.stop)
	<-s.done
	return s.samples, s.bad
}

// metricLine returns the value of the metric line that starts with
// series ("name{labels}"), or "" when the node does not show it.
func metricLine(t *testing.T, url, series string) string {
	t.Helper()
	_, out := call(t, "GET", url+"/metrics", "", "", false)
	v, _ := testkit.MetricText(out, series)
	return v
}

var gossipKeysRE = regexp.MustCompile(`key: "[^"]*"(, extra_keys: \[[^\]]*\])?`)

func TestGossipKeyRotationLive(t *testing.T) {
	a := newAutoPair(t, true)
	witnessURL := fmt.Sprintf("http://%s:9440", a.lab.host("witness").ip)
	fp := func(k string) string {
		b, _ := base64.StdEncoding.DecodeString(k)
		return cluster.Fingerprint(b)
	}
	oldKey, newKey := gossipKey, base64.StdEncoding.EncodeToString([]byte("the-new-gossip-key-0123456789abc"))
	oldFP, newFP := fp(oldKey), fp(newKey)
	members := []struct {
		name, cfg, url string
		p              *proc
	}{
		{"main", a.mainCfg, a.mainURL, a.main},
		{"standby", a.standbyCfg, a.standbyURL, a.standby},
		{"witness", a.witnessCfg, witnessURL, a.wit},
	}
	rejected := map[string]string{}
	for _, m := range members {
		// Shown from the start: an absent metric would compare equal to
		// itself at the end and hide refused gossip.
		if rejected[m.name] = metricLine(t, m.url, "resman_gossip_rejected_total"); rejected[m.name] == "" {
			t.Fatalf("%s shows no resman_gossip_rejected_total", m.name)
		}
	}
	chk := startChecker(t, a.mainURL, a.standbyURL)
	ha := sampleHA(a.mainURL, a.standbyURL)
	start := time.Now()

	steps := []struct {
		name, gossip, audit string
		keys                string
		info                map[string]string // fingerprint -> primary label
	}{
		{"step 1 (accept the new key)", fmt.Sprintf(`key: "%s", extra_keys: ["%s"]`, oldKey, newKey),
			"added " + newFP, "2", map[string]string{oldFP: "true", newFP: "false"}},
		{"step 2 (encrypt with the new key)", fmt.Sprintf(`key: "%s", extra_keys: ["%s"]`, newKey, oldKey),
			"(primary was " + oldFP + ")", "2", map[string]string{newFP: "true", oldFP: "false"}},
		{"step 3 (forget the old key)", fmt.Sprintf(`key: "%s"`, newKey),
			"removed " + oldFP, "1", map[string]string{newFP: "true"}},
	}
	for _, st := range steps {
		for _, m := range members {
			b, err := os.ReadFile(m.cfg)
			if err != nil {
				t.Fatal(err)
			}
			next := gossipKeysRE.ReplaceAllString(string(b), st.gossip)
			if next == string(b) {
				t.Fatalf("%s: the gossip keys of %s were not rewritten", st.name, m.name)
			}
			if err := os.WriteFile(m.cfg, []byte(next), 0o600); err != nil {
				t.Fatal(err)
			}
			m.p.cmd.Process.Signal(syscall.SIGHUP)
			testkit.Eventually(t, func() bool { return auditHas(t, m.url, "gossip keys applied live: ") && auditHas(t, m.url, st.audit) }, "%s audited on %s", st.name, m.name)
			if v := metricLine(t, m.url, "resman_gossip_keys"); v != st.keys {
				t.Errorf("%s on %s: resman_gossip_keys %s, want %s", st.name, m.name, v, st.keys)
			}
			for f, primary := range st.info {
				if v := metricLine(t, m.url, fmt.Sprintf(`resman_gossip_key_info{fingerprint="%s",primary="%s"}`, f, primary)); v != "1" {
					t.Errorf("%s on %s: no key %s with primary=%s in the metrics", st.name, m.name, f, primary)
				}
			}
			time.Sleep(time.Second) // a few probe rounds with the rings as they are now
			for _, o := range members {
				if v := metricLine(t, o.url, `resman_gossip_members{state="alive"}`); v != "3" {
					t.Errorf("%s done on %s: %s sees %s members alive, want 3", st.name, m.name, o.name, v)
				}
			}
		}
	}
	samples, bad := ha.finish()
	t.Logf("rotation of 9 reloads took %v; %d HA samples", time.Since(start).Round(time.Millisecond), samples)
	if len(bad) > 0 {
		t.Errorf("%d of %d samples not HA-ready during the rotation:\n%s", len(bad), samples, strings.Join(bad, "\n"))
	}
	for _, m := range members {
		if v := metricLine(t, m.url, "resman_gossip_rejected_total"); v != rejected[m.name] {
			t.Errorf("%s refused gossip during the rotation: resman_gossip_rejected_total %s, was %s", m.name, v, rejected[m.name])
		}
		if auditHas(t, m.url, "need a restart") {
			t.Errorf("%s: a key change was reported as needing a restart", m.name)
		}
		if logs := m.p.logs.String(); strings.Contains(logs, newKey) || strings.Contains(logs, oldKey) {
			t.Errorf("%s logged a gossip key", m.name)
		}
	}
	out, _, _ := cli(t, "audit", "--node", a.mainURL, "--limit", "3")
	t.Logf("the main's audit log:\n%s", out)
	chk.verify(t)
}
