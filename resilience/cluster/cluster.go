package cluster

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the timing knobs, the same as config's gossip defaults.
const (
	DefaultProbeInterval  = 200 * time.Millisecond
	DefaultProbeTimeout   = 100 * time.Millisecond
	DefaultSuspicionMult  = 2
	DefaultRejoinInterval = time.Second
)

// ErrInvalid is wrapped by the errors of New about its options.
var ErrInvalid = errors.New("cluster: invalid options")

// Options configure a Cluster. Zero timing knobs take the Default values.
type Options struct {
	// Name is this member's node name, unique in the cluster. Required.
	Name string
	// Bind is the local gossip host:port (UDP and TCP). An empty host binds
	// every address. Required unless Transport is set.
	Bind string
	// Advertise is the ip:port the others reach this member at, when it is
	// not Bind's (NAT, or Bind on every address of a multi-homed host).
	Advertise string
	// Key is the primary gossip key, 16, 24 or 32 bytes: gossip is
	// encrypted with it. Every member must accept it. Required.
	Key []byte
	// ExtraKeys are further keys of the same sizes accepted to decrypt
	// gossip, never used to encrypt it: for a key rotation without a gap.
	// SetKeys changes Key and ExtraKeys at run time.
	ExtraKeys [][]byte
	// Join lists the members' gossip host:port to join at start and to
	// rejoin while one of them is missing. This member's own address may be
	// in the list; it is skipped.
	Join []string
	// ProbeInterval, ProbeTimeout and SuspicionMult set how fast a lost
	// member is declared Down (see the README).
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	SuspicionMult int
	// RejoinInterval is the time between attempts to join a missing
	// configured member, with ±25% jitter.
	RejoinInterval time.Duration
	// Logger receives this package's logs (component=cluster) and
	// memberlist's own lines at debug. Nil discards them.
	Logger *slog.Logger
	// Registerer receives the resman_gossip_* metrics. Nil registers
	// nothing. They are unregistered at Shutdown.
	Registerer prometheus.Registerer
	// Transport carries the gossip; nil is the real network on Bind. Tests
	// pass an in-memory one (see clustertest).
	Transport memberlist.Transport
	// Expected are the members admitted besides this one; any other
	// member, even with the gossip key, is refused (a Refused event, a
	// warning and resman_gossip_members_refused_total). Nil admits every
	// member that has the key.
	Expected []Expected
}

// Cluster is this node's membership in the gossip cluster: it runs
// memberlist, tracks who is alive, gossips this node's Meta and turns
// changes into Events.
type Cluster struct {
	opts Options
	log  *slog.Logger
	met  *metrics
	ml   *memberlist.Memberlist
	addr string // own advertised ip:port

	meta   atomic.Pointer[[]byte] // encoded own meta, read by NodeMeta
	pushCh chan struct{}          // own meta changed: push it
	// pushSem lets one UpdateNode run at a time (see leave). It and
	// leaveSem are channels, not mutexes, because they are held across
	// timed waits: a goroutine waiting on a mutex would stop a synctest
	// bubble's clock, and with it the wait.
	pushSem chan struct{}
	queue   *eventQueue
	events  chan Event

	// keyring holds Key and ExtraKeys; memberlist reads it under its own
	// lock. keyMu serialises SetKeys.
	keyring *memberlist.Keyring
	keyMu   sync.Mutex

	mu      sync.Mutex
	self    Meta
	members map[string]*member
	joins   map[string]joinState // by configured address
	// refused: members whose meta was refused for its epoch, and logged.
	refused map[string]bool
	// expected: Options.Expected resolved (nil without a list);
	// refusedAt: when a refused member was last reported, by member,
	// address and reason.
	expected  atomic.Pointer[[]resolvedExpected]
	refusedAt map[string]time.Time

	running  atomic.Bool
	stopOnce sync.Once
	stop     chan struct{}  // closed by Shutdown
	stopped  chan struct{}  // closed when Shutdown is complete
	wg       sync.WaitGroup // the event forwarder
	leaveSem chan struct{}  // serialises Leave and Shutdown: Leave panics after Shutdown
	shutDown bool           // under leaveSem
}

type member struct {
	Member
	lastSeen time.Time
}

// New validates opts, registers the metrics and starts memberlist on Bind
// (or opts.Transport). It does not join anyone: Run does. initial is this
// member's first Meta (Name, Sees and Leaving are set by the cluster).
func New(opts Options, initial Meta) (*Cluster, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	c := &Cluster{
		opts:     opts,
		log:      opts.Logger.With("component", "cluster"),
		pushCh:   make(chan struct{}, 1),
		pushSem:  make(chan struct{}, 1),
		leaveSem: make(chan struct{}, 1),
		queue:    newEventQueue(),
		events:   make(chan Event, eventsBuffer),
		members:  map[string]*member{},
		joins:    map[string]joinState{},
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	c.met = met
	initial.Name, initial.Sees, initial.Leaving = opts.Name, nil, false
	c.self = initial.Clone()
	c.storeMeta(c.self)

	rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	c.refreshExpected(rctx)
	cancel()

	bridge := newLogBridge(c.log, c.met.rejected.Inc)
	cfg, err := c.memberlistConfig(log.New(bridge, "", 0))
	if err != nil {
		c.met.unregister()
		return nil, err
	}
	ml, err := memberlist.Create(cfg)
	if err != nil {
		c.met.unregister()
		where := opts.Bind
		if opts.Transport != nil {
			where = "the given transport"
		}
		return nil, fmt.Errorf("cluster: start gossip on %s: %w", where, err)
	}
	c.ml = ml
	c.met.setKeys(c.Keys())
	local := ml.LocalNode()
	c.addr = net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))
	c.updateGauges()

	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.queue.forward(c.events, c.stop) }()
	// Shutdown does not wait for pushLoop: an UpdateNode in flight can only
	// end by its timeout once memberlist is down, and it touches nothing
	// of ours but the logger.
	go c.pushLoop()
	c.log.Info("gossip started", "name", opts.Name, "addr", c.addr, "join", opts.Join, "keys", c.Keys().String(),
		"probe_interval", opts.ProbeInterval, "probe_timeout", opts.ProbeTimeout, "suspicion_mult", opts.SuspicionMult)
	return c, nil
}

func (o *Options) fill() error {
	var bad []string
	if o.Name == "" {
		bad = append(bad, "empty name")
	}
	bad = append(bad, checkKeys(o.Key, o.ExtraKeys)...)
	if o.Transport == nil {
		if _, _, err := splitHostPort(o.Bind, true); err != nil {
			bad = append(bad, fmt.Sprintf("bind %q: %v", o.Bind, err))
		}
	}
	if o.Advertise != "" {
		host, _, err := splitHostPort(o.Advertise, false)
		if err == nil {
			if _, perr := netip.ParseAddr(host); perr != nil {
				err = errors.New("must be an IP address and a port")
			}
		}
		if err != nil {
			bad = append(bad, fmt.Sprintf("advertise %q: %v", o.Advertise, err))
		}
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	if o.ProbeTimeout == 0 {
		o.ProbeTimeout = min(DefaultProbeTimeout, o.ProbeInterval/2)
	}
	if o.SuspicionMult == 0 {
		o.SuspicionMult = DefaultSuspicionMult
	}
	if o.RejoinInterval == 0 {
		o.RejoinInterval = DefaultRejoinInterval
	}
	switch {
	case o.ProbeInterval < 0 || o.ProbeTimeout <= 0 || o.RejoinInterval < 0 || o.SuspicionMult < 0:
		bad = append(bad, "negative timing")
	case o.ProbeTimeout >= o.ProbeInterval:
		bad = append(bad, fmt.Sprintf("probe timeout %s must be shorter than probe interval %s", o.ProbeTimeout, o.ProbeInterval))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(bad, "; "))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// splitHostPort checks host:port; an empty host is allowed for a bind.
func splitHostPort(s string, bind bool) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 || (port == 0 && !bind) {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if host == "" && !bind {
		return "", 0, errors.New("missing host")
	}
	return host, port, nil
}

// memberlistConfig derives memberlist's configuration from the knobs.
func (c *Cluster) memberlistConfig(logger *log.Logger) (*memberlist.Config, error) {
	o := c.opts
	cfg := memberlist.DefaultLANConfig()
	cfg.Name = o.Name
	cfg.Logger = logger
	// A keyring rather than SecretKey alone, so that SetKeys can change
	// the keys while gossip runs. Never nil: gossip is always encrypted.
	kr, err := memberlist.NewKeyring(ringKeys(o.Key, o.ExtraKeys)[1:], slices.Clone(o.Key))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	c.keyring = kr
	cfg.Keyring = kr
	cfg.GossipVerifyIncoming = true
	cfg.GossipVerifyOutgoing = true

	cfg.ProbeInterval = o.ProbeInterval
	cfg.ProbeTimeout = o.ProbeTimeout
	cfg.SuspicionMult = o.SuspicionMult
	// Gossip (meta updates, suspicions) twice per probe, at most every
	// 200ms (the LAN default); a cluster of 2 or 3 sends few packets.
	cfg.GossipInterval = min(200*time.Millisecond, max(10*time.Millisecond, o.ProbeInterval/2))
	// Anti-entropy with a full state exchange: frequent is cheap for three
	// members, within 5 to 30 s.
	cfg.PushPullInterval = min(30*time.Second, max(5*time.Second, 30*o.ProbeInterval))
	// A stream (join, push/pull, the TCP fallback probe) to a host that is
	// gone must not block the rejoin loop for 10 s.
	cfg.TCPTimeout = min(10*time.Second, max(time.Second, 10*o.ProbeInterval))
	// A member that comes back on a new address (a re-addressed host)
	// takes its name back once it has been dead this long.
	cfg.DeadNodeReclaimTime = max(5*time.Second, 30*o.ProbeInterval)

	d := &delegate{c: c}
	cfg.Delegate = d
	cfg.Events = d
	cfg.Ping = d
	cfg.Conflict = d
	cfg.Alive = d

	if o.Transport != nil {
		cfg.Transport = o.Transport
	} else {
		host, port, _ := splitHostPort(o.Bind, true)
		if host == "" {
			host = "0.0.0.0"
		}
		cfg.BindAddr, cfg.BindPort = host, port
		cfg.AdvertisePort = port
	}
	if o.Advertise != "" {
		host, port, err := splitHostPort(o.Advertise, false)
		if err != nil {
			return nil, fmt.Errorf("%w: advertise: %w", ErrInvalid, err)
		}
		cfg.AdvertiseAddr, cfg.AdvertisePort = host, port
	}
	return cfg, nil
}

// Events returns the changes of the other members. The channel is
// buffered; when its reader falls far behind, the waiting events of one
// member are merged (Member always carries the latest state). It is closed
// after Shutdown.
func (c *Cluster) Events() <-chan Event { return c.events }

// Addr is this member's advertised gossip ip:port.
func (c *Cluster) Addr() string { return c.addr }

// Name is this member's name.
func (c *Cluster) Name() string { return c.opts.Name }

// Members returns this node's view of the cluster, sorted by name: every
// member seen since start, alive or down, this node included.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Member, 0, len(c.members)+1)
	out = append(out, Member{Name: c.opts.Name, Addr: c.addr, Meta: c.self.Clone(), Alive: true})
	for _, m := range c.members {
		mm := m.Member
		mm.Meta = mm.Meta.Clone()
		out = append(out, mm)
	}
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// Member returns the member named name as this node sees it.
func (c *Cluster) Member(name string) (Member, bool) {
	for _, m := range c.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// RoleWitness is the Meta.Role of the witness.
const RoleWitness = "witness"

// WitnessSees is the witness's verdict on member name, as this node sees
// it: ok is false when no witness is alive here (the verdict is
// unavailable); otherwise sees tells whether the witness's last meta lists
// name among the members it sees alive.
func (c *Cluster) WitnessSees(name string) (sees, ok bool) {
	for _, m := range c.Members() {
		if m.Name != c.opts.Name && m.Alive && m.Meta.Role == RoleWitness {
			return m.Meta.SeesMember(name), true
		}
	}
	return false, false
}

// LocalMeta returns this member's current meta, Sees included.
func (c *Cluster) LocalMeta() Meta {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.self.Clone()
}

// SetMeta replaces this member's meta (Name, Sees and Leaving are kept) and
// pushes it to the others in the background. It does not block.
func (c *Cluster) SetMeta(m Meta) {
	c.mu.Lock()
	m.Name, m.Sees, m.Leaving = c.self.Name, c.self.Sees, c.self.Leaving
	if m.Equal(c.self) {
		c.mu.Unlock()
		return
	}
	c.self = m.Clone()
	c.storeMeta(c.self)
	c.mu.Unlock()
	c.kickPush()
}

// storeMeta encodes m for NodeMeta. Called with c.mu held (or before start).
func (c *Cluster) storeMeta(m Meta) {
	b, trimmed := fitMeta(m, MaxMetaSize)
	if trimmed {
		c.log.Error("own meta is longer than gossip allows: shortened", "limit", MaxMetaSize, "sees", len(m.Sees))
	}
	c.meta.Store(&b)
}

func (c *Cluster) kickPush() {
	select {
	case c.pushCh <- struct{}{}:
	default:
	}
}

// pushTimeout bounds one UpdateNode: the wait for the broadcast to be sent.
func (c *Cluster) pushTimeout() time.Duration {
	return max(time.Second, 5*c.opts.ProbeInterval)
}

// pushLoop gossips the own meta each time it changes. memberlist's
// UpdateNode must not be called from its delegates (they hold its locks),
// so the delegates and SetMeta only signal this goroutine.
func (c *Cluster) pushLoop() {
	for {
		select {
		case <-c.stop:
			return
		case <-c.pushCh:
		}
		select {
		case <-c.stop:
			return
		case c.pushSem <- struct{}{}:
		}
		if err := c.ml.UpdateNode(c.pushTimeout()); err != nil {
			// The update is queued all the same; it goes out with the
			// next gossip or push/pull.
			c.log.Debug("meta update not confirmed", "err", err)
		}
		<-c.pushSem
	}
}

// Run joins the configured members, then rejoins every RejoinInterval
// (with jitter) those that are missing: memberlist alone never re-merges
// two members that declared each other dead during a partition. When ctx
// ends, Run leaves the cluster (bounded) and shuts down; it returns nil.
// After Shutdown it returns at once.
func (c *Cluster) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("cluster: Run called twice")
	}
	select {
	case <-c.stop:
		return nil
	default:
	}
	c.rejoin(ctx)
	for {
		d := c.opts.RejoinInterval
		d = d*3/4 + rand.N(d/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			c.leave()
			return nil
		case <-c.stop:
			t.Stop()
			return nil
		case <-t.C:
		}
		c.rejoin(ctx)
	}
}

// rejoin joins the configured addresses at which no alive member is seen.
func (c *Cluster) rejoin(ctx context.Context) {
	c.refreshExpected(ctx)
	for _, addr := range c.missing(ctx) {
		select {
		case <-c.stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		_, err := c.ml.Join([]string{addr})
		err = flatten(err)
		c.mu.Lock()
		st := c.joins[addr]
		c.joins[addr] = st.next(err, time.Now())
		c.mu.Unlock()
		switch {
		case err != nil:
			c.met.rejoins.WithLabelValues("failed").Inc()
			failing := time.Duration(0)
			if !st.failingSince.IsZero() {
				failing = time.Since(st.failingSince)
			}
			switch {
			case st.failingSince.IsZero():
				// Often a member starting a moment later, or one that
				// has just stopped: a warning only if it lasts.
				c.log.Info("cannot join gossip member yet; retrying", "addr", addr, "every", c.opts.RejoinInterval, "err", err)
			case failing >= joinWarnAfter && !st.warned:
				c.log.Warn("cannot join gossip member; still retrying", "addr", addr, "failing_for", failing.Round(time.Second),
					"every", c.opts.RejoinInterval, "err", err)
				c.mu.Lock()
				js := c.joins[addr]
				js.warned = true
				c.joins[addr] = js
				c.mu.Unlock()
			default:
				c.log.Debug("join failed again", "addr", addr, "err", err)
			}
		case !st.failingSince.IsZero():
			c.met.rejoins.WithLabelValues("ok").Inc()
			c.log.Info("rejoined gossip member", "addr", addr, "failing_for", time.Since(st.failingSince).Round(time.Millisecond))
		case !st.joined:
			c.met.rejoins.WithLabelValues("ok").Inc()
			c.log.Info("joined gossip member", "addr", addr)
		default:
			// Joined again although nothing failed: the member behind
			// addr advertises another address (NAT, multi-homed host),
			// or it came back between two rounds.
			c.met.rejoins.WithLabelValues("ok").Inc()
			c.log.Debug("joined gossip member again", "addr", addr)
		}
	}
}

// joinWarnAfter is how long joins to a configured member fail before a
// warning: a member that starts a moment after this one, or stops before
// it, is no news.
const joinWarnAfter = 10 * time.Second

// joinState is what the rejoin loop remembers of one configured address.
type joinState struct {
	joined       bool      // a join has succeeded once
	failingSince time.Time // zero unless the last attempt failed
	warned       bool      // the failure has been warned about
}

func (s joinState) next(err error, now time.Time) joinState {
	if err == nil {
		return joinState{joined: true}
	}
	if s.failingSince.IsZero() {
		s.failingSince = now
	}
	return s
}

// flatten turns memberlist's multi-line join error (one address, so one
// item) into one line; it unwraps to the original.
func flatten(err error) error {
	if err == nil {
		return nil
	}
	lines := strings.FieldsFunc(err.Error(), func(r rune) bool { return r == '\n' })
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[i]), "*")); l != "" {
			return &lineError{line: l, err: err}
		}
	}
	return err
}

type lineError struct {
	line string
	err  error
}

func (e *lineError) Error() string { return e.line }
func (e *lineError) Unwrap() error { return e.err }

// missing returns the configured join addresses with no alive member
// behind them, skipping this member's own address. A member that
// advertises another address than the one configured for it (a wrong
// peer.gossip) is joined again every round: harmless, logged at debug.
func (c *Cluster) missing(ctx context.Context) []string {
	alive := map[netip.AddrPort]bool{}
	c.mu.Lock()
	for _, m := range c.members {
		if ap, err := netip.ParseAddrPort(m.Addr); m.Alive && err == nil {
			alive[canonical(ap)] = true
		}
	}
	c.mu.Unlock()
	self, _ := netip.ParseAddrPort(c.addr)
	var out []string
	for _, addr := range c.opts.Join {
		aps := resolve(ctx, addr)
		if slices.ContainsFunc(aps, func(ap netip.AddrPort) bool { return ap == canonical(self) }) {
			continue
		}
		if !slices.ContainsFunc(aps, func(ap netip.AddrPort) bool { return alive[ap] }) {
			out = append(out, addr)
		}
	}
	return out
}

// resolve turns a configured host:port into addresses; a name is looked up
// (bounded), a failure gives none, so the address counts as missing.
func resolve(ctx context.Context, addr string) []netip.AddrPort {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.AddrPort{canonical(netip.AddrPortFrom(ip, uint16(port)))}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		out = append(out, canonical(netip.AddrPortFrom(ip, uint16(port))))
	}
	return out
}

func canonical(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// leaveTimeout bounds the goodbye at the end of Run.
func (c *Cluster) leaveTimeout() time.Duration {
	return min(2*time.Second, max(500*time.Millisecond, 5*c.opts.ProbeInterval))
}

// leave tells the others this member is going (Meta.Leaving, then a
// memberlist Leave), each bounded, then shuts down.
func (c *Cluster) leave() {
	c.leaveSem <- struct{}{}
	if !c.shutDown {
		c.mu.Lock()
		c.self.Leaving = true
		c.storeMeta(c.self)
		c.mu.Unlock()
		// A queued broadcast about this member is replaced by the next
		// one: wait for a push in flight, then for ours, so that the
		// Leaving meta is out before the leave message.
		c.pushSem <- struct{}{}
		err := c.ml.UpdateNode(c.leaveTimeout())
		<-c.pushSem
		if err != nil {
			c.log.Debug("leaving meta not confirmed", "err", err)
		}
		switch err := c.ml.Leave(c.leaveTimeout()); {
		case err == nil:
			c.log.Info("left the gossip cluster")
		case c.aliveMembers() == 0:
			c.log.Info("left the gossip cluster; no member was there to tell")
		default:
			c.log.Warn("leave not confirmed; the others will find out by probing", "err", err)
		}
	}
	<-c.leaveSem
	c.Shutdown()
}

// Shutdown stops gossip at once, without telling the others (they see this
// member as failed, as after a crash), stops Run and closes Events. It is
// idempotent. Run's graceful end calls it after leaving.
func (c *Cluster) Shutdown() {
	c.stopOnce.Do(func() {
		c.leaveSem <- struct{}{}
		c.shutDown = true
		if err := c.ml.Shutdown(); err != nil {
			c.log.Warn("gossip shutdown", "err", err)
		}
		<-c.leaveSem
		c.queue.close()
		close(c.stop)
		c.wg.Wait()
		c.met.unregister()
		c.log.Info("gossip stopped")
		close(c.stopped)
	})
	<-c.stopped
}

// Done is closed when the cluster has shut down.
func (c *Cluster) Done() <-chan struct{} { return c.stopped }

// observe records a change reported by memberlist (called from its
// delegate goroutines, never blocking).
func (c *Cluster) observe(kind EventKind, n *memberlist.Node) {
	if n.Name == c.opts.Name {
		return
	}
	meta := Meta{Name: n.Name}
	if len(n.Meta) > 0 {
		err := meta.UnmarshalBinary(n.Meta)
		switch {
		case errors.Is(err, errMetaEpoch):
			// Corrupt or forged: nothing of it is taken, and the member's
			// previous view stays (a Down uses that view anyway).
			c.refusedMeta(n.Name, err)
			if kind != Down {
				return
			}
		case err != nil:
			c.log.Warn("cannot read a member's meta (another resman version?)", "member", n.Name, "err", err)
			meta = Meta{Name: n.Name}
		default:
			c.mu.Lock()
			delete(c.refused, n.Name)
			c.mu.Unlock()
		}
	}
	now := time.Now()
	addr := net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))

	c.mu.Lock()
	select {
	case <-c.stop:
		c.mu.Unlock()
		return
	default:
	}
	m := c.members[n.Name]
	if m == nil {
		m = &member{Member: Member{Name: n.Name}}
		c.members[n.Name] = m
	}
	wasAlive := m.Alive
	var downAfter time.Duration
	switch kind {
	case Up, Update:
		m.Addr, m.Meta, m.Alive, m.lastSeen = addr, meta, true, now
		if kind == Up && wasAlive {
			kind = Update
		}
		if kind == Update && !wasAlive {
			kind = Up
		}
	case Down:
		if !wasAlive {
			c.mu.Unlock()
			return
		}
		m.Alive = false
		m.Meta.Name = n.Name
		downAfter = now.Sub(m.lastSeen)
	}
	ev := Event{Kind: kind, Member: m.Member}
	ev.Member.Meta = ev.Member.Meta.Clone()
	sees := c.seesLocked()
	seesChanged := !slices.Equal(sees, c.self.Sees)
	if seesChanged {
		c.self.Sees = sees
		c.storeMeta(c.self)
	}
	if kind != Update {
		// Before the event goes out: whoever reads it finds the gauges
		// and the down-time histogram already saying so.
		c.updateGaugesLocked()
	}
	if kind == Down {
		c.met.peerDown.Observe(downAfter.Seconds())
	}
	c.queue.push(ev)
	c.mu.Unlock()

	switch kind {
	case Up:
		c.log.Info("member up", "member", n.Name, "addr", addr, "role", meta.Role, "status", meta.Status, "epoch", meta.Epoch)
	case Down:
		c.log.Info("member down", "member", n.Name, "addr", m.Addr, "last_seen_ago", downAfter.Round(time.Millisecond), "leaving", ev.Member.Meta.Leaving)
	case Update:
		c.log.Debug("member update", "member", n.Name, "role", meta.Role, "status", meta.Status, "epoch", meta.Epoch, "healthy", meta.Healthy, "sees", meta.Sees)
	}
	if seesChanged {
		c.kickPush()
	}
}

// refusedMeta logs a member's meta refused for its epoch, once until the
// member gossips a meta that is taken again: it repeats it at every
// update.
func (c *Cluster) refusedMeta(name string, err error) {
	c.mu.Lock()
	logged := c.refused[name]
	if c.refused == nil {
		c.refused = map[string]bool{}
	}
	c.refused[name] = true
	c.mu.Unlock()
	if !logged {
		c.log.Warn("member's meta refused: its epoch is above the maximum; keeping the member's previous view",
			"member", name, "err", err)
	}
}

// seesLocked lists the alive members, sorted. Called with c.mu held.
func (c *Cluster) seesLocked() []string {
	var out []string
	for name, m := range c.members {
		if m.Alive {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// aliveMembers counts the other members seen alive.
func (c *Cluster) aliveMembers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.members {
		if m.Alive {
			n++
		}
	}
	return n
}

func (c *Cluster) updateGauges() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.updateGaugesLocked()
}

// updateGaugesLocked sets the members gauges. Called with c.mu held.
func (c *Cluster) updateGaugesLocked() {
	alive, down := 1, 0
	for _, m := range c.members {
		if m.Alive {
			alive++
		} else {
			down++
		}
	}
	c.met.members.WithLabelValues("alive").Set(float64(alive))
	c.met.members.WithLabelValues("down").Set(float64(down))
}

// sawAlive records a sign of life (an acked probe) for the Down histogram.
func (c *Cluster) sawAlive(name string) {
	now := time.Now()
	c.mu.Lock()
	if m := c.members[name]; m != nil && m.Alive {
		m.lastSeen = now
	}
	c.mu.Unlock()
}

// delegate implements memberlist's delegates. Its methods are called from
// memberlist's goroutines, some with memberlist's locks held: they must not
// block nor call back into memberlist.
type delegate struct{ c *Cluster }

func (d *delegate) NodeMeta(limit int) []byte {
	// storeMeta fitted it to MaxMetaSize, memberlist's limit.
	if b := *d.c.meta.Load(); len(b) <= limit {
		return b
	}
	return nil
}

func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

func (d *delegate) NotifyJoin(n *memberlist.Node)   { d.c.observe(Up, n) }
func (d *delegate) NotifyLeave(n *memberlist.Node)  { d.c.observe(Down, n) }
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.c.observe(Update, n) }

func (d *delegate) AckPayload() []byte { return nil }
func (d *delegate) NotifyPingComplete(n *memberlist.Node, _ time.Duration, _ []byte) {
	d.c.sawAlive(n.Name)
}

func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.c.log.Warn("two gossip members claim the same name: check node.name on both hosts",
		"name", existing.Name, "known_addr", existing.Address(), "other_addr", other.Address())
}
