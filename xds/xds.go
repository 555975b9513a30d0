// Package xds keeps the PBX registered to the media servers (MDS) of an XDS
// deployment. MDSs reach the PBX through SIP trunks: while this node is
// Active it REGISTERs its contact to every configured MDS and refreshes the
// bindings; when it goes Inactive it unregisters them (Expires: 0), so the
// node that takes over registers in its place with no manual action.
//
// Each MDS is handled on its own: one that refuses or does not answer never
// delays the others. Independently of the node's state, OPTIONS probes tell
// whether each MDS is reachable. A Registrar reports through Status, events
// (for the audit log), logs (component=xds) and Prometheus metrics;
// credentials appear in none of them.
package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/services/hysteresis"
)

// Defaults of the tuning Options.
const (
	DefaultRequestTimeout = 2 * time.Second
	DefaultBackoffMin     = 500 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
	DefaultProbeInterval  = 5 * time.Second
	DefaultRise           = hysteresis.DefaultRise
	DefaultFall           = hysteresis.DefaultFall
	DefaultVerifyInterval = 10 * time.Second
	DefaultT1             = 500 * time.Millisecond // RFC 3261's; Timer F is 64*T1
	// DefaultExpires is asked of an MDS whose config names none.
	DefaultExpires = 120
)

// Event kinds.
const (
	EventRegistered   = "registered"   // a binding was accepted (first time, or again after a failure)
	EventUnregistered = "unregistered" // the binding was removed on Deactivate (Err if that failed)
	EventFailed       = "failed"       // a REGISTER failed; repeated identical failures are reported once
	EventReachable    = "reachable"    // the MDS answers OPTIONS again
	EventUnreachable  = "unreachable"  // the MDS stopped answering OPTIONS
	EventPeerRemoved  = "peer removed" // the peer's contact was removed (Err if that failed)
)

// Event is a registration or reachability change of one MDS, for the audit
// log. StatusCode is the SIP status of the answer involved, 0 if none.
type Event struct {
	MDS        string
	Kind       string
	Err        error
	StatusCode int
}

// Options tune a Registrar. Zero values take the defaults.
type Options struct {
	// Logger receives the logs, with component=xds; nil discards them.
	Logger *slog.Logger
	// Registerer receives the metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// OnEvent is called on every registration or reachability change,
	// synchronously, from several goroutines: it must not block, and must
	// be safe for concurrent use.
	OnEvent func(Event)
	// Hostname of this user agent, in the From of probes and in Call-IDs.
	// Default: the host of xds.contact.
	Hostname string

	// RequestTimeout bounds every SIP transaction. Default: 2s.
	RequestTimeout time.Duration
	// BackoffMin and BackoffMax bound the retry delay after a failed
	// REGISTER, which doubles per failure, with jitter. Defaults: 500ms, 30s.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// ProbeInterval is the period of the OPTIONS probes. Default: 5s.
	ProbeInterval time.Duration
	// Rise consecutive answered probes make an MDS reachable, Fall
	// consecutive unanswered ones unreachable; the very first probe
	// decides at once (services/hysteresis, FirstDecides). Defaults: 2
	// and 2.
	Rise int
	Fall int
	// VerifyInterval is the period of the binding queries that check,
	// while Active, that each MDS still holds our contact. Default: 10s.
	VerifyInterval time.Duration
	// PeerContact is the xds.contact of the other node of the pair. While
	// Active, after RemovePeer, this node removes it from every MDS.
	// Equal to our own contact (a shared contact), this node never
	// unregisters. Default: none.
	PeerContact string

	// SourceAddress is the local IP the SIP client sends from (0.0.0.0
	// or :: for whatever the routes pick). Default: the host of
	// xds.contact — this node's address — when it is an IP of this host
	// and the contact is not shared with the peer; else the routes'.
	SourceAddress string

	// OutboundProxy is a SIP URI (sip:HOST[:PORT]) every request goes
	// through (a Route header naming it, loose routing), over each MDS's
	// transport. Default: none, straight to the MDS.
	OutboundProxy string

	// TLSCAFile is a PEM file of the CAs that sign the certificates of
	// the MDS reached over TLS. Default: the system's roots.
	TLSCAFile string
	// TLSServerNames is the name each MDS's certificate must carry, by MDS
	// name. Default: the host of its registrar.
	TLSServerNames map[string]string

	// UnregisterOnStop makes Run unregister this node's contact when its
	// ctx ends (resman stopping), for hosts where stopping resman stops
	// the PBX too. By default the bindings stay at the MDS: the PBX keeps
	// running and receiving calls, and when resman starts again the Active
	// node verifies them (an Inactive one removes them, as at any start).
	UnregisterOnStop bool

	// ContactEpoch adds the node's epoch to its Contact when it registers:
	// a resman-epoch=N parameter and a q-value derived from N (q =
	// (1 + (N-1) mod 1000) / 1000), so that an MDS that forks by q prefers
	// the newest Active over a leftover binding of the previous one. The
	// q-value wraps every 1000 epochs. Default: off, no parameter.
	ContactEpoch bool

	// Timers of the SIP transactions, for every MDS; MDSTimers overrides
	// them for the MDS of that name. Defaults: RFC 3261's.
	Timers    Timers
	MDSTimers map[string]Timers
}

// Timers of the non-INVITE transactions with an MDS (RFC 3261 17.1.2).
// An MDS that sends a provisional answer (100 Trying) is waited for up to
// TimerF in all, instead of RequestTimeout.
type Timers struct {
	// T1 is the round-trip estimate. Default: 500ms. Here it sets only
	// the default TimerF: the retransmission timers are sipgo's, for the
	// whole process (its T1, 500ms).
	T1 time.Duration
	// TimerF bounds a transaction. Default: 64*T1, 32s with the default
	// T1; at most sipgo's own Timer F (64 times its T1, 32s).
	TimerF time.Duration
}

// Registrar registers this node to every configured MDS while active.
// Its methods are safe for concurrent use.
type Registrar struct {
	opts     Options
	log      *slog.Logger
	contact  sip.Uri
	peer     *sip.Uri         // Options.PeerContact, nil if none
	source   net.IP           // the local address requests go from, nil: the routes'
	proxy    *sip.Uri         // Options.OutboundProxy, nil if none
	shared   bool             // the peer's contact is ours: never unregister it
	ua       *sipgo.UserAgent // the main one
	client   *sipgo.Client
	uas      []*sipgo.UserAgent // the main one, and those of MDS with a TLS server name
	sipLog   *slog.Logger
	metrics  *metrics
	bindings []*binding
	parsed   *parseFailures // answers the SIP stack could not parse

	base       context.Context // lives until Run ends; parent of the loops
	cancelBase context.CancelFunc
	wg         sync.WaitGroup // loops, probes and unregisters in flight

	mu     sync.Mutex
	active bool
	// leftover: a binding of this contact from before this Registrar may
	// remain at the MDS (a node killed while Active cannot unregister).
	// The first Deactivate clears it even while inactive.
	leftover bool
	epoch    uint64
	// removePeer: RemovePeer was called since the last Deactivate.
	removePeer bool
	running    bool
	closed     bool
}

// New checks cfg and builds a Registrar. Nothing is sent before Activate
// (registrations) or Run (probes).
func New(cfg Config, opts Options) (*Registrar, error) {
	opts = withDefaults(opts)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("component", "xds")

	contact, err := parseContact(cfg.Contact)
	if err != nil {
		return nil, fmt.Errorf("xds.contact: %w", err)
	}
	if opts.Hostname == "" {
		opts.Hostname = contact.Host
	}

	r := &Registrar{opts: opts, log: log, contact: contact, leftover: true}
	if opts.PeerContact != "" {
		peer, err := parseContact(opts.PeerContact)
		if err != nil {
			return nil, fmt.Errorf("xds: the peer's contact: %w", err)
		}
		r.peer, r.shared = &peer, sameURI(peer, contact)
	}
	for i, m := range cfg.MDS {
		b, err := newBinding(r, i, m)
		if err != nil {
			return nil, err
		}
		r.bindings = append(r.bindings, b)
	}
	if opts.OutboundProxy != "" {
		p, err := parseRegistrar(opts.OutboundProxy)
		if err != nil {
			return nil, fmt.Errorf("xds: outbound proxy: %w", err)
		}
		r.proxy = &p
	}
	if r.source, err = sourceAddress(opts.SourceAddress, contact, r.shared); err != nil {
		return nil, err
	}
	if r.source != nil {
		log.Info("sending from a fixed source address", "source", r.source.String())
	}
	if r.metrics, err = newMetrics(r, opts.Registerer); err != nil {
		return nil, fmt.Errorf("xds: metrics: %w", err)
	}

	r.parsed = &parseFailures{}
	r.sipLog = slog.New(parseWatch{minLevel{log.Handler(), slog.LevelInfo}, r.parsed}).With("layer", "sip")
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.TLSCAFile != "" {
		pem, err := os.ReadFile(opts.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("xds: TLS CA file: %w", err)
		}
		tlsConf.RootCAs = x509.NewCertPool()
		if !tlsConf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("xds: TLS CA file %s: no PEM certificate in it", opts.TLSCAFile)
		}
	}
	if r.ua, r.client, err = r.newStack(tlsConf); err != nil {
		return nil, err
	}
	r.uas = append(r.uas, r.ua)
	for _, b := range r.bindings {
		b.client = r.client
		name := opts.TLSServerNames[b.name]
		if b.transport != "TLS" || name == "" {
			continue
		}
		// sipgo has one TLS config per user agent: an MDS whose
		// certificate names another host than its registrar's gets its
		// own.
		c := tlsConf.Clone()
		c.ServerName = name
		ua, client, err := r.newStack(c)
		if err != nil {
			r.closeUAs()
			return nil, err
		}
		r.uas = append(r.uas, ua)
		b.client = client
	}
	r.base, r.cancelBase = context.WithCancel(context.Background())
	return r, nil
}

// newStack builds a SIP user agent and its client, whose server side
// answers the OPTIONS an MDS may send back on our connections (keepalives)
// instead of logging them in the default logger.
func (r *Registrar) newStack(tlsConf *tls.Config) (*sipgo.UserAgent, *sipgo.Client, error) {
	sipLog := r.sipLog
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("resman"),
		sipgo.WithUserAgentHostname(r.opts.Hostname),
		sipgo.WithUserAgenTLSConfig(tlsConf),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(sipLog),
			sip.WithTransactionLayerUnhandledResponseHandler(func(res *sip.Response) {
				sipLog.Debug("late or stray response", "status", res.StartLine())
			}),
		),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(sipLog)),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("xds: user agent: %w", err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(sipLog))
	if err != nil {
		ua.Close()
		return nil, nil, fmt.Errorf("xds: client: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(sipLog))
	if err != nil {
		ua.Close()
		return nil, nil, fmt.Errorf("xds: server: %w", err)
	}
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	return ua, client, nil
}

// closeUAs closes every SIP user agent.
func (r *Registrar) closeUAs() {
	for _, ua := range r.uas {
		if err := ua.Close(); err != nil {
			r.log.Debug("closing user agent", "error", err)
		}
	}
}

// sourceAddress is the address to send from: set, or by default the
// contact's host when it is an IP this host can bind and not shared.
func sourceAddress(set string, contact sip.Uri, shared bool) (net.IP, error) {
	if set != "" {
		ip := net.ParseIP(strings.Trim(set, "[]"))
		switch {
		case ip == nil:
			return nil, fmt.Errorf("xds: source address %q is not an IP address", set)
		case ip.IsUnspecified():
			return nil, nil
		}
		return ip, nil
	}
	ip := net.ParseIP(strings.Trim(contact.Host, "[]"))
	if ip == nil || shared || ip.IsUnspecified() {
		return nil, nil
	}
	pc, err := net.ListenPacket("udp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		return nil, nil // not an address of this host
	}
	pc.Close()
	return ip, nil
}

func withDefaults(o Options) Options {
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	if o.Rise <= 0 {
		o.Rise = DefaultRise
	}
	if o.Fall <= 0 {
		o.Fall = DefaultFall
	}
	if o.VerifyInterval <= 0 {
		o.VerifyInterval = DefaultVerifyInterval
	}
	return o
}

// Activate begins registering to every MDS, in parallel, and returns at
// once. While already active it only records the new epoch.
func (r *Registrar) Activate(epoch uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.log.Warn("activate ignored: registrar stopped", "epoch", epoch)
		return
	}
	r.epoch = epoch
	if r.active {
		r.log.Debug("already active", "epoch", epoch)
		return
	}
	r.active, r.leftover = true, false
	r.log.Info("activating: registering to the MDS", "epoch", epoch, "mds", len(r.bindings))
	for _, b := range r.bindings {
		b.start(r.base, &r.wg)
	}
}

// Deactivate stops refreshing and unregisters from every MDS in parallel.
// It returns when every MDS has answered or ctx is done, whichever comes
// first; the error joins the failures. While inactive it does nothing,
// except the first time: then it removes any binding of this contact a
// previous run left (once, best effort).
func (r *Registrar) Deactivate(ctx context.Context) error {
	return r.deactivate(ctx, false)
}

func (r *Registrar) deactivate(ctx context.Context, final bool) error {
	r.mu.Lock()
	if final {
		r.closed = true
	}
	r.removePeer = false
	switch {
	case r.shared && r.active:
		r.log.Info("deactivating: the contact is shared with the peer, left at the MDS", "epoch", r.epoch)
	case r.shared && r.leftover && !final:
		r.log.Info("inactive: the contact is shared with the peer, left at the MDS")
		r.leftover = false
		r.mu.Unlock()
		return nil
	case r.active:
		r.log.Info("deactivating: unregistering from the MDS", "epoch", r.epoch)
	case r.leftover && !final:
		r.log.Info("inactive: removing any binding a previous run left at the MDS")
	default:
		r.mu.Unlock()
		return nil
	}
	r.active, r.leftover = false, false
	stops := make([]func(context.Context) error, len(r.bindings))
	for i, b := range r.bindings {
		stops[i] = b.stop(!r.shared)
	}
	r.wg.Add(len(stops))
	r.mu.Unlock()

	var (
		mu      sync.Mutex
		errs    []error
		pending = make(map[string]bool, len(stops))
		all     = make(chan struct{})
	)
	for _, b := range r.bindings {
		pending[b.name] = true
	}
	for i, stop := range stops {
		name := r.bindings[i].name
		go func() {
			defer r.wg.Done()
			err := stop(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			delete(pending, name)
			if len(pending) == 0 {
				close(all)
			}
		}()
	}
	if len(stops) == 0 {
		close(all)
	}
	select {
	case <-all:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pending) > 0 {
		var names []string
		for _, b := range r.bindings {
			if pending[b.name] {
				names = append(names, b.name)
			}
		}
		errs = append(errs, fmt.Errorf("xds: unregister unfinished at %s: %w", strings.Join(names, ", "), ctx.Err()))
	}
	return errors.Join(errs...)
}

// leave stops for good without unregistering: the bindings stay at the
// MDS, where the PBX, still running, keeps receiving calls.
func (r *Registrar) leave(ctx context.Context) {
	r.mu.Lock()
	r.closed, r.removePeer = true, false
	if r.active && !r.shared {
		r.log.Info("stopping: this node's bindings are left at the MDS, the PBX keeps receiving calls; they are verified when resman starts again (xds.unregister_on_stop false)", "epoch", r.epoch)
	} else {
		r.log.Info("stopping: nothing unregistered (xds.unregister_on_stop false)")
	}
	r.active = false
	stops := make([]func(context.Context) error, len(r.bindings))
	for i, b := range r.bindings {
		stops[i] = b.stop(false)
	}
	r.mu.Unlock()
	for _, stop := range stops {
		_ = stop(ctx) // ends the loop, sends nothing
	}
}

// RemovePeer says the peer is dead or was the Active node before this one:
// until the next Deactivate, whenever an MDS lists Options.PeerContact
// among the bindings, this node removes it (Expires: 0 on that contact).
// It never removes our own contact: with a shared contact it does nothing.
func (r *Registrar) RemovePeer() {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.peer == nil:
		r.log.Warn("cannot remove the peer's contact: its contact is not known")
		return
	case r.shared:
		r.log.Info("the peer's contact is ours (shared): left in place")
		return
	case r.closed || r.removePeer:
		return
	}
	r.removePeer = true
	r.log.Info("the peer's contact will be removed from the MDS", "peer_contact", r.peer.String(), "active", r.active)
	if r.active {
		// registered already: a REGISTER now lists the contacts
		for _, b := range r.bindings {
			b.kickLoop()
		}
	}
}

// contactParams are the parameters of our Contact in a REGISTER that
// binds it: with Options.ContactEpoch, the epoch and its q-value.
func (r *Registrar) contactParams() [][2]string {
	if !r.opts.ContactEpoch {
		return nil
	}
	r.mu.Lock()
	epoch := r.epoch
	r.mu.Unlock()
	if epoch == 0 {
		return nil
	}
	return [][2]string{{"q", EpochQ(epoch)}, {"resman-epoch", strconv.FormatUint(epoch, 10)}}
}

// EpochQ is the q-value of the Contact registered at epoch (epoch > 0) with
// Options.ContactEpoch: 0.001 to 1.000, growing with the epoch, back to
// 0.001 after 1.000.
func EpochQ(epoch uint64) string {
	n := (epoch-1)%1000 + 1
	return fmt.Sprintf("%d.%03d", n/1000, n%1000)
}

// peerToRemove is the peer's contact while RemovePeer applies, else nil.
func (r *Registrar) peerToRemove() *sip.Uri {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.removePeer || !r.active {
		return nil
	}
	return r.peer
}

// Status is a snapshot of every MDS, in config order. It does no I/O.
func (r *Registrar) Status() []api.Registration {
	now := time.Now()
	out := make([]api.Registration, len(r.bindings))
	for i, b := range r.bindings {
		out[i] = b.status(now)
	}
	return out
}

// Run probes every MDS with OPTIONS until ctx is done, then, with
// Options.UnregisterOnStop, unregisters (best effort, within
// RequestTimeout) — without it, leaves the bindings at the MDS —, waits
// for its goroutines and closes the SIP user agent. Activate and
// Deactivate work with or without Run; after Run returns the Registrar is
// stopped for good.
func (r *Registrar) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.running || r.closed {
		r.mu.Unlock()
		return errors.New("xds: Run called twice")
	}
	r.running = true
	probeCtx, stopProbes := context.WithCancel(ctx)
	defer stopProbes()
	r.wg.Add(len(r.bindings))
	for _, b := range r.bindings {
		go func() {
			defer r.wg.Done()
			b.probeLoop(probeCtx)
		}()
	}
	r.mu.Unlock()
	r.log.Info("xds running", "mds", len(r.bindings), "probe_interval", r.opts.ProbeInterval)

	<-ctx.Done()
	stopProbes()
	dctx, cancel := context.WithTimeout(context.Background(), r.opts.RequestTimeout)
	if r.opts.UnregisterOnStop {
		r.log.Info("stopping: unregistering this node from the MDS (xds.unregister_on_stop true)")
		if err := r.deactivate(dctx, true); err != nil {
			r.log.Warn("unregister on shutdown incomplete", "error", err)
		}
	} else {
		r.leave(dctx)
	}
	cancel()
	r.cancelBase()
	r.wg.Wait()
	r.closeUAs()
	r.log.Info("xds stopped")
	return nil
}

// emit hands an event to OnEvent.
func (r *Registrar) emit(ev Event) {
	if r.opts.OnEvent != nil {
		r.opts.OnEvent(ev)
	}
}

// minLevel drops records below min: at debug level sipgo narrates every
// transaction.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(a), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
