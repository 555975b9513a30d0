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

//go:embed demo.yaml.tmpl
var demoTemplate string

// demoNode is one node of the demo deployment.
type demoNode struct {
	Name, Role, PeerName, DataDir, Token, Exe, LogLevel, MDSPassword, PasswordHash string
	APIPort, PeerAPIPort, SIPPort, MDSPort                                         int
}

func newDemoCmd() *cobra.Command {
	var basePort int
	var dataDir, logLevel string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole deployment on 127.0.0.1 with built-in stand-in services, no setup",
		Long: `Runs a Main and a Standby node on 127.0.0.1, each with a built-in stand-in for
Asterisk (a SIP endpoint checked with SIP OPTIONS), in manual mode. Prints the
URLs and the token, and the commands to fail over and back. Ctrl-C stops it.

The Active node registers to a stand-in media server (MDS) over SIP, and the
registration moves with the Active role.

Ports: the Main's API on --base-port, the Standby's on --base-port+1, the
stand-in SIP endpoints on --base-port+20 and +21, the MDS on --base-port+30.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if basePort < 1024 || basePort > 65000 {
				return usageErr("--base-port must be between 1024 and 65000, got %d", basePort)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, cmd.OutOrStdout(), basePort, dataDir, logLevel)
		},
	}
	cmd.Flags().IntVar(&basePort, "base-port", 9440, "first port of the demo")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "keep state here across demo runs (default: a temporary directory, removed on exit)")
	cmd.Flags().StringVar(&logLevel, "log-level", "warn", "log level of the demo nodes (debug, info, warn, error)")
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
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	mdsPort := basePort + 30
	nodes := []demoNode{
		{Name: "xivo-main", Role: "main", PeerName: "xivo-standby", APIPort: basePort, PeerAPIPort: basePort + 1, SIPPort: basePort + 20},
		{Name: "xivo-standby", Role: "standby", PeerName: "xivo-main", APIPort: basePort + 1, PeerAPIPort: basePort, SIPPort: basePort + 21},
	}
	var cfgs []*config.Config
	for i := range nodes {
		n := &nodes[i]
		n.DataDir, n.Token, n.Exe, n.LogLevel = filepath.Join(dataDir, n.Name), token, exe, logLevel
		n.MDSPort, n.MDSPassword, n.PasswordHash = mdsPort, mdsPassword, string(hash)
		cfg, err := demoConfig(*n)
		if err != nil {
			return err
		}
		cfgs = append(cfgs, cfg)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(cfgs)+1)

	// The MDS stand-in first, so the Active node's first REGISTER finds it.
	mds := registrar.New(registrar.Options{User: "xivo", Password: mdsPassword, Realm: "mds1"})
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := mds.ListenAndServe(ctx, "udp", fmt.Sprintf("127.0.0.1:%d", mdsPort)); err != nil && ctx.Err() == nil {
			errs <- fmt.Errorf("mds stand-in: %w", err)
			cancel()
		}
	}()
	select {
	case <-mds.Ready():
	case <-ctx.Done():
	}
	var readyWG sync.WaitGroup
	// The Standby first, so the Main's first look at its peer finds it
	// (the Main then starts Active, the Standby stays Inactive).
	for _, i := range []int{1, 0} {
		cfg := cfgs[i]
		readyWG.Add(1)
		wg.Add(1)
		logger := newLogger(os.Stderr, cfg.Log).With("node", cfg.Node.Name)
		go func() {
			defer wg.Done()
			if err := runComponents(ctx, cfg, logger, readyWG.Done); err != nil {
				errs <- fmt.Errorf("%s: %w", cfg.Node.Name, err)
				cancel()
			}
		}()
	}
	started := make(chan struct{})
	go func() { readyWG.Wait(); close(started) }()
	select {
	case <-started:
		printDemoBanner(out, nodes, token, password, dataDir)
	case <-ctx.Done():
	}
	<-ctx.Done()
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// demoConfig renders and validates one node's config like any user file.
func demoConfig(n demoNode) (*config.Config, error) {
	t, err := template.New("demo").Parse(demoTemplate)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, n); err != nil {
		return nil, err
	}
	cfg, err := config.Parse(buf.Bytes(), func(string) (string, bool) { return "", false })
	if err != nil {
		return nil, fmt.Errorf("demo config of %s: %w", n.Name, err)
	}
	return cfg, nil
}

func printDemoBanner(w io.Writer, nodes []demoNode, token, password, dataDir string) {
	main, standby := nodes[0], nodes[1]
	url := func(p int) string { return "http://127.0.0.1:" + strconv.Itoa(p) }
	fmt.Fprintf(w, `resman demo: a Main and a Standby PBX node on 127.0.0.1, manual mode.

  Main     %-13s %s   (stand-in Asterisk sip:127.0.0.1:%d)
  Standby  %-13s %s   (stand-in Asterisk sip:127.0.0.1:%d)
  MDS      sip:127.0.0.1:%d   (stand-in media server: the Active node registers to it)
  Web      %s   login admin / %s   (both nodes side by side)
  Token    %s
  Data     %s

Try, in another terminal:
  export RESMAN_TOKEN=%s
  resman status --node %s
  resman services start --node %s --reason "try a second Active"    # refused: the Main is Active
  resman services stop  --node %s --reason "failover to the standby"
  resman services start --node %s --reason "failover to the standby"
  resman audit --node %s
  curl -s %s/active; curl -s %s/metrics | grep resman_node_status

Ctrl-C stops the demo.
`, main.Name, url(main.APIPort), main.SIPPort, standby.Name, url(standby.APIPort), standby.SIPPort,
		main.MDSPort, url(main.APIPort), password, token, dataDir, token, url(main.APIPort), url(standby.APIPort), url(main.APIPort), url(standby.APIPort),
		url(standby.APIPort), url(main.APIPort), url(standby.APIPort))
}

func randomToken() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}
