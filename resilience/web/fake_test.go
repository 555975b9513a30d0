package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
)

// call is one call the fake node saw.
type call struct {
	Method string
	Who    string
	Start  api.StartRequest
	Stop   api.StopRequest
	Switch api.SwitchoverRequest
	Fail   api.FailoverRequest
	Repl   api.ReplicationRunRequest
	Limit  int
	Before uint64
}

// fakeNode records calls and returns configured results.
type fakeNode struct {
	mu       sync.Mutex
	status   api.Status
	active   api.Active
	startErr error
	stopErr  error
	auditErr error
	// peer is the peer's status PeerStatus answers, with peerErr; the
	// peer commands answer peerStartErr and peerStopErr.
	peer         api.Status
	peerErr      error
	peerStartErr error
	peerStopErr  error
	// switchErr and failoverErr answer Switchover and StartFailover.
	switchErr   error
	failoverErr error
	// switchHold, when set, makes Switchover wait until it is closed,
	// while the test sets the steps the status shows.
	switchHold chan struct{}
	// replErr answers RunReplication, with the jobs as they are; without
	// it the jobs this node sends succeed now.
	replErr error
	entries []api.AuditEntry
	// peerEntries answer PeerAudit, with peerAuditErr.
	peerEntries  []api.AuditEntry
	peerAuditErr error
	panicky      bool
	calls        []call
	subs         map[int]chan api.Event
	nextSub      int

	// subscribed receives the ID of each new subscription, cancelled the
	// ID of each cancelled one.
	subscribed chan int
	cancelled  chan int
}

func newFakeNode() *fakeNode {
	since := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return &fakeNode{
		status: api.Status{
			Node: "xivo-main", Role: "main", Mode: "manual", Status: api.StatusActive,
			Epoch: 3, Since: since, Version: "test", Healthy: true,
			HA:          api.HA{Ready: true, Reasons: []string{}},
			Services:    []api.Service{{Name: "asterisk", State: "running", Healthy: true, Critical: true}},
			Replication: []api.Replication{},
			XDS:         []api.Registration{},
			Peer: &api.Peer{Name: "xivo-standby", Reachable: true, Status: api.StatusInactive, Epoch: 2,
				Version: "test", Healthy: true, CheckedAt: since},
		},
		peer: api.Status{
			Node: "xivo-standby", Role: "standby", Mode: "manual", Status: api.StatusInactive,
			Epoch: 2, Since: since, Version: "test", Healthy: true,
			HA:          api.HA{Ready: true, Reasons: []string{}},
			Services:    []api.Service{{Name: "asterisk", State: "stopped", Healthy: true, Critical: true}},
			Replication: []api.Replication{},
			XDS:         []api.Registration{},
			Peer:        &api.Peer{Name: "xivo-main", Reachable: true, Status: api.StatusActive, Epoch: 3, CheckedAt: since},
		},
		active:     api.Active{Status: api.StatusActive, Epoch: 3},
		subs:       map[int]chan api.Event{},
		subscribed: make(chan int, 16),
		cancelled:  make(chan int, 16),
	}
}

func (f *fakeNode) record(c call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

func (f *fakeNode) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func (f *fakeNode) Status() api.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panicky {
		panic("fake node: status exploded")
	}
	return f.status
}

func (f *fakeNode) Active() api.Active {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active
}

func (f *fakeNode) StartServices(_ context.Context, who string, req api.StartRequest) (api.Status, error) {
	f.record(call{Method: "start", Who: who, Start: req})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return api.Status{}, f.startErr
	}
	return f.status, nil
}

func (f *fakeNode) StopServices(_ context.Context, who string, req api.StopRequest) (api.Status, error) {
	f.record(call{Method: "stop", Who: who, Stop: req})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopErr != nil {
		return api.Status{}, f.stopErr
	}
	st := f.status
	st.Status = api.StatusInactive
	return st, nil
}

func (f *fakeNode) Audit(_ context.Context, limit int, before uint64) ([]api.AuditEntry, error) {
	f.record(call{Method: "audit", Limit: limit, Before: before})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.auditErr != nil {
		return nil, f.auditErr
	}
	return f.entries, nil
}

func (f *fakeNode) PeerAudit(_ context.Context, limit int) ([]api.AuditEntry, error) {
	f.record(call{Method: "peer-audit", Limit: limit})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.peerAuditErr != nil {
		return nil, f.peerAuditErr
	}
	return f.peerEntries, nil
}

func (f *fakeNode) Subscribe() (<-chan api.Event, func()) {
	f.record(call{Method: "subscribe"})
	f.mu.Lock()
	id := f.nextSub
	f.nextSub++
	ch := make(chan api.Event, 16)
	ch <- api.Event{Name: api.EventStatus, Data: f.status}
	f.subs[id] = ch
	f.mu.Unlock()
	f.subscribed <- id
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs, id)
			f.mu.Unlock()
			f.cancelled <- id
		})
	}
}

// publish sends ev to every subscriber, dropping it for a full one.
func (f *fakeNode) publish(ev api.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (f *fakeNode) PeerStatus(context.Context) (api.Status, error) {
	f.record(call{Method: "peer-status"})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.peerErr != nil {
		return api.Status{}, f.peerErr
	}
	return f.peer, nil
}

func (f *fakeNode) PeerStartServices(_ context.Context, who string, req api.StartRequest) (api.Status, error) {
	f.record(call{Method: "peer-start", Who: who, Start: req})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.peerStartErr != nil {
		return api.Status{}, f.peerStartErr
	}
	f.peer.Status = api.StatusActive
	return f.peer, nil
}

func (f *fakeNode) PeerStopServices(_ context.Context, who string, req api.StopRequest) (api.Status, error) {
	f.record(call{Method: "peer-stop", Who: who, Stop: req})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.peerStopErr != nil {
		return api.Status{}, f.peerStopErr
	}
	f.peer.Status = api.StatusInactive
	return f.peer, nil
}

// setStatus changes the node's status and publishes it. mut changes a
// deep copy: the status handed out before shares its slices and pointers,
// and the server may be encoding it meanwhile.
func (f *fakeNode) setStatus(mut func(st *api.Status)) {
	f.mu.Lock()
	st := deepCopy(f.status)
	mut(&st)
	f.status = st
	f.mu.Unlock()
	f.publish(api.Event{Name: api.EventStatus, Data: st})
}

// setPeer changes the peer's status (a deep copy, as setStatus).
func (f *fakeNode) setPeer(mut func(st *api.Status)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := deepCopy(f.peer)
	mut(&st)
	f.peer = st
}

// deepCopy copies st through its JSON form, which is all of it that the
// page and the API see.
func deepCopy(st api.Status) api.Status {
	b, err := json.Marshal(st)
	if err != nil {
		panic(err)
	}
	var out api.Status
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// Switchover swaps the Active side: this node Inactive, the peer Active.
func (f *fakeNode) Switchover(_ context.Context, who string, req api.SwitchoverRequest) (api.Status, error) {
	f.record(call{Method: "switchover", Who: who, Switch: req})
	f.mu.Lock()
	hold := f.switchHold
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	if f.switchErr != nil {
		return api.Status{}, f.switchErr
	}
	f.setPeer(func(st *api.Status) { st.Status = api.StatusActive; st.Epoch++ })
	f.setStatus(func(st *api.Status) {
		st.Status = api.StatusInactive
		if st.Peer != nil {
			p := *st.Peer
			p.Status, p.Epoch = api.StatusActive, p.Epoch+1
			st.Peer = &p
		}
	})
	return f.Status(), nil
}

// StartFailover steps down for req.For: Inactive, holding, the peer Active.
func (f *fakeNode) StartFailover(_ context.Context, who string, req api.FailoverRequest) (api.Status, error) {
	f.record(call{Method: "failover-start", Who: who, Fail: req})
	d, err := time.ParseDuration(req.For)
	if err != nil {
		return api.Status{}, err
	}
	if f.failoverErr != nil {
		return api.Status{}, f.failoverErr
	}
	until := time.Now().Add(d).UTC().Truncate(time.Second)
	f.setPeer(func(st *api.Status) { st.Status = api.StatusActive })
	f.setStatus(func(st *api.Status) {
		st.Status = api.StatusInactive
		st.Failover = api.Failover{Manual: true, Until: &until, Holding: true}
		if st.Peer != nil {
			p := *st.Peer
			p.Status = api.StatusActive
			st.Peer = &p
		}
	})
	return f.Status(), nil
}

// StopFailover ends the manual HA failover.
func (f *fakeNode) StopFailover(_ context.Context, who string, req api.StopRequest) (api.Status, error) {
	f.record(call{Method: "failover-stop", Who: who, Stop: req})
	f.setStatus(func(st *api.Status) { st.Failover = api.Failover{} })
	return f.Status(), nil
}

// RunReplication runs the jobs this node sends: they succeed now, or fail
// with replErr (the node's ErrFailed answers the jobs' status too). From
// an Inactive node it is refused, as the node does.
func (f *fakeNode) RunReplication(_ context.Context, who string, req api.ReplicationRunRequest) ([]api.Replication, error) {
	f.record(call{Method: "replication-run", Who: who, Repl: req})
	f.mu.Lock()
	if errors.Is(f.replErr, resilience.ErrStopping) {
		// As the node: a run asked while it ends is refused, not run.
		f.mu.Unlock()
		return nil, f.replErr
	}
	if f.status.Status != api.StatusActive {
		st := f.status.Status
		f.mu.Unlock()
		return nil, fmt.Errorf("%w: replication runs from the Active node; this node is %s", resilience.ErrConflict, st)
	}
	now := time.Now().UTC().Truncate(time.Second)
	err := f.replErr
	// A new slice: the status handed out before shares the old one.
	f.status.Replication = slices.Clone(f.status.Replication)
	for i := range f.status.Replication {
		r := &f.status.Replication[i]
		if r.Direction == "receive" || (req.Job != "" && r.Name != req.Job) {
			continue
		}
		r.LastRun, r.OK, r.Error = now, err == nil, ""
		if err != nil {
			r.Error = err.Error()
		} else {
			r.LastSuccess, r.Stale = now, false
		}
	}
	st := f.status
	st.Replication = append([]api.Replication(nil), f.status.Replication...)
	f.mu.Unlock()
	f.publish(api.Event{Name: api.EventStatus, Data: st})
	if err != nil {
		return st.Replication, fmt.Errorf("%w: replication of all jobs: %v", resilience.ErrFailed, err)
	}
	return st.Replication, nil
}
