package main

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"text/template"

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
	MainGossip, StandbyGossip, MDS                                    int
}

func newDemoPorts(b int) demoPorts {
	return demoPorts{
		MainAPI: b, StandbyAPI: b + 1, EdgeProxy: b + 2, EdgeAPI: b + 3, CCMainAPI: b + 4, CCStandbyAPI: b + 5,
		MainSIP: b + 20, StandbySIP: b + 21, MainWeb: b + 30, StandbyWeb: b + 31, CCMainWeb: b + 32, CCStandbyWeb: b + 33,
		MainGossip: b + 40, StandbyGossip: b + 41, MDS: b + 50,
	}
}

// demoNode is the data of one node's config.
type demoNode struct {
	Name, Role, PeerName, DataDir, Token, Exe, LogLevel, MDSPassword, PasswordHash, GossipKey, ConfDir string
	APIPort, PeerAPIPort, SIPPort, WebPort, MDSPort, GossipPort, PeerGossipPort                        int
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
follows a failover. Prints the URLs, the login and the token. Ctrl-C stops it,
and so does the end of the process that started it (go run, a shell).

Ports, from --base-port B: Main API B, Standby API B+1, Edge B+2 (its status
API B+3), CC APIs B+4 and B+5, SIP stand-ins B+20 and B+21, web stand-ins
B+30..B+33, gossip B+40 and B+41, MDS B+50.`,
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
	gossipKey := base64.StdEncoding.EncodeToString([]byte(randomToken()[:16]))
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	p := newDemoPorts(basePort)
	nodes := []demoNode{
		{Name: "xivo-main", Role: "main", PeerName: "xivo-standby", APIPort: p.MainAPI, PeerAPIPort: p.StandbyAPI,
			SIPPort: p.MainSIP, WebPort: p.MainWeb, GossipPort: p.MainGossip, PeerGossipPort: p.StandbyGossip},
		{Name: "xivo-standby", Role: "standby", PeerName: "xivo-main", APIPort: p.StandbyAPI, PeerAPIPort: p.MainAPI,
			SIPPort: p.StandbySIP, WebPort: p.StandbyWeb, GossipPort: p.StandbyGossip, PeerGossipPort: p.MainGossip},
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
		logger := newLogger(os.Stderr, cfg.Log).With("demo", name)
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
		if waitAll(followersReady) {
			printDemoBanner(out, p, token, password, dataDir)
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

func printDemoBanner(w io.Writer, p demoPorts, token, password, dataDir string) {
	url := func(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }
	fmt.Fprintf(w, `resman demo: a Main/Standby PBX pair in auto mode on 127.0.0.1, with CC followers,
a media server and an Edge in front.

  Users    %s   the Edge: the Active side's web app (and /cc/), one address
  Web      %s   Resilience Management: login admin / %s
  Main     %s   xivo-main    (stand-in Asterisk sip:127.0.0.1:%d)
  Standby  %s   xivo-standby (stand-in Asterisk sip:127.0.0.1:%d)
  CC       %s  %s   cc-main, cc-standby (follow their node)
  MDS      sip:127.0.0.1:%d   the Active node registers to it
  Token    %s
  Data     %s

Try, in another terminal:
  export RESMAN_TOKEN=%s
  resman status --node %s
  curl -s %s/                # the users' address: served by xivo-main
  pkill -f 'standin sip --listen 127.0.0.1:%d'   # Asterisk dies on the Main:
  curl -s %s/                # ~2 s later the Standby has taken over
  resman audit --node %s   # ...and %s later the Main takes back (failback)
  resman switchover --node %s --sync --reason "maintenance"   # copy %s, then swap
  resman switchover --node %s --reason "back"                 # and back, ordered
  resman failover start --node %s --for 1m --reason "test"    # the Standby for a minute

Ctrl-C stops the demo.
`, url(p.EdgeProxy), url(p.MainAPI), password, url(p.MainAPI), p.MainSIP, url(p.StandbyAPI), p.StandbySIP,
		url(p.CCMainAPI), url(p.CCStandbyAPI), p.MDS, token, dataDir,
		token, url(p.MainAPI), url(p.EdgeProxy), p.MainSIP, url(p.EdgeProxy), url(p.MainAPI), "10 s",
		url(p.MainAPI), filepath.Join(dataDir, "xivo-main-etc-asterisk"), url(p.StandbyAPI), url(p.MainAPI))
}

func randomToken() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}
