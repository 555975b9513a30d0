package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Expected is a member this one admits: the gossip key alone lets anyone
// who holds it announce a member, so a member is taken only when it is one
// of the configured members, with the name and role it must have, at the
// address configured for it.
type Expected struct {
	// Addr is the member's configured gossip host:port. A host name is
	// resolved at start and again at every rejoin round.
	Addr string
	// Name, when set, is the name the member at Addr must carry; a member
	// with that name elsewhere is refused. Empty: any name (a witness,
	// whose name the nodes are not told).
	Name string
	// Roles are the roles (Meta.Role) the member may announce; empty
	// allows any.
	Roles []string
	// Key is the config key Addr comes from, for the messages
	// ("peer.gossip", "failover.witness", "gossip.join").
	Key string
}

// refuseWarnEvery bounds the warnings about one refused member: it
// announces itself several times a second.
const refuseWarnEvery = time.Minute

// resolvedExpected is an Expected with its addresses looked up.
type resolvedExpected struct {
	Expected
	addrs []netip.AddrPort
}

// resolveExpected looks the configured addresses up (a name bounded by
// ctx; one that does not resolve admits nobody until it does).
func resolveExpected(ctx context.Context, exp []Expected) []resolvedExpected {
	out := make([]resolvedExpected, 0, len(exp))
	for _, e := range exp {
		out = append(out, resolvedExpected{Expected: e, addrs: resolve(ctx, e.Addr)})
	}
	return out
}

// refreshExpected resolves the expected members again (a host name may
// have moved). Called by New and by each rejoin round.
func (c *Cluster) refreshExpected(ctx context.Context) {
	if len(c.opts.Expected) == 0 {
		return
	}
	r := resolveExpected(ctx, c.opts.Expected)
	c.expected.Store(&r)
}

// admission says why the member n may not take part, or nil. It runs in
// memberlist's goroutines with its locks held: no lookups, no blocking.
func (c *Cluster) admission(name string, addr netip.AddrPort, meta []byte) error {
	if name == c.opts.Name {
		return nil // our own alive message; memberlist settles a clash
	}
	exp := c.expected.Load()
	if exp == nil {
		return nil // no list: every member with the key (tests)
	}
	var m Meta
	role := ""
	if len(meta) > 0 && m.UnmarshalBinary(meta) == nil {
		role = m.Role
	}
	addr = canonical(addr)
	// A member with an expected name must be at that name's address.
	for _, e := range *exp {
		if e.Name == "" || e.Name != name {
			continue
		}
		if !slices.Contains(e.addrs, addr) {
			return fmt.Errorf("it carries the name %s but announces address %s, and %s is %s for %s",
				name, addr, e.Key, e.Addr, name)
		}
		return checkRole(e, role)
	}
	for _, e := range *exp {
		if !slices.Contains(e.addrs, addr) {
			continue
		}
		if e.Name != "" {
			return fmt.Errorf("address %s is %s, the address of %s, but the member there is named %s", addr, e.Key, e.Name, name)
		}
		return checkRole(e, role)
	}
	return fmt.Errorf("it is not a configured member: neither its name nor its address %s is one of %s", addr, expectedList(*exp))
}

func checkRole(e resolvedExpected, role string) error {
	if len(e.Roles) == 0 || slices.Contains(e.Roles, role) {
		return nil
	}
	return fmt.Errorf("it announces role %q, but the member at %s (%s) may only be %s",
		role, e.Addr, e.Key, strings.Join(e.Roles, " or "))
}

func expectedList(exp []resolvedExpected) string {
	var parts []string
	for _, e := range exp {
		p := e.Key + " " + e.Addr
		if e.Name != "" {
			p += " (" + e.Name + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// refuse logs and counts a member kept out, and reports it as a Refused
// event, at most once per member, address and reason every
// refuseWarnEvery.
func (c *Cluster) refuse(name string, addr netip.AddrPort, err error) {
	c.met.refused.Inc()
	key := name + "\x00" + addr.String() + "\x00" + err.Error()
	now := time.Now()
	c.mu.Lock()
	if c.refusedAt == nil {
		c.refusedAt = map[string]time.Time{}
	}
	last, seen := c.refusedAt[key]
	quiet := seen && now.Sub(last) < refuseWarnEvery
	if !quiet {
		c.refusedAt[key] = now
		c.queue.push(Event{Kind: Refused, Member: Member{Name: name, Addr: addr.String(), Meta: Meta{Name: name}}, Reason: err.Error()})
	}
	c.mu.Unlock()
	if !quiet {
		c.log.Warn("gossip member refused: it holds the gossip key but is not a configured member",
			"member", name, "addr", addr.String(), "why", err.Error())
	}
}

// NotifyAlive keeps out the members that are not expected: memberlist
// then ignores their alive messages, so nothing of their meta is taken.
func (d *delegate) NotifyAlive(n *memberlist.Node) error {
	ip, ok := netip.AddrFromSlice(n.Addr)
	if !ok {
		return fmt.Errorf("bad address %v", n.Addr)
	}
	addr := netip.AddrPortFrom(ip, n.Port)
	if err := d.c.admission(n.Name, addr, n.Meta); err != nil {
		d.c.refuse(n.Name, addr, err)
		return err
	}
	return nil
}
