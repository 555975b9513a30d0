// Package standin provides built-in stand-ins for the services of a PBX: a
// SIP endpoint that answers OPTIONS like Asterisk does and accepts phones'
// registrations (keeping none: it grants what is asked), and a tiny web app
// that says which side served it, over plain HTTP, an event stream and a
// WebSocket. They need no setup, so the demo and the
// real-process tests run them as run: services (resman standin ...).
package standin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// shutdownTimeout bounds the graceful end of the HTTP stand-in.
const shutdownTimeout = 2 * time.Second

// SIP serves a SIP endpoint on UDP and TCP at addr (host:port) that answers
// OPTIONS and REGISTER with 200 OK. It returns nil when ctx is done, or an error at once
// if it cannot listen. With port 0, TCP takes the port UDP was given.
func SIP(ctx context.Context, addr string, log *slog.Logger) error {
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("listen SIP on udp %s: %w", addr, err)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		udp.Close()
		return fmt.Errorf("listen SIP on %s: %w", addr, err)
	}
	port := udp.LocalAddr().(*net.UDPAddr).Port
	tcp, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		udp.Close()
		return fmt.Errorf("listen SIP on tcp %s: %w", addr, err)
	}
	return ServeSIP(ctx, udp, tcp, log)
}

// ServeSIP is SIP on listeners the caller opened; either may be nil. It
// closes them when ctx is done.
func ServeSIP(ctx context.Context, udp net.PacketConn, tcp net.Listener, log *slog.Logger) error {
	log = orDiscard(log).With("component", "standin", "standin", "sip")
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("resman-standin"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)),
	)
	if err != nil {
		closeAll(udp, tcp)
		return fmt.Errorf("create SIP user agent: %w", err)
	}
	defer ua.Close()
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err != nil {
		closeAll(udp, tcp)
		return fmt.Errorf("create SIP server: %w", err)
	}
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		res.AppendHeader(sip.NewHeader("Allow", "OPTIONS, REGISTER"))
		if err := tx.Respond(res); err != nil {
			log.Debug("answer OPTIONS", "from", req.Source(), "error", err)
		}
	})
	// The demo's phones register through the Edge: granted as asked (up
	// to an hour), nothing kept.
	srv.OnRegister(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		expires := 3600
		if h := req.GetHeader("Expires"); h != nil {
			if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n >= 0 {
				expires = min(n, 3600)
			}
		}
		for _, h := range req.GetHeaders("Contact") {
			c, ok := h.(*sip.ContactHeader)
			if !ok || c.Address.Wildcard {
				continue
			}
			e := expires
			if v, ok := c.Params.Get("expires"); ok {
				if n, err := strconv.Atoi(v); err == nil && n >= 0 {
					e = min(n, 3600)
				}
			}
			if e > 0 {
				res.AppendHeader(sip.NewHeader("Contact", "<"+c.Address.String()+">;expires="+strconv.Itoa(e)))
			}
		}
		if err := tx.Respond(res); err != nil {
			log.Debug("answer REGISTER", "from", req.Source(), "error", err)
		}
	})

	var wg sync.WaitGroup
	if udp != nil {
		log.Info("listening", "network", "udp", "addr", udp.LocalAddr().String())
		wg.Go(func() { _ = srv.ServeUDP(udp) })
	}
	if tcp != nil {
		log.Info("listening", "network", "tcp", "addr", tcp.Addr().String())
		wg.Go(func() { _ = srv.ServeTCP(tcp) })
	}
	<-ctx.Done()
	// Closing the listeners ends the serve loops.
	closeAll(udp, tcp)
	wg.Wait()
	return nil
}

// HTTP serves a tiny web app at addr (see Handler). It returns nil when ctx
// is done, or an error at once if it cannot listen.
func HTTP(ctx context.Context, addr, name string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen HTTP on %s: %w", addr, err)
	}
	return ServeHTTP(ctx, ln, name, log)
}

// ServeHTTP is HTTP on a listener the caller opened; it closes it when ctx
// is done. Event streams and WebSockets end with ctx.
func ServeHTTP(ctx context.Context, ln net.Listener, name string, log *slog.Logger) error {
	log = orDiscard(log).With("component", "standin", "standin", "http")
	srv := &http.Server{
		Handler:           Handler(name),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// Requests see ctx end: streams stop at shutdown.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	log.Info("listening", "addr", ln.Addr().String(), "name", name)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve HTTP on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTP on %s: %w", ln.Addr(), err)
	}
	return nil
}

// TickInterval is the period of the /events stream.
const TickInterval = time.Second

// Stats is the answer of GET /stats.
type Stats struct {
	Name string `json:"name"`
	// Requests counts the requests served but /healthz and /stats.
	Requests uint64 `json:"requests"`
}

// Handler is the web app of HTTP, for a caller that serves it itself:
//
//   - / names the side that served it ("served by <name>") and shows the
//     /events and /ws feeds live, so a browser follows a failover;
//   - /events is a Server-Sent Events stream: "tick N from <name>" every
//     TickInterval, the first at once;
//   - /ws is a WebSocket that sends "hello from <name>", then echoes
//     every message;
//   - /healthz answers ok; /stats counts the other requests (Stats).
//
// Every answer but /healthz carries X-Served-By: <name>.
func Handler(name string) http.Handler {
	page := strings.ReplaceAll(pageTemplate, "{{name}}", html.EscapeString(name))
	var requests atomic.Uint64
	mux := http.NewServeMux()
	counted := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			w.Header().Set("X-Served-By", name)
			h(w, r)
		}
	}
	// The page at / and at any path ending in /: behind the Edge a
	// stand-in also serves a route's prefix, like the demo's /cc/.
	mux.HandleFunc("GET /", counted(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(page))
	}))
	mux.HandleFunc("GET /events", counted(func(w http.ResponseWriter, r *http.Request) {
		serveEvents(w, r, name)
	}))
	mux.HandleFunc("GET /ws", counted(func(w http.ResponseWriter, r *http.Request) {
		serveWebSocket(w, r, name)
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Served-By", name)
		_ = json.NewEncoder(w).Encode(Stats{Name: name, Requests: requests.Load()})
	})
	return mux
}

// serveEvents streams a tick naming the side every TickInterval until the
// client or the server goes away.
func serveEvents(w http.ResponseWriter, r *http.Request, name string) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// A browser reconnects a second after the stream breaks.
	if _, err := io.WriteString(w, "retry: 1000\n\n"); err != nil {
		return
	}
	t := time.NewTicker(TickInterval)
	defer t.Stop()
	for n := 1; ; n++ {
		if _, err := fmt.Fprintf(w, "data: tick %d from %s\n\n", n, name); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

// serveWebSocket greets with the side's name, then echoes.
func serveWebSocket(w http.ResponseWriter, r *http.Request, name string) {
	// The page may come through a proxy under another host name: accept
	// any origin (a stand-in, not a product).
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept has answered
	}
	defer c.CloseNow()
	ctx := r.Context()
	if err := c.Write(ctx, websocket.MessageText, []byte("hello from "+name)); err != nil {
		return
	}
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				c.Close(websocket.StatusGoingAway, "server shutting down")
			}
			return
		}
		if err := c.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}

// pageTemplate is the page of /; {{name}} is the escaped side name.
const pageTemplate = `<!doctype html>
<html><head><meta charset="utf-8"><title>resman demo</title>
<style>body{font-family:sans-serif;margin:2em}code{background:#eee;padding:0 .3em}</style></head>
<body><h1>served by {{name}}</h1>
<p>Event stream: <code id="sse">connecting</code></p>
<p>WebSocket: <code id="ws">connecting</code></p>
<script>
const base = location.pathname.replace(/[^/]*$/, "");
const es = new EventSource(base + "events");
es.onmessage = (e) => { document.getElementById("sse").textContent = e.data; };
es.onerror = () => { document.getElementById("sse").textContent = "reconnecting"; };
function connect() {
  const s = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + base + "ws");
  let n = 0, timer;
  s.onmessage = (e) => { document.getElementById("ws").textContent = e.data; };
  s.onopen = () => { timer = setInterval(() => s.send("ping " + (++n)), 1000); };
  s.onclose = () => {
    clearInterval(timer);
    document.getElementById("ws").textContent = "reconnecting";
    setTimeout(connect, 1000);
  };
}
connect();
</script>
</body></html>
`

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

func closeAll(udp net.PacketConn, tcp net.Listener) {
	if udp != nil {
		udp.Close()
	}
	if tcp != nil {
		tcp.Close()
	}
}
