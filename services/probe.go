package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

var errNoCheck = errors.New("no check kind set (sip, exec, tcp or http)")

// maxHTTPBody is how much of an http check's answer is read before the
// connection is dropped.
const maxHTTPBody = 64 << 10

// probers holds what the probes of one Run share.
type probers struct {
	sup  *Supervisor
	http *http.Client
	ua   *sipgo.UserAgent // nil without sip checks or when it failed
	sip  *sipgo.Client
	// sipErr is why there is no SIP client; every sip probe fails with it.
	sipErr error
}

func (s *Supervisor) newProbers() *probers {
	p := &probers{
		sup: s,
		http: &http.Client{
			// A probe measures a fresh connection to the local service,
			// never through a proxy from the environment.
			Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
			// 3xx passes; following it would probe another service.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	for _, svc := range s.services {
		if svc.check != nil && svc.check.kind == KindSIP {
			p.ua, p.sip, p.sipErr = newSIPClient(s.log)
			if p.sipErr != nil {
				s.log.Error("cannot create SIP client; sip checks will fail", "error", p.sipErr)
			}
			break
		}
	}
	return p
}

func (p *probers) close() {
	p.http.CloseIdleConnections()
	if p.ua != nil {
		if err := p.ua.Close(); err != nil {
			p.sup.log.Debug("close SIP user agent", "error", err)
		}
	}
}

// newSIPClient makes the one SIP user agent of a Run. sipgo's process-wide
// settings (timers, default logger) are left alone.
func newSIPClient(log *slog.Logger) (*sipgo.UserAgent, *sipgo.Client, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	sipLog := log.With("sip", true)
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("resman"),
		// From would say localhost otherwise.
		sipgo.WithUserAgentHostname(host),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(sipLog)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(sipLog)),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("create SIP user agent: %w", err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(sipLog))
	if err != nil {
		ua.Close()
		return nil, nil, fmt.Errorf("create SIP client: %w", err)
	}
	return ua, client, nil
}

// probe runs one check; ctx carries the check's timeout.
func (c *checker) probe(ctx context.Context, p *probers) error {
	switch c.kind {
	case KindExec:
		return p.sup.runCommand(ctx, c.timeout, c.exec)
	case KindTCP:
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", c.target)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		conn.Close()
		return nil
	case KindHTTP:
		return probeHTTP(ctx, p.http, c.target)
	case KindSIP:
		if p.sip == nil {
			return p.sipErr
		}
		return probeSIP(ctx, p.sip, c.sip)
	}
	return errNoCheck
}

// probeHTTP passes on a GET answered with 200-399.
func probeHTTP(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("build GET %s: %w", url, err)
	}
	req.Header.Set("User-Agent", "resman-check")
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxHTTPBody))
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 399 {
		return fmt.Errorf("GET %s: status %s", url, res.Status)
	}
	return nil
}

// probeSIP passes on any final answer to OPTIONS below 500: Asterisk
// answers 200, and even a 404 or 405 proves the SIP stack is alive.
// ctx must have a deadline: sipgo waits 32 s for a silent UDP peer.
func probeSIP(ctx context.Context, client *sipgo.Client, to sipTarget) error {
	req := sip.NewRequest(sip.OPTIONS, to.uri)
	res, err := client.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("SIP OPTIONS %s: %w", to.text, err)
	}
	if res.StatusCode >= 500 {
		return fmt.Errorf("SIP OPTIONS %s: %d %s", to.text, res.StatusCode, res.Reason)
	}
	return nil
}

// sipTarget is the parsed URI of a sip check.
type sipTarget struct {
	uri  sip.Uri
	text string
}

// parseSIPTarget parses a sip check's target: a SIP URI such as
// "sip:127.0.0.1:5060" or "sip:pbx.example.com;transport=tcp". A bare
// "host:port" is taken as "sip:host:port".
func parseSIPTarget(s string) (sipTarget, error) {
	text := strings.TrimSpace(s)
	if text == "" {
		return sipTarget{}, errors.New("empty SIP URI")
	}
	lower := strings.ToLower(text)
	if !strings.HasPrefix(lower, "sip:") && !strings.HasPrefix(lower, "sips:") {
		text = "sip:" + text
	}
	var uri sip.Uri
	if err := sip.ParseUri(text, &uri); err != nil {
		return sipTarget{}, fmt.Errorf("parse SIP URI %q: %w", s, err)
	}
	if uri.Host == "" {
		return sipTarget{}, fmt.Errorf("SIP URI %q has no host", s)
	}
	if uri.Port < 0 || uri.Port > 65535 {
		return sipTarget{}, fmt.Errorf("SIP URI %q: port %d out of range", s, uri.Port)
	}
	return sipTarget{uri: uri, text: text}, nil
}
