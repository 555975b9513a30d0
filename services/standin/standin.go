// Package standin provides built-in stand-ins for the services of a PBX: a
// SIP endpoint that answers OPTIONS like Asterisk does, and a tiny web app
// that says which side served it. They need no setup, so the demo and the
// real-process tests run them as run: services (resman standin ...).
package standin

import (
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// shutdownTimeout bounds the graceful end of the HTTP stand-in.
const shutdownTimeout = 2 * time.Second

// SIP serves a SIP endpoint on UDP and TCP at addr (host:port) that answers
// OPTIONS with 200 OK. It returns nil when ctx is done, or an error at once
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
		res.AppendHeader(sip.NewHeader("Allow", "OPTIONS"))
		if err := tx.Respond(res); err != nil {
			log.Debug("answer OPTIONS", "from", req.Source(), "error", err)
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

// HTTP serves a tiny web app at addr: / names the side that served it
// ("served by <name>") and /healthz answers ok. It returns nil when ctx is
// done, or an error at once if it cannot listen.
func HTTP(ctx context.Context, addr, name string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen HTTP on %s: %w", addr, err)
	}
	return ServeHTTP(ctx, ln, name, log)
}

// ServeHTTP is HTTP on a listener the caller opened; it closes it when ctx
// is done.
func ServeHTTP(ctx context.Context, ln net.Listener, name string, log *slog.Logger) error {
	log = orDiscard(log).With("component", "standin", "standin", "http")
	srv := &http.Server{
		Handler:           Handler(name),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
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

// Handler is the web app of HTTP, for a caller that serves it itself.
func Handler(name string) http.Handler {
	page := "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>resman demo</title></head>\n" +
		"<body><h1>served by " + html.EscapeString(name) + "</h1></body></html>\n"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Served-By", name)
		_, _ = w.Write([]byte(page))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

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
