package resilience

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Who the core names as the actor of the transitions it decides itself.
const Self = "resman"

// Machine is the decision core of one node. It is not safe for concurrent
// use: the runtime feeds it one event at a time.
type Machine struct {
	cfg    Config
	booted bool
	status Status
	epoch  uint64
	peer   PeerView
	// peerEpoch is the highest epoch ever seen of the peer: an unreachable
	// peer reports none, but its last activation still counts.
	peerEpoch uint64
	unhealthy []string
	witness   WitnessView
	// calls in progress on this node's PBX, when callsKnown.
	calls      int
	callsKnown bool

	// Auto mode: how long (in ticks) each condition has held.
	peerLostFor     int // the peer unreachable
	unhealthyFor    int // this node's critical services unhealthy
	peerSickFor     int // the peer Active but unhealthy
	peerEligibleFor int // the peer settled Inactive, healthy, not holding
	// peerSettledFor: the peer settled Inactive, counted from the end of
	// this node's last hold on. The Main takes the Active role from an
	// Inactive Standby only after a tick of it: a Standby that started to
	// take over just as the Main's hold ended shows by then.
	peerSettledFor int
	isolatedFor    int // neither peer nor witness seen (with a witness)
	holdTicks      int // a timed hold: do not activate by itself
	adminHold      bool
	failoverTicks  int // a manual HA failover under way: hold until it ends
	// noFailback: after a planned switchover away from the Main, it does
	// not take the Active role back by priority or failback (it still takes
	// over if its peer is lost). Cleared by its next activation.
	noFailback bool
	// switchover: the ID of the planned switchover that stopped this
	// node. Until the runtime says it ended (SwitchoverEnded), done or
	// failed, this node holds: it does not take the Active role back by
	// itself while the peer is being started, even once it saw the peer
	// Active (the procedure may still be starting it, on a view of this
	// node fetched earlier).
	switchover string
	// peerSeenSinceBoot: the peer was reachable at least once since this
	// node started; until then a lost peer counts only after the boot
	// grace (bootTicks counts it).
	peerSeenSinceBoot bool
	bootTicks         int
	// undo is the machine as it was before the last Step that asked for a
	// Persist, and undoRec that Step's first record: a PersistFailed takes
	// the decision back. persistErr is the last persist error, so a
	// failure repeated every tick is recorded once.
	undo       *Machine
	undoRec    Record
	persistErr string
	// keepRest: the last Step rolls back a failed start. That cannot be
	// taken back (the start is over, and stopping is the safe way), so a
	// PersistFailed keeps it: these are its actions after the Persist,
	// still to carry out. dirty: the decision in force is not on disk
	// yet; it is persisted again at the next Tick or PeerSeen.
	keepRest []Action
	dirty    bool
	// undoFrom, when set during a Step, is where a PersistFailed takes
	// the machine back to: after what that Step cannot take back (a
	// completion, time passing), before the decision that followed.
	undoFrom *Machine
	// pending is who asked for the transition under way, and why: the
	// record written when the transition ends names them too.
	pending Record
}

// New returns a machine for cfg, Inactive at epoch 0 until Boot.
func New(cfg Config) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Machine{cfg: cfg, status: Inactive}, nil
}

// Status is the current runtime status.
func (m *Machine) Status() Status { return m.status }

// Epoch is the epoch of the last activation of this node.
func (m *Machine) Epoch() uint64 { return m.epoch }

// Peer is the last view of the peer fed in.
func (m *Machine) Peer() PeerView { return m.peer }

// Config is the configuration the machine runs with.
func (m *Machine) Config() Config { return m.cfg }

// Unhealthy lists the critical local services last reported unhealthy.
func (m *Machine) Unhealthy() []string { return slices.Clone(m.unhealthy) }

// Holding reports whether this node will not go Active by itself (auto
// mode): an admin stopped it, or it stepped down and waits out its hold.
// The runtime announces it to the peer.
//
// A node that holds still takes over when its peer is lost, unless an admin
// stopped it or it stepped down for ill health (blocksTakeover).
func (m *Machine) Holding() bool {
	return m.blocksTakeover() || m.failoverTicks > 0 || m.noFailback || m.switchover != ""
}

// PersistError is why the last decision could not be persisted ("" when the
// last one was): the node then did not act on it.
func (m *Machine) PersistError() string { return m.persistErr }

// inBootGrace reports whether a lost peer does not count yet: this node has
// not seen its peer since it started and the boot grace has not run out.
func (m *Machine) inBootGrace() bool {
	return !m.peerSeenSinceBoot && m.bootTicks < m.cfg.BootGraceTicks
}

// blocksTakeover: this node does not go Active by itself at all.
func (m *Machine) blocksTakeover() bool { return m.adminHold || m.holdTicks > 0 }

// Calls is the count of calls in progress on this node, when known.
func (m *Machine) Calls() (int, bool) { return m.calls, m.callsKnown }

// FailoverTicks is what remains of a manual HA failover (0: none).
func (m *Machine) FailoverTicks() int { return m.failoverTicks }

// FailbackTicks is, on an Active Standby with automatic failback whose
// Main is up and ready, what remains before it hands the role back (0:
// no failback is counting).
func (m *Machine) FailbackTicks() int {
	hold := max(m.cfg.FailbackHoldTicks, 1)
	if m.cfg.Role != RoleStandby || !m.cfg.FailbackAuto || m.Status() != Active || m.peerEligibleFor == 0 || m.peerEligibleFor >= hold {
		return 0
	}
	return hold - m.peerEligibleFor
}

// BootGraceTicks is what remains of the boot grace of an Inactive node
// that has not seen its peer since it started and could take over for it
// (0: none, over, or nothing it holds back: an Active node, a witness).
func (m *Machine) BootGraceTicks() int {
	if m.cfg.Role == RoleWitness || m.Status() != Inactive || !m.inBootGrace() {
		return 0
	}
	return m.cfg.BootGraceTicks - m.bootTicks
}

// AdminHold reports whether an admin's Stop holds this node Inactive.
func (m *Machine) AdminHold() bool { return m.adminHold }

// Switchover is the ID of the planned switchover that stopped this node and
// has not ended yet ("" when none).
func (m *Machine) Switchover() string { return m.switchover }

// Step feeds one event and returns the actions to carry out, in order. A
// refused admin command returns an error wrapping ErrConflict, ErrBusy or
// ErrPrecondition, together with the Record of the refusal.
func (m *Machine) Step(ev Event) ([]Action, error) {
	if pf, ok := ev.(PersistFailed); ok {
		return m.persistFailed(pf)
	}
	before := *m
	before.undo, before.keepRest = nil, nil
	m.undoFrom = nil
	acts, err := m.step(ev)
	if m.undoFrom != nil {
		before = *m.undoFrom
		m.undoFrom = nil
	}
	m.undo, m.keepRest = nil, nil
	if slices.ContainsFunc(acts, func(a Action) bool { _, ok := a.(Persist); return ok }) {
		// Presumed durable: a PersistFailed says otherwise.
		m.persistErr = ""
	}
	if st, ok := ev.(ServicesStarted); ok && st.Err != "" {
		for k, a := range acts {
			if _, ok := a.(Persist); ok {
				m.keepRest = append(slices.Clone(acts[:k]), acts[k+1:]...)
				break
			}
		}
		return acts, err
	}
	for _, a := range acts {
		if _, ok := a.(Persist); ok {
			m.undo = &before
		}
		if r, ok := a.(Record); ok && m.undo != nil {
			m.undoRec = r
			break
		}
	}
	return acts, err
}

// persistFailed takes back the decision of the last Step: the runtime
// carried out none of its actions. In auto mode the rules decide again at
// the next event, and try to persist again.
func (m *Machine) persistFailed(e PersistFailed) ([]Action, error) {
	if rest := m.keepRest; rest != nil {
		m.keepRest, m.dirty, m.persistErr = nil, true, e.Err
		rec := Record{Who: Self, Action: "persist", Outcome: OutcomeFailed, Detail: e.Err, Epoch: m.epoch, From: m.status, To: m.status,
			Cause: "the rollback of the failed start could not be persisted: stopping the services anyway, and persisting again later"}
		return append([]Action{rec}, rest...), nil
	}
	if m.undo == nil {
		return nil, nil
	}
	rec, lastErr := m.undoRec, m.undo.persistErr
	if rec.Action == "" { // a decision persisted again, with no record
		rec = Record{Who: Self, Action: "persist"}
	}
	*m = *m.undo
	m.persistErr = e.Err
	msg := "the decision could not be persisted, so nothing was started or stopped: " + e.Err
	err := fmt.Errorf("%w: %s", ErrNotDurable, msg)
	if rec.Who == Self && e.Err == lastErr {
		// The rules try again at every tick: record the failure once.
		return nil, err
	}
	return []Action{Record{Who: rec.Who, Action: rec.Action, Reason: rec.Reason, Cause: msg,
		Outcome: OutcomeFailed, Detail: e.Err, Epoch: m.epoch, From: m.status, To: m.status}}, err
}

func (m *Machine) step(ev Event) ([]Action, error) {
	if b, ok := ev.(Boot); ok {
		return m.boot(b), nil
	}
	if !m.booted {
		return nil, nil
	}
	switch e := ev.(type) {
	case PeerSeen:
		m.seePeer(e.Peer)
		return append(m.persistAgain(), m.stepAuto()...), nil
	case Health:
		m.unhealthy = slices.Clone(e.Unhealthy)
		return m.stepAuto(), nil
	case Calls:
		m.calls, m.callsKnown = max(e.N, 0), e.Known
		return m.stepAuto(), nil
	case WitnessSeen:
		m.witness = e.Witness
		return m.stepAuto(), nil
	case Tick:
		acts := m.tick()
		m.markUndo()
		acts = append(acts, m.persistAgain()...)
		return append(acts, m.stepAuto()...), nil
	case AdminFailover:
		return m.adminFailover(e)
	case SwitchoverStop:
		return m.switchoverStop(e)
	case SwitchoverEnded:
		if e.ID == "" || e.ID != m.switchover {
			return nil, nil
		}
		if e.Peer.Reachable {
			m.seePeer(e.Peer)
		}
		m.switchover = ""
		m.holdEnded()
		// The rules decide again at the next tick, on a view that has
		// caught up with the end of the switchover.
		return []Action{m.noop(Self, "switchover ended", "", fmt.Sprintf("switchover %s ended: this node follows the rules again", e.ID))}, nil
	case AdminFailoverStop:
		if m.failoverTicks == 0 {
			return []Action{m.noop(e.Who, "stop manual failover", e.Reason, "no manual failover under way")}, nil
		}
		m.failoverTicks = 0
		m.holdEnded()
		// The rules decide at the next tick: the Standby may be taking
		// over right now, on a view of this node still holding.
		return []Action{m.noop(e.Who, "stop manual failover", e.Reason, "manual failover ended early: failback follows the policy")}, nil
	case AdminStart:
		m.seePeer(e.Peer)
		e.Peer = m.peer // as taken: an absurd epoch reads as unreadable
		ev = e
	case Reconfigure:
		return m.reconfigure(e)
	case StoreWritable:
		return m.storeWritable(), nil
	}
	switch m.status {
	case Inactive:
		return m.stepInactive(ev)
	case Activating:
		return m.stepActivating(ev)
	case Active:
		return m.stepActive(ev)
	case Deactivating:
		return m.stepDeactivating(ev)
	}
	return nil, fmt.Errorf("core in unknown status %q", m.status)
}

func (m *Machine) stepInactive(ev Event) ([]Action, error) {
	switch e := ev.(type) {
	case AdminStart:
		if m.cfg.Role == RoleWitness {
			return m.refuse(e.Who, "start services", e.Reason, ErrPrecondition,
				"a witness has no services and never goes Active")
		}
		if m.switchover != "" && e.Rollback != m.switchover {
			// The switchover is starting the peer, on a view of this node
			// that says Inactive: a start here now would make two Actives.
			return m.refuse(e.Who, "start services", e.Reason, ErrBusy, fmt.Sprintf(
				"switchover %s stopped this node and is starting %s: wait until it ends (it rolls back here if %s does not start)",
				m.switchover, m.peerName(), m.peerName()))
		}
		if e.Peer.claimsActive() && !e.Force {
			return m.refuse(e.Who, "start services", e.Reason, ErrConflict, fmt.Sprintf(
				"peer %s is %s (epoch %d): starting here makes two Active nodes; stop services on %s first, or force with a reason",
				m.peerName(), e.Peer.Status, e.Peer.Epoch, m.peerName()))
		}
		if e.Peer.Reachable && e.Peer.Unreadable && !e.Force {
			return m.refuse(e.Who, "start services", e.Reason, ErrConflict, fmt.Sprintf(
				"%s answers but its status cannot be read (check api.token on both nodes): it may be Active; force with a reason to start anyway",
				m.peerLabel()))
		}
		cause := "admin command"
		if e.Force && (e.Peer.claimsActive() || e.Peer.Unreadable) {
			cause = fmt.Sprintf("admin command, forced while %s is %s (epoch %d)", m.peerLabel(), e.Peer.Status, e.Peer.Epoch)
			if e.Peer.Unreadable {
				cause = fmt.Sprintf("admin command, forced while %s is unreadable", m.peerLabel())
			}
		} else if !e.Peer.Reachable {
			cause = fmt.Sprintf("admin command; %s is unreachable", m.peerLabel())
		}
		epoch, ok := m.nextEpoch()
		if !ok {
			return m.refuse(e.Who, "start services", e.Reason, ErrPrecondition, fmt.Sprintf(
				"no epoch is left above %d (the maximum is %d): the state of the pair is corrupt", max(m.epoch, m.peerEpoch), MaxEpoch))
		}
		m.adminHold, m.holdTicks = false, 0
		return m.becomeActivating(e.Who, "start services", e.Reason, cause, epoch), nil
	case AdminStop:
		why := "already inactive"
		if m.cfg.Mode == ModeAuto && !m.adminHold {
			m.adminHold = true
			why = "already inactive; now held inactive until an admin starts services"
		}
		return []Action{m.noop(e.Who, "stop services", e.Reason, why)}, nil
	}
	return nil, nil
}

func (m *Machine) stepActivating(ev Event) ([]Action, error) {
	switch e := ev.(type) {
	case AdminStart:
		return []Action{m.noop(e.Who, "start services", e.Reason, "already activating")}, nil
	case AdminStop:
		return m.refuse(e.Who, "stop services", e.Reason, ErrBusy, "services are being started; stop when the start has ended")
	case ServicesStarted:
		if e.Err != "" {
			p := m.pending
			acts := m.becomeDeactivating(p.Who, "activation", p.Reason, "start failed: "+e.Err+"; stopping the services again")
			// The failed activation is the outcome the admin cares about.
			rec := acts[1].(Record)
			rec.Outcome, rec.Detail = OutcomeFailed, e.Err
			acts[1] = rec
			return acts, nil
		}
		// The peer may have claimed the Active role with a newer epoch
		// while the services started: settle it now, not a tick later.
		acts := m.becomeActive()
		m.markUndo()
		return append(acts, m.stepAuto()...), nil
	}
	return nil, nil
}

func (m *Machine) stepActive(ev Event) ([]Action, error) {
	switch e := ev.(type) {
	case AdminStart:
		// The fresh view it carries may show a newer Active peer.
		return append([]Action{m.noop(e.Who, "start services", e.Reason, "already active")}, m.stepAuto()...), nil
	case AdminStop:
		cause := "admin command"
		if m.cfg.Mode == ModeAuto {
			// Held, or the auto rules would start it again at once.
			m.adminHold = true
			cause = "admin command; held inactive until an admin starts services, so the peer takes over"
		}
		return m.becomeDeactivating(e.Who, "stop services", e.Reason, cause), nil
	}
	return nil, nil
}

func (m *Machine) stepDeactivating(ev Event) ([]Action, error) {
	switch e := ev.(type) {
	case AdminStart:
		return m.refuse(e.Who, "start services", e.Reason, ErrBusy, "services are being stopped; start when the stop has ended")
	case AdminStop:
		return []Action{m.noop(e.Who, "stop services", e.Reason, "already deactivating")}, nil
	case ServicesStopped:
		return m.becomeInactive(e.Err), nil
	}
	return nil, nil
}

// boot decides the first status: the persisted decision when there is one,
// otherwise XiVO's rule (the Main starts Active unless its peer is seen
// Active; the Standby and a witness start Inactive).
func (m *Machine) boot(b Boot) []Action {
	if m.booted {
		return nil
	}
	acts := m.bootDecision(b)
	if b.Saved != nil && len(acts) > 0 {
		if p, ok := acts[0].(Persist); ok && p.Saved == *b.Saved {
			// Already durable: a restart with a full disk still restores.
			acts = acts[1:]
		}
	}
	return acts
}

func (m *Machine) bootDecision(b Boot) []Action {
	m.booted = true
	m.seePeer(b.Peer)
	if b.Saved != nil {
		m.epoch = b.Saved.Epoch
	}
	switch {
	case m.cfg.Role == RoleWitness:
		return []Action{Record{Who: Self, Action: "boot", Cause: "a witness never goes Active",
			Outcome: OutcomeOK, From: Inactive, To: Inactive}}
	case b.Saved != nil && b.Saved.Status == Active && m.outranked():
		// In manual mode too: the peer's activation is newer than ours,
		// so it is the admin's latest decision; restoring ours would make
		// two Active nodes.
		return m.becomeDeactivating(Self, "boot", "", fmt.Sprintf(
			"restart: %s took over while this node was down (%s, epoch %d above ours %d)",
			m.peerLabel(), b.Peer.Status, b.Peer.Epoch, m.epoch))
	case b.Saved != nil && b.Saved.Status == Active:
		cause := fmt.Sprintf("restart: restoring the persisted status active (epoch %d)", m.epoch)
		if b.Peer.claimsActive() {
			cause += fmt.Sprintf("; peer %s also claims %s (epoch %d)", m.peerName(), b.Peer.Status, b.Peer.Epoch)
		}
		return m.becomeActivating(Self, "boot", "", cause, m.epoch)
	case b.Saved != nil:
		return m.becomeDeactivating(Self, "boot", "", "restart: restoring the persisted status inactive; making sure services are stopped")
	case m.cfg.Role == RoleMain && b.Peer.claimsActive():
		return m.becomeDeactivating(Self, "boot", "", fmt.Sprintf(
			"first start: peer %s is %s (epoch %d), so the Main starts Inactive", m.peerName(), b.Peer.Status, b.Peer.Epoch))
	case m.cfg.Role == RoleMain:
		epoch, ok := m.nextEpoch()
		if !ok {
			return m.becomeDeactivating(Self, "boot", "", "first start: no epoch is left below the maximum; staying Inactive")
		}
		return m.becomeActivating(Self, "boot", "", "first start: the Main starts Active (peer "+b.Peer.String()+")", epoch)
	default:
		return m.becomeDeactivating(Self, "boot", "", "first start: the Standby starts Inactive")
	}
}

// reconfigure applies a reloaded config. The auto-mode clocks restart, so
// a switch to auto mode never acts on what was counted before it.
func (m *Machine) reconfigure(e Reconfigure) ([]Action, error) {
	c := e.Config
	if c.Name != m.cfg.Name || c.Role != m.cfg.Role {
		return m.refuse(e.Who, "reload config", "", ErrPrecondition,
			"node.name and node.role cannot change while running: restart resman")
	}
	if err := c.Validate(); err != nil {
		return m.refuse(e.Who, "reload config", "", ErrInvalid, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	}
	var changes []string
	if c.Mode != m.cfg.Mode {
		changes = append(changes, fmt.Sprintf("mode %s -> %s", m.cfg.Mode, c.Mode))
	}
	if c.LostTicks != m.cfg.LostTicks || c.FailbackHoldTicks != m.cfg.FailbackHoldTicks ||
		c.FailbackAuto != m.cfg.FailbackAuto || c.Witness != m.cfg.Witness || c.BootGraceTicks != m.cfg.BootGraceTicks {
		changes = append(changes, "failover settings")
	}
	if len(changes) == 0 {
		return nil, nil
	}
	m.cfg = c
	m.peerLostFor, m.unhealthyFor, m.peerSickFor, m.peerEligibleFor, m.isolatedFor, m.peerSettledFor = 0, 0, 0, 0, 0, 0
	if c.Mode == ModeManual {
		// Holds are an auto-mode notion; manual mode never moves anyway.
		m.adminHold, m.holdTicks = false, 0
	}
	rec := Record{Who: e.Who, Action: "reload config", Cause: strings.Join(changes, ", "), Outcome: OutcomeOK,
		Epoch: m.epoch, From: m.status, To: m.status}
	m.markUndo() // a decision that cannot be persisted does not take back the reload
	return append([]Action{rec}, m.stepAuto()...), nil
}

// switchoverStop is the first half of a planned switchover: this Active
// node steps down so the peer can start. In auto mode the Main then keeps
// off failback, so the switchover is not undone.
func (m *Machine) switchoverStop(e SwitchoverStop) ([]Action, error) {
	const action = "switchover: stop here"
	if m.status != Active {
		return m.refuse(e.Who, action, e.Reason, ErrPrecondition, fmt.Sprintf("this node is %s, not Active", m.status))
	}
	if e.ID == "" {
		return m.refuse(e.Who, action, e.Reason, ErrInvalid, "a switchover needs an id")
	}
	cause := fmt.Sprintf("planned switchover %s: stopping here, then %s starts; this node holds until the switchover ends",
		e.ID, m.peerLabel())
	m.switchover = e.ID
	if m.cfg.Mode == ModeAuto && m.cfg.Role == RoleMain {
		m.noFailback = true
		cause += "; no failback until this node is started again"
	}
	return m.becomeDeactivating(e.Who, action, e.Reason, cause), nil
}

// adminFailover starts a manual HA failover: the Main steps down and holds
// for the given time; the Standby takes over by the usual rules.
func (m *Machine) adminFailover(e AdminFailover) ([]Action, error) {
	const action = "manual failover"
	switch {
	case m.cfg.Mode != ModeAuto:
		return m.refuse(e.Who, action, e.Reason, ErrPrecondition,
			"manual HA failover is for auto mode; in manual mode stop services here and start them on the peer")
	case m.cfg.Role != RoleMain:
		return m.refuse(e.Who, action, e.Reason, ErrPrecondition, "manual HA failover runs on the Main")
	case m.status != Active:
		return m.refuse(e.Who, action, e.Reason, ErrPrecondition, fmt.Sprintf("this node is %s, not Active", m.status))
	case e.ForTicks < 1:
		return m.refuse(e.Who, action, e.Reason, ErrInvalid, "the failover needs a duration")
	case e.NotReady != "":
		return m.refuse(e.Who, action, e.Reason, ErrPrecondition, "HA is not ready: "+e.NotReady)
	}
	m.failoverTicks = e.ForTicks
	return m.becomeDeactivating(e.Who, action, e.Reason, fmt.Sprintf(
		"manual HA failover for %s: the Standby takes over, and this node holds Inactive until it ends", e.For)), nil
}

// tick advances the auto-mode clocks by one tick. It returns the record of
// a manual failover that ends with it.
func (m *Machine) tick() []Action {
	p := m.peer
	m.peerLostFor = countIf(!p.Reachable, m.peerLostFor)
	m.unhealthyFor = countIf(len(m.unhealthy) > 0 && m.status == Active, m.unhealthyFor)
	m.peerSickFor = countIf(p.claimsActive() && p.Unhealthy, m.peerSickFor)
	m.peerEligibleFor = countIf(p.settledInactive() && !p.Holding && !p.Unhealthy, m.peerEligibleFor)
	m.peerSettledFor = countIf(p.settledInactive(), m.peerSettledFor)
	m.isolatedFor = countIf(m.cfg.Witness && !p.Reachable && !m.witness.Alive, m.isolatedFor)
	if !m.peerSeenSinceBoot && m.bootTicks < m.cfg.BootGraceTicks {
		m.bootTicks++
	}
	switch {
	case m.holdTicks > 0 && p.Reachable && p.Status == Active:
		// The hold after stepping down lasts until the peer has taken
		// over; from then on failback waits out its own hold.
		m.holdTicks = 0
	case m.holdTicks > 0 && m.status == Inactive:
		// Counted from Inactive on: stopping a hung service can take its
		// whole stop timeout, and the hold must outlast it, or this node
		// would take back the Active role before the peer could.
		m.holdTicks--
		if m.holdTicks == 0 {
			m.holdEnded()
		}
	}
	if m.failoverTicks > 0 {
		m.failoverTicks--
		if m.failoverTicks == 0 {
			m.holdEnded()
			return []Action{m.noop(Self, "manual failover ended", "", "its time is over: failback follows the policy")}
		}
	}
	return nil
}

// markUndo sets where a PersistFailed of this Step takes the machine back
// to: here, after what cannot be taken back.
func (m *Machine) markUndo() {
	c := *m
	c.undo, c.keepRest, c.undoFrom = nil, nil, nil
	m.undoFrom = &c
}

// storeWritable ends the persist error the data directory had: it takes
// writes again.
func (m *Machine) storeWritable() []Action {
	if m.persistErr == "" {
		return nil
	}
	was := m.persistErr
	m.persistErr = ""
	return append(m.persistAgain(), Record{Who: Self, Action: "persist", Outcome: OutcomeOK, Epoch: m.epoch, From: m.status, To: m.status,
		Cause: "the data directory takes writes again: decisions are persisted", Detail: "after: " + was})
}

// persistAgain persists the decision in force when it is not on disk yet
// (dirty) and no transition runs.
func (m *Machine) persistAgain() []Action {
	if !m.dirty || (m.status != Active && m.status != Inactive) {
		return nil
	}
	m.dirty = false
	return []Action{Persist{Saved{Status: m.status, Epoch: m.epoch}}}
}

// holdEnded restarts the count of the peer settled Inactive: the peer may
// have started to take over on a view of this node still holding.
func (m *Machine) holdEnded() { m.peerSettledFor = 0 }

func countIf(cond bool, n int) int {
	if cond {
		return n + 1
	}
	return 0
}

// stepAuto applies the automatic rules. Manual mode never moves on its own,
// a witness never goes Active, and nothing starts during a transition.
func (m *Machine) stepAuto() []Action {
	if m.cfg.Mode != ModeAuto || m.cfg.Role == RoleWitness {
		return nil
	}
	switch m.status {
	case Inactive:
		return m.autoInactive()
	case Active:
		return m.autoActive()
	}
	return nil
}

// autoInactive decides whether an Inactive node takes the Active role.
func (m *Machine) autoInactive() []Action {
	if m.blocksTakeover() {
		return nil
	}
	p, lost := m.peer, m.cfg.LostTicks
	var cause string
	switch {
	case p.Reachable && (m.failoverTicks > 0 || m.switchover != ""):
		// Held by an admin's move: only the loss of the peer makes this
		// node take over.
		return nil
	case p.Reachable && m.noFailback && !(p.settledInactive() && p.Holding):
		// A Main switched away from takes the Active role back only from
		// a peer that will not take it (an admin stopped it, it stepped
		// down), or when the peer is lost.
		return nil
	case !p.Reachable:
		if m.peerLostFor < lost || m.inBootGrace() {
			return nil
		}
		cause = fmt.Sprintf("%s lost for %s", m.peerLabel(), m.span(m.peerLostFor))
		if p.Why != "" {
			cause += " (" + p.Why + ")"
		}
		if !m.peerSeenSinceBoot && m.cfg.BootGraceTicks > 0 {
			cause += fmt.Sprintf(", not seen since this node started (boot grace of %s over)", m.span(m.cfg.BootGraceTicks))
		}
		if m.cfg.Witness {
			if !m.witness.Alive || m.witness.SeesPeer {
				// Cut off from the witness too, or the witness still sees
				// the peer: this node may be the one cut off.
				return nil
			}
			cause += "; the witness does not see it either"
		}
	case p.Unreadable:
		return nil
	case p.settledInactive() && m.cfg.Role == RoleMain && m.peerSettledFor >= 1:
		cause = fmt.Sprintf("%s is inactive: the Main takes the Active role", m.peerLabel())
	case p.settledInactive() && p.Holding:
		cause = fmt.Sprintf("%s holds inactive: this node takes the Active role", m.peerLabel())
	case p.claimsActive() && p.Unhealthy && m.peerSickFor >= 3*lost:
		// It should have stepped down for us; it did not.
		cause = fmt.Sprintf("%s is active but unhealthy for %s and did not step down", m.peerLabel(), m.span(m.peerSickFor))
	default:
		return nil
	}
	epoch, ok := m.nextEpoch()
	if !ok {
		return nil
	}
	return m.becomeActivating(Self, "failover", "", cause, epoch)
}

// autoActive decides whether an Active node steps down.
func (m *Machine) autoActive() []Action {
	p, lost := m.peer, m.cfg.LostTicks
	var cause string
	switch {
	case p.claimsActive() && !p.Unreadable && m.outranked():
		cause = fmt.Sprintf("split brain: %s is %s with epoch %d, ours is %d", m.peerLabel(), p.Status, p.Epoch, m.epoch)
		switch _, byCalls := m.callsDecide(); {
		case byCalls:
			cause = fmt.Sprintf("split brain: %s is active with %d calls in progress, this node with none: the side with the calls keeps the Active role (epochs %d and %d)",
				m.peerLabel(), p.Calls, p.Epoch, m.epoch)
		case p.Epoch == m.epoch:
			cause += "; equal epochs: the Main keeps the Active role"
		}
	case len(m.unhealthy) > 0 && m.unhealthyFor >= lost && p.settledInactive() && !p.Holding && !p.Unhealthy:
		cause = fmt.Sprintf("critical services unhealthy (%s) for %s: handing over to %s",
			strings.Join(m.unhealthy, ", "), m.span(m.unhealthyFor), m.peerLabel())
		m.holdTicks = max(m.cfg.FailbackHoldTicks, 1)
	case m.cfg.Role == RoleStandby && m.cfg.FailbackAuto && m.peerEligibleFor >= max(m.cfg.FailbackHoldTicks, 1):
		cause = fmt.Sprintf("failback: %s up and ready for %s", m.peerLabel(), m.span(m.peerEligibleFor))
	case m.cfg.Witness && m.isolatedFor >= lost:
		cause = fmt.Sprintf("isolated: neither %s nor the witness seen for %s; stepping down so the other side can take over",
			m.peerLabel(), m.span(m.isolatedFor))
	default:
		return nil
	}
	return m.becomeDeactivating(Self, "step down", "", cause)
}

// outranked: the peer's claim to be Active beats this node's. Calls come
// first: when both count their calls and exactly one side has any, that
// side keeps the Active role, whatever the epochs (a healed partition
// must not drop the calls of the side that served them). Otherwise the
// higher epoch wins; at equal epochs, the Main.
func (m *Machine) outranked() bool {
	p := m.peer
	if !p.claimsActive() {
		return false
	}
	if keep, ok := m.callsDecide(); ok {
		return !keep
	}
	return p.Epoch > m.epoch || (p.Epoch == m.epoch && m.cfg.Role != RoleMain)
}

// callsDecide says whether this node keeps the Active role against an
// Active peer on calls alone (ok false: calls do not decide). Both nodes
// judge the same two counts, so they agree on the one that keeps it.
func (m *Machine) callsDecide() (keep, ok bool) {
	p := m.peer
	if m.status != Active || p.Status != Active || !p.Reachable || p.Unreadable {
		return false, false
	}
	return callsDecide(m.calls, m.callsKnown, p.Calls, p.CallsKnown)
}

func (m *Machine) becomeActivating(who, action, reason, cause string, epoch uint64) []Action {
	from := m.status
	m.status, m.epoch = Activating, epoch
	m.noFailback, m.failoverTicks, m.switchover = false, 0, ""
	m.pending = Record{Who: who, Reason: reason}
	return []Action{
		Persist{Saved{Status: Active, Epoch: epoch}},
		Record{Who: who, Action: action, Reason: reason, Cause: cause, Outcome: OutcomeOK, Epoch: epoch, From: from, To: Activating},
		StartServices{Epoch: epoch},
	}
}

func (m *Machine) becomeActive() []Action {
	m.status, m.persistErr = Active, ""
	p := m.pending
	return []Action{
		Record{Who: p.Who, Action: "activated", Reason: p.Reason, Cause: "services started",
			Outcome: OutcomeOK, Epoch: m.epoch, From: Activating, To: Active},
		RegisterSIP{Epoch: m.epoch},
	}
}

// becomeDeactivating always returns Persist first and the Record second.
func (m *Machine) becomeDeactivating(who, action, reason, cause string) []Action {
	from := m.status
	m.status = Deactivating
	m.pending = Record{Who: who, Reason: reason}
	acts := []Action{
		Persist{Saved{Status: Inactive, Epoch: m.epoch}},
		Record{Who: who, Action: action, Reason: reason, Cause: cause, Outcome: OutcomeOK, Epoch: m.epoch, From: from, To: Deactivating},
	}
	if from == Active || action == "boot" {
		// Unregister first so the media servers stop sending calls to
		// services about to stop. At boot too: a previous life of this
		// node (killed while Active) may have left its binding there.
		acts = append(acts, UnregisterSIP{})
	}
	return append(acts, StopServices{})
}

func (m *Machine) becomeInactive(stopErr string) []Action {
	m.status, m.persistErr = Inactive, ""
	p := m.pending
	rec := Record{Who: p.Who, Action: "deactivated", Reason: p.Reason, Cause: "services stopped",
		Outcome: OutcomeOK, Epoch: m.epoch, From: Deactivating, To: Inactive}
	if stopErr != "" {
		// Staying in deactivating would leave the node stuck in a
		// transition; the failure is recorded and shown per service.
		rec.Cause, rec.Outcome, rec.Detail = "stop failed; some services may still run", OutcomeFailed, stopErr
	}
	return []Action{rec}
}

func (m *Machine) refuse(who, action, reason string, kind error, msg string) ([]Action, error) {
	rec := Record{Who: who, Action: action, Reason: reason, Cause: msg, Outcome: OutcomeRefused,
		Epoch: m.epoch, From: m.status, To: m.status}
	return []Action{rec}, fmt.Errorf("%w: %s", kind, msg)
}

func (m *Machine) noop(who, action, reason, why string) Record {
	return Record{Who: who, Action: action, Reason: reason, Cause: why, Outcome: OutcomeOK,
		Epoch: m.epoch, From: m.status, To: m.status}
}

// nextEpoch is past both this node's and the peer's last known epoch, so the
// newest activation always carries the highest epoch, and of this node's
// slot, so no other activation of the pair takes the same (see epoch.go).
// false: the epochs are exhausted, which only a corrupt state reaches.
func (m *Machine) nextEpoch() (uint64, bool) {
	return nextEpochFor(m.cfg.Role, max(m.epoch, m.peerEpoch))
}

// seePeer takes a view of the peer. A view with an absurd epoch is refused
// by the runtime before it gets here; should one come, it counts as a peer
// that answers but cannot be read, so it moves nothing.
func (m *Machine) seePeer(p PeerView) {
	if ValidEpoch(p.Epoch) != nil {
		p = PeerView{Name: p.Name, Reachable: p.Reachable, Unreadable: p.Reachable}
	}
	m.peer = p
	m.peerEpoch = max(m.peerEpoch, p.Epoch)
	if p.Reachable {
		m.peerSeenSinceBoot, m.peerLostFor = true, 0
	}
}

// peerLabel is "peer NAME", or "the peer" when its name is not known.
func (m *Machine) peerLabel() string {
	if m.peer.Name == "" {
		return "the peer"
	}
	return "peer " + m.peer.Name
}

func (m *Machine) peerName() string {
	if m.peer.Name == "" {
		return "the peer"
	}
	return m.peer.Name
}

// span says n ticks for an audit cause: as a duration when the runtime
// told the tick's length (Config.Tick), else in ticks, as the scenario
// files count.
func (m *Machine) span(n int) string {
	if m.cfg.Tick <= 0 {
		return fmt.Sprintf("%d ticks", n)
	}
	return (time.Duration(n) * m.cfg.Tick).String()
}
