// Package resilience is resman's decision core: a pure state machine that
// decides when a PBX node starts or stops its services. It has no goroutines,
// no clock and no I/O, in the style of etcd's raft package: inputs are Events
// (admin commands, what was seen of the peer, local health, completions of
// the work it asked for, ticks of time), outputs are Actions (start or stop
// services, register or unregister SIP, persist the decision, record an audit
// entry). The runtime in resilience/node owns the goroutines and carries the
// actions out.
//
// Caller duties (resilience/node does these):
//
//  1. Feed Boot first, with the persisted decision (if any) and a fresh view
//     of the peer. Events before Boot are ignored.
//  2. Execute the actions of one Step in order. StartServices and
//     StopServices are long; feed ServicesStarted / ServicesStopped when they
//     end. Persist must be durable before the next action runs: when it
//     cannot be carried out, feed PersistFailed at once, carry out none of
//     the actions after the Persist, and carry out those PersistFailed
//     returns; the core takes the decision back.
//  3. Feed one event at a time (Step is not safe for concurrent use).
//  4. For admin commands, pass a fresh PeerView: the two-Active guard is only
//     as good as that view.
//
// Rules this package keeps (see testdata/ for scenario files stating them):
//
//   - Configured role (main/standby/witness) and runtime status are separate.
//   - One transition at a time; activating and deactivating are visible.
//   - Start and Stop are idempotent; the last decided status survives a
//     restart (Persist, then Boot).
//   - Manual mode never changes status without an admin action.
//   - Every activation takes an epoch past any epoch seen, of its own
//     node's slot (epoch.go): no two activations of the pair share one,
//     and arithmetic never wraps (MaxEpoch); a view with an absurd epoch
//     moves nothing.
//   - A decision that cannot be persisted is not acted on.
//   - A restarted node whose peer took a newer epoch while it was down
//     comes back Inactive, in either mode.
//   - A start is refused while the peer is seen Active, unless forced.
//   - A witness never goes Active.
//
// Auto mode (rules stated in testdata/auto-*.txt):
//
//   - An Inactive node takes over when its peer has been lost for LostTicks
//     (with a witness: only when the witness is alive and does not see the
//     peer either), when the peer is settled Inactive and this node is the
//     Main or the peer holds, or when the peer stays Active but unhealthy
//     for 3 x LostTicks without stepping down.
//   - An Active node steps down when the peer's claim outranks its own
//     (higher epoch; equal epochs: the Main), when its critical services
//     are unhealthy and the peer is ready to take over (it then holds for
//     FailbackHoldTicks), for failback (a Standby, once the Main has been
//     up and ready for FailbackHoldTicks), or when, with a witness, it sees
//     neither peer nor witness (it may be the isolated side).
//   - An admin's Stop holds the node Inactive until an admin's Start, so
//     the peer takes over instead of the rules starting it again.
//   - A node stopped for a planned switchover (either role, either mode)
//     holds until the runtime feeds SwitchoverEnded (done or failed). It
//     takes over only for a lost peer.
//   - A node that has not seen its peer since it started takes over for a
//     lost peer only once BootGraceTicks have passed.
package resilience
