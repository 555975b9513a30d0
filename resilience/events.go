package resilience

import (
	"fmt"
	"strings"
)

// Event is an input of the core. The set is closed: the types below.
type Event interface{ isEvent() }

// Boot is the first event: the persisted decision (nil on a node's very first
// start) and a fresh view of the peer.
type Boot struct {
	Saved *Saved
	Peer  PeerView
}

// AdminStart is an admin's "Start services". Peer must be a fresh view.
// Rollback names the switchover whose rollback this start is: while a
// switchover that stopped this node runs, only its own rollback may start
// it again.
type AdminStart struct {
	Who, Reason string
	Force       bool
	Peer        PeerView
	Rollback    string
}

// AdminStop is an admin's "Stop services".
type AdminStop struct {
	Who, Reason string
}

// ServicesStarted reports the end of a StartServices action; Err is empty on
// success.
type ServicesStarted struct{ Err string }

// ServicesStopped reports the end of a StopServices action; Err is empty on
// success.
type ServicesStopped struct{ Err string }

// PeerSeen is a new view of the peer (from polling its API or from gossip).
type PeerSeen struct{ Peer PeerView }

// Health reports the critical local services that are unhealthy (empty when
// all are healthy).
type Health struct{ Unhealthy []string }

// Tick is one unit of time passing. The runtime decides its length.
type Tick struct{}

// Calls reports the calls in progress on this node's PBX (auto mode, with
// failover.calls configured). Known is false when they cannot be counted
// (no command, or it failed): the rules then ignore calls.
type Calls struct {
	N     int
	Known bool
}

// WitnessSeen is a new view of the witness (auto mode with a witness).
type WitnessSeen struct{ Witness WitnessView }

// AdminFailover is a manual HA failover (auto mode, on the Active Main):
// step down and hold Inactive for ForTicks so the Standby takes over.
// NotReady, when set, is why HA is not ready (the runtime judges it): the
// failover is then refused.
type AdminFailover struct {
	Who, Reason string
	ForTicks    int
	For         string // ForTicks as the admin gave it, for the record
	NotReady    string
}

// SwitchoverStop is the first step of a planned switchover on the Active
// node: stop here (the runtime then starts the peer). ID names the
// switchover in every record.
type SwitchoverStop struct {
	Who, Reason, ID string
}

// SwitchoverEnded reports that the switchover ID has ended, done or
// failed, on the node that stopped for it: the hold that kept it from
// taking the Active role back by itself while the move ran is released.
// Peer is a fresh view of the peer, read at the end (over gossip the
// peer's start may show later than the end of the switchover).
type SwitchoverEnded struct {
	ID   string
	Peer PeerView
}

// PersistFailed reports that the Persist action of the last Step could not
// be carried out (full disk, read-only file system, I/O error). The runtime
// feeds it at once and carries out none of the actions that followed the
// Persist; it carries out those PersistFailed returns. The core takes the
// decision back and records why; a rollback of a failed start goes on
// (stopping is the safe way) and is persisted again later.
type PersistFailed struct{ Err string }

// StoreWritable: the runtime wrote to the data directory again after a
// Persist failed (it tries every few seconds while PersistError says one
// did). The persist error is over: readiness stops reporting it, and a
// decision in force that is not on disk yet is persisted.
type StoreWritable struct{}

// AdminFailoverStop ends a manual HA failover early; failback then
// follows the policy.
type AdminFailoverStop struct {
	Who, Reason string
}

// Reconfigure applies a reloaded config: mode and failover timing may
// change at run time; name and role may not. Who is who reloaded it.
type Reconfigure struct {
	Config Config
	Who    string
}

func (Boot) isEvent()              {}
func (AdminStart) isEvent()        {}
func (AdminStop) isEvent()         {}
func (ServicesStarted) isEvent()   {}
func (ServicesStopped) isEvent()   {}
func (PeerSeen) isEvent()          {}
func (Health) isEvent()            {}
func (Tick) isEvent()              {}
func (Calls) isEvent()             {}
func (WitnessSeen) isEvent()       {}
func (Reconfigure) isEvent()       {}
func (AdminFailover) isEvent()     {}
func (AdminFailoverStop) isEvent() {}
func (SwitchoverStop) isEvent()    {}
func (SwitchoverEnded) isEvent()   {}
func (PersistFailed) isEvent()     {}
func (StoreWritable) isEvent()     {}

// Action is an output of the core, for the runtime to carry out in order.
type Action interface{ isAction() }

// StartServices starts the local services for the activation with Epoch; the
// runtime answers with ServicesStarted.
type StartServices struct{ Epoch uint64 }

// StopServices stops the local services; the runtime answers with
// ServicesStopped.
type StopServices struct{}

// RegisterSIP starts the SIP registrations of an Active node (XDS).
type RegisterSIP struct{ Epoch uint64 }

// UnregisterSIP removes the SIP registrations before services stop.
type UnregisterSIP struct{}

// Persist durably saves the decision before anything else happens.
type Persist struct{ Saved Saved }

// Record is an audit entry: every admin command (done, refused or failed)
// and every status change, with its cause.
type Record struct {
	Who     string
	Action  string
	Reason  string
	Cause   string
	Outcome string // ok, refused, failed
	Detail  string
	Epoch   uint64
	From    Status
	To      Status
}

func (StartServices) isAction() {}
func (StopServices) isAction()  {}
func (RegisterSIP) isAction()   {}
func (UnregisterSIP) isAction() {}
func (Persist) isAction()       {}
func (Record) isAction()        {}

// Outcomes of a Record.
const (
	OutcomeOK      = "ok"
	OutcomeRefused = "refused"
	OutcomeFailed  = "failed"
)

// FormatEvent renders an event in the scenario-file syntax.
func FormatEvent(ev Event) string {
	switch e := ev.(type) {
	case Boot:
		saved := "none"
		if e.Saved != nil {
			saved = fmt.Sprintf("%s:%d", e.Saved.Status, e.Saved.Epoch)
		}
		return fmt.Sprintf("boot saved=%s peer=%s", saved, e.Peer)
	case AdminStart:
		s := fmt.Sprintf("start who=%s force=%t peer=%s reason=%q", e.Who, e.Force, e.Peer, e.Reason)
		if e.Rollback != "" {
			s += " rollback=" + e.Rollback
		}
		return s
	case AdminStop:
		return fmt.Sprintf("stop who=%s reason=%q", e.Who, e.Reason)
	case ServicesStarted:
		return fmt.Sprintf("started err=%q", e.Err)
	case ServicesStopped:
		return fmt.Sprintf("stopped err=%q", e.Err)
	case PeerSeen:
		return fmt.Sprintf("peer %s", e.Peer)
	case Health:
		return fmt.Sprintf("health unhealthy=%s", strings.Join(e.Unhealthy, ","))
	case Tick:
		return "tick"
	case Calls:
		if !e.Known {
			return "calls unknown"
		}
		return fmt.Sprintf("calls %d", e.N)
	case WitnessSeen:
		return fmt.Sprintf("witness alive=%t sees-peer=%t", e.Witness.Alive, e.Witness.SeesPeer)
	case AdminFailover:
		return fmt.Sprintf("failover who=%s for=%d not-ready=%q reason=%q", e.Who, e.ForTicks, e.NotReady, e.Reason)
	case AdminFailoverStop:
		return fmt.Sprintf("failover-stop who=%s reason=%q", e.Who, e.Reason)
	case SwitchoverStop:
		return fmt.Sprintf("switchover-stop who=%s id=%s reason=%q", e.Who, e.ID, e.Reason)
	case SwitchoverEnded:
		return fmt.Sprintf("switchover-ended id=%s peer=%s", e.ID, e.Peer)
	case PersistFailed:
		return fmt.Sprintf("persist-failed err=%q", e.Err)
	case Reconfigure:
		return fmt.Sprintf("reconfigure mode=%s lost=%d hold=%d grace=%d witness=%t", e.Config.Mode, e.Config.LostTicks,
			e.Config.FailbackHoldTicks, e.Config.BootGraceTicks, e.Config.Witness)
	}
	return fmt.Sprintf("unknown event %T", ev)
}

// FormatAction renders an action in the scenario-file syntax.
func FormatAction(a Action) string {
	switch a := a.(type) {
	case StartServices:
		return fmt.Sprintf("start-services epoch=%d", a.Epoch)
	case StopServices:
		return "stop-services"
	case RegisterSIP:
		return fmt.Sprintf("register-sip epoch=%d", a.Epoch)
	case UnregisterSIP:
		return "unregister-sip"
	case Persist:
		return fmt.Sprintf("persist %s:%d", a.Saved.Status, a.Saved.Epoch)
	case Record:
		s := fmt.Sprintf("record %s %s by=%s", a.Action, a.Outcome, a.Who)
		if a.From != a.To {
			s += fmt.Sprintf(" %s->%s", a.From, a.To)
		}
		s += fmt.Sprintf(" epoch=%d cause=%q", a.Epoch, a.Cause)
		if a.Detail != "" {
			s += fmt.Sprintf(" detail=%q", a.Detail)
		}
		return s
	}
	return fmt.Sprintf("unknown action %T", a)
}
