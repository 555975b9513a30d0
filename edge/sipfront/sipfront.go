// Package sipfront is the Edge's SIP front: phones register and call
// through the Edge, and follow the side (main or standby PBX) that is
// Active, switching with the Edge's HTTP routes.
//
// The front is a stateless proxy (RFC 3261 §16.11) built on sipgo's parser
// and message model, with its own UDP and TCP transport, and optionally TLS
// and WebSocket (RFC 7118) towards phones. Requests from
// phones go to the Active side's PBX; requests from a PBX reach the phone
// through the flow (transport, address) the phone registered from, named
// in the Path (RFC 3327) the front adds to each registration and in the
// Record-Route it adds to each dialog. The front adds received and rport
// to the phone's Via (RFC 3581), decrements Max-Forwards (483 at zero),
// detects loops (482), drops what it cannot read or what is too large, and
// answers 400 to requests it can read but that lack a mandatory header.
// A phone on TLS or WebSocket is reached on its own connection only (the
// Edge never dials it): its flow names the connection.
//
// Registrations are cached as SBCs do: phones are granted a short expiry
// (Options.Expires, 30 to 60 s), the PBX the phone's own, and a phone's
// refresh goes to the PBX only when the PBX's binding is due. When the
// Active side changes (SetActive), the front re-registers every cached
// binding on the new side itself, paced by Options.RegisterRate, then
// removes it from the side that lost Active (REGISTER Expires: 0): phones
// do not need to act. The calls of the side that lost Active are ended with
// a BYE to their phones, and in-dialog requests of such a call get 481.
package sipfront

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

// Side is one side's PBX.
type Side struct {
	// Name is the side's name (edge.sides[].name).
	Name string
	// URI is its PBX SIP address, like sip:10.0.0.1:5060 or
	// sip:10.0.0.1:5060;transport=tcp (edge.sides[].sip).
	URI string
}

// Options configure a Front.
type Options struct {
	// Listen is host:port, UDP and TCP (edge.sip.listen).
	Listen string
	// Advertise is the host or host:port in Via, Record-Route and Path;
	// default: Listen (edge.sip.advertise).
	Advertise string
	// Expires is the expiry granted to phones, seconds (edge.sip.expires).
	Expires int
	// RegisterRate bounds the REGISTERs per second the front sends to one
	// side of its own (edge.sip.register_rate).
	RegisterRate int
	Sides        []Side
	// Timeout bounds a REGISTER the front sends (default 4 s).
	Timeout time.Duration
	Logger  *slog.Logger
	// Registerer, if set, receives the resman_edge_sip_* metrics.
	Registerer prometheus.Registerer

	// TLSListen, if set, is the host:port phones reach over SIP over TLS
	// (edge.sip.tls.listen); WSListen and WSSListen the host:port of SIP
	// over WebSocket, plain and secure (RFC 7118; edge.sip.ws.listen,
	// edge.sip.wss.listen). Each is advertised with Advertise's host and
	// its own port. TLSConfig (its certificate) is required with
	// TLSListen or WSSListen. The hops to the sides stay as each side's
	// URI says (UDP or TCP).
	TLSListen, WSListen, WSSListen string
	TLSConfig                      *tls.Config
}

// side is a side's PBX as the front sends to it.
type side struct {
	name  string
	uri   string
	dest  flow
	pacer *pacer
}

// Front is the SIP front. Its methods are safe for concurrent use.
type Front struct {
	log       *slog.Logger
	listen    string
	host      string // advertised host
	port      int    // advertised port
	expires   int
	rate      int
	timeout   time.Duration
	sides     []*side
	byName    map[string]*side
	metrics   *metrics
	nonce     string // per process: our branches
	active    atomic.Pointer[side]
	changed   chan struct{}
	tr        *transport
	addr      atomic.Value // string: bound address
	started   atomic.Bool
	regs      *registry
	dialogs   *dialogs
	clientTx  sync.Map // branch -> chan *sip.Response
	branchSeq atomic.Uint64
	// The listeners of phones' TLS and WebSocket, "" when off, and the
	// ports advertised for them (each listen address's own).
	tlsListen, wsListen, wssListen string
	tlsPort, wsPort, wssPort       int
	tlsConf                        *tls.Config
	bound                          sync.Map // transport -> bound address
}

// New builds a Front. It resolves the sides' addresses.
func New(opts Options) (*Front, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "edge-sip")
	adv := opts.Advertise
	if adv == "" {
		adv = opts.Listen
	}
	host, port, err := splitHostPort(adv, opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("edge.sip.advertise: %w", err)
	}
	f := &Front{
		log: log, listen: opts.Listen, host: host, port: port,
		expires: opts.Expires, rate: opts.RegisterRate, timeout: opts.Timeout,
		byName: map[string]*side{}, changed: make(chan struct{}, 1),
	}
	if f.expires <= 0 {
		f.expires = 60
	}
	if f.rate <= 0 {
		f.rate = 50
	}
	if f.timeout <= 0 {
		f.timeout = 4 * time.Second
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	f.nonce = hex.EncodeToString(b)
	for i, sc := range opts.Sides {
		dest, err := resolveSIP(sc.URI)
		if err != nil {
			return nil, fmt.Errorf("edge.sides[%d].sip: %w", i, err)
		}
		s := &side{name: sc.Name, uri: sc.URI, dest: dest, pacer: newPacer(f.rate)}
		f.sides = append(f.sides, s)
		f.byName[s.name] = s
	}
	if len(f.sides) == 0 {
		return nil, errors.New("edge.sip: no side has a sip address")
	}
	if err := f.setTransports(opts); err != nil {
		return nil, err
	}
	f.regs = newRegistry(f)
	f.dialogs = newDialogs()
	m, err := newMetrics(opts.Registerer, f)
	if err != nil {
		return nil, err
	}
	f.metrics = m
	return f, nil
}

// setTransports checks the TLS and WebSocket listen addresses and keeps
// their ports.
func (f *Front) setTransports(opts Options) error {
	f.tlsListen, f.wsListen, f.wssListen = opts.TLSListen, opts.WSListen, opts.WSSListen
	for _, l := range []struct {
		key, addr string
		port      *int
	}{{"edge.sip.tls.listen", opts.TLSListen, &f.tlsPort}, {"edge.sip.ws.listen", opts.WSListen, &f.wsPort},
		{"edge.sip.wss.listen", opts.WSSListen, &f.wssPort}} {
		if l.addr == "" {
			continue
		}
		_, ps, err := net.SplitHostPort(l.addr)
		p, perr := strconv.Atoi(ps)
		if err != nil || perr != nil || p < 1 || p > 65535 {
			return fmt.Errorf("%s: not host:port: %q", l.key, l.addr)
		}
		*l.port = p
	}
	if (opts.TLSListen != "" || opts.WSSListen != "") && (opts.TLSConfig == nil ||
		len(opts.TLSConfig.Certificates) == 0 && opts.TLSConfig.GetCertificate == nil) {
		return errors.New("edge.sip.tls: a certificate is required for SIP over TLS and secure WebSocket")
	}
	if opts.TLSConfig != nil {
		f.tlsConf = opts.TLSConfig.Clone()
		if f.tlsConf.MinVersion == 0 {
			f.tlsConf.MinVersion = tls.VersionTLS12
		}
	}
	return nil
}

// splitHostPort reads host[:port]; without a port, listen's is used.
func splitHostPort(adv, listen string) (string, int, error) {
	host, ps, err := net.SplitHostPort(adv)
	if err != nil {
		host = strings.Trim(adv, "[]")
		if _, ps, err = net.SplitHostPort(listen); err != nil {
			return "", 0, fmt.Errorf("no port in %q nor in the listen address", adv)
		}
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p < 1 || p > 65535 || host == "" {
		return "", 0, fmt.Errorf("not host:port: %q", adv)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", 0, fmt.Errorf("%q is not an address others can reach: set edge.sip.advertise", adv)
	}
	return host, p, nil
}

// resolveSIP turns sip:host:port;transport=x into a flow.
func resolveSIP(s string) (flow, error) {
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return flow{}, err
	}
	netw := "udp"
	if t, ok := u.UriParams.Get("transport"); ok {
		netw = strings.ToLower(t)
	}
	if netw != "udp" && netw != "tcp" {
		return flow{}, fmt.Errorf("transport %q: udp or tcp", netw)
	}
	port := u.Port
	if port == 0 {
		port = 5060
	}
	ip, err := netip.ParseAddr(strings.Trim(u.Host, "[]"))
	if err != nil {
		addrs, lerr := net.LookupIP(u.Host)
		if lerr != nil || len(addrs) == 0 {
			return flow{}, fmt.Errorf("resolve %s: %v", u.Host, lerr)
		}
		ip, _ = netip.AddrFromSlice(addrs[0])
	}
	return flow{net: netw, addr: netip.AddrPortFrom(ip.Unmap(), uint16(port))}, nil
}

// Run listens on Options.Listen (UDP and TCP), and on the TLS and
// WebSocket addresses when set, and serves until ctx is done.
func (f *Front) Run(ctx context.Context) error {
	pc, err := net.ListenPacket("udp", f.listen)
	if err != nil {
		return fmt.Errorf("edge.sip.listen %s: %w", f.listen, err)
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		pc.Close()
		return fmt.Errorf("edge.sip.listen %s (tcp): %w", f.listen, err)
	}
	var x extraListeners
	fail := func(err error) error {
		pc.Close()
		ln.Close()
		x.close()
		return err
	}
	if f.tlsListen != "" {
		l, err := net.Listen("tcp", f.tlsListen)
		if err != nil {
			return fail(fmt.Errorf("edge.sip.tls.listen %s: %w", f.tlsListen, err))
		}
		x.tls = tls.NewListener(l, f.tlsConf)
	}
	if f.wsListen != "" {
		l, err := net.Listen("tcp", f.wsListen)
		if err != nil {
			return fail(fmt.Errorf("edge.sip.ws.listen %s: %w", f.wsListen, err))
		}
		x.ws = append(x.ws, wsListener{ln: l, net: "ws"})
	}
	if f.wssListen != "" {
		l, err := net.Listen("tcp", f.wssListen)
		if err != nil {
			return fail(fmt.Errorf("edge.sip.wss.listen %s: %w", f.wssListen, err))
		}
		// HTTP/1.1 only: the WebSocket upgrade is HTTP/1.1's.
		conf := f.tlsConf.Clone()
		conf.NextProtos = []string{"http/1.1"}
		x.ws = append(x.ws, wsListener{ln: tls.NewListener(l, conf), net: "wss"})
	}
	return f.serve(ctx, pc, ln, x)
}

// extraListeners are the phones' TLS and WebSocket listeners.
type extraListeners struct {
	tls net.Listener
	ws  []wsListener
}

func (x extraListeners) close() {
	if x.tls != nil {
		x.tls.Close()
	}
	for _, w := range x.ws {
		w.ln.Close()
	}
}

// Serve is Run on sockets the caller opened (UDP and TCP only: TLS and
// WebSocket are Run's); it closes them when ctx is done and returns nil.
// Call it once.
func (f *Front) Serve(ctx context.Context, pc net.PacketConn, ln net.Listener) error {
	return f.serve(ctx, pc, ln, extraListeners{})
}

func (f *Front) serve(ctx context.Context, pc net.PacketConn, ln net.Listener, x extraListeners) error {
	if !f.started.CompareAndSwap(false, true) {
		pc.Close()
		ln.Close()
		x.close()
		return errors.New("edge.sip: Serve called twice")
	}
	f.tr = newTransport(pc, ln, f.onMessage, f.onBad)
	f.tr.tlsLn, f.tr.wsLns = x.tls, x.ws
	f.tr.idle = max(idleTCP, 2*time.Duration(f.expires)*time.Second)
	f.tr.note = func(from flow, why string) {
		f.log.Debug("a connection failed before SIP", "from", from.String(), "why", why)
	}
	if x.tls != nil {
		f.bound.Store("tls", x.tls.Addr().String())
	}
	for _, w := range x.ws {
		f.bound.Store(w.net, w.ln.Addr().String())
	}
	f.tr.sent = f.metrics.sent.Inc
	f.tr.panicked = func(from flow, r any) {
		f.metrics.messages.WithLabelValues("malformed").Inc()
		f.log.Error("BUG: handling a SIP message panicked; the message is dropped", "from", from.String(),
			"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	}
	f.regs.life = ctx // before the first message
	f.tr.serve()
	f.addr.Store(pc.LocalAddr().String())
	f.log.Info("SIP front listening", "udp", pc.LocalAddr().String(), "tcp", ln.Addr().String(),
		"tls", f.BoundAddr("tls"), "ws", f.BoundAddr("ws"), "wss", f.BoundAddr("wss"),
		"advertise", f.hostPort(), "expires", f.expires, "register_rate", f.rate)
	var wg sync.WaitGroup
	wg.Go(func() { f.regs.run(ctx) })
	<-ctx.Done()
	wg.Wait()
	f.tr.close()
	return nil
}

// Addr is the UDP address the front listens on, "" before Serve.
func (f *Front) Addr() string {
	s, _ := f.addr.Load().(string)
	return s
}

// BoundAddr is the address the front listens on for transport ("tls",
// "ws" or "wss"), "" when off or before Serve.
func (f *Front) BoundAddr(transport string) string {
	s, _ := f.bound.Load(transport)
	a, _ := s.(string)
	return a
}

// SetActive tells the front which side is Active ("" for none): requests
// go there from now on, and the cached registrations move there. It does
// not block.
func (f *Front) SetActive(name string) {
	s := f.byName[name]
	if old := f.active.Swap(s); old == s {
		return
	}
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// Active is the side requests go to, "" when none.
func (f *Front) Active() string {
	if s := f.active.Load(); s != nil {
		return s.name
	}
	return ""
}

func (f *Front) hostPort() string {
	return net.JoinHostPort(f.host, strconv.Itoa(f.port))
}

// isMe reports whether host:port is one of the front's advertised
// addresses (UDP and TCP, TLS, WebSocket).
func (f *Front) isMe(host string, port int) bool {
	if port == 0 {
		port = 5060
	}
	return (port == f.port || port == f.tlsPort || port == f.wsPort || port == f.wssPort) &&
		strings.EqualFold(strings.Trim(host, "[]"), strings.Trim(f.host, "[]"))
}

// portFor is the port the front advertises for a transport: a phone on
// TLS or WebSocket reaches the Edge on that listener's port.
func (f *Front) portFor(netw string) int {
	switch netw {
	case "tls":
		return f.tlsPort
	case "ws":
		return f.wsPort
	case "wss":
		return f.wssPort
	}
	return f.port
}

// via is the front's Via for a request sent on fl, with branch.
func (f *Front) via(fl flow, branch string) *sip.ViaHeader {
	v := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(fl.net),
		Host: f.host, Port: f.portFor(fl.net), Params: sip.NewParams()}
	v.Params.Add("branch", branch)
	v.Params.Add("rport", "")
	return v
}

func (f *Front) onBad(from flow, why string) {
	f.metrics.messages.WithLabelValues("malformed").Inc()
	f.log.Debug("dropped what cannot be read", "from", from.String(), "why", why)
}

func (f *Front) onMessage(msg sip.Message, from flow) {
	switch m := msg.(type) {
	case *sip.Request:
		f.metrics.messages.WithLabelValues("request").Inc()
		f.onRequest(m, from)
	case *sip.Response:
		f.metrics.messages.WithLabelValues("response").Inc()
		f.onResponse(m, from)
	}
}

// newBranch is a branch of a request the front sends of its own.
func (f *Front) newBranch() string {
	return ownBranch + f.nonce + strconv.FormatUint(f.branchSeq.Add(1), 36)
}

// Branch prefixes: ownBranch marks the front's own requests, fwdBranch
// the requests it forwards.
const (
	ownBranch = sip.RFC3261BranchMagicCookie + "sfo"
	fwdBranch = sip.RFC3261BranchMagicCookie + "sff"
)

func hash64(parts ...string) string {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return strconv.FormatUint(h.Sum64(), 36)
}
