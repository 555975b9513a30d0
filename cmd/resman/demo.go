package main

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/resman-pbx/resman/config"
	"github.com/resman-pbx/resman/xds/registrar"
)

// The demo's configs: ordinary resman configs rendered from templates and
// validated like any user file.
var (
	//go:embed demo.yaml.tmpl
	demoNodeTemplate string
	//go:embed demo-cc.yaml.tmpl
	demoCCTemplate string
	//go:embed demo-edge.yaml.tmpl
	demoEdgeTemplate string
)

// demoPorts lays the demo out from one base port.
type demoPorts struct {
	MainAPI, StandbyAPI, EdgeProxy, EdgeAPI, CCMainAPI, CCStandbyAPI  int
	MainSIP, StandbySIP, MainWeb, StandbyWeb, CCMainWeb, CCStandbyWeb int
	MainGossip, StandbyGossip, MDS, EdgeSIP                           int
}

func newDemoPorts(b int) demoPorts {
	return demoPorts{
		MainAPI: b, StandbyAPI: b + 1, EdgeProxy: b + 2, EdgeAPI: b + 3, CCMainAPI: b + 4, CCStandbyAPI: b + 5,
		MainSIP: b + 20, StandbySIP: b + 21, MainWeb: b + 30, StandbyWeb: b + 31, CCMainWeb: b + 32, CCStandbyWeb: b + 33,
		MainGossip: b + 40, StandbyGossip: b + 41, MDS: b + 50, EdgeSIP: b + 22,
	}
}

// demoNode is the data of one node's config.
type demoNode struct {
	Name, Role, PeerName, DataDir, Token, Exe, LogLevel, MDSPassword, PasswordHash, GossipKey, ConfDir string
	APIPort, PeerAPIPort, SIPPort, PeerSIPPort, WebPort, MDSPort, GossipPort, PeerGossipPort           int
}

func newDemoCmd() *cobra.Command {
	var basePort int
	var dataDir, logLevel string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole deployment on 127.0.0.1 with built-in stand-in services, no setup",
		Long: `Runs, on 127.0.0.1, a Main and a Standby node in auto mode (encrypted
heartbeat, automatic failover and failback), each with built-in stand-ins for
Asterisk (a SIP endpoint checked with SIP OPTIONS) and for the PBX's web
interface; a media server (MDS) stand-in the Active node registers to over SIP;
a CC follower next to each node, running its stand-in CC service while its node
is Active; and an Edge in front of both sides, so a browser on one address
follows a failover; and three simulated phones registered through the Edge's
SIP front, which moves them to the Active side. Prints the URLs, the login and
the token. Ctrl-C stops it, and so does the end of the process that started it
(go run, a shell).

Ports, from --base-port B: Main API B, Standby API B+1, Edge B+2 (its status
API B+3), CC APIs B+4 and B+5, SIP stand-ins B+20 and B+21, the Edge's SIP
front B+22, web stand-ins B+30..B+33, gossip B+40 and B+41, MDS B+50.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if basePort < 1024 || basePort > 65000 {
				return usageErr("--base-port must be between 1024 and 65000, got %d", basePort)
			}
			if err := newDemoPorts(basePort).checkFree(basePort); err != nil {
				return withCode(exitFailed, err)
			}
			// The demo ends with whoever started it (go run, a terminal
			// closed), instead of running on unseen and holding its ports.
			if err := stopWithParent(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, cmd.OutOrStdout(), basePort, dataDir, logLevel)
		},
	}
	cmd.Flags().IntVar(&basePort, "base-port", 9440, "first port of the demo")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "keep state here across demo runs (default: a temporary directory, removed on exit)")
	cmd.Flags().StringVar(&logLevel, "log-level", "warn", "log level of the demo components (debug, info, warn, error)")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, basePort int, dataDir, logLevel string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary for the stand-in services: %w", err)
	}
	if dataDir == "" {
		dataDir, err = os.MkdirTemp("", "resman-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dataDir)
	}
	token, mdsPassword, password := randomToken(), randomToken(), randomToken()[:12]
	gossipKey := newGossipKey()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	p := newDemoPorts(basePort)
	nodes := []demoNode{
		{Name: "xivo-main", Role: "main", PeerName: "xivo-standby", APIPort: p.MainAPI, PeerAPIPort: p.StandbyAPI,
			SIPPort: p.MainSIP, PeerSIPPort: p.StandbySIP, WebPort: p.MainWeb, GossipPort: p.MainGossip, PeerGossipPort: p.StandbyGossip},
		{Name: "xivo-standby", Role: "standby", PeerName: "xivo-main", APIPort: p.StandbyAPI, PeerAPIPort: p.MainAPI,
			SIPPort: p.StandbySIP, PeerSIPPort: p.MainSIP, WebPort: p.StandbyWeb, GossipPort: p.StandbyGossip, PeerGossipPort: p.MainGossip},
	}
	// The Standby first, so the Main's first look at its peer finds it.
	var cfgs []*config.Config
	for _, i := range []int{1, 0} {
		n := &nodes[i]
		n.DataDir, n.Token, n.Exe, n.LogLevel = filepath.Join(dataDir, n.Name), token, exe, logLevel
		n.MDSPort, n.MDSPassword, n.PasswordHash, n.GossipKey = p.MDS, mdsPassword, string(hash), gossipKey
		// A configuration tree to replicate; the Main's has content.
		n.ConfDir = filepath.Join(dataDir, n.Name+"-etc-asterisk")
		if err := os.MkdirAll(n.ConfDir, 0o755); err != nil {
			return err
		}
		if n.Role == "main" {
			if err := os.WriteFile(filepath.Join(n.ConfDir, "sip.conf"), []byte("; demo\n[general]\ncontext=default\n"), 0o644); err != nil {
				return err
			}
		}
		cfg, err := demoConfig(n.Name, demoNodeTemplate, *n)
		if err != nil {
			return err
		}
		cfgs = append(cfgs, cfg)
	}
	for _, c := range []struct {
		name             string
		api, follow, web int
	}{{"cc-main", p.CCMainAPI, p.MainAPI, p.CCMainWeb}, {"cc-standby", p.CCStandbyAPI, p.StandbyAPI, p.CCStandbyWeb}} {
		cfg, err := demoConfig(c.name, demoCCTemplate, map[string]any{
			"Name": c.name, "APIPort": c.api, "FollowPort": c.follow, "WebPort": c.web, "Token": token, "Exe": exe,
			"DataDir": filepath.Join(dataDir, c.name), "LogLevel": logLevel,
		})
		if err != nil {
			return err
		}
		cfgs = append(cfgs, cfg)
	}
	edgeCfg, err := demoConfig("edge", demoEdgeTemplate, map[string]any{
		"APIPort": p.EdgeAPI, "ProxyPort": p.EdgeProxy, "Token": token, "LogLevel": logLevel,
		"MainAPIPort": p.MainAPI, "StandbyAPIPort": p.StandbyAPI, "MainWebPort": p.MainWeb, "StandbyWebPort": p.StandbyWeb,
		"MainCCPort": p.CCMainWeb, "StandbyCCPort": p.CCStandbyWeb,
		"SIPPort": p.EdgeSIP, "MainSIPPort": p.MainSIP, "StandbySIPPort": p.StandbySIP,
	})
	if err != nil {
		return err
	}
	cfgs = append(cfgs, edgeCfg)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(cfgs)+1)

	// The MDS stand-in first, so the Active node's first REGISTER finds it,
	// and last to stop, so the Active node's unregistration reaches it.
	mdsCtx, stopMDS := context.WithCancel(context.WithoutCancel(ctx))
	defer stopMDS()
	mdsDone := make(chan struct{})
	mds := registrar.New(registrar.Options{User: "xivo", Password: mdsPassword, Realm: "mds1"})
	go func() {
		defer close(mdsDone)
		if err := mds.ListenAndServe(mdsCtx, "udp", fmt.Sprintf("127.0.0.1:%d", p.MDS)); err != nil && mdsCtx.Err() == nil {
			errs <- fmt.Errorf("mds stand-in: %w", err)
			cancel()
		}
	}()
	select {
	case <-mds.Ready():
	case <-ctx.Done():
	}

	// At the end the followers (CC, Edge) stop first, then the nodes, then
	// the MDS: each stops while what it talks to still answers.
	nodesCtx, stopNodes := context.WithCancel(context.WithoutCancel(ctx))
	defer stopNodes()
	// At the start the nodes come first, so the followers' first look
	// finds them.
	var nodesRunning sync.WaitGroup
	start := func(cfg *config.Config) <-chan struct{} {
		name, cctx, group := "edge", ctx, &wg
		switch {
		case cfg.Node != nil:
			name, cctx, group = cfg.Node.Name, nodesCtx, &nodesRunning
		case cfg.CC != nil:
			name = cfg.CC.Name
		}
		ready := make(chan struct{})
		group.Add(1)
		logger, _ := newLogger(os.Stderr, cfg.Log)
		logger = logger.With("demo", name)
		go func() {
			defer group.Done()
			if err := runComponents(cctx, cfg, logger, runOptions{ready: func() { close(ready) }}); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
		return ready
	}
	waitAll := func(chs []<-chan struct{}) bool {
		for _, ch := range chs {
			select {
			case <-ch:
			case <-ctx.Done():
				return false
			}
		}
		return true
	}
	var nodesReady, followersReady []<-chan struct{}
	for _, cfg := range cfgs {
		if cfg.Node != nil {
			nodesReady = append(nodesReady, start(cfg))
		}
	}
	if waitAll(nodesReady) {
		for _, cfg := range cfgs {
			if cfg.Node == nil {
				followersReady = append(followersReady, start(cfg))
			}
		}
		if waitAll(followersReady) && waitSettled(ctx, p) {
			// The phones, once the Edge routes: the banner shows them.
			phonesIn := make(chan struct{})
			wg.Go(func() { runDemoPhones(ctx, fmt.Sprintf("127.0.0.1:%d", p.EdgeSIP), demoPhoneCount, phonesIn) })
			select {
			case <-phonesIn:
			case <-ctx.Done():
			case <-time.After(30 * time.Second):
			}
			printDemoBanner(out, p, token, password, dataDir, demoCLI())
		}
	}
	<-ctx.Done()
	wg.Wait()
	stopNodes()
	nodesRunning.Wait()
	stopMDS()
	<-mdsDone
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// waitSettled waits until the Main is Active and the Edge serves its web
// app and CC, so that the banner's first commands show the demo at rest. It
// gives up after a minute (the banner is printed all the same) and returns
// false only when ctx ends.
func waitSettled(ctx context.Context, p demoPorts) bool {
	client := &http.Client{Timeout: 2 * time.Second}
	ok := func(url string) bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	url := func(port int, path string) string { return "http://127.0.0.1:" + strconv.Itoa(port) + path }
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if ok(url(p.MainAPI, "/active")) && ok(url(p.EdgeProxy, "/")) && ok(url(p.EdgeProxy, "/cc/")) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return ctx.Err() == nil
}

// demoConfig renders and validates one config like any user file.
func demoConfig(name, tmpl string, data any) (*config.Config, error) {
	t, err := template.New(name).Parse(tmpl)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, err
	}
	cfg, err := config.Parse(buf.Bytes(), func(string) (string, bool) { return "", false })
	if err != nil {
		return nil, fmt.Errorf("demo config of %s: %w", name, err)
	}
	return cfg, nil
}

func printDemoBanner(w io.Writer, p demoPorts, token, password, dataDir, resman string) {
	url := func(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }
	fmt.Fprintf(w, `resman demo: a Main/Standby PBX pair in auto mode on 127.0.0.1, with CC followers,
a media server and an Edge in front.

  Users    %s   the Edge: the Active side's web app (and /cc/), one address
  Web      %s   Resilience Management: login admin / %s
  Main     %s   xivo-main    (stand-in Asterisk sip:127.0.0.1:%d)
  Standby  %s   xivo-standby (stand-in Asterisk sip:127.0.0.1:%d)
  CC       %s  %s   cc-main, cc-standby (follow their node)
  MDS      sip:127.0.0.1:%d   the Active node registers to it
  Phones   sip:127.0.0.1:%d   %d simulated phones register through the Edge's SIP front
  Token    %s
  Data     %s

Try, in another terminal:
%s
Ctrl-C stops the demo.
`, url(p.EdgeProxy), url(p.MainAPI), password, url(p.MainAPI), p.MainSIP, url(p.StandbyAPI), p.StandbySIP,
		url(p.CCMainAPI), url(p.CCStandbyAPI), p.MDS, p.EdgeSIP, demoPhoneCount, token, dataDir, renderDemoTry(p, token, resman))
}

// demoTry is the demo's walkthrough: the banner prints it, the README shows
// it (with the default ports), and TestDemoWalkthrough replays it against a
// running demo, so the three cannot drift apart. In cmd, {{.Resman}} is the
// CLI, {{.Main}}, {{.Standby}}, {{.Edge}} and {{.EdgeAPI}} are URLs,
// {{.MainSIP}} the Main's stand-in Asterisk port.
var demoTry = []struct{ cmd, note string }{
	{"export RESMAN_TOKEN={{.Token}}", ""},
	{"{{.Resman}} status --node {{.Main}}", "both nodes, HA ready"},
	{"curl -s {{.Edge}}/", "the users' address: served by xivo-main"},
	{"curl -s {{.Edge}}/cc/", "the CC behind the same address: cc-main"},
	{demoPhonesCmd, "3 phones through the Edge, on main"},
	{"pkill -f 'standin sip --listen 127.0.0.1:{{.MainSIP}}'", "Asterisk dies on the Main"},
	{"curl -s {{.Edge}}/", "seconds later: served by xivo-standby"},
	{demoPhonesCmd, "the phones moved to standby without re-registering"},
	{"{{.Resman}} audit --node {{.Main}}", "who did what and why; ~10 s later the Main takes back"},
	{`{{.Resman}} services start --node {{.Standby}} --reason "test"`, "refused (exit 3) while the Main is Active"},
	{`{{.Resman}} switchover --node {{.Main}} --sync --reason "maintenance"`, "copy the Main's config, then swap"},
	{`{{.Resman}} switchover --node {{.Standby}} --reason "back"`, "and back, ordered"},
	{`{{.Resman}} failover start --node {{.Main}} --for 1m --reason "test"`, "the Standby for a minute"},
}

// demoPhonesCmd prints how many phones registered through the Edge are
// on each side, from the Edge's metrics.
const demoPhonesCmd = `curl -s {{.EdgeAPI}}/metrics | grep ^resman_edge_sip_registered`

// renderDemoTry renders demoTry for the ports p, one command a line with
// its note aligned. resman is how to call the CLI: "./resman" adds the
// line that builds it from the clone.
func renderDemoTry(p demoPorts, token, resman string) string {
	url := func(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }
	vars := map[string]any{"Token": token, "Resman": resman, "Main": url(p.MainAPI), "Standby": url(p.StandbyAPI),
		"Edge": url(p.EdgeProxy), "EdgeAPI": url(p.EdgeAPI), "MainSIP": p.MainSIP}
	type line struct{ cmd, note string }
	var lines []line
	if resman == "./resman" {
		lines = append(lines, line{"go build -o resman ./cmd/resman", "the CLI, from this clone"})
	}
	for _, st := range demoTry {
		var b strings.Builder
		template.Must(template.New("try").Parse(st.cmd)).Execute(&b, vars)
		lines = append(lines, line{b.String(), st.note})
	}
	width := 0
	for _, l := range lines {
		width = max(width, len(l.cmd))
	}
	var out strings.Builder
	for _, l := range lines {
		if l.note == "" {
			fmt.Fprintf(&out, "  %s\n", l.cmd)
			continue
		}
		fmt.Fprintf(&out, "  %-*s   # %s\n", width, l.cmd, l.note)
	}
	return out.String()
}

// demoCLI is how the banner calls the CLI: resman when this binary is the
// one on PATH, ./resman (built from the clone) under go run, else its path.
func demoCLI() string {
	exe, err := os.Executable()
	if err != nil {
		return "resman"
	}
	if p, err := exec.LookPath("resman"); err == nil {
		if a, err1 := os.Stat(p); err1 == nil {
			if b, err2 := os.Stat(exe); err2 == nil && os.SameFile(a, b) {
				return "resman"
			}
		}
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "./resman"
	}
	return exe
}

func randomToken() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}
