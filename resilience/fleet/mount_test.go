package fleet_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/fleet"
	"github.com/resman-pbx/resman/resilience/web"
)

// The wiring of resman run (fleet/README.md): the Handler mounted under
// PathAPI and PathPage on the API listener of a process without a node,
// the metrics on its /metrics.
func TestMountedOnTheAPIListener(t *testing.T) {
	t.Parallel()
	s := fleet.NewSim(t, 2)
	reg := prometheus.NewRegistry()
	a, err := fleet.New(fleet.Options{Config: fleet.Config{Pairs: s.Pairs(), Interval: 100 * time.Millisecond}, Token: fleet.AggToken, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Handler()
	srv := web.New(nil, web.Options{Token: fleet.AggToken, Gatherer: reg, Registerer: reg,
		Mounts: []web.Mount{{Prefix: fleet.PathAPI, Handler: h}, {Prefix: fleet.PathPage, Handler: h}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
	})
	url := "http://" + ln.Addr().String()
	ps := fleet.WaitAllPolled(t, &http.Client{}, url, 5*time.Second)
	if len(ps) != 2 || !ps[0].Ready {
		t.Fatalf("%+v", ps)
	}
	resp, body := fleet.Do(t, http.MethodGet, url+fleet.PathAPI, "")
	if resp.StatusCode != 401 {
		t.Errorf("no token: %d %s", resp.StatusCode, body)
	}
	resp, body = fleet.Do(t, http.MethodGet, url+fleet.PathEvents, fleet.AggToken)
	if resp.StatusCode != 200 || !strings.Contains(body, `"events":[`) {
		t.Errorf("events: %d %s", resp.StatusCode, body)
	}
	resp, body = fleet.Do(t, http.MethodGet, url+fleet.PathPage, "")
	if resp.StatusCode != 200 || !strings.Contains(body, "fleet.js") {
		t.Errorf("page: %d", resp.StatusCode)
	}
	resp, _ = fleet.Do(t, http.MethodGet, url+fleet.PathPage+"/fleet.js", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("fleet.js: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	mresp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !strings.Contains(string(b), `resman_fleet_pair_ready{pair="p00000"} 1`) {
		t.Errorf("/metrics has no resman_fleet_pair_ready of p00000")
	}
}
