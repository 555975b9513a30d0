package main

// Real-process tests of the CC follower and the Edge proxy: two real nodes
// (manual mode), a CC follower and an Edge as separate resman processes,
// in front of stand-in web apps (resman standin http), driven with the
// CLI through a failover and a failback.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/resman-pbx/resman/cc"
	"github.com/resman-pbx/resman/edge"
	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/services/standin"
)

// ceProc is a process of these tests; it is killed when the test ends and
// its output shown if the test failed.
type ceProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    strings.Builder
	exited chan struct{}
}

func (p *ceProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// ceStart starts a process (env added to resman's) and, when healthz is
// not empty, waits until that URL answers 200.
func ceStart(t *testing.T, name string, env []string, healthz string, args ...string) *ceProc {
	t.Helper()
	p := &ceProc{cmd: exec.Command(binary, args...), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s output:\n%s", name, p.out.String())
			p.mu.Unlock()
		}
	})
	if healthz != "" {
		testkit.Eventually(t, func() bool { return ceGet(healthz) == 200 }, "%s serving", name)
	}
	return p
}

func ceGet(url string) int {
	res, err := http.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// ceJSON GETs url with the token and decodes the answer into v.
func ceJSON(t *testing.T, url string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, res.StatusCode)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func ceWrite(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// answer is one answer the client behind the Edge got.
type answer struct {
	sent     time.Time
	code     int
	servedBy string
}

// edgeClient is a user behind the Edge: plain requests one after the other,
// an event stream and a WebSocket, both reconnected whenever they end.
type edgeClient struct {
	mu       sync.Mutex
	answers  []answer
	events   []string // data lines of the event streams, in order
	streams  int      // event streams opened
	greets   []string // first message of each WebSocket
	wsEchoes int
}

func (c *edgeClient) run(ctx context.Context, base string) *sync.WaitGroup {
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 5 * time.Second}
	wg.Go(func() {
		for ctx.Err() == nil {
			sent := time.Now()
			req, _ := http.NewRequestWithContext(ctx, "GET", base+"/", nil)
			res, err := hc.Do(req)
			if err != nil {
				continue
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			c.mu.Lock()
			c.answers = append(c.answers, answer{sent: sent, code: res.StatusCode, servedBy: res.Header.Get("X-Served-By")})
			c.mu.Unlock()
			pause(ctx, 10*time.Millisecond)
		}
	})
	wg.Go(func() {
		for ctx.Err() == nil {
			c.readEvents(ctx, base)
			pause(ctx, 100*time.Millisecond)
		}
	})
	wg.Go(func() {
		for ctx.Err() == nil {
			c.talkWebSocket(ctx, base)
			pause(ctx, 100*time.Millisecond)
		}
	})
	return &wg
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (c *edgeClient) readEvents(ctx context.Context, base string) {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return
	}
	c.mu.Lock()
	c.streams++
	c.mu.Unlock()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			c.mu.Lock()
			c.events = append(c.events, line)
			c.mu.Unlock()
		}
	}
}

func (c *edgeClient) talkWebSocket(ctx context.Context, base string) {
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	_, msg, err := ws.Read(ctx)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.greets = append(c.greets, string(msg))
	c.mu.Unlock()
	for i := 0; ctx.Err() == nil; i++ {
		if err := ws.Write(ctx, websocket.MessageText, []byte(fmt.Sprint("ping ", i))); err != nil {
			return
		}
		if _, _, err := ws.Read(ctx); err != nil {
			return
		}
		c.mu.Lock()
		c.wsEchoes++
		c.mu.Unlock()
		pause(ctx, 50*time.Millisecond)
	}
}

// lastGreet, lastEvent and lastAnswer give what the client got last.
func (c *edgeClient) lastGreet() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.greets) == 0 {
		return ""
	}
	return c.greets[len(c.greets)-1]
}

func (c *edgeClient) lastEvent() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.events) == 0 {
		return ""
	}
	return c.events[len(c.events)-1]
}

// answeredBy reports whether an answer of code from side came to a
// request sent after since.
func (c *edgeClient) answeredBy(since time.Time, code int, side string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.answers {
		if a.sent.After(since) && a.code == code && a.servedBy == side {
			return true
		}
	}
	return false
}

// servedBetween counts the answers of side to requests sent in [from, to).
func (c *edgeClient) servedBetween(side string, from, to time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, a := range c.answers {
		if a.servedBy == side && !a.sent.Before(from) && a.sent.Before(to) {
			n++
		}
	}
	return n
}

// appRequests is the count of requests a stand-in app served.
func appRequests(t *testing.T, app string) uint64 {
	t.Helper()
	res, err := http.Get(app + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st standin.Stats
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Requests
}

func TestCCAndEdgeFollowFailoverAndFailback(t *testing.T) {
	mainP, standbyP, _, _ := pair(t)
	testkit.Eventually(t, func() bool { return status(t, mainP.url).Status == "active" }, "main active")
	mainEpoch := status(t, mainP.url).Epoch

	// The web apps of both sides, as the Edge's upstreams.
	mainApp := fmt.Sprintf("http://127.0.0.1:%d", freePort(t, "127.0.0.1"))
	standbyApp := fmt.Sprintf("http://127.0.0.2:%d", freePort(t, "127.0.0.2"))
	ceStart(t, "main app", nil, mainApp+"/healthz", "standin", "http", "--listen", strings.TrimPrefix(mainApp, "http://"), "--name", "main")
	ceStart(t, "standby app", nil, standbyApp+"/healthz", "standin", "http", "--listen", strings.TrimPrefix(standbyApp, "http://"), "--name", "standby")

	// The CC follower of the main, with a run: stand-in service.
	ccAPI := fmt.Sprintf("http://127.0.0.1:%d", freePort(t, "127.0.0.1"))
	ccWeb := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	ccCfg := ceWrite(t, "cc.yaml", fmt.Sprintf(`api:
  listen: %s
  token: %s
cc:
  name: cc-main
  follow: %s
  token: %s
  services:
    - name: cc-web
      run: [%s, standin, http, --listen, "%s", --name, cc]
      check: {http: "http://%s/healthz", interval: 200ms, timeout: 200ms, rise: 1}
      timeout: 5s
log: {level: debug}
`, strings.TrimPrefix(ccAPI, "http://"), testToken, mainP.url, testToken, binary, ccWeb, ccWeb))
	ceStart(t, "cc", []string{"RESMAN_CC_DATA_DIR=" + t.TempDir()}, ccAPI+"/healthz", "run", "-c", ccCfg) // the env override of cc.data_dir
	ccStatus := func() cc.Status {
		var st cc.Status
		ceJSON(t, ccAPI+cc.PathStatus, &st)
		return st
	}
	ccFollows := func(want string) {
		t.Helper()
		testkit.Eventually(t, func() bool {
			st := ccStatus()
			if st.Status != want || len(st.Services) != 1 {
				return false
			}
			if want == "active" {
				return st.Services[0].State == "running" && ceGet("http://"+ccWeb+"/healthz") == 200
			}
			return st.Services[0].State == "stopped" && ceGet("http://"+ccWeb+"/healthz") == 0
		}, "cc %v", want)
	}
	ccFollows("active")
	// Alone in its file, the follower answers the CLI like a node.
	if out, stderr, code := cli(t, "status", "--node", ccAPI); code != 0 || !strings.Contains(out, "cc-main (cc, follower mode)  ACTIVE") ||
		!strings.Contains(out, "peer xivo-main: active") {
		t.Fatalf("resman status of the cc: exit %d\n%s%s", code, out, stderr)
	}
	if out, stderr, code := cli(t, "audit", "--node", ccAPI); code != 0 || !strings.Contains(out, fmt.Sprintf("paired node xivo-main is active (epoch %d)", mainEpoch)) {
		t.Fatalf("resman audit of the cc: exit %d\n%s%s", code, out, stderr)
	}

	// The Edge in front of both sides.
	edgeAPI := fmt.Sprintf("http://127.0.0.1:%d", freePort(t, "127.0.0.1"))
	edgeURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t, "127.0.0.1"))
	edgeCfg := ceWrite(t, "edge.yaml", fmt.Sprintf(`api:
  listen: %s
  token: %s
edge:
  listen: %s
  token: %s
  check: {interval: 200ms, rise: 2, fall: 2}
  sides:
    - name: main
      node: %s
      routes: [{path: /, upstream: "%s"}]
    - name: standby
      node: %s
      routes: [{path: /, upstream: "%s"}]
log: {level: debug}
`, strings.TrimPrefix(edgeAPI, "http://"), testToken, strings.TrimPrefix(edgeURL, "http://"), testToken,
		mainP.url, mainApp, standbyP.url, standbyApp))
	ceStart(t, "edge", nil, edgeAPI+"/healthz", "run", "-c", edgeCfg)
	routed := func() string {
		var st edge.Status
		ceJSON(t, edgeAPI+edge.PathStatus, &st)
		return st.Side
	}
	testkit.Eventually(t, func() bool { return routed() == "main" }, "edge routing to main")
	// Alone in its file, the Edge answers the CLI like a node.
	if out, stderr, code := cli(t, "status", "--node", edgeAPI); code != 0 ||
		!strings.Contains(out, fmt.Sprintf("127.0.0.1 (edge, proxy mode)  ACTIVE  epoch %d", mainEpoch)) ||
		!strings.Contains(out, "HA: ready") || !strings.Contains(out, fmt.Sprintf("routed to side main (epoch %d)", mainEpoch)) {
		t.Fatalf("resman status of the edge: exit %d\n%s%s", code, out, stderr)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var client edgeClient
	wg := client.run(ctx, edgeURL)
	defer func() { cancel(); wg.Wait() }()
	start := time.Now()
	testkit.Eventually(t, func() bool {
		return client.answeredBy(start, 200, "main") && client.lastGreet() == "hello from main" &&
			strings.HasSuffix(client.lastEvent(), "from main")
	}, "the client served by main")
	if n := appRequests(t, standbyApp); n != 0 {
		t.Fatalf("the inactive standby's app got %d requests", n)
	}

	// Failover with the CLI: stop the main...
	run := func(args ...string) {
		t.Helper()
		if out, stderr, code := cli(t, args...); code != 0 {
			t.Fatalf("resman %s: exit %d %s %s", strings.Join(args, " "), code, out, stderr)
		}
	}
	run("services", "stop", "--node", mainP.url, "--reason", "e2e failover")
	mainStopped := time.Now()
	testkit.Eventually(t, func() bool { return routed() == "" }, "edge routing to no side")
	edgeSawMainDown := time.Now()
	if out, stderr, code := cli(t, "status", "--node", edgeAPI); code != 0 || !strings.Contains(out, "(edge, proxy mode)  INACTIVE") ||
		!strings.Contains(out, "HA: not ready") || !strings.Contains(out, "  - side main is down: its node is inactive") {
		t.Fatalf("resman status of the edge with no side active: exit %d\n%s%s", code, out, stderr)
	}
	// ...both sides are Inactive: 503 with Retry-After, from the Edge.
	res, err := http.Get(edgeURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" || strings.Contains(string(body), "127.0.0") {
		t.Fatalf("both sides inactive: %d Retry-After %q %s", res.StatusCode, res.Header.Get("Retry-After"), body)
	}
	testkit.Eventually(t, func() bool { return client.answeredBy(edgeSawMainDown, 503, "") }, "the client told 503")
	mainCount := appRequests(t, mainApp)
	ccFollows("inactive")

	// ...and start the standby: everything moves to it.
	standbyStarting := time.Now()
	run("services", "start", "--node", standbyP.url, "--reason", "e2e failover")
	testkit.Eventually(t, func() bool { return routed() == "standby" }, "edge routing to standby")
	testkit.Eventually(t, func() bool {
		return client.answeredBy(standbyStarting, 200, "standby") && client.lastGreet() == "hello from standby" &&
			strings.HasSuffix(client.lastEvent(), "from standby")
	}, "the client served by standby")
	if n := appRequests(t, mainApp); n != mainCount {
		t.Fatalf("the inactive main's app got %d requests after the failover", n-mainCount)
	}
	if st := ccStatus(); st.Status != "inactive" || st.Following.Status != "inactive" {
		t.Fatalf("cc follows the main, which is inactive: %+v", st)
	}

	// Failback: stop the standby, start the main.
	run("services", "stop", "--node", standbyP.url, "--reason", "e2e failback")
	standbyStopped := time.Now()
	testkit.Eventually(t, func() bool { return routed() == "" }, "edge routing to no side again")
	edgeSawStandbyDown := time.Now()
	standbyCount := appRequests(t, standbyApp)
	mainStarting := time.Now()
	run("services", "start", "--node", mainP.url, "--reason", "e2e failback")
	testkit.Eventually(t, func() bool { return routed() == "main" }, "edge routing to main again")
	ccFollows("active")
	testkit.Eventually(t, func() bool {
		return client.answeredBy(mainStarting, 200, "main") && client.lastGreet() == "hello from main" &&
			strings.HasSuffix(client.lastEvent(), "from main")
	}, "the client served by main again")
	if n := appRequests(t, standbyApp); n != standbyCount {
		t.Fatalf("the inactive standby's app got %d requests after the failback", n-standbyCount)
	}
	cancel()
	wg.Wait()

	// No request sent while a side was known Inactive reached it.
	if n := client.servedBetween("main", edgeSawMainDown, mainStarting); n != 0 {
		t.Errorf("%d answers from the main to requests sent while it was inactive", n)
	}
	if n := client.servedBetween("standby", edgeSawStandbyDown, time.Now()); n != 0 {
		t.Errorf("%d answers from the standby to requests sent after it stopped", n)
	}
	// With the nodes' event streams the Edge usually knows before the CLI
	// returns; the checks alone would leave up to an interval.
	t.Logf("answers from a side to requests sent after its stop returned: main %d, standby %d",
		client.servedBetween("main", mainStopped, mainStarting), client.servedBetween("standby", standbyStopped, time.Now()))
	client.mu.Lock()
	defer client.mu.Unlock()
	if client.streams < 3 || len(client.greets) < 3 || client.wsEchoes == 0 {
		t.Errorf("the client reconnected %d event streams and %d WebSockets (%d echoes), want at least 3 each",
			client.streams, len(client.greets), client.wsEchoes)
	}
	t.Logf("client: %d answers, %d event streams, %d WebSockets, greetings %q", len(client.answers), client.streams, len(client.greets), client.greets)
}
