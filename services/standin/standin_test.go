package standin

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/resman-pbx/resman/resilience/testkit"
)

const waitLimit = 10 * time.Second

// serve runs f until the test ends and checks it returns nil then.
func serve(t *testing.T, f func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server returned %v, want nil after its context was done", err)
			}
		case <-time.After(waitLimit):
			t.Error("server did not return after its context was done")
		}
	})
}

// options sends OPTIONS to uri and returns the final status code.
func options(t *testing.T, uri string) int {
	t.Helper()
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	client, err := sipgo.NewClient(ua)
	if err != nil {
		t.Fatal(err)
	}
	var to sip.Uri
	if err := sip.ParseUri(uri, &to); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	res, err := client.Do(ctx, sip.NewRequest(sip.OPTIONS, to))
	if err != nil {
		t.Fatalf("OPTIONS %s: %v", uri, err)
	}
	return res.StatusCode
}

func TestSIPAnswersOptions(t *testing.T) {
	port := strconv.Itoa(testkit.Port(t)) // reserved, and free for both UDP and TCP
	udp, err := net.ListenPacket("udp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		udp.Close()
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) error { return ServeSIP(ctx, udp, tcp, nil) })
	for _, uri := range []string{"sip:127.0.0.1:" + port, "sip:127.0.0.1:" + port + ";transport=tcp"} {
		if code := options(t, uri); code != 200 {
			t.Errorf("OPTIONS %s = %d, want 200", uri, code)
		}
	}
}

// The demo's phones register to the stand-in Asterisk through the Edge:
// it grants what they ask.
func TestSIPAcceptsRegister(t *testing.T) {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) error { return ServeSIP(ctx, udp, nil, nil) })
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	client, err := sipgo.NewClient(ua)
	if err != nil {
		t.Fatal(err)
	}
	var to sip.Uri
	if err := sip.ParseUri("sip:"+udp.LocalAddr().String(), &to); err != nil {
		t.Fatal(err)
	}
	req := sip.NewRequest(sip.REGISTER, to)
	req.AppendHeader(sip.NewHeader("Contact", "<sip:1001@127.0.0.1:5999>"))
	req.AppendHeader(sip.NewHeader("Expires", "120"))
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	res, err := client.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("REGISTER = %d, want 200", res.StatusCode)
	}
	if c := res.GetHeader("Contact"); c == nil || !strings.Contains(c.Value(), "expires=120") {
		t.Errorf("Contact %v: want the contact with expires=120", c)
	}
}

func TestSIPListensOnAddr(t *testing.T) {
	// A port free on both transports, below the kernel's ephemeral range
	// (where a kernel-given UDP port's TCP twin may be some connection's).
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testkit.Port(t)))
	serve(t, func(ctx context.Context) error { return SIP(ctx, addr, nil) })
	// SIP may not be listening yet: retry until the TCP port answers.
	testkit.Until(t, func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}, func(err error) bool { return err == nil }, "SIP to listen on tcp %s", addr)
	if code := options(t, "sip:"+addr); code != 200 {
		t.Errorf("OPTIONS over UDP = %d, want 200", code)
	}
}

func TestSIPCannotListen(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := SIP(ctx, taken.LocalAddr().String(), nil); err == nil || !strings.Contains(err.Error(), "listen SIP") {
		t.Errorf("SIP on a taken port = %v, want a listen error", err)
	}
	if err := SIP(ctx, "no-port", nil); err == nil {
		t.Error("SIP on an address without port succeeded")
	}
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(body), res.Header
}

func TestHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) error { return ServeHTTP(ctx, ln, "main <1>", nil) })
	base := "http://" + ln.Addr().String()

	code, body, h := get(t, base+"/")
	if code != 200 || !strings.Contains(body, "served by main &lt;1&gt;") || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Errorf("GET / = %d %q, want 200 naming the side, escaped", code, body)
	}
	if code, body, _ := get(t, base+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("GET /healthz = %d %q, want 200 ok", code, body)
	}
	if code, body, _ := get(t, base+"/cc/"); code != 200 || !strings.Contains(body, "served by main &lt;1&gt;") {
		t.Errorf("GET /cc/ = %d %q, want the page: an Edge route's prefix", code, body)
	}
	if code, _, _ := get(t, base+"/nope"); code != 404 {
		t.Errorf("GET /nope = %d, want 404", code)
	}
}

func TestHTTPCannotListen(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := HTTP(ctx, taken.Addr().String(), "main", nil); err == nil || !strings.Contains(err.Error(), "listen HTTP") {
		t.Errorf("HTTP on a taken port = %v, want a listen error", err)
	}
}

func TestHTTPEventsAndWebSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) error { return ServeHTTP(ctx, ln, "standby", nil) })
	base := "http://" + ln.Addr().String()

	// The event stream names the side at once and keeps ticking.
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" || res.Header.Get("X-Served-By") != "standby" {
		t.Errorf("/events: Content-Type %q, X-Served-By %q", ct, res.Header.Get("X-Served-By"))
	}
	sc := bufio.NewScanner(res.Body)
	var ticks []string
	for sc.Scan() && len(ticks) < 2 {
		if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			ticks = append(ticks, line)
		}
	}
	res.Body.Close()
	if len(ticks) != 2 || ticks[0] != "tick 1 from standby" || ticks[1] != "tick 2 from standby" {
		t.Errorf("ticks = %q", ticks)
	}

	// The WebSocket greets with the name, then echoes.
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "hello from standby" {
		t.Fatalf("greeting = %q, %v", msg, err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "ping" {
		t.Fatalf("echo = %q, %v", msg, err)
	}
	c.Close(websocket.StatusNormalClosure, "")

	// /stats counted /events and /ws, not itself nor /healthz.
	get(t, base+"/healthz")
	_, body, _ := get(t, base+"/stats")
	var st Stats
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Name != "standby" || st.Requests != 2 {
		t.Errorf("/stats = %s (%v), want 2 requests", body, err)
	}
}

func TestHTTPPageShowsFeeds(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler("main").ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	body := rec.Body.String()
	for _, want := range []string{"served by main", `EventSource(base + "events")`, `base + "ws"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if rec.Header().Get("X-Served-By") != "main" {
		t.Errorf("X-Served-By = %q", rec.Header().Get("X-Served-By"))
	}
}
