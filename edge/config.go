package edge

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/resman-pbx/resman/config/confcheck"
	"github.com/resman-pbx/resman/services/hysteresis"
)

// This file is the edge section of the config file: its keys, defaults and
// checks. Package config composes it into the file's Config and keeps the
// rules that span sections: edge.listen differs from api.listen, and no
// two TCP listeners of the file (Listeners) share an address.

// Config is the reverse proxy in front of both sides.
type Config struct {
	// Listen is the proxy's host:port. Required.
	Listen string `mapstructure:"listen"`
	// Token is the nodes' api.token, used to ask which side is Active.
	// Required. Secret.
	Token string `mapstructure:"token" secret:"true" secretkind:"token"`
	Check Check  `mapstructure:"check"`
	// Sides lists one or two sides. Not env-overridable.
	Sides []Side `mapstructure:"sides"`
	// TLS, when set, makes the proxy listener serve HTTPS.
	TLS *TLS `mapstructure:"tls"`
	// SIP, when set, runs the SIP front: phones register and call through
	// the Edge, to the side that is Active (edge/sipfront).
	SIP *SIP `mapstructure:"sip"`
}

// SIP is the Edge's SIP front.
type SIP struct {
	// Listen is the host:port the front listens on, UDP and TCP. Required.
	Listen string `mapstructure:"listen"`
	// Advertise is the host (or host:port) written in Via, Record-Route
	// and Path: the address phones and PBXs reach the Edge at. Default:
	// the host and port of Listen; required when Listen has no host or an
	// unspecified one (0.0.0.0).
	Advertise string `mapstructure:"advertise"`
	// Expires is the registration expiry, in seconds, granted to phones:
	// how long a phone may take to come back after a restart of the Edge,
	// and how often it refreshes. Default: 60.
	Expires int `mapstructure:"expires"`
	// RegisterRate bounds the REGISTERs per second the Edge itself sends
	// to one side (re-homing after a switch, removals). Default: 200, which
	// moves 1,000 phones in 5 s; an Asterisk takes several hundred a second.
	RegisterRate int `mapstructure:"register_rate"`
	// TLS, when set, is the certificate phones check on SIP over TLS and
	// secure WebSocket, and with Listen the SIP over TLS listener. Off by
	// default. The Edge's hops to the sides stay as edge.sides[].sip says.
	TLS *SIPTLS `mapstructure:"tls"`
	// WS, when set, is SIP over WebSocket (RFC 7118) for WebRTC
	// softphones; WSS the same over TLS, with edge.sip.tls's certificate.
	// Off by default.
	WS  *SIPListen `mapstructure:"ws"`
	WSS *SIPListen `mapstructure:"wss"`
}

// SIPTLS is SIP over TLS towards phones: PEM files, and the listener.
type SIPTLS struct {
	// Listen is the host:port of SIP over TLS (SIPS), like 0.0.0.0:5061.
	// Optional when edge.sip.wss is set (the certificate serves it only).
	Listen string `mapstructure:"listen"`
	Cert   string `mapstructure:"cert"`
	// Key is the private key file's path (tagged secret to stay out of
	// printed configs, as edge.tls.key).
	Key string `mapstructure:"key" secret:"true" secretkind:"path"`
}

// SIPListen is a listener of the SIP front: its host:port (TCP).
type SIPListen struct {
	Listen string `mapstructure:"listen"`
}

// TLS is the certificate of the Edge's HTTPS listener: PEM files.
type TLS struct {
	Cert string `mapstructure:"cert"`
	// Key is the private key file's path (tagged secret to stay out of
	// printed configs, as keys' paths often tell where secrets live).
	Key string `mapstructure:"key" secret:"true" secretkind:"path"`
}

// Check is the Edge's health check of each side's node.
type Check struct {
	// Interval between checks. Default: 500ms.
	Interval time.Duration `mapstructure:"interval"`
	// Timeout of one check. Default: the interval.
	Timeout time.Duration `mapstructure:"timeout"`
	// Rise consecutive passes and Fall consecutive failures change a side's
	// state. Defaults: 2 and 2.
	Rise int `mapstructure:"rise"`
	Fall int `mapstructure:"fall"`
}

// Side is one side (main or standby) behind the Edge.
type Side struct {
	// Name is unique among sides. Required.
	Name string `mapstructure:"name"`
	// Node is the base URL of the side's node API. Required.
	Node string `mapstructure:"node"`
	// Routes, at least one.
	Routes []Route `mapstructure:"routes"`
	// SIP is the side's PBX SIP address, a sip: URI like sip:10.0.0.1:5060
	// (;transport=tcp for TCP). Required when edge.sip is set.
	SIP string `mapstructure:"sip"`
	// UpstreamTLS, when set, says how the side's https connections are
	// verified: its routes' https upstreams and its node, when https.
	// Without it, their certificates are checked against the system's
	// roots and the URL's host.
	UpstreamTLS *UpstreamTLS `mapstructure:"upstream_tls"`
}

// UpstreamTLS is how the Edge verifies a side's https servers: a PBX's
// web server often has its own self-signed certificate.
type UpstreamTLS struct {
	// CAFile is a PEM file of certificates (a CA, or the server's
	// self-signed certificate) trusted instead of the system's roots.
	CAFile string `mapstructure:"ca_file"`
	// ServerName is sent as SNI and checked against the certificate
	// instead of the URL's host. The Host header is not changed.
	ServerName string `mapstructure:"server_name"`
	// InsecureSkipVerify accepts any certificate (logged as a warning and
	// shown in the Edge's status). Default: false.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
}

// Route maps a path prefix to an upstream on one side.
type Route struct {
	// Path is a prefix starting with /.
	Path string `mapstructure:"path"`
	// Upstream is an http(s) URL.
	Upstream string `mapstructure:"upstream"`
}

// ApplyDefaults fills the section's defaults for the keys given reports
// absent.
func (e *Config) ApplyDefaults(given confcheck.Given) {
	confcheck.Default(given, "edge.check.interval", &e.Check.Interval, 500*time.Millisecond)
	confcheck.Default(given, "edge.check.timeout", &e.Check.Timeout, e.Check.Interval)
	confcheck.Default(given, "edge.check.rise", &e.Check.Rise, hysteresis.DefaultRise)
	confcheck.Default(given, "edge.check.fall", &e.Check.Fall, hysteresis.DefaultFall)
	if sp := e.SIP; sp != nil {
		confcheck.Default(given, "edge.sip.expires", &sp.Expires, 60)
		confcheck.Default(given, "edge.sip.register_rate", &sp.RegisterRate, 500)
	}
}

// Listener is one TCP listener of the Edge: its key and address.
type Listener struct{ Key, Addr string }

// Listeners lists the Edge's TCP listeners in schema order: edge.listen,
// then, with edge.sip, edge.sip.listen, edge.sip.tls.listen (when set),
// edge.sip.ws.listen and edge.sip.wss.listen. Package config checks that
// no two listeners of the file share an address.
func (e *Config) Listeners() []Listener {
	ls := []Listener{{"edge.listen", e.Listen}}
	sp := e.SIP
	if sp == nil {
		return ls
	}
	ls = append(ls, Listener{"edge.sip.listen", sp.Listen})
	if sp.TLS != nil && sp.TLS.Listen != "" {
		ls = append(ls, Listener{"edge.sip.tls.listen", sp.TLS.Listen})
	}
	if sp.WS != nil {
		ls = append(ls, Listener{"edge.sip.ws.listen", sp.WS.Listen})
	}
	if sp.WSS != nil {
		ls = append(ls, Listener{"edge.sip.wss.listen", sp.WSS.Listen})
	}
	return ls
}

// Validate checks the section, defaults filled, and records its problems
// in ps.
func (e *Config) Validate(ps *confcheck.Problems) {
	ps.Required("edge.listen", e.Listen, "the proxy's host:port, like 0.0.0.0:8443")
	ps.HostPort("edge.listen", e.Listen, false, "0.0.0.0:8443")
	ps.Token("edge.token", e.Token, "the nodes' api.token")
	ps.Positive("edge.check.interval", e.Check.Interval)
	if e.Check.Interval > 0 { // else the timeout's default is wrong too: one error is enough
		ps.Positive("edge.check.timeout", e.Check.Timeout)
	}
	if e.Check.Timeout > e.Check.Interval && e.Check.Interval > 0 {
		ps.Add("edge.check.timeout", "must be at most edge.check.interval (%s), got %s", e.Check.Interval, e.Check.Timeout)
	}
	if t := e.TLS; t != nil {
		if t.Cert == "" {
			ps.Add("edge.tls.cert", "required: the PEM file of the certificate, like /etc/resman/edge.crt")
		}
		if t.Key == "" {
			ps.Add("edge.tls.key", "required: the PEM file of the private key, like /etc/resman/edge.key")
		}
	}
	ps.AtLeastOne("edge.check.rise", e.Check.Rise)
	ps.AtLeastOne("edge.check.fall", e.Check.Fall)
	if n := len(e.Sides); n < 1 || n > 2 {
		ps.Add("edge.sides", "must list 1 or 2 sides (main, standby), got %d", n)
	}
	seen := map[string]int{}
	for i, s := range e.Sides {
		key := fmt.Sprintf("edge.sides[%d]", i)
		ps.NameIn(seen, "edge.sides", i, s.Name, "a side name, like main")
		ps.URL(key+".node", s.Node, true, "http://10.0.0.1:9440")
		if len(s.Routes) == 0 {
			ps.Add(key+".routes", "list at least one route (path, upstream)")
		}
		paths := map[string]int{}
		for j, r := range s.Routes {
			rkey := fmt.Sprintf("%s.routes[%d]", key, j)
			switch {
			case !strings.HasPrefix(r.Path, "/"):
				ps.Add(rkey+".path", "must start with /, like /api, got %q", r.Path)
			case strings.ContainsFunc(r.Path, unicode.IsSpace):
				ps.Add(rkey+".path", "must not contain spaces, got %q", r.Path)
			default:
				if k, dup := paths[r.Path]; dup {
					ps.Add(rkey+".path", "duplicate of %s.routes[%d].path %q", key, k, r.Path)
				}
				paths[r.Path] = j
			}
			ps.URL(rkey+".upstream", r.Upstream, true, "http://10.0.0.21:8080")
		}
		s.validateUpstreamTLS(ps, key+".upstream_tls")
		validateSideSIP(ps, key+".sip", s.SIP, e.SIP != nil)
	}
	if e.SIP != nil {
		e.SIP.validate(ps)
	}
}

// validate checks edge.sip, the SIP front, but for the addresses its
// listeners share with others (package config checks them all).
func (sp *SIP) validate(ps *confcheck.Problems) {
	ps.Required("edge.sip.listen", sp.Listen, "the SIP front's host:port (UDP and TCP), like 0.0.0.0:5060")
	ps.HostPort("edge.sip.listen", sp.Listen, false, "0.0.0.0:5060")
	if t := sp.TLS; t != nil {
		if t.Listen != "" {
			ps.HostPort("edge.sip.tls.listen", t.Listen, false, "0.0.0.0:5061")
		} else if sp.WSS == nil {
			ps.Add("edge.sip.tls.listen", "required unless edge.sip.wss is set: the host:port of SIP over TLS, like 0.0.0.0:5061")
		}
		if t.Cert == "" {
			ps.Add("edge.sip.tls.cert", "required: the PEM file of the certificate phones check, like /etc/resman/sip.crt")
		}
		if t.Key == "" {
			ps.Add("edge.sip.tls.key", "required: the PEM file of the private key, like /etc/resman/sip.key")
		}
	}
	for _, w := range []struct {
		key string
		l   *SIPListen
		ex  string
	}{{"edge.sip.ws", sp.WS, "0.0.0.0:8088"}, {"edge.sip.wss", sp.WSS, "0.0.0.0:8089"}} {
		if w.l == nil {
			continue
		}
		ps.Required(w.key+".listen", w.l.Listen, "the host:port of SIP over WebSocket, like "+w.ex)
		ps.HostPort(w.key+".listen", w.l.Listen, false, w.ex)
	}
	if sp.WSS != nil && sp.TLS == nil {
		ps.Add("edge.sip.wss", "needs edge.sip.tls (its cert and key; its listen is optional): the certificate of secure WebSocket")
	}
	host, _, err := net.SplitHostPort(sp.Listen)
	unspecified := err == nil && (host == "" || net.ParseIP(strings.Trim(host, "[]")) != nil && net.ParseIP(strings.Trim(host, "[]")).IsUnspecified())
	switch {
	case sp.Advertise == "" && unspecified:
		ps.Add("edge.sip.advertise", "required when edge.sip.listen (%q) names no host: the address phones and PBXs reach the Edge at, like 10.0.0.5 or 10.0.0.5:5060", sp.Listen)
	case sp.Advertise != "" && !validAdvertise(sp.Advertise):
		ps.Add("edge.sip.advertise", "must be a host or host:port with a port from 1 to 65535, like 10.0.0.5 or 10.0.0.5:5060, got %q", sp.Advertise)
	}
	if sp.Expires < 10 || sp.Expires > 3600 {
		ps.Add("edge.sip.expires", "must be between 10 and 3600 seconds (30 to 60 keeps re-homing short), got %d", sp.Expires)
	}
	if sp.RegisterRate < 1 || sp.RegisterRate > 100000 {
		ps.Add("edge.sip.register_rate", "must be a whole number of REGISTERs per second from 1 to 100000, like 50, got %d", sp.RegisterRate)
	}
}

// validateSideSIP checks edge.sides[i].sip: required with edge.sip,
// refused without.
func validateSideSIP(ps *confcheck.Problems, key, got string, front bool) {
	switch {
	case got == "" && front:
		ps.Add(key, "required when edge.sip is set: the side's PBX SIP address, like sip:10.0.0.1:5060")
	case got == "":
	case !front:
		ps.Add(key, "applies only with edge.sip (the SIP front): add edge.sip or remove it")
	case !confcheck.ValidSIP(got) || strings.HasPrefix(got, "sips:"):
		ps.Add(key, "must be a sip: URI with a host, like sip:10.0.0.1:5060, got %q", got)
	default:
		if i := strings.Index(got, ";transport="); i >= 0 {
			t := strings.ToLower(got[i+len(";transport="):])
			if j := strings.IndexAny(t, ";?"); j >= 0 {
				t = t[:j]
			}
			if t != "udp" && t != "tcp" {
				ps.Add(key, "transport must be udp or tcp, like sip:10.0.0.1:5060;transport=tcp, got %q", got)
			}
		}
	}
}

// validAdvertise accepts host or host:port without spaces.
func validAdvertise(s string) bool {
	if s == "" || strings.ContainsFunc(s, unicode.IsSpace) || strings.ContainsAny(s, "/@;?") {
		return false
	}
	if host, port, err := net.SplitHostPort(s); err == nil {
		n, perr := strconv.Atoi(port)
		return host != "" && perr == nil && n >= 1 && n <= 65535
	}
	return !strings.Contains(strings.Trim(s, "[]"), ":") || net.ParseIP(strings.Trim(s, "[]")) != nil
}

// validateUpstreamTLS checks the side's upstream_tls (at key).
func (s Side) validateUpstreamTLS(ps *confcheck.Problems, key string) {
	t := s.UpstreamTLS
	if t == nil {
		return
	}
	if *t == (UpstreamTLS{}) {
		return // an empty section: the default verification
	}
	https := strings.HasPrefix(s.Node, "https://")
	for _, r := range s.Routes {
		https = https || strings.HasPrefix(r.Upstream, "https://")
	}
	if !https {
		ps.Add(key, "has no effect: neither the node nor an upstream of this side is an https:// URL")
	}
	switch {
	case t.CAFile == "":
	case !filepath.IsAbs(t.CAFile):
		// resman runs from / under systemd: a relative path would be read
		// from elsewhere than where config check found it.
		ps.Add(key+".ca_file", "must be an absolute path, like /etc/resman/xivo-main.crt, got %q", t.CAFile)
	default:
		if _, err := CertPool(t.CAFile); err != nil {
			ps.Add(key+".ca_file", "%q: %v", t.CAFile, err)
		}
	}
	if n := t.ServerName; n != "" {
		host := strings.Trim(n, "[]")
		if strings.ContainsFunc(n, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) ||
			strings.ContainsAny(n, "/@") || (strings.Contains(host, ":") && net.ParseIP(host) == nil) {
			ps.Add(key+".server_name", "must be a host name (no scheme, no port), like xivo-main.example.com, got %q", n)
		}
	}
	if t.InsecureSkipVerify && t.CAFile != "" {
		ps.Add(key+".insecure_skip_verify", "true ignores ca_file: set one or the other")
	}
}

// CertPool reads a PEM file of certificates (a CA, a chain, or a server's
// self-signed certificate) into a pool: edge.sides[].upstream_tls.ca_file.
// It fails when the file cannot be read, holds no certificate, or one of
// its certificates does not parse; the error does not repeat the path.
func CertPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot read: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	var other []string
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			other = append(other, b.Type)
			continue
		}
		n++
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %w", n, err)
		}
		pool.AddCert(cert)
	}
	if n == 0 {
		if len(other) > 0 {
			return nil, fmt.Errorf("no PEM certificate in it, only %q blocks: give the certificate, not its key", other)
		}
		return nil, errors.New("not a PEM file: want one or more -----BEGIN CERTIFICATE----- blocks")
	}
	return pool, nil
}
