package edge

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/client/clienttest"
	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/resilience/testkit/sippeers"
)

// sipLimit is the deadline of the waits on real SIP peers: generous, no
// speed is asserted.
const sipLimit = 60 * time.Second

// withSIP adds the SIP front on a low port, each side's PBX at addrs[i].
func withSIP(listen string, addrs ...string) edgeOpt {
	return func(o *Options) {
		o.Config.SIP = &SIP{Listen: listen, Expires: 30, RegisterRate: 200}
		for i := range o.Config.Sides {
			o.Config.Sides[i].SIP = addrs[i]
		}
	}
}

func sippFile(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("sipfront", "testdata", "sipp", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// registered counts the lines of kamailio's location table naming a
// contact of user prefix p.
func registered(loc, p string) int {
	return strings.Count(loc, "sip:"+p)
}

// TestSIPFrontFollowsTheActive: sipp phones on UDP and TCP register and
// call through the Edge to side a (kamailio); side a loses Active to side
// b; the Edge moves every registration to b itself, none is left on a,
// and a phone that did nothing receives a call from side b.
func TestSIPFrontFollowsTheActive(t *testing.T) {
	sippeers.NeedTool(t, "sipp", "sip-tester")
	tpl, err := filepath.Abs(filepath.Join("sipfront", "testdata", "kamailio.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	kamA := sippeers.StartKamailio(t, tpl, testkit.Port(t))
	kamB := sippeers.StartKamailio(t, tpl, testkit.Port(t))
	nodeA, nodeB := lowNode(t, active(2)), lowNode(t, inactive(1))
	sipAddr := "127.0.0.1:" + strconv.Itoa(testkit.Port(t))
	e := startLowEdge(t, fast(), []sideSpec{benchSide("a", nodeA), benchSide("b", nodeB)},
		withSIP(sipAddr, "sip:"+kamA.Addr, "sip:"+kamB.Addr+";transport=tcp"))
	e.waitRouted(t, "a")

	// A phone that only registers, then waits for calls.
	callee := sippeers.StartSipp(t, sippFile(t, "callee.xml"), "-oocsf", sippFile(t, "answer.xml"),
		"-s", "callee", "-m", "1", "-i", "127.0.0.1", "-p", strconv.Itoa(testkit.Port(t)), "-t", "u1", sipAddr)
	// Phones that register: 20 on UDP, 20 on TCP.
	const n = 20
	udp := sippeers.StartSipp(t, sippFile(t, "register.xml"), "-s", "u", "-m", strconv.Itoa(n), "-r", "50",
		"-i", "127.0.0.1", "-p", strconv.Itoa(testkit.Port(t)), "-t", "u1", sipAddr)
	tcp := sippeers.StartSipp(t, sippFile(t, "register.xml"), "-s", "t", "-m", strconv.Itoa(n), "-r", "50",
		"-i", "127.0.0.1", "-p", strconv.Itoa(testkit.Port(t)), "-t", "t1", sipAddr)
	udp.Wait(t, sipLimit)
	tcp.Wait(t, sipLimit)
	testkit.EventuallyWithin(t, sipLimit, func() bool {
		loc := kamA.Locations(t)
		return registered(loc, "u") == n && registered(loc, "t") == n && registered(loc, "callee") == 1
	}, "every phone in side a's location table")
	if loc := kamA.Locations(t); !strings.Contains(loc, "d=s") {
		t.Fatalf("side a's bindings carry no Path of the Edge:\n%s", loc)
	}
	// A TCP phone calls the callee through the Edge and side a.
	caller := sippeers.StartSipp(t, sippFile(t, "caller.xml"), "-s", "callee", "-m", "1",
		"-i", "127.0.0.1", "-p", strconv.Itoa(testkit.Port(t)), "-t", "t1", sipAddr)
	caller.Wait(t, sipLimit)

	// The callee's binding is noted when its 200 passes the Edge, which
	// may be just after side a stored it: wait for the note.
	testkit.EventuallyWithin(t, sipLimit, func() bool {
		st := e.Status().SIP
		return st != nil && st.Registered == 2*n+1 && st.Sides[0].Registered == 2*n+1
	}, "the SIP status to count every phone on side a before the switch")
	// A call that stays up through the switch.
	held := sippeers.StartSipp(t, sippFile(t, "caller_held.xml"), "-s", "callee", "-m", "1",
		"-i", "127.0.0.1", "-p", strconv.Itoa(testkit.Port(t)), "-t", "u1", sipAddr)
	testkit.EventuallyWithin(t, sipLimit, func() bool { return e.Status().SIP.Calls == 1 }, "the held call confirmed")

	// Side a loses Active, side b takes it.
	nodeB.SetAnswer(active(3))
	nodeA.SetAnswer(inactive(2))
	e.waitRouted(t, "b")
	// The Edge ends the held call of side a: both phones get its BYE.
	held.Wait(t, sipLimit)
	testkit.EventuallyWithin(t, sipLimit, func() bool {
		locA, locB := kamA.Locations(t), kamB.Locations(t)
		return registered(locB, "u") == n && registered(locB, "t") == n && registered(locB, "callee") == 1 &&
			registered(locA, "u")+registered(locA, "t")+registered(locA, "callee") == 0
	}, "every phone on side b, none left on side a")
	testkit.EventuallyWithin(t, sipLimit, func() bool {
		r := e.Status().SIP.LastRehome
		return r != nil && r.Done
	}, "the re-homing to end")
	r := e.Status().SIP.LastRehome
	if r.From != "a" || r.To != "b" || r.Bindings != 2*n+1 || r.Moved != 2*n+1 || r.Pending != 0 || r.Max < r.P50 {
		t.Errorf("last re-homing: %+v", r)
	}
	t.Logf("re-homing of %d phones: p50 %.3fs p95 %.3fs max %.3fs", r.Moved, r.P50, r.P95, r.Max)

	// The callee did nothing since (its scenario sends one REGISTER, which
	// sipp retransmits on UDP when the answer is slow, so the trace's
	// REGISTERs are not counted): its binding on side b is the Edge's work,
	// and a call from side b reaches it.
	caller2 := sippeers.StartSipp(t, sippFile(t, "caller.xml"), "-s", "callee", "-m", "1",
		"-i", "127.0.0.1", "-p", strconv.Itoa(testkit.Port(t)), "-t", "u1", sipAddr)
	caller2.Wait(t, sipLimit)
	select {
	case <-callee.Done():
		t.Fatalf("the callee ended early: %v", callee.Err())
	default:
	}
	callee.Stop()
	trace, err := os.ReadFile(filepath.Join(callee.Dir, "messages.log"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(trace), "INVITE sip:callee@"); got < 3 {
		t.Errorf("the callee's trace shows %d INVITEs, want the 3 calls", got)
	}
	if got := strings.Count(string(trace), "the PBX of this call lost Active"); got < 1 {
		t.Errorf("the callee got no BYE of the Edge for the held call")
	}

	// The status API and the metrics say the same.
	req, _ := http.NewRequest("GET", "http://unused"+PathStatus, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	e.APIHandler().ServeHTTP(rec, req)
	var api Status
	if err := json.Unmarshal(rec.Body.Bytes(), &api); err != nil || api.SIP == nil {
		t.Fatalf("status API: %v %s", err, rec.Body.String())
	}
	if api.SIP.Active != "b" || api.SIP.Sides[1].Registered != 2*n+1 || api.SIP.Sides[0].Registered != 0 {
		t.Errorf("status API's sip: %+v", api.SIP)
	}
	if v := testkit.Metric(t, e.reg, "resman_edge_sip_registered", map[string]string{"side": "b"}); v != 2*n+1 {
		t.Errorf("resman_edge_sip_registered{side=b} = %v", v)
	}
	if v := testkit.Metric(t, e.reg, "resman_edge_sip_registered", map[string]string{"side": "a"}); v != 0 {
		t.Errorf("resman_edge_sip_registered{side=a} = %v", v)
	}
}

// lowListener listens on a loopback port below the kernel's ephemeral
// range, as every listener of the SIP tests does.
func lowListener(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(testkit.Port(t)))
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// lowNode is newFakeNode on a port below the ephemeral range.
func lowNode(t testing.TB, a answer) *clienttest.FakeNode {
	t.Helper()
	return newFakeNodeWith(t, a, func(s *httptest.Server) {
		s.Listener.Close()
		s.Listener = lowListener(t)
		s.Start()
	})
}

// startLowEdge is startEdge with the proxy on a port below the ephemeral
// range.
func startLowEdge(t testing.TB, check Check, sides []sideSpec, opts ...edgeOpt) *testEdge {
	t.Helper()
	cfg := Config{Listen: "127.0.0.1:0", Token: testToken, Check: check}
	for _, s := range sides {
		cfg.Sides = append(cfg.Sides, Side{Name: s.name, Node: s.node.URL(), Routes: s.routes})
	}
	reg := prometheus.NewRegistry()
	o := Options{Config: cfg, Token: testToken, Registerer: reg, Logger: testkit.FailureLogger(t), CheckTimeout: waitLimit}
	for _, f := range opts {
		f(&o)
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln := lowListener(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(waitLimit):
			serveDidNotReturn(t)
		}
	})
	return &testEdge{Edge: e, url: "http://" + ln.Addr().String(), reg: reg}
}
