package node

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/cluster"
)

// onGossip turns a membership change into the core's view of the peer or
// of the witness. Loop goroutine only.
func (n *Node) onGossip(ctx context.Context, ev cluster.Event) {
	mem := ev.Member
	if ev.Kind == cluster.Refused {
		n.Note("refuse gossip member", resilience.OutcomeRefused,
			fmt.Sprintf("gossip member %s at %s holds the gossip key but is not a configured member", mem.Name, mem.Addr), ev.Reason)
		// Counted once audited: the count tells the entry is there.
		n.metrics.claims.WithLabelValues("member_refused").Inc()
		return
	}
	alive := ev.Kind != cluster.Down
	switch {
	case n.d.PeerName != "" && mem.Name == n.d.PeerName:
		// Before the witness case: the peer's name never makes a witness.
		n.onPeerGossip(ctx, mem, alive)
	case mem.Meta.Role == string(resilience.RoleWitness):
		n.mu.Lock()
		n.snap.witnessAlive = alive
		n.mu.Unlock()
		n.step(ctx, resilience.WitnessSeen{Witness: resilience.WitnessView{
			Alive: alive, SeesPeer: alive && mem.Meta.SeesMember(n.d.PeerName)}})
	case n.d.Core.Role == resilience.RoleWitness:
		n.mu.Lock()
		seen := maps.Clone(n.snap.pairSeen)
		if seen == nil {
			seen = map[string]resilience.Role{}
		}
		delete(seen, mem.Name)
		if role := resilience.Role(mem.Meta.Role); alive && (role == resilience.RoleMain || role == resilience.RoleStandby) {
			seen[mem.Name] = role
		}
		// A new map: Status reads snapshots outside the lock.
		n.snap.pairSeen = seen
		n.mu.Unlock()
	}
}

// onPeerGossip takes the peer's gossip view, unless it is a claim that
// would move this node: that waits for the peer's API (see claimState).
func (n *Node) onPeerGossip(ctx context.Context, mem cluster.Member, alive bool) {
	p := api.Peer{Name: mem.Name, URL: n.d.PeerURL, Reachable: alive, CheckedAt: n.now().UTC()}
	switch verr := resilience.ValidEpoch(mem.Meta.Epoch); {
	case alive && verr != nil:
		// The gossip layer refuses such a meta; should one come, it
		// is an answer that cannot be read.
		p.Error = "the peer's meta cannot be read: " + verr.Error()
		n.warnAbsurdEpoch("gossip", mem.Meta.Epoch)
	case alive:
		p.Status, p.Epoch, p.Version, p.Healthy = mem.Meta.Status, mem.Meta.Epoch, mem.Meta.Version, mem.Meta.Healthy
		p.Holding, p.HeldByAdmin = mem.Meta.Holding, mem.Meta.HeldByAdmin
		if mem.Meta.FailoverUntil > 0 {
			u := time.Unix(mem.Meta.FailoverUntil, 0).UTC()
			p.FailoverUntil = &u
		}
		if mem.Meta.CallsKnown {
			c := mem.Meta.Calls
			p.Calls = &c
		}
	default:
		p.Error = "lost over gossip"
		if mem.Meta.Leaving {
			p.Error = "left the cluster (stopped)"
		}
	}
	switch {
	case alive:
		n.peerGossipBack(p)
	case !mem.Meta.Leaving && n.peerGossipLost(ctx):
		return // the second path decides (secondpath.go)
	}
	n.takePeerView(ctx, p)
}

// takePeerView takes a view of the peer, unless it is a claim that would
// move this node: that waits for the peer's API (see claimState).
func (n *Node) takePeerView(ctx context.Context, p api.Peer) {
	if n.needsConfirmation(p) {
		n.claim.pending = &p
		n.confirmClaim(ctx)
		return
	}
	n.claim.pending = nil
	n.takePeerGossip(ctx, p)
}

// takePeerGossip feeds a gossip view of the peer to the core.
func (n *Node) takePeerGossip(ctx context.Context, p api.Peer) {
	if n.olderThanShown(p) {
		n.log.Debug("gossip view of the peer older than the one this node has: skipped",
			"peer", p.Name, "status", p.Status, "epoch", p.Epoch)
		return
	}
	n.setPeer(p)
	n.mu.Lock()
	n.snap.peerInGossip = n.snap.peerInGossip || p.Reachable
	n.mu.Unlock()
	switch {
	case !p.Reachable && n.peerLostAt.IsZero():
		n.peerLostAt = n.now()
	case p.Reachable:
		n.peerLostAt = time.Time{}
	}
	n.step(ctx, resilience.PeerSeen{Peer: n.peerView(p)})
}

// claimState follows a gossip claim of the peer that would make this
// Active node give way: the peer Active (or activating) at a higher epoch.
// Anyone with the gossip key can announce that, so the claim is taken only
// once the peer's own word says the same: an answer of the second path
// vouched for with api.token (looked at every tick), or the peer's API,
// reached with api.token (asked again every PeerEvery). Until then the
// core keeps its previous view of the peer and this node stays Active.
// Loop goroutine only.
type claimState struct {
	pending *api.Peer // the latest gossip view waiting, nil when none
	busy    bool      // a check of the peer's API is in flight
	triedAt time.Time // when the last check started
	// confirmed: the last claim the API confirmed, taken again without a
	// check while the peer's gossip repeats it.
	confirmedStatus string
	confirmedEpoch  uint64
	// warned: the epoch of the last claim warned about.
	warned uint64
}

// needsConfirmation says whether the gossip view p would move this node and
// must wait for the peer's API.
func (n *Node) needsConfirmation(p api.Peer) bool {
	if n.d.Peer == nil || !p.Reachable || p.Error != "" {
		return false
	}
	self, claims := n.m.Status(), resilience.Status(p.Status)
	if self != resilience.Active && self != resilience.Activating {
		return false
	}
	if claims != resilience.Active && claims != resilience.Activating {
		return false
	}
	if p.Epoch <= n.m.Epoch() {
		return false // the core keeps this node Active against it
	}
	return p.Status != n.claim.confirmedStatus || p.Epoch != n.claim.confirmedEpoch
}

// confirmClaim confirms the pending claim by the second path's vouched
// answer if it says the same, or else asks the peer's API, at most once
// every PeerEvery, without blocking the loop; the API's answer comes back
// as a claimChecked message.
func (n *Node) confirmClaim(ctx context.Context) {
	c := &n.claim
	if c.pending != nil && n.vouchedBySecondPath(*c.pending) {
		n.claimConfirmed(ctx, *c.pending)
		n.metrics.claims.WithLabelValues("confirmed").Inc()
		return
	}
	if c.pending == nil || c.busy || (!c.triedAt.IsZero() && n.now().Sub(c.triedAt) < n.d.PeerEvery) {
		return
	}
	c.busy, c.triedAt = true, n.now()
	go func() {
		p := n.fetchPeer(ctx)
		select {
		case n.msgs <- claimChecked{api: p}:
		case <-ctx.Done():
		}
	}()
}

// claimChecked decides the pending claim on the peer's API answer. Each
// outcome is counted once it is taken (audited, shown): a reader that
// waits for the count finds what it says.
func (n *Node) claimChecked(ctx context.Context, ap api.Peer) {
	c := &n.claim
	c.busy = false
	claim := c.pending
	if claim == nil || !n.auto() {
		return // a later gossip view replaced it
	}
	if !n.needsConfirmation(*claim) {
		// This node moved meanwhile; the claim no longer moves it.
		c.pending = nil
		n.takePeerGossip(ctx, *claim)
		return
	}
	says := resilience.Status(ap.Status)
	switch {
	case !ap.Reachable || ap.Error != "":
		if c.warned != claim.Epoch {
			c.warned = claim.Epoch
			n.log.Warn("the peer claims Active over gossip, but its API cannot confirm it: this node stays Active and asks again",
				"peer", n.d.PeerName, "claim_status", claim.Status, "claim_epoch", claim.Epoch, "epoch", n.m.Epoch(),
				"api_error", ap.Error, "every", n.d.PeerEvery)
		}
		shown := *claim
		shown.Error = fmt.Sprintf("claims %s at epoch %d over gossip, not confirmed by its API: %s", claim.Status, claim.Epoch, ap.Error)
		n.setPeer(shown)
		n.metrics.claims.WithLabelValues("unconfirmed").Inc()
	case (says == resilience.Active || says == resilience.Activating) && ap.Epoch >= claim.Epoch:
		n.claimConfirmed(ctx, *claim)
		n.metrics.claims.WithLabelValues("confirmed").Inc()
	default:
		c.pending = nil
		if c.warned != claim.Epoch {
			c.warned = claim.Epoch
			n.Note("refuse gossip claim", resilience.OutcomeRefused,
				fmt.Sprintf("peer %s claimed %s at epoch %d over gossip; its API says %s at epoch %d", n.d.PeerName,
					claim.Status, claim.Epoch, ap.Status, ap.Epoch),
				"a member with the gossip key announced what the peer does not say: a forged member, or a stale one")
		}
		// The API's answer is the peer's own word: the core takes it.
		n.setPeer(ap)
		n.step(ctx, resilience.PeerSeen{Peer: n.peerView(ap)})
		n.metrics.claims.WithLabelValues("refuted").Inc() // once audited and taken

	}
}

// claimConfirmed takes a claim the peer's own word confirmed.
func (n *Node) claimConfirmed(ctx context.Context, claim api.Peer) {
	c := &n.claim
	c.pending, c.confirmedStatus, c.confirmedEpoch = nil, claim.Status, claim.Epoch
	n.takePeerGossip(ctx, claim)
}

// vouchedBySecondPath says whether the second path's last answer, recent
// and vouched for (echo.NewVouchKey), says what claim says: Active or
// activating at its epoch or later. It is made by the peer at its
// configured address, for a probe of this node's, under api.token.
func (n *Node) vouchedBySecondPath(claim api.Peer) bool {
	sp := n.secondPath()
	if sp == nil {
		return false
	}
	st := sp.State()
	says := resilience.Status(st.Meta.Status)
	return st.Vouched && n.now().Sub(st.LastAnswer) < sp.Window() &&
		(says == resilience.Active || says == resilience.Activating) && st.Meta.Epoch >= claim.Epoch
}

// statusOrder ranks the statuses one activation goes through, in order;
// each activation takes a new epoch, so within one epoch a peer never goes
// back to an earlier status.
var statusOrder = map[string]int{
	string(resilience.Activating): 1, string(resilience.Active): 2,
	string(resilience.Deactivating): 3, string(resilience.Inactive): 4,
}

// olderThanShown says whether p, a readable view of the peer, is older than
// the one this node has: the same epoch at an earlier status. Gossip can
// lag behind an admin command's fresh read of the peer's API (a switchover
// back: the peer's API already says inactive while its Active meta is still
// on its way), and taking it would show a split brain that is over.
func (n *Node) olderThanShown(p api.Peer) bool {
	if !p.Reachable || p.Error != "" {
		return false // a loss is news whatever was seen before
	}
	n.mu.RLock()
	cur := n.snap.peer
	n.mu.RUnlock()
	if cur == nil || !cur.Reachable || cur.Error != "" || cur.Epoch != p.Epoch {
		return false
	}
	return statusOrder[p.Status] > 0 && statusOrder[p.Status] < statusOrder[cur.Status]
}
