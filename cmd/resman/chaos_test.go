package main

// TestChaos (tier 3): a Main, a Standby and a witness in auto mode in
// network namespaces, a CC follower of each node (cc-main, cc-standby), an
// Edge in front of both sides' web apps with a user making requests
// through it, and an MDS (an in-process xds/registrar on the lab's bridge
// address, with digest authentication) to which the Active node registers
// its contact, and a fleet aggregator (resman run with a fleet: section,
// on the bridge address like the CC followers and the Edge) reading both
// nodes with their read token (api.read_tokens); a seeded random schedule
// of faults (kill -9 and restart, SIGSTOP/SIGCONT, partitions of every
// shape, packet loss, SIGHUP, concurrent admin commands with and without
// --force, a dead or hung Asterisk, a killed CC follower, the MDS killed
// and restarted empty, a node's data directory full then freed, the fleet
// aggregator killed -9 and restarted) and of planned moves (admin
// switchovers from either node, manual HA failovers and their stop, and
// the same with a kill -9 and restart of a node while the move holds it)
// while a monitor samples every component and records each broken
// invariant:
//
//   - two Active nodes at all during a clean planned move (chaosQuiet of
//     no other fault before it and after it: see chaosFault.Clean), not
//     one sample;
//   - two Active nodes, each seeing the other, for longer than
//     chaosTwoActiveBound (one gossip probe interval) anywhere else (not
//     counted during a partition with no witness verdict, nor while the
//     data directory of one of them is full: a node that cannot persist
//     cannot step down);
//   - a request answered by a side whose node had answered Inactive for
//     chaosEdgeGrace before the request and until its answer;
//   - an audit entry seen before a kill -9 missing after the restart;
//   - a node or a CC follower activating or deactivating for more than
//     chaosStuckBound;
//   - no node Active for more than chaosNoActiveBound while both answer
//     Inactive, see each other, and neither holds for an admin's stop nor
//     has its data directory full (see checkNoActive);
//   - a CC follower running while its node has answered Inactive for
//     chaosCCGrace;
//   - the MDS holding a binding to a node's contact while that node has
//     answered Inactive or deactivating for chaosMDSGrace. A node killed
//     -9 while Active cannot unregister, and the registrar keeps one
//     binding per contact (the new Active's REGISTER adds its own contact
//     to the same address of record, it does not replace the other): the
//     dead node's binding stays until it lapses, which is allowed while
//     the node does not answer, and only then;
//   - an admin command answered with an exit code that is not a fair
//     answer under chaos (2: bad usage, or a crash);
//   - a write the nodes refused for the fleet aggregator's token (the
//     only holder of their read token; a write with it is refused, 403,
//     and logged: the test makes one to each node at the start to show
//     the check can fail, and those two are the only ones allowed): the
//     aggregator, killed or not, never acts on the pair, and every other
//     invariant here holds with it in the deployment and killed at random;
//   - and at the end, everything healed, not exactly one Active node (with
//     both CC followers, the Edge and the MDS agreeing: the MDS bound to
//     the Active node's contact and to no other) within
//     chaosSettleDeadline; then the fleet aggregator (restarted if dead)
//     not reporting that node as the pair's one Active node, both nodes
//     read, and the pair ready exactly when both nodes say HA is ready,
//     within chaosFleetDeadline.
//
// Two Active nodes are proved, not guessed from two samples in a row: see
// twoActiveProofs.
//
// The schedule is a pure function of the seed and the duration:
//
//	RESMAN_CHAOS_SEED=N go test -run TestChaos -v ./cmd/resman/          # replay a seed
//	RESMAN_CHAOS_DURATION=10m go test -run TestChaos -v -timeout 30m ./cmd/resman/   # make chaos
//
// It writes testout/proof/chaos-SEED.svg (the timeline) and
// testout/proof/chaos-SEED.json (the schedule as run and the findings).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/cc"
	"github.com/resman-pbx/resman/edge"
	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/fleet"
	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/resilience/testkit/timeline"
	"github.com/resman-pbx/resman/xds/registrar"
)

const (
	// chaosStuckBound: no component may stay activating or deactivating
	// longer (every service timeout of the test is 5 s).
	chaosStuckBound = 30 * time.Second
	// chaosNoActiveBound: two nodes that answer Inactive, see each other
	// and hold for no admin's stop must not leave the pair without an
	// Active node longer: the longest legitimate gap is a node stepping
	// down with a hung service (its 5 s stop timeout) before the other
	// takes over, or a failback (3 s of failback_hold, then the swap).
	chaosNoActiveBound = 20 * time.Second
	// chaosEdgeGrace: the Edge checks each side every 200 ms and drops a
	// side at its first "not Active" answer (or event); a second is five
	// checks.
	chaosEdgeGrace = time.Second
	// chaosCCGrace: the follower stops within milliseconds of the node's
	// event, or at its next poll (1 s) without a stream.
	chaosCCGrace = 10 * time.Second
	// chaosMDSExpires: the lifetime the nodes ask of the MDS (the least
	// the config allows), so a binding nobody unregisters lapses within
	// 10 s of its last refresh (refreshes come every 7.5 s).
	chaosMDSExpires = 10 * time.Second
	// chaosMDSGrace: a node leaving Active unregisters before it stops its
	// services (xds Deactivate, within the node's 5 s UnregisterTimeout,
	// each SIP transaction within 2 s), so its binding is gone before it
	// first answers Inactive; the binding may still exist while it answers
	// deactivating, for one exchange with the MDS (a challenge and the
	// answer: milliseconds on the bridge, or a fast failure when the MDS
	// is down). 2 s is that exchange's deadline, and well under the 10 s a
	// forgotten binding would take to lapse on its own, so a node that
	// does not unregister is caught.
	chaosMDSGrace = 2 * time.Second
	// chaosSettleDeadline: after the last fault is healed, the time for a
	// rejoin (1 s ±25%), a split brain to settle, failback_hold (3 s) and
	// the CC and the Edge to follow, many times over.
	chaosSettleDeadline = 90 * time.Second
	chaosSamplePeriod   = 100 * time.Millisecond
	// chaosNodeSamplePeriod: the Main and the Standby are sampled faster,
	// so that a two-Active window is measured within a few tens of
	// milliseconds of its length (see twoActiveProofs).
	chaosNodeSamplePeriod = 25 * time.Millisecond
	// chaosSkew: each component is sampled on its own clock, so the last
	// sample of a node may be older than one of its follower; a node
	// counts as not Active at a moment only if its samples said so until
	// chaosSkew after it (a follower that moved with its node is not
	// caught out by a stale sample of the node).
	chaosSkew = 3 * chaosSamplePeriod
	// chaosProbeInterval is the gossip probe interval of the test's
	// config (chaosNodeConfig writes it). chaosTwoActiveBound: two Active
	// nodes that see each other settle by epoch as soon as one of them
	// hears the other's claim, which gossip carries within a probe
	// interval; one probe interval is the bound.
	chaosProbeInterval  = 200 * time.Millisecond
	chaosTwoActiveBound = chaosProbeInterval
	// chaosQuiet: the quiet a planned move needs before and after it to be
	// clean: longer than what any fault leaves behind once it ended (a
	// restarted Main comes back Inactive and takes back after
	// failback_hold, 3 s; a healed partition rejoins within 1.25 s and
	// settles a split brain, then fails back), and than what the move
	// itself sets off (a failover's stop: failback_hold, then the swap).
	chaosQuiet         = 10 * time.Second
	chaosDefaultLength = 75 * time.Second
	// chaosFleetReadToken is the fleet aggregator's token for the pair:
	// the nodes' only api.read_tokens entry, held by nothing else, so
	// that a write refused for it (403) can only be the aggregator's.
	chaosFleetReadToken = "chaos-fleet-read-token-3e7a91c5d2b8"
	// chaosFleetInterval: how often the aggregator reads both nodes.
	chaosFleetInterval = 500 * time.Millisecond
	// chaosFleetDeadline: once the pair settled, the aggregator reports
	// it (the right Active node, ready as the nodes say) within a few of
	// its reads.
	chaosFleetDeadline = 15 * time.Second
)

// chaosAct is one step of the schedule, at an offset from its start.
type chaosAct struct {
	At time.Duration `json:"at"`
	// Do: kill, start, freeze, thaw, cut, isolate, lose, heal, hup, admin,
	// sipkill, siphang, sipcont, mdskill, mdsstart, fill, free. kill and
	// start act on the nodes, the CC followers (cc-main, cc-standby) and
	// the fleet aggregator (fleet).
	Do string `json:"do"`
	// Host: the host acted on; "src" for kill and start: the node the
	// fault's first admin command ran on, as run (the node a planned move
	// stopped and holds).
	Host  string    `json:"host,omitempty"`
	Other string    `json:"other,omitempty"` // cut: the other host; lose: the sender
	Pct   int       `json:"pct,omitempty"`
	Ops   []adminOp `json:"ops,omitempty"`
	fault int       // index of the fault it belongs to
}

// Admin commands: services start and stop (not planned moves: a stop holds
// the node until a start, a start may be forced into two Active nodes),
// and the planned moves.
const (
	cmdStart         = "start"
	cmdStop          = "stop"
	cmdSwitchover    = "switchover"
	cmdFailoverStart = "failover-start"
	cmdFailoverStop  = "failover-stop"
)

type adminOp struct {
	// Node: main, standby, or "active": the node answering Active when
	// the command is sent (none: the command is not sent).
	Node  string `json:"node"`
	Cmd   string `json:"cmd"`
	Force bool   `json:"force,omitempty"`
}

func (o adminOp) planned() bool {
	return o.Cmd == cmdSwitchover || o.Cmd == cmdFailoverStart || o.Cmd == cmdFailoverStop
}

func (o adminOp) String() string {
	switch {
	case o.Cmd == cmdStart && o.Force:
		return "start --force " + o.Node
	case o.Cmd == cmdFailoverStart:
		return "failover start " + o.Node
	case o.Cmd == cmdFailoverStop:
		return "failover stop " + o.Node
	}
	return o.Cmd + " " + o.Node
}

// chaosFault is one fault of the schedule: its acts, and when it ran.
type chaosFault struct {
	Label string     `json:"label"`
	Acts  []chaosAct `json:"acts"`
	// Planned: every act is a planned move (switchover, failover start or
	// stop). Clean: planned, and no other fault of the schedule from
	// chaosQuiet before its first act to chaosQuiet after its last (the
	// last act of a fault is when it ends: a restart, a heal, a SIGCONT,
	// a free). A clean move is guarded from its first act to chaosQuiet
	// after its last: not one sample of two Active nodes there.
	Planned bool    `json:"planned,omitempty"`
	Clean   bool    `json:"clean,omitempty"`
	Began   float64 `json:"began_s"` // seconds since the schedule started, as run
	// Ended: when its last act ran, or its last admin command answered.
	Ended float64 `json:"ended_s"`
	// CleanAsRun: Clean, and the quiet held as run too (an act that ran
	// late, a command that answered late, the healing at the end).
	CleanAsRun bool `json:"clean_as_run,omitempty"`
}

// span is the scheduled time of a fault's first and last act.
func (f chaosFault) span() (time.Duration, time.Duration) {
	return f.Acts[0].At, f.Acts[len(f.Acts)-1].At
}

var nodeHosts = []string{"main", "standby", "witness"}

// chaosSchedule draws the faults of a run from seed, until total.
func chaosSchedule(seed uint64, total time.Duration) []chaosFault {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(r.Int64N(int64(hi-lo)/int64(time.Millisecond)+1))*time.Millisecond
	}
	pick := func(weights map[string]int) string {
		keys := make([]string, 0, len(weights))
		sum := 0
		for k, w := range weights {
			keys = append(keys, k)
			sum += w
		}
		slices.Sort(keys) // map order is random; the draw must not be
		n := r.IntN(sum)
		for _, k := range keys {
			if n < weights[k] {
				return k
			}
			n -= weights[k]
		}
		return keys[0]
	}
	node := func() string { return pick(map[string]int{"main": 45, "standby": 35, "witness": 20}) }
	pbx := func() string { return pick(map[string]int{"main": 55, "standby": 45}) }
	adminFault := func(at time.Duration, ops ...adminOp) chaosFault {
		var names []string
		for _, o := range ops {
			names = append(names, o.String())
		}
		return chaosFault{Label: "admin: " + strings.Join(names, " + "), Acts: []chaosAct{{At: at, Do: "admin", Ops: ops}}}
	}
	// admin: services start or stop, one or two at once.
	admin := func(at time.Duration) chaosFault {
		var ops []adminOp
		for range 1 + r.IntN(2) {
			op := adminOp{Node: pbx(), Cmd: cmdStop}
			switch k := r.IntN(10); {
			case k < 4:
			case k < 8:
				op.Cmd = cmdStart
			default:
				op.Cmd, op.Force = cmdStart, true
			}
			ops = append(ops, op)
		}
		return adminFault(at, ops...)
	}
	// move: a planned move, from either node; most switchovers are asked
	// of the Active node, which is where one runs.
	move := func(at time.Duration) chaosFault {
		if r.IntN(2) == 0 {
			return adminFault(at, adminOp{Node: pick(map[string]int{"active": 60, "main": 20, "standby": 20}), Cmd: cmdSwitchover})
		}
		n := pick(map[string]int{"main": 90, "standby": 10}) // the Standby refuses
		d := between(3*time.Second, 12*time.Second)
		return chaosFault{Label: fmt.Sprintf("manual failover on %s, stopped after %v", n, d.Round(100*time.Millisecond)), Acts: []chaosAct{
			{At: at, Do: "admin", Ops: []adminOp{{Node: n, Cmd: cmdFailoverStart}}},
			{At: at + d, Do: "admin", Ops: []adminOp{{Node: n, Cmd: cmdFailoverStop}}}}}
	}
	// holdKill: a planned move, and a kill -9 and restart while it holds
	// a node.
	holdKill := func(at time.Duration) chaosFault {
		d1, d2 := between(time.Second, 4*time.Second), between(time.Second, 5*time.Second)
		if r.IntN(2) == 0 {
			victim := pick(map[string]int{"main": 60, "standby": 40})
			d3 := between(2*time.Second, 5*time.Second)
			return chaosFault{Label: "manual failover on main, kill -9 " + victim + " while it holds", Acts: []chaosAct{
				{At: at, Do: "admin", Ops: []adminOp{{Node: "main", Cmd: cmdFailoverStart}}},
				{At: at + d1, Do: "kill", Host: victim},
				{At: at + d1 + d2, Do: "start", Host: victim},
				{At: at + d1 + d2 + d3, Do: "admin", Ops: []adminOp{{Node: "main", Cmd: cmdFailoverStop}}}}}
		}
		return chaosFault{Label: "switchover on the active node, kill -9 it while it holds", Acts: []chaosAct{
			{At: at, Do: "admin", Ops: []adminOp{{Node: "active", Cmd: cmdSwitchover}}},
			{At: at + d1, Do: "kill", Host: "src"},
			{At: at + d1 + d2, Do: "start", Host: "src"}}}
	}
	// disk: a node's data directory full for a while, with a command
	// asked of it meanwhile half the time.
	disk := func(at time.Duration) chaosFault {
		h, d := pbx(), between(3*time.Second, 10*time.Second)
		acts := []chaosAct{{At: at, Do: "fill", Host: h}}
		label := "data dir of " + h + " full"
		if r.IntN(2) == 0 {
			op := adminOp{Node: h, Cmd: pick(map[string]int{cmdStop: 50, cmdSwitchover: 50})}
			acts = append(acts, chaosAct{At: at + between(500*time.Millisecond, d-500*time.Millisecond), Do: "admin", Ops: []adminOp{op}})
			label += ", admin: " + op.String()
		}
		return chaosFault{Label: label, Acts: append(acts, chaosAct{At: at + d, Do: "free", Host: h})}
	}
	hup := func(at time.Duration) chaosFault {
		h := node()
		return chaosFault{Label: "SIGHUP " + h, Acts: []chaosAct{{At: at, Do: "hup", Host: h}}}
	}
	processFault := func(at time.Duration, kind, h string) chaosFault {
		switch kind {
		case "kill":
			d := between(time.Second, 6*time.Second)
			return chaosFault{Label: "kill -9 " + h, Acts: []chaosAct{{At: at, Do: "kill", Host: h}, {At: at + d, Do: "start", Host: h}}}
		case "freeze":
			d := between(2*time.Second, 8*time.Second)
			return chaosFault{Label: "SIGSTOP " + h, Acts: []chaosAct{{At: at, Do: "freeze", Host: h}, {At: at + d, Do: "thaw", Host: h}}}
		}
		panic(kind)
	}
	end := func(f chaosFault) time.Duration { _, e := f.span(); return e }

	var out []chaosFault
	var lastEnd time.Duration // the end of every fault so far
	add := func(f chaosFault) {
		out = append(out, f)
		lastEnd = max(lastEnd, end(f))
	}
	at := 3 * time.Second // the monitor sees the settled deployment first
	for at < total {
		var f chaosFault
		kind := pick(map[string]int{"kill": 16, "freeze": 12, "partition": 16, "loss": 10, "admin": 14, "hup": 6, "cc": 5,
			"sip": 7, "siphang": 5, "mds": 5, "move": 18, "holdkill": 6, "disk": 6, "fleet": 6})
		switch kind {
		case "move":
			// Alone, with chaosQuiet of nothing else before and after it,
			// and a second more, so that an act running a few
			// milliseconds late does not make it less than clean as run:
			// a clean planned move.
			at = max(at, lastEnd+chaosQuiet+time.Second)
			if at >= total {
				continue
			}
			f = move(at)
			add(f)
			at = end(f) + chaosQuiet + time.Second + between(0, 2*time.Second)
			continue
		case "holdkill":
			f = holdKill(at)
		case "disk":
			f = disk(at)
		case "kill", "freeze":
			f = processFault(at, kind, node())
		case "partition":
			d := between(3*time.Second, 10*time.Second)
			heal := chaosAct{At: at + d, Do: "heal"}
			switch r.IntN(4) {
			case 0:
				f = chaosFault{Label: "cut main | standby", Acts: []chaosAct{{At: at, Do: "cut", Host: "main", Other: "standby"}, heal}}
			case 1:
				f = chaosFault{Label: "cut main | witness", Acts: []chaosAct{{At: at, Do: "cut", Host: "main", Other: "witness"}, heal}}
			case 2:
				f = chaosFault{Label: "isolate standby", Acts: []chaosAct{{At: at, Do: "isolate", Host: "standby"}, heal}}
			default:
				f = chaosFault{Label: "isolate main", Acts: []chaosAct{{At: at, Do: "isolate", Host: "main"}, heal}}
			}
		case "loss":
			d := between(4*time.Second, 12*time.Second)
			pct := []int{30, 50, 70}[r.IntN(3)]
			heal := chaosAct{At: at + d, Do: "heal"}
			switch r.IntN(4) {
			case 0:
				f = chaosFault{Label: fmt.Sprintf("loss %d%% main → standby", pct), Acts: []chaosAct{{At: at, Do: "lose", Host: "standby", Other: "main", Pct: pct}, heal}}
			case 1:
				f = chaosFault{Label: fmt.Sprintf("loss %d%% standby → main", pct), Acts: []chaosAct{{At: at, Do: "lose", Host: "main", Other: "standby", Pct: pct}, heal}}
			case 2:
				f = chaosFault{Label: fmt.Sprintf("loss %d%% main ↔ standby", pct), Acts: []chaosAct{
					{At: at, Do: "lose", Host: "standby", Other: "main", Pct: pct}, {At: at, Do: "lose", Host: "main", Other: "standby", Pct: pct}, heal}}
			default:
				f = chaosFault{Label: fmt.Sprintf("loss %d%% witness → main", pct), Acts: []chaosAct{{At: at, Do: "lose", Host: "main", Other: "witness", Pct: pct}, heal}}
			}
		case "admin":
			f = admin(at)
		case "hup":
			f = hup(at)
		case "cc":
			d := between(time.Second, 4*time.Second)
			h := "cc-" + pbx()
			f = chaosFault{Label: "kill -9 " + h, Acts: []chaosAct{{At: at, Do: "kill", Host: h}, {At: at + d, Do: "start", Host: h}}}
		case "fleet":
			// The fleet aggregator, which only reads the pair: its death
			// and restart must change nothing on it.
			d := between(time.Second, 6*time.Second)
			f = chaosFault{Label: "kill -9 the fleet aggregator", Acts: []chaosAct{{At: at, Do: "kill", Host: "fleet"}, {At: at + d, Do: "start", Host: "fleet"}}}
		case "mds":
			// The MDS dies and comes back with no bindings (a registrar
			// keeping them in memory): the Active node is bound again at
			// its next refresh or retry.
			d := between(2*time.Second, 8*time.Second)
			f = chaosFault{Label: "kill the MDS (restarts empty)", Acts: []chaosAct{{At: at, Do: "mdskill"}, {At: at + d, Do: "mdsstart"}}}
		case "sip":
			h := pbx()
			f = chaosFault{Label: "kill -9 " + h + "'s asterisk", Acts: []chaosAct{{At: at, Do: "sipkill", Host: h}}}
		case "siphang":
			// A hung Asterisk: alive, answering nothing; resman stops it
			// (SIGTERM, then SIGKILL after the service's timeout) if it
			// steps down, else it wakes up later.
			h := pbx()
			d := between(3*time.Second, 10*time.Second)
			f = chaosFault{Label: "SIGSTOP " + h + "'s asterisk", Acts: []chaosAct{{At: at, Do: "siphang", Host: h}, {At: at + d, Do: "sipcont", Host: h}}}
		}
		add(f)
		stepEnd := end(f)
		// A second fault during the first one, a third of the time: an
		// admin command, a planned move (not a clean one: it overlaps), a
		// reload, or a process fault on another host (never a second
		// network fault: heal flushes every rule; never on the host whose
		// data directory is full or which a planned move holds: kill
		// faults of their own do that).
		if r.IntN(3) == 0 {
			at2 := at + between(0, max(stepEnd-at, 2*time.Second))
			var g chaosFault
			switch k := r.IntN(12); {
			case k < 5:
				g = admin(at2)
			case k < 7:
				g = move(at2)
			case k < 9:
				g = hup(at2)
			default:
				h := node()
				switch {
				case kind == "holdkill":
					h = "witness"
				case f.Acts[0].Host == h:
					h = map[string]string{"main": "standby", "standby": "witness", "witness": "main"}[h]
				}
				g = processFault(at2, []string{"kill", "freeze"}[r.IntN(2)], h)
			}
			add(g)
			stepEnd = max(stepEnd, end(g))
		}
		at = stepEnd + between(500*time.Millisecond, 3*time.Second)
	}
	for i := range out {
		f := &out[i]
		f.Planned = true
		for j := range f.Acts {
			f.Acts[j].fault = i
			if f.Acts[j].Do != "admin" || !slices.ContainsFunc(f.Acts[j].Ops, adminOp.planned) ||
				slices.ContainsFunc(f.Acts[j].Ops, func(o adminOp) bool { return !o.planned() }) {
				f.Planned = false
			}
		}
	}
	for i := range out {
		out[i].Clean = out[i].Planned && quietAround(out, i, func(f chaosFault) (time.Duration, time.Duration) { return f.span() })
	}
	return out
}

// quietAround reports whether no fault but i is in force from chaosQuiet
// before fault i to chaosQuiet after it, each fault from and to the times
// span gives (as scheduled or as run).
func quietAround(faults []chaosFault, i int, span func(chaosFault) (time.Duration, time.Duration)) bool {
	from, to := span(faults[i])
	for j, g := range faults {
		if j == i {
			continue
		}
		gFrom, gTo := span(g)
		if gTo+chaosQuiet > from && to+chaosQuiet > gFrom {
			return false
		}
	}
	return true
}

// sample is what the monitor read of a component at a moment.
type sample struct {
	at       time.Time // sent
	got      time.Time // answered (or given up)
	ok       bool      // it answered
	status   string    // active, inactive, activating, deactivating
	epoch    uint64
	peerSeen bool // a node: it sees its peer; the Edge: unused
	held     bool
	side     string // the Edge: the routed side
	// bound: the MDS: the nodes whose contact it has a binding for, with
	// the binding's expiry.
	bound map[string]time.Time
}

// edgeAnswer is one answer the user behind the Edge got.
type edgeAnswer struct {
	sent, got time.Time
	code      int
	servedBy  string
}

// interval is a stretch of a run; to is zero while it lasts.
type interval struct{ from, to time.Time }

func (iv interval) overlaps(from, to time.Time) bool {
	return iv.from.Before(to) && (iv.to.IsZero() || iv.to.After(from))
}

// chaosMonitor samples every component and keeps the findings.
type chaosMonitor struct {
	start time.Time
	chart *timeline.Chart

	mu         sync.Mutex
	hist       map[string][]sample
	transSince map[string]time.Time
	violations []string
	answers    []edgeAnswer
	kills      map[string][]time.Time // kill -9 of each host, for the findings' wording
	mdsBoth    time.Duration          // longest the MDS was bound to both nodes (informational)
	// paused: a partition or a lossy link with no witness verdict (two
	// Active nodes are the design until it heals); full: a node's data
	// directory full (it cannot persist, so it cannot step down).
	paused []interval
	full   map[string][]interval
	// What checkTwoActive measured (informational): samples proving two
	// Active nodes, windows of them (any; seeing each other), the longest
	// of each, and the clean planned moves guarded.
	proofs                 int
	rawWindows, twoWindows int
	rawLongest, twoLongest time.Duration
	cleanMoves             int
	cleanGuarded           time.Duration
	windows                []string // every window, described
	noActiveLongest        time.Duration
}

func (m *chaosMonitor) violate(at time.Time, format string, args ...any) {
	msg := fmt.Sprintf("%6.1fs ", at.Sub(m.start).Seconds()) + fmt.Sprintf(format, args...)
	m.violations = append(m.violations, msg)
	m.chart.Fault(at, at, "✗ "+fmt.Sprintf(format, args...))
}

// setInterval opens (on) or closes (off) the last interval of ivs.
func setInterval(ivs []interval, on bool, at time.Time) []interval {
	open := len(ivs) > 0 && ivs[len(ivs)-1].to.IsZero()
	switch {
	case on && !open:
		ivs = append(ivs, interval{from: at})
	case !on && open:
		ivs[len(ivs)-1].to = at
	}
	return ivs
}

func (m *chaosMonitor) setPaused(p bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paused = setInterval(m.paused, p, time.Now())
}

func (m *chaosMonitor) setFull(host string, full bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.full == nil {
		m.full = map[string][]interval{}
	}
	m.full[host] = setInterval(m.full[host], full, time.Now())
}

// record adds a sample and checks the invariants that depend on it.
func (m *chaosMonitor) record(name string, s sample) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hist[name] = append(m.hist[name], s)

	// Stuck in a transition; a sample without an answer (a frozen or dead
	// process) neither starts nor ends the run.
	if s.ok {
		if s.status == api.StatusActivating || s.status == api.StatusDeactivating {
			if m.transSince[name].IsZero() {
				m.transSince[name] = s.at
			} else if d := s.at.Sub(m.transSince[name]); d > chaosStuckBound {
				m.violate(s.at, "%s %s for %v", name, s.status, d.Round(time.Second))
				m.transSince[name] = s.at // report again only after another bound
			}
		} else {
			m.transSince[name] = time.Time{}
		}
	}
}

// twoActiveProof is a sample proving two Active nodes: it answered Active,
// and so did the other node's last sample answered before it was sent and
// the other node's first sample sent after it was answered. The other node
// was Active before and after it, so both were at the moment it answered:
// a node does not go Inactive and Active again between two samples (that
// is a whole stop and start). Two samples in a row both Active prove
// nothing: the first node may have stepped down before the second was
// read, which is how every hand-over looks.
type twoActiveProof struct {
	s    sample
	node string
	idx  int // its index in its node's history
	// seen: the three samples each say their node sees its peer.
	seen          bool
	main, standby uint64 // the epochs
}

// twoActiveProofs finds the samples of hm (the Main's) and hs (the
// Standby's) proving two Active nodes, in the order they were sent.
func twoActiveProofs(hm, hs []sample) []twoActiveProof {
	var out []twoActiveProof
	find := func(xs, ys []sample, node string) {
		for k, x := range xs {
			if !x.ok || x.status != api.StatusActive {
				continue
			}
			// ys is in the order sent and answered (one request at a time).
			i, _ := slices.BinarySearchFunc(ys, x.at, func(y sample, t time.Time) int {
				if y.got.After(t) {
					return 1
				}
				return -1
			})
			j, _ := slices.BinarySearchFunc(ys, x.got, func(y sample, t time.Time) int {
				if y.at.Before(t) {
					return -1
				}
				return 1
			})
			if i == 0 || j == len(ys) {
				continue
			}
			prev, next := ys[i-1], ys[j]
			if !prev.ok || !next.ok || prev.status != api.StatusActive || next.status != api.StatusActive {
				continue
			}
			p := twoActiveProof{s: x, node: node, idx: k, seen: x.peerSeen && prev.peerSeen && next.peerSeen}
			if node == "main" {
				p.main, p.standby = x.epoch, prev.epoch
			} else {
				p.main, p.standby = prev.epoch, x.epoch
			}
			out = append(out, p)
		}
	}
	find(hm, hs, "main")
	find(hs, hm, "standby")
	slices.SortFunc(out, func(a, b twoActiveProof) int { return a.s.at.Compare(b.s.at) })
	return out
}

// twoActiveWindow is a run of samples of both nodes, in the order sent,
// each proving two Active nodes (and, when asked, that they see each
// other): both were so from the first one's answer to the last one's
// sending at least.
type twoActiveWindow struct {
	from, to      time.Time
	main, standby uint64 // the epochs at its end
}

func (w twoActiveWindow) length() time.Duration { return max(0, w.to.Sub(w.from)) }

// twoActiveWindows groups proofs into windows: a sample of either node
// that proves nothing (or not that they see each other, with seen) ends
// one.
func twoActiveWindows(hm, hs []sample, proofs []twoActiveProof, seen bool) []twoActiveWindow {
	type key struct {
		node string
		idx  int
	}
	byKey := map[key]twoActiveProof{}
	for _, p := range proofs {
		byKey[key{p.node, p.idx}] = p
	}
	type mark struct {
		at time.Time
		k  key
	}
	var all []mark
	for node, h := range map[string][]sample{"main": hm, "standby": hs} {
		for i, s := range h {
			all = append(all, mark{at: s.at, k: key{node, i}})
		}
	}
	slices.SortFunc(all, func(a, b mark) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.k.node, b.k.node)
	})
	var out []twoActiveWindow
	var cur *twoActiveWindow
	for _, mk := range all {
		p, ok := byKey[mk.k]
		if !ok || seen && !p.seen {
			cur = nil
			continue
		}
		if cur == nil {
			out = append(out, twoActiveWindow{from: p.s.got})
			cur = &out[len(out)-1]
		}
		cur.to, cur.main, cur.standby = p.s.at, p.main, p.standby
	}
	return out
}

// checkTwoActive: not one sample proving two Active nodes during a clean
// planned move (as run: faults' Began and Ended, guarded until chaosQuiet
// after the move, and no later than until); and no window of two Active
// nodes seeing each other longer than chaosTwoActiveBound, unless a
// partition with no witness verdict overlaps it (two Actives by design),
// or counted only from the moment the data directory of either node was
// freed (a node that cannot persist cannot step down).
func (m *chaosMonitor) checkTwoActive(faults []chaosFault, until time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	hm, hs := m.hist["main"], m.hist["standby"]
	proofs := twoActiveProofs(hm, hs)
	m.proofs = len(proofs)

	for _, f := range faults {
		if !f.CleanAsRun {
			continue
		}
		from := m.start.Add(seconds(f.Began))
		to := m.start.Add(seconds(f.Ended) + chaosQuiet)
		if to.After(until) {
			to = until
		}
		m.cleanMoves++
		m.cleanGuarded += to.Sub(from)
		var in []twoActiveProof
		for _, p := range proofs {
			if !p.s.at.Before(from) && p.s.at.Before(to) {
				in = append(in, p)
			}
		}
		if len(in) > 0 {
			m.violate(in[0].s.at, "two Active nodes during the clean planned move %q: %d samples prove it, the first at %.3fs (%s's, epochs %d and %d)",
				f.Label, len(in), in[0].s.at.Sub(m.start).Seconds(), in[0].node, in[0].main, in[0].standby)
		}
	}

	raw := twoActiveWindows(hm, hs, proofs, false)
	m.rawWindows = len(raw)
	describe := func(w twoActiveWindow, what string) {
		m.windows = append(m.windows, fmt.Sprintf("%.3fs-%.3fs (%v at least, epochs %d and %d): %s",
			w.from.Sub(m.start).Seconds(), w.to.Sub(m.start).Seconds(), w.length().Round(time.Millisecond), w.main, w.standby, what))
	}
	for _, w := range raw {
		m.rawLongest = max(m.rawLongest, w.length())
		describe(w, "two Active nodes")
	}
	for _, w := range twoActiveWindows(hm, hs, proofs, true) {
		if slices.ContainsFunc(m.paused, func(iv interval) bool { return iv.overlaps(w.from, w.to.Add(time.Nanosecond)) }) {
			describe(w, "seeing each other, during a partition with no witness verdict: not counted")
			continue
		}
		excused := false
		for _, ivs := range m.full {
			for _, iv := range ivs {
				if !iv.overlaps(w.from, w.to.Add(time.Nanosecond)) {
					continue
				}
				if iv.to.IsZero() || !iv.to.Before(w.to) {
					excused = true
				} else if iv.to.After(w.from) {
					w.from = iv.to
				}
			}
		}
		if excused {
			describe(w, "seeing each other, while a data directory was full: not counted")
			continue
		}
		describe(w, "seeing each other, counted")
		m.twoWindows++
		m.twoLongest = max(m.twoLongest, w.length())
		if w.length() > chaosTwoActiveBound {
			m.violate(w.from, "two Active nodes seeing each other for %v at least, beyond one probe interval (%v), from %.3fs (epochs %d and %d)",
				w.length().Round(time.Millisecond), chaosTwoActiveBound, w.from.Sub(m.start).Seconds(), w.main, w.standby)
		}
	}
}

// checkNoActive: the pair is not left without an Active node for longer
// than chaosNoActiveBound while nothing stops one from taking over: both
// nodes answer Inactive, each sees the other, neither holds for an admin's
// stop, and neither has its data directory full. A window is a run of
// samples of either node, in the order sent, each answering so with the
// other node's last answer before it saying so too; it counts from the
// first one's answer to the last one's sending.
func (m *chaosMonitor) checkNoActive() {
	m.mu.Lock()
	defer m.mu.Unlock()
	idle := func(s sample) bool { return s.ok && s.status == api.StatusInactive && s.peerSeen && !s.held }
	type mark struct {
		s     sample
		other []sample
	}
	var all []mark
	for node, h := range map[string][]sample{"main": m.hist["main"], "standby": m.hist["standby"]} {
		other := m.hist[map[string]string{"main": "standby", "standby": "main"}[node]]
		for _, s := range h {
			all = append(all, mark{s, other})
		}
	}
	slices.SortFunc(all, func(a, b mark) int { return a.s.at.Compare(b.s.at) })
	var from, to time.Time
	flush := func() {
		if !from.IsZero() && to.Sub(from) > chaosNoActiveBound {
			m.violate(from, "no node Active for %v from %.1fs, while both answered Inactive, saw each other and neither held for an admin's stop nor had its data directory full",
				to.Sub(from).Round(100*time.Millisecond), from.Sub(m.start).Seconds())
		}
		if !from.IsZero() {
			m.noActiveLongest = max(m.noActiveLongest, to.Sub(from))
		}
		from, to = time.Time{}, time.Time{}
	}
	for _, mk := range all {
		x := mk.s
		i, _ := slices.BinarySearchFunc(mk.other, x.at, func(y sample, t time.Time) int {
			if y.got.After(t) {
				return 1
			}
			return -1
		})
		full := false
		for _, ivs := range m.full {
			full = full || slices.ContainsFunc(ivs, func(iv interval) bool { return iv.overlaps(x.at.Add(-chaosSkew), x.got.Add(chaosSkew)) })
		}
		if i == 0 || !idle(x) || !idle(mk.other[i-1]) || full {
			flush()
			continue
		}
		if from.IsZero() {
			from = x.got
		}
		to = x.at
	}
	flush()
}

func (m *chaosMonitor) history(name string) []sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.hist[name])
}

// notActiveThroughout reports whether name answered, not Active, at every
// sample in [from, to], with at least two samples there.
func notActiveThroughout(h []sample, from, to time.Time) bool {
	return answeredThroughout(h, from, to, func(st string) bool { return st != api.StatusActive })
}

// leftThroughout reports whether name answered Inactive or deactivating
// (it had left Active, or never was) at every sample in [from, to], with
// at least two samples there.
func leftThroughout(h []sample, from, to time.Time) bool {
	return answeredThroughout(h, from, to, func(st string) bool {
		return st == api.StatusInactive || st == api.StatusDeactivating
	})
}

// answeredThroughout reports whether every sample in [from, to] is an
// answer whose status is, with at least two samples there.
func answeredThroughout(h []sample, from, to time.Time, is func(string) bool) bool {
	i, _ := slices.BinarySearchFunc(h, from, func(s sample, t time.Time) int { return s.at.Compare(t) })
	n := 0
	for ; i < len(h) && !h[i].at.After(to); i++ {
		if !h[i].ok || !is(h[i].status) {
			return false
		}
		n++
	}
	return n >= 2
}

// noteKill remembers a kill -9, for the wording of the MDS's findings.
func (m *chaosMonitor) noteKill(host string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.kills == nil {
		m.kills = map[string][]time.Time{}
	}
	m.kills[host] = append(m.kills[host], at)
}

// authGet GETs url with the token into v.
func authGet(client *http.Client, url string, v any) error {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// chaosRun is the deployment under test and the state of the schedule.
type chaosRun struct {
	t     *testing.T
	pair  *autoPair
	mon   *chaosMonitor
	cfg   map[string]string
	procs map[string]*proc
	url   map[string]string

	ccs              map[string]*chaosCC // by name: cc-main, cc-standby
	mds              *chaosMDS
	edgeAPI, edgeURL string
	// The fleet aggregator: its config, API, process; nodeProcs: every
	// process of the Main and the Standby so far (each restart is a new
	// one), whose logs tell the writes they refused.
	fleetCfg, fleetAPI string
	fleet              *ceProc
	nodeProcs          map[string][]*proc

	dead, frozen map[string]bool
	hung         map[string]int // host -> pid of its SIGSTOPped asterisk
	network      bool           // a partition or loss is in force
	disks        map[string]*smallDisk
	full         map[string]bool // the data directory is full

	// faults: the schedule, with when each fault ran (Began and Ended,
	// under mu: admin commands answer in their own goroutines); src: the
	// node each fault's first admin command ran on.
	faults []chaosFault
	src    map[int]string
	moves  []map[string]any // the planned moves' commands and answers
	audits map[string][]string

	seen  map[string]map[uint64]api.AuditEntry // audit entries seen, per component
	admin sync.WaitGroup
	mu    sync.Mutex
	log   []string
}

func (c *chaosRun) logf(format string, args ...any) {
	msg := fmt.Sprintf("%6.1fs ", time.Since(c.mon.start).Seconds()) + fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.log = append(c.log, msg)
	c.mu.Unlock()
	c.t.Log(msg)
}

// bgStart starts a helper process (a stand-in app) and kills it when the
// test ends.
func bgStart(t *testing.T, name string, cmd *exec.Cmd, healthz string) {
	t.Helper()
	var out testkit.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	testkit.Eventually(t, func() bool { return ceGet(healthz) == 200 }, "%s serving", name)
}

// chaosCC is a CC follower of one node, on the lab's bridge address.
type chaosCC struct {
	name, node        string // cc-main follows main, cc-standby standby
	cfg, dataDir, api string
	proc              *ceProc
}

// chaosMDS is the media server: an in-process xds/registrar on the lab's
// bridge address, which every namespace reaches and which no network fault
// cuts (they cut hosts apart, never from the bridge address). It can be
// killed and started again on the same address, empty, as a registrar that
// keeps its bindings in memory comes back.
type chaosMDS struct {
	addr, password string
	log            testkit.Buffer

	mu   sync.Mutex
	srv  *registrar.Server // nil while down
	stop context.CancelFunc
	done chan struct{}
}

func (m *chaosMDS) start() error {
	srv := registrar.New(registrar.Options{User: "xivo", Password: m.password, Realm: "mds1",
		Logger: slog.New(slog.NewTextHandler(&m.log, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done, failed := make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(done)
		if err := srv.ListenAndServe(ctx, "udp", m.addr); err != nil {
			failed <- err
		}
	}()
	select {
	case <-srv.Ready():
	case err := <-failed:
		cancel()
		return err
	}
	m.mu.Lock()
	m.srv, m.stop, m.done = srv, cancel, done
	m.mu.Unlock()
	return nil
}

// kill closes the MDS's socket and forgets its bindings.
func (m *chaosMDS) kill() {
	m.mu.Lock()
	stop, done := m.stop, m.done
	m.srv, m.stop, m.done = nil, nil, nil
	m.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// bindings returns what the MDS has bound now; false while it is down.
func (m *chaosMDS) bindings() ([]registrar.Binding, bool) {
	m.mu.Lock()
	srv := m.srv
	m.mu.Unlock()
	if srv == nil {
		return nil, false
	}
	return srv.Bindings(), true
}

// contactNode is the node a contact belongs to: its user part (each node
// registers sip:NAME@ITS-ADDRESS:5060).
func contactNode(contact string) string {
	user, _, _ := strings.Cut(strings.TrimPrefix(contact, "sip:"), "@")
	return user
}

// boundNodes lists the nodes a sample of the MDS is bound to, sorted.
func boundNodes(s sample) []string {
	var out []string
	for n := range s.bound {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// chaosNodeConfig is autoNodeConfig (with the witness) and an xds: section
// registering the node's contact, its Asterisk's address, to the MDS with
// digest authentication, as the demo does.
func chaosNodeConfig(t *testing.T, l *lab, name, role, peer string, mds *chaosMDS) string {
	path := autoNodeConfig(t, l, name, role, peer, true)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The probe interval chaosTwoActiveBound is made of, written out.
	withProbe := strings.Replace(string(raw), "gossip: {", fmt.Sprintf("gossip: {probe_interval: %v, ", chaosProbeInterval), 1)
	if withProbe == string(raw) {
		t.Fatalf("%s: no gossip section to set the probe interval in", path)
	}
	// The fleet aggregator's read token.
	apiToken := fmt.Sprintf("token: %s}", testToken)
	withRead := strings.Replace(withProbe, apiToken, fmt.Sprintf("token: %s, read_tokens: [%s]}", testToken, chaosFleetReadToken), 1)
	if withRead == withProbe {
		t.Fatalf("%s: no api token to add the fleet's read token beside", path)
	}
	withProbe = withRead
	if err := os.WriteFile(path, []byte(withProbe), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, `xds:
  contact: "sip:%s@%s:5060"
  mds:
    - {name: mds1, registrar: "sip:%s", transport: udp, user: xivo, password: "%s", expires: %d}
`, name, l.host(name).ip, mds.addr, mds.password, int(chaosMDSExpires/time.Second)); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos schedule: not in -short")
	}
	requireTools(t, "ip", "nft")
	requireMount(t)
	seed := rand.Uint64() % 1_000_000
	if v := os.Getenv("RESMAN_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("RESMAN_CHAOS_SEED: %v", err)
		}
		seed = n
	}
	length := chaosDefaultLength
	if v := os.Getenv("RESMAN_CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("RESMAN_CHAOS_DURATION: %v", err)
		}
		length = d
	}
	// A schedule with no fault would pass and write a proof of nothing.
	if len(chaosSchedule(seed, length)) == 0 {
		t.Fatalf("RESMAN_CHAOS_DURATION: %v makes a schedule without a fault (the first comes at 3s): give more, like %v", length, chaosDefaultLength)
	}
	replay := fmt.Sprintf("RESMAN_CHAOS_SEED=%d RESMAN_CHAOS_DURATION=%v go test -run TestChaos -v ./cmd/resman/", seed, length)
	t.Logf("chaos seed %d, %v; replay: %s", seed, length, replay)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chaos run FAILED with seed %d; replay: %s", seed, replay)
		}
	})
	faults := chaosSchedule(seed, length)

	// The lab, the MDS on its bridge address, and the pair registering to
	// it (newAutoPair, with an xds: section).
	l := newLab(t, nodeHosts...)
	br := l.subnet + ".254"
	mds := &chaosMDS{addr: fmt.Sprintf("%s:%d", br, freePort(t, br)), password: randomToken()}
	if err := mds.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mds.kill()
		if t.Failed() {
			t.Logf("mds log:\n%s", mds.log.String())
		}
	})
	a := &autoPair{lab: l,
		mainCfg:    chaosNodeConfig(t, l, "main", "main", "standby", mds),
		standbyCfg: chaosNodeConfig(t, l, "standby", "standby", "main", mds),
		witnessCfg: witnessConfig(t, l),
		mainURL:    fmt.Sprintf("http://%s:9440", l.host("main").ip),
		standbyURL: fmt.Sprintf("http://%s:9440", l.host("standby").ip),
	}
	// Each node's data directory on a small disk of its own, which the
	// schedule fills up and frees.
	disks := map[string]*smallDisk{"main": mountDataDir(t, a.mainCfg), "standby": mountDataDir(t, a.standbyCfg)}
	a.wit = startIn(t, l, "witness", a.witnessCfg)
	a.standby = startIn(t, l, "standby", a.standbyCfg)
	a.main = startIn(t, l, "main", a.mainCfg)
	testkit.Eventually(t, func() bool {
		m, s := status(t, a.mainURL), status(t, a.standbyURL)
		return m.Status == "active" && s.Status == "inactive" && m.HA.Ready && s.HA.Ready &&
			s.Peer != nil && s.Peer.Status == "active" && s.Peer.Epoch == m.Epoch &&
			m.Peer != nil && m.Peer.Status == "inactive"
	}, "main active, standby inactive, HA ready, each seeing the other")
	c := &chaosRun{t: t, pair: a,
		cfg:       map[string]string{"main": a.mainCfg, "standby": a.standbyCfg, "witness": a.witnessCfg},
		procs:     map[string]*proc{"main": a.main, "standby": a.standby, "witness": a.wit},
		nodeProcs: map[string][]*proc{"main": {a.main}, "standby": {a.standby}},
		url:       map[string]string{},
		ccs:       map[string]*chaosCC{},
		mds:       mds,
		dead:      map[string]bool{},
		frozen:    map[string]bool{},
		hung:      map[string]int{},
		seen:      map[string]map[uint64]api.AuditEntry{},
		disks:     disks,
		full:      map[string]bool{},
		faults:    faults,
		src:       map[int]string{},
		audits:    map[string][]string{},
	}
	for _, h := range nodeHosts {
		c.url[h] = fmt.Sprintf("http://%s:9440", l.host(h).ip)
	}

	// Each side's web app, on its own host; the CC followers and the Edge
	// on the lab's bridge address, outside the namespaces, so that the
	// partitions cut the pair and the witness, not the test's view.
	for _, side := range []string{"main", "standby"} {
		addr := l.host(side).ip + ":8080"
		bgStart(t, side+" app", l.command(side, binary, "standin", "http", "--listen", addr, "--name", side), "http://"+addr+"/healthz")
	}
	for _, side := range []string{"main", "standby"} {
		f := &chaosCC{name: "cc-" + side, node: side, dataDir: t.TempDir(),
			api: fmt.Sprintf("http://%s:%d", br, freePort(t, br))}
		web := fmt.Sprintf("%s:%d", br, freePort(t, br))
		f.cfg = ceWrite(t, f.name+".yaml", fmt.Sprintf(`api: {listen: "%s", token: %s}
cc:
  name: %s
  follow: %s
  token: %s
  services:
    - name: cc-web
      run: [%s, standin, http, --listen, "%s", --name, %s]
      check: {http: "http://%s/healthz", interval: 200ms, timeout: 200ms, rise: 1}
      timeout: 5s
log: {level: debug}
`, strings.TrimPrefix(f.api, "http://"), testToken, f.name, c.url[side], testToken, binary, web, f.name, web))
		c.ccs[f.name] = f
		c.startCC(f.name)
	}
	c.edgeAPI = fmt.Sprintf("http://%s:%d", br, freePort(t, br))
	c.edgeURL = fmt.Sprintf("http://%s:%d", br, freePort(t, br))
	edgeCfg := ceWrite(t, "edge.yaml", fmt.Sprintf(`api: {listen: "%s", token: %s}
edge:
  listen: "%s"
  token: %s
  check: {interval: 200ms, rise: 2, fall: 2}
  sides:
    - name: main
      node: %s
      routes: [{path: /, upstream: "http://%s:8080"}]
    - name: standby
      node: %s
      routes: [{path: /, upstream: "http://%s:8080"}]
log: {level: debug}
`, strings.TrimPrefix(c.edgeAPI, "http://"), testToken, strings.TrimPrefix(c.edgeURL, "http://"), testToken,
		c.url["main"], l.host("main").ip, c.url["standby"], l.host("standby").ip))
	ceStart(t, "edge", nil, c.edgeAPI+"/healthz", "run", "-c", edgeCfg)
	// The fleet aggregator, on the bridge address too: a resman run with a
	// fleet section reading the pair's two nodes with their read token.
	c.fleetAPI = fmt.Sprintf("http://%s:%d", br, freePort(t, br))
	c.fleetCfg = ceWrite(t, "fleet.yaml", fmt.Sprintf(`api: {listen: "%s", token: %s}
fleet:
  interval: %v
  pairs:
    - {name: chaos, nodes: ["%s", "%s"], token: %s}
log: {level: debug}
`, strings.TrimPrefix(c.fleetAPI, "http://"), testToken, chaosFleetInterval, c.url["main"], c.url["standby"], chaosFleetReadToken))
	c.startFleet()
	testkit.Eventually(t, func() bool {
		var cm, cs cc.Status
		var es edge.Status
		bs, _ := mds.bindings()
		return authGet(http.DefaultClient, c.ccs["cc-main"].api+cc.PathStatus, &cm) == nil && cm.Status == "active" &&
			authGet(http.DefaultClient, c.ccs["cc-standby"].api+cc.PathStatus, &cs) == nil && cs.Status == "inactive" &&
			authGet(http.DefaultClient, c.edgeAPI+"/api/v1/edge/status", &es) == nil && es.Side == "main" &&
			len(bs) == 1 && contactNode(bs[0].Contact) == "main"
	}, "cc-main active, cc-standby inactive, the edge routing to main, the MDS bound to main")
	// The aggregator reports the pair as it is, and its check of writes
	// can fail: a write with its token is refused, and the node logs it.
	testkit.Eventually(t, func() bool {
		_, ok := c.fleetSays(http.DefaultClient, "main", true)
		return ok
	}, "the fleet aggregator reporting the pair ready, main Active")
	c.writeWithFleetToken()

	// The monitor and the user behind the Edge.
	start := time.Now()
	chart := timeline.New(fmt.Sprintf("resman chaos run, seed %d, %v schedule", seed, length), start)
	c.mon = &chaosMonitor{start: start, chart: chart, hist: map[string][]sample{}, transSince: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	stopBackground := sync.OnceFunc(func() { cancel(); bg.Wait() })
	t.Cleanup(stopBackground)
	lanes := []string{"main", "standby", "witness", "cc-main", "cc-standby", "edge → main", "edge → standby", "mds → main", "mds → standby", "fleet"}
	for _, lane := range lanes {
		chart.Lane(lane)
	}
	for _, name := range []string{"main", "standby", "witness", "cc-main", "cc-standby", "edge", "mds", "fleet"} {
		bg.Go(func() { c.sampleLoop(ctx, name) })
	}
	bg.Go(func() { c.userLoop(ctx) })
	defer func() {
		// The picture and the record, whether the run passed or not.
		stopBackground()
		c.mon.mu.Lock()
		c.mu.Lock()
		for _, f := range c.faults {
			if f.Began != 0 {
				chart.Fault(start.Add(seconds(f.Began)), start.Add(seconds(f.Ended)), f.Label)
			}
		}
		rec := map[string]any{
			"seed": seed, "duration": length.String(), "started": start.UTC().Format(time.RFC3339),
			"faults": c.faults, "violations": append([]string{}, c.mon.violations...),
			"samples_proving_two_active":                       c.mon.proofs,
			"longest_two_active_seeing_each_other_s":           c.mon.twoLongest.Seconds(),
			"longest_two_active_any_s":                         c.mon.rawLongest.Seconds(),
			"two_active_windows_seeing_each_other_counted":     c.mon.twoWindows,
			"two_active_windows_any":                           c.mon.rawWindows,
			"two_active_bound_s":                               chaosTwoActiveBound.Seconds(),
			"clean_planned_moves":                              c.mon.cleanMoves,
			"longest_no_active_node_while_free_to_take_over_s": c.mon.noActiveLongest.Seconds(),
			"clean_planned_moves_guarded_s":                    c.mon.cleanGuarded.Seconds(),
			"planned_move_commands":                            c.moves,
			"two_active_windows":                               append([]string{}, c.mon.windows...),
			"edge_answers":                                     len(c.mon.answers),
			"longest_mds_bound_to_both_s":                      c.mon.mdsBoth.Seconds(),
			"log":                                              c.log,
			"audit":                                            c.audits,
		}
		c.mu.Unlock()
		c.mon.mu.Unlock()
		writeProof(t, fmt.Sprintf("chaos-%d.svg", seed), chart)
		writeProof(t, fmt.Sprintf("chaos-%d.json", seed), rec)
	}()

	// The schedule.
	var acts []chaosAct
	for _, f := range faults {
		acts = append(acts, f.Acts...)
	}
	slices.SortStableFunc(acts, func(x, y chaosAct) int { return int(x.At - y.At) })
	for _, f := range faults {
		t.Logf("fault at %5.1fs: %s", f.Acts[0].At.Seconds(), f.Label)
	}
	for _, act := range acts {
		if d := time.Until(start.Add(act.At)); d > 0 {
			time.Sleep(d) // the schedule's own pacing
		}
		c.ran(act.fault)
		c.do(act, faults[act.fault].Label)
	}
	settled := c.settle()
	c.admin.Wait()
	c.checkFleetReport(settled.active)
	// Both nodes' audit logs, oldest first, for the record: what each
	// decided and why.
	for _, h := range []string{"main", "standby"} {
		es, err := c.readAudit(h)
		if err != nil {
			t.Errorf("read %s's audit log for the record: %v", h, err)
			continue
		}
		ids := slices.Sorted(maps.Keys(es))
		var lines []string
		for _, id := range ids {
			e := es[id]
			lines = append(lines, fmt.Sprintf("%6.1fs #%d %s %s %s->%s epoch %d: %s (%s)%s", e.Time.Sub(start).Seconds(), e.ID, e.Who, e.Action,
				e.From, e.To, e.Epoch, e.Cause, e.Outcome, map[bool]string{true: " [" + e.Detail + "]"}[e.Detail != ""]))
		}
		c.mu.Lock()
		c.audits[h] = lines
		c.mu.Unlock()
	}
	stopBackground()
	c.checkEdge()
	for _, f := range c.ccs {
		c.mon.checkCC(f.name, f.node)
	}
	c.mon.checkMDS()
	c.checkFleetWrites()
	// The clean planned moves as run: the quiet held around them, the
	// healing at the end counting as a fault when it had anything to do.
	c.mu.Lock()
	asRun := slices.Clone(c.faults)
	if settled.acted {
		asRun = append(asRun, chaosFault{Label: "healing at the end", Began: settled.began, Ended: settled.ended, Acts: []chaosAct{{}}})
	}
	for i := range c.faults {
		f := &c.faults[i]
		f.CleanAsRun = f.Clean && f.Began != 0 && quietAround(asRun, i, func(g chaosFault) (time.Duration, time.Duration) {
			if g.Began == 0 { // never ran
				return -time.Hour, -time.Hour
			}
			return seconds(g.Began), seconds(g.Ended)
		})
		if f.Clean && !f.CleanAsRun {
			c.log = append(c.log, fmt.Sprintf("the clean planned move %q was not clean as run: another fault ran within %v of it", f.Label, chaosQuiet))
		}
	}
	faultsAsRun := slices.Clone(c.faults)
	c.mu.Unlock()
	c.mon.checkTwoActive(faultsAsRun, time.Now())
	c.mon.checkNoActive()
	c.mon.mu.Lock()
	violations := slices.Clone(c.mon.violations)
	t.Logf("%d faults; %d samples prove two Active nodes; windows of two Active nodes seeing each other counted: %d, the longest %v (bound %v); any: %d, the longest %v; %d clean planned moves guarded for %v; %d answers through the Edge; the MDS bound to both nodes for %v at most",
		len(faults), c.mon.proofs, c.mon.twoWindows, c.mon.twoLongest.Round(time.Millisecond), chaosTwoActiveBound,
		c.mon.rawWindows, c.mon.rawLongest.Round(time.Millisecond), c.mon.cleanMoves, c.mon.cleanGuarded.Round(time.Second),
		len(c.mon.answers), c.mon.mdsBoth.Round(time.Millisecond))
	c.mon.mu.Unlock()
	for _, v := range violations {
		t.Errorf("invariant broken: %s", v)
	}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// do carries out one act of the schedule.
func (c *chaosRun) do(act chaosAct, label string) {
	t, l := c.t, c.pair.lab
	if act.Host == "src" {
		c.mu.Lock()
		act.Host = c.src[act.fault]
		c.mu.Unlock()
		if act.Host == "" {
			c.logf("%s: the move ran on no node: nothing to %s", label, act.Do)
			return
		}
	}
	switch act.Do {
	case "kill":
		if c.dead[act.Host] {
			c.logf("%s: %s is dead already", label, act.Host)
			break
		}
		c.logf("kill -9 %s", act.Host)
		if f := c.ccs[act.Host]; f != nil {
			c.snapshotAudit(act.Host)
			f.proc.cmd.Process.Signal(syscall.SIGKILL)
			<-f.proc.exited
		} else if act.Host == "fleet" { // no audit log: it never acts
			c.fleet.cmd.Process.Signal(syscall.SIGKILL)
			<-c.fleet.exited
		} else {
			c.snapshotAudit(act.Host)
			c.procs[act.Host].kill(syscall.SIGKILL)
		}
		c.dead[act.Host], c.frozen[act.Host] = true, false
		c.mon.noteKill(act.Host, time.Now())
	case "start":
		if !c.dead[act.Host] {
			c.logf("%s: %s is running", label, act.Host)
			break
		}
		c.logf("restart %s", act.Host)
		switch {
		case c.ccs[act.Host] != nil:
			c.startCC(act.Host)
		case act.Host == "fleet":
			c.startFleet()
		default:
			c.procs[act.Host] = startIn(t, l, act.Host, c.cfg[act.Host])
			if _, ok := c.nodeProcs[act.Host]; ok {
				c.nodeProcs[act.Host] = append(c.nodeProcs[act.Host], c.procs[act.Host])
			}
		}
		c.dead[act.Host] = false
		c.checkAudit(act.Host)
	case "freeze":
		c.logf("SIGSTOP %s", act.Host)
		c.procs[act.Host].cmd.Process.Signal(syscall.SIGSTOP)
		c.frozen[act.Host] = true
	case "thaw":
		c.logf("SIGCONT %s", act.Host)
		c.procs[act.Host].cmd.Process.Signal(syscall.SIGCONT)
		c.frozen[act.Host] = false
	case "cut":
		c.logf("%s", label)
		l.cut(act.Host, act.Other)
		c.network = true
	case "isolate":
		c.logf("%s", label)
		l.isolate(act.Host)
		c.network = true
	case "lose":
		c.logf("%s: drop %d%% of %s's packets at %s", label, act.Pct, act.Other, act.Host)
		l.lose(act.Host, act.Other, act.Pct)
		c.network = true
	case "heal":
		c.logf("heal (%s)", label)
		l.heal()
		c.network = false
	case "hup":
		if c.dead[act.Host] {
			c.logf("%s: %s is dead, nothing to reload", label, act.Host)
			break
		}
		c.logf("%s", label)
		c.procs[act.Host].cmd.Process.Signal(syscall.SIGHUP)
	case "sipkill":
		pid := c.asteriskPID(act.Host)
		if pid == 0 {
			c.logf("%s: no asterisk running on %s", label, act.Host)
			break
		}
		c.logf("%s (pid %d)", label, pid)
		syscall.Kill(pid, syscall.SIGKILL)
	case "siphang":
		pid := c.asteriskPID(act.Host)
		if pid == 0 {
			c.logf("%s: no asterisk running on %s", label, act.Host)
			break
		}
		c.logf("%s (pid %d)", label, pid)
		syscall.Kill(pid, syscall.SIGSTOP)
		c.hung[act.Host] = pid
	case "sipcont":
		if pid := c.hung[act.Host]; pid != 0 {
			// The same process, if resman has not killed it meanwhile.
			c.logf("SIGCONT %s's asterisk (pid %d)", act.Host, pid)
			syscall.Kill(pid, syscall.SIGCONT)
			delete(c.hung, act.Host)
		}
	case "mdskill":
		c.logf("%s", label)
		c.mds.kill()
		c.dead["mds"] = true
	case "mdsstart":
		c.logf("restart the MDS, with no bindings")
		if err := c.mds.start(); err != nil {
			t.Fatalf("restart the MDS: %v", err)
		}
		c.dead["mds"] = false
	case "fill":
		c.logf("%s: fill its disk", label)
		c.disks[act.Host].fill(t)
		c.full[act.Host] = true
		c.mon.setFull(act.Host, true)
	case "free":
		c.logf("free the disk of %s", act.Host)
		c.disks[act.Host].free(t)
		c.full[act.Host] = false
		c.mon.setFull(act.Host, false)
	case "admin":
		// At once, as two admins would; the answers are checked as they
		// come, the schedule goes on.
		for i, op := range act.Ops {
			if op.Node == "active" {
				op.Node = c.activeNode()
				if op.Node == "" {
					c.logf("admin %s: no node answers Active: not sent", op.Cmd)
					continue
				}
			}
			if i == 0 {
				c.mu.Lock()
				if _, ok := c.src[act.fault]; !ok {
					c.src[act.fault] = op.Node
				}
				c.mu.Unlock()
			}
			c.admin.Go(func() { c.adminCommand(op, label, act.fault) })
		}
	}
	// A partition or a lossy link with no witness to give a verdict: two
	// Active nodes are the design until it heals, as in the other tests.
	c.mon.setPaused(c.network && (c.dead["witness"] || c.frozen["witness"]))
}

// ran notes that an act of fault i runs now.
func (c *chaosRun) ran(i int) {
	now := time.Since(c.mon.start).Seconds()
	c.mu.Lock()
	defer c.mu.Unlock()
	f := &c.faults[i]
	if f.Began == 0 {
		f.Began = now
	}
	f.Ended = max(f.Ended, now)
}

// activeNode is the node whose last answer, within the last second,
// was Active (the Main if both), or "". A sample that got no answer (a
// slow moment) does not hide the answer before it.
func (c *chaosRun) activeNode() string {
	c.mon.mu.Lock()
	defer c.mon.mu.Unlock()
	for _, h := range []string{"main", "standby"} {
		hist := c.mon.hist[h]
		for i := len(hist) - 1; i >= 0 && time.Since(hist[i].at) < time.Second; i-- {
			if hist[i].ok {
				if hist[i].status == api.StatusActive {
					return h
				}
				break
			}
		}
	}
	return ""
}

func (c *chaosRun) startCC(name string) {
	f := c.ccs[name]
	f.proc = ceStart(c.t, name, []string{"RESMAN_CC_DATA_DIR=" + f.dataDir}, f.api+"/healthz", "run", "-c", f.cfg)
}

func (c *chaosRun) startFleet() {
	c.fleet = ceStart(c.t, "fleet", nil, c.fleetAPI+"/healthz", "run", "-c", c.fleetCfg)
}

// fleetPair is what the fleet aggregator reports of the pair.
func (c *chaosRun) fleetPair(client *http.Client) (fleet.Pair, error) {
	var ps []fleet.Pair
	if err := authGet(client, c.fleetAPI+fleet.PathAPI, &ps); err != nil {
		return fleet.Pair{}, err
	}
	if len(ps) != 1 || ps[0].Name != "chaos" {
		return fleet.Pair{}, fmt.Errorf("%d pairs, want the one named chaos", len(ps))
	}
	return ps[0], nil
}

// fleetSays reports whether the fleet aggregator says of the pair that
// active is its one Active node, that both nodes were read, and that the
// pair is ready or not as ready says, and says what it reports.
func (c *chaosRun) fleetSays(client *http.Client, active string, ready bool) (string, bool) {
	p, err := c.fleetPair(client)
	if err != nil {
		return err.Error(), false
	}
	reachable := len(p.Nodes) == 2 && p.Nodes[0].Reachable && p.Nodes[1].Reachable
	what := fmt.Sprintf("%s, Active %v, ready %v, both nodes read %v, reasons %q", p.Severity, p.Active, p.Ready, reachable, p.Reasons)
	return what, p.Ready == ready && reachable && slices.Equal(p.Active, []string{active})
}

// refusedWrites counts the writes a node refused for a read token, over
// every process of it so far (only the fleet aggregator holds one).
func (c *chaosRun) refusedWrites(host string) int {
	n := 0
	for _, p := range c.nodeProcs[host] {
		n += strings.Count(p.logs.String(), "write refused: the token may only read")
	}
	return n
}

// writeWithFleetToken proves that checkFleetWrites can fail: a write with
// the aggregator's token, to each node, is refused (403: it changes
// nothing) and counted in the node's log. These two are the only writes
// with that token the run may see.
func (c *chaosRun) writeWithFleetToken() {
	for _, h := range []string{"main", "standby"} {
		req, _ := http.NewRequest("POST", c.url[h]+"/api/v1/services/stop", strings.NewReader(`{"reason":"chaos: a write with the fleet's token"}`))
		req.Header.Set("Authorization", "Bearer "+chaosFleetReadToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			c.t.Fatalf("a write with the fleet's token to %s: %v", h, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			c.t.Fatalf("a write with the fleet's token to %s: %s, want 403", h, resp.Status)
		}
		testkit.Eventually(c.t, func() bool { return c.refusedWrites(h) == 1 }, "%s logging the write it refused", h)
	}
}

// checkFleetWrites: the nodes refused no write with the aggregator's
// token but the test's own (writeWithFleetToken), across every restart.
// A write with it would be refused and logged, so this also says that
// the aggregator changed nothing on the pair.
func (c *chaosRun) checkFleetWrites() {
	for _, h := range []string{"main", "standby"} {
		if n := c.refusedWrites(h); n != 1 {
			c.mon.mu.Lock()
			c.mon.violate(time.Now(), "%s refused %d writes with the fleet aggregator's read token, want only the test's own one", h, n)
			c.mon.mu.Unlock()
		}
	}
	c.mon.mu.Lock()
	kills := len(c.mon.kills["fleet"])
	c.mon.mu.Unlock()
	c.t.Logf("the fleet aggregator: killed -9 %d times; the nodes refused no write with its token but the test's own", kills)
}

// checkFleetReport: once the pair settled with active its Active node,
// the fleet aggregator (restarted if the schedule left it dead) reports
// that within chaosFleetDeadline: active the one Active node, both nodes
// read, and ready when both nodes say HA is ready (the settled pair may
// not be: a node held Inactive by an admin's stop that the schedule left
// in force, say; then not ready, as the nodes say).
func (c *chaosRun) checkFleetReport(active string) {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(chaosFleetDeadline)
	for {
		ready, why := true, []string{}
		for _, h := range []string{"main", "standby"} {
			var st api.Status
			if err := authGet(client, c.url[h]+"/api/v1/status", &st); err != nil {
				ready, why = false, append(why, err.Error())
			} else if !st.HA.Ready {
				ready, why = false, append(why, h+": "+strings.Join(st.HA.Reasons, "; "))
			}
		}
		what, ok := c.fleetSays(client, active, ready)
		if ok {
			c.logf("the fleet aggregator reports the settled pair: %s (the nodes say HA ready %v %q)", what, ready, why)
			return
		}
		if time.Now().After(deadline) {
			c.mon.mu.Lock()
			c.mon.violate(time.Now(), "the fleet aggregator does not report the settled pair (%s Active, ready %v: %q) within %v: %s",
				active, ready, why, chaosFleetDeadline, what)
			c.mon.mu.Unlock()
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// adminCommand runs an admin command with the CLI, for fault i (-1: the
// healing at the end): services start or stop, a switchover, a manual
// failover's start (for 10 minutes: its stop ends it) or stop.
func (c *chaosRun) adminCommand(op adminOp, label string, i int) {
	reason := "chaos: " + label
	var args []string
	switch op.Cmd {
	case cmdStart, cmdStop:
		args = []string{"services", op.Cmd, "--node", c.url[op.Node], "--reason", reason, "--timeout", "10s"}
		if op.Force {
			args = append(args, "--force")
		}
	case cmdSwitchover:
		args = []string{"switchover", "--node", c.url[op.Node], "--reason", reason, "--timeout", "20s"}
	case cmdFailoverStart:
		args = []string{"failover", "start", "--node", c.url[op.Node], "--for", "10m", "--reason", reason, "--timeout", "10s"}
	case cmdFailoverStop:
		args = []string{"failover", "stop", "--node", c.url[op.Node], "--reason", reason, "--timeout", "10s"}
	default:
		panic(op.Cmd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sent := time.Since(c.mon.start)
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "RESMAN_TOKEN="+testToken, "USER=chaos")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	// The first line says it all (a status's first line, or the one line
	// of an error).
	answer, _, _ := strings.Cut(strings.TrimSpace(out.String()), "\n")
	c.logf("admin %s: exit %d %s", op, code, answer)
	if i >= 0 {
		c.mu.Lock()
		f := &c.faults[i]
		f.Ended = max(f.Ended, time.Since(c.mon.start).Seconds())
		if op.planned() {
			c.moves = append(c.moves, map[string]any{"fault": f.Label, "clean": f.Clean, "command": op.String(),
				"sent_s": sent.Seconds(), "took_s": (time.Since(c.mon.start) - sent).Seconds(), "exit": code, "answer": answer})
		}
		c.mu.Unlock()
	}
	// 0 done, 1 failed (a start rolled back, a decision not persisted), 3
	// refused (the two-Active guard, a transition under way, a
	// precondition of a switchover or a failover), 4 unreachable (dead or
	// frozen): all fair answers under chaos. 2 (bad usage) or a crash is a
	// bug.
	if !slices.Contains([]int{0, 1, 3, 4}, code) {
		c.mon.mu.Lock()
		c.mon.violate(time.Now(), "admin %s: exit %d: %s", op, code, answer)
		c.mon.mu.Unlock()
	}
}

// asteriskPID finds the SIP stand-in a node runs as its asterisk service:
// a child of the node's process.
func (c *chaosRun) asteriskPID(host string) int {
	p := c.procs[host]
	if c.dead[host] || p.cmd.Process == nil {
		return 0
	}
	return childPID(p.cmd.Process.Pid, "standin\x00sip")
}

// auditURL is where a component's audit log is read.
func (c *chaosRun) auditURL(name string) string {
	if f := c.ccs[name]; f != nil {
		return f.api + cc.PathAudit
	}
	return c.url[name] + "/api/v1/audit"
}

// readAudit reads a component's whole audit log, page by page.
func (c *chaosRun) readAudit(name string) (map[uint64]api.AuditEntry, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	all := map[uint64]api.AuditEntry{}
	before := uint64(0)
	for {
		url := c.auditURL(name) + "?limit=1000"
		if before != 0 {
			url += "&before=" + strconv.FormatUint(before, 10)
		}
		var page []api.AuditEntry
		if err := authGet(client, url, &page); err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return all, nil
		}
		for _, e := range page {
			all[e.ID] = e
			if before == 0 || e.ID < before {
				before = e.ID
			}
		}
		if before <= 1 {
			return all, nil
		}
	}
}

// snapshotAudit remembers the entries a component shows before it is
// killed.
func (c *chaosRun) snapshotAudit(name string) {
	if c.frozen[name] || c.dead[name] {
		return
	}
	es, err := c.readAudit(name)
	if err != nil {
		c.logf("read %s's audit log before the kill: %v (not checked this time)", name, err)
		return
	}
	if c.seen[name] == nil {
		c.seen[name] = map[uint64]api.AuditEntry{}
	}
	for id, e := range es {
		c.seen[name][id] = e
	}
}

// checkAudit: every entry seen before a kill is still there, unchanged.
func (c *chaosRun) checkAudit(name string) {
	if len(c.seen[name]) == 0 {
		return
	}
	es, err := c.readAudit(name)
	if err != nil {
		c.t.Fatalf("read %s's audit log after the restart: %v", name, err)
	}
	lost := 0
	for id, want := range c.seen[name] {
		got, ok := es[id]
		if !ok || got.Action != want.Action || !got.Time.Equal(want.Time) || got.Outcome != want.Outcome {
			lost++
		}
	}
	c.mon.mu.Lock()
	defer c.mon.mu.Unlock()
	if lost > 0 {
		c.mon.violate(time.Now(), "%s lost or changed %d of %d audit entries across a kill -9", name, lost, len(c.seen[name]))
	}
}

// sampleLoop samples one component every chaosSamplePeriod, the Main and
// the Standby every chaosNodeSamplePeriod.
func (c *chaosRun) sampleLoop(ctx context.Context, name string) {
	client := &http.Client{Timeout: 400 * time.Millisecond}
	period := chaosSamplePeriod
	if name == "main" || name == "standby" {
		period = chaosNodeSamplePeriod
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	chart := c.mon.chart
	for {
		now := time.Now()
		s := sample{at: now}
		switch name {
		case "main", "standby", "witness":
			var st api.Status
			if authGet(client, c.url[name]+"/api/v1/status", &st) == nil {
				s.ok, s.status, s.epoch, s.held = true, st.Status, st.Epoch, st.Failover.HeldByAdmin
				s.peerSeen = st.Peer != nil && st.Peer.Reachable
				note := st.Status + epochNote(st.Epoch)
				if s.held {
					note += ", held by admin"
				}
				chart.Set(name, now, timeline.FromStatus(st.Status), note)
			} else {
				chart.Set(name, now, timeline.Unreachable, "no answer")
			}
		case "cc-main", "cc-standby":
			var st cc.Status
			if authGet(client, c.ccs[name].api+cc.PathStatus, &st) == nil {
				s.ok, s.status = true, st.Status
				chart.Set(name, now, timeline.FromStatus(st.Status), st.Status)
			} else {
				chart.Set(name, now, timeline.Unreachable, "no answer")
			}
		case "mds":
			// Which node the MDS sends calls to: a lane per contact, like
			// the Edge's; a killed node's binding and its peer's may both
			// be there until the first lapses.
			if bs, ok := c.mds.bindings(); ok {
				s.ok, s.bound = true, map[string]time.Time{}
				notes := map[string]string{}
				for _, b := range bs {
					n := contactNode(b.Contact)
					s.bound[n] = b.Expires
					notes[n] = fmt.Sprintf("bound, Call-ID %.8s…", b.CallID)
				}
				for _, side := range []string{"main", "standby"} {
					state, note := timeline.Inactive, "not bound"
					if n, ok := notes[side]; ok {
						state, note = timeline.Active, n
					}
					chart.Set("mds → "+side, now, state, note)
				}
			} else {
				chart.Set("mds → main", now, timeline.Unreachable, "MDS down")
				chart.Set("mds → standby", now, timeline.Unreachable, "MDS down")
			}
		case "fleet":
			// What the fleet aggregator says of the pair, for the
			// timeline only (it is no part of the pair).
			if p, err := c.fleetPair(client); err == nil {
				s.ok = true
				state, note := timeline.Inactive, p.Severity+": "+strings.Join(p.Reasons, "; ")
				if p.Ready {
					state, note = timeline.Active, "ready, Active: "+strings.Join(p.Active, ", ")
				}
				chart.Set("fleet", now, state, note)
			} else {
				chart.Set("fleet", now, timeline.Unreachable, "no answer")
			}
		case "edge":
			var st edge.Status
			if authGet(client, c.edgeAPI+"/api/v1/edge/status", &st) == nil {
				s.ok, s.side = true, st.Side
				for _, side := range []string{"main", "standby"} {
					state, note := timeline.Inactive, "not routed"
					if st.Side == side {
						state, note = timeline.Active, "routed"
					}
					chart.Set("edge → "+side, now, state, note)
				}
			} else {
				chart.Set("edge → main", now, timeline.Unreachable, "no answer")
				chart.Set("edge → standby", now, timeline.Unreachable, "no answer")
			}
		}
		s.got = time.Now()
		c.mon.record(name, s)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// userLoop is the user behind the Edge: one request after the other.
func (c *chaosRun) userLoop(ctx context.Context) {
	client := &http.Client{Timeout: 3 * time.Second}
	for ctx.Err() == nil {
		sent := time.Now()
		req, _ := http.NewRequestWithContext(ctx, "GET", c.edgeURL+"/", nil)
		a := edgeAnswer{sent: sent}
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			a.code, a.servedBy = resp.StatusCode, resp.Header.Get("X-Served-By")
		}
		a.got = time.Now()
		c.mon.mu.Lock()
		c.mon.answers = append(c.mon.answers, a)
		c.mon.mu.Unlock()
		pause(ctx, 20*time.Millisecond)
	}
}

// checkEdge: no answer came from a side whose node had said it was not
// Active since chaosEdgeGrace before the request, and until the answer
// (and chaosSkew after it).
func (c *chaosRun) checkEdge() {
	hist := map[string][]sample{"main": c.mon.history("main"), "standby": c.mon.history("standby")}
	c.mon.mu.Lock()
	defer c.mon.mu.Unlock()
	served := map[string]int{}
	for _, a := range c.mon.answers {
		h, ok := hist[a.servedBy]
		if !ok || a.code != 200 {
			served[fmt.Sprint(a.code)]++
			continue
		}
		served[a.servedBy]++
		if notActiveThroughout(h, a.sent.Add(-chaosEdgeGrace), a.got.Add(chaosSkew)) {
			c.mon.violate(a.sent, "the Edge sent a request to %s, not Active since %v before", a.servedBy, chaosEdgeGrace)
		}
	}
	c.t.Logf("answers through the Edge: %v (others by status code)", served)
}

// checkCC: the follower did not run its services while its node had been
// answering Inactive for chaosCCGrace (and went on for chaosSkew).
func (m *chaosMonitor) checkCC(follower, node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	reported := time.Time{}
	for _, s := range m.hist[follower] {
		if !s.ok || s.status != api.StatusActive || s.at.Sub(reported) < chaosCCGrace {
			continue
		}
		if notActiveThroughout(m.hist[node], s.at.Add(-chaosCCGrace), s.at.Add(chaosSkew)) {
			m.violate(s.at, "%s active while %s has not been Active for %v", follower, node, chaosCCGrace)
			reported = s.at
		}
	}
}

// checkMDS: the MDS held no binding to a node's contact while that node had
// been answering Inactive or deactivating for chaosMDSGrace (and went on
// for chaosSkew). A node that does not answer is not counted: killed -9
// while Active it cannot unregister, and its binding stays at the MDS,
// beside the new Active's, until it lapses. Once the node answers again,
// Inactive, the binding its previous life left counts like any other. It
// also measures how long the MDS was bound to both nodes at once.
func (m *chaosMonitor) checkMDS() {
	m.mu.Lock()
	defer m.mu.Unlock()
	var bothLongest time.Duration
	defer func() { m.mdsBoth = bothLongest }()
	reported := map[string]time.Time{}
	var bothSince time.Time
	for _, s := range m.hist["mds"] {
		if !s.ok {
			bothSince = time.Time{}
			continue
		}
		if len(s.bound) >= 2 {
			if bothSince.IsZero() {
				bothSince = s.at
			}
			bothLongest = max(bothLongest, s.at.Sub(bothSince))
		} else {
			bothSince = time.Time{}
		}
		for _, node := range []string{"main", "standby"} {
			exp, ok := s.bound[node]
			if !ok || s.at.Sub(reported[node]) < chaosMDSExpires {
				continue
			}
			if !leftThroughout(m.hist[node], s.at.Add(-chaosMDSGrace), s.at.Add(chaosSkew)) {
				continue
			}
			reported[node] = s.at
			msg := fmt.Sprintf("the MDS bound to %s's contact while %s has answered Inactive for %v", node, node, chaosMDSGrace)
			registered := exp.Add(-chaosMDSExpires) // the MDS grants what is asked
			for _, k := range m.kills[node] {
				if k.After(registered) && k.Before(s.at) {
					msg += fmt.Sprintf(" (registered at %.1fs by the process killed -9 at %.1fs: restarted, %s leaves it until it lapses at %.1fs)",
						registered.Sub(m.start).Seconds(), k.Sub(m.start).Seconds(), node, exp.Sub(m.start).Seconds())
					break
				}
			}
			m.violate(s.at, "%s", msg)
		}
	}
}

// settle heals everything and waits for exactly one Active node, seen by
// its peer, followed by both CC followers, the Edge and the MDS (bound to
// the Active node's contact and no other), for 5 s in a row.
//
// It reports whether it had anything to heal or release, and when it began
// and ended doing so (seconds since the schedule started).
func (c *chaosRun) settle() (done struct {
	acted        bool
	began, ended float64
	active       string // the Active node, settled
}) {
	t, l := c.t, c.pair.lab
	done.began = time.Since(c.mon.start).Seconds()
	defer func() { done.ended = time.Since(c.mon.start).Seconds() }()
	c.logf("end of the schedule: heal everything")
	done.acted = c.network || len(c.hung) > 0 || c.dead["mds"]
	l.heal()
	c.network = false
	for _, h := range []string{"main", "standby"} {
		if c.full[h] { // before a restart: a node that cannot persist its boot decision does not run
			done.acted = true
			c.do(chaosAct{Do: "free", Host: h}, "heal")
		}
	}
	for _, h := range []string{"main", "standby", "witness", "cc-main", "cc-standby"} {
		if c.frozen[h] {
			done.acted = true
			c.procs[h].cmd.Process.Signal(syscall.SIGCONT)
			c.frozen[h] = false
		}
		if c.dead[h] {
			done.acted = true
			c.do(chaosAct{Do: "start", Host: h}, "heal")
		}
	}
	for h := range c.hung {
		c.do(chaosAct{Do: "sipcont", Host: h}, "heal")
	}
	if c.dead["mds"] {
		c.do(chaosAct{Do: "mdsstart"}, "heal")
	}
	if c.dead["fleet"] { // no part of the pair: its restart heals nothing of it
		c.do(chaosAct{Do: "start", Host: "fleet"}, "heal")
	}
	c.mon.setPaused(false)
	c.admin.Wait()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(chaosSettleDeadline)
	var stable, lastStart time.Time
	var why string
	for {
		st := map[string]api.Status{}
		for _, h := range []string{"main", "standby"} {
			var s api.Status
			if err := authGet(client, c.url[h]+"/api/v1/status", &s); err == nil {
				st[h] = s
			}
		}
		ccs := map[string]string{}
		var ccErr error
		for name, f := range c.ccs {
			var cs cc.Status
			if err := authGet(client, f.api+cc.PathStatus, &cs); err != nil {
				ccErr = err
			}
			ccs[name] = cs.Status
		}
		var es edge.Status
		edgeErr := authGet(client, c.edgeAPI+"/api/v1/edge/status", &es)
		bs, mdsUp := c.mds.bindings()
		mdsSample := sample{bound: map[string]time.Time{}}
		for _, b := range bs {
			mdsSample.bound[contactNode(b.Contact)] = b.Expires
		}
		bound := boundNodes(mdsSample)
		m, s := st["main"], st["standby"]
		active := ""
		switch {
		case m.Status == "active" && s.Status == "inactive":
			active = "main"
		case s.Status == "active" && m.Status == "inactive":
			active = "standby"
		}
		wantCC := map[string]string{"cc-main": "inactive", "cc-standby": "inactive"}
		if active != "" {
			wantCC["cc-"+active] = "active"
		}
		switch {
		case active == "":
			why = fmt.Sprintf("main %q, standby %q", m.Status, s.Status)
		case m.Peer == nil || !m.Peer.Reachable || s.Peer == nil || !s.Peer.Reachable:
			why = "the nodes do not both see each other"
		case ccErr != nil || !maps.Equal(ccs, wantCC):
			why = fmt.Sprintf("CC followers %v, want %v (%v)", ccs, wantCC, ccErr)
		case edgeErr != nil || es.Side != active:
			why = fmt.Sprintf("edge routes to %q, want %q (%v)", es.Side, active, edgeErr)
		case !mdsUp || !slices.Equal(bound, []string{active}):
			why = fmt.Sprintf("the MDS is bound to %v, want [%s]", bound, active)
		default:
			why = ""
		}
		if why == "" {
			if stable.IsZero() {
				stable = time.Now()
			}
			if time.Since(stable) >= 5*time.Second {
				c.logf("settled: %s Active (epoch %d), %s Inactive, CC followers %v, edge → %s, MDS → %v",
					active, st[active].Epoch, map[string]string{"main": "standby", "standby": "main"}[active], ccs, es.Side, bound)
				done.active = active
				return done
			}
		} else {
			stable = time.Time{}
		}
		// Neither Active because an admin's stop holds them: an admin
		// starts the Main again (or the Standby), without force; or
		// because a manual failover holds the Main: an admin stops it.
		if m.Status == "inactive" && s.Status == "inactive" && time.Since(lastStart) > 5*time.Second {
			for _, h := range []string{"main", "standby"} {
				if st[h].Failover.HeldByAdmin {
					lastStart, done.acted = time.Now(), true
					c.adminCommand(adminOp{Node: h, Cmd: cmdStart}, "release the admin hold after the schedule", -1)
					break
				}
				if st[h].Failover.Manual {
					lastStart, done.acted = time.Now(), true
					c.adminCommand(adminOp{Node: h, Cmd: cmdFailoverStop}, "end the manual failover after the schedule", -1)
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled %v after the last fault: %s", chaosSettleDeadline, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestChaosScheduleReplays: the same seed and duration give the same
// schedule, which is what makes a failed seed worth printing.
func TestChaosScheduleReplays(t *testing.T) {
	a, b := chaosSchedule(42, 10*time.Minute), chaosSchedule(42, 10*time.Minute)
	// Two failed encodings would compare equal: the errors count.
	ja, erra := json.Marshal(a)
	jb, errb := json.Marshal(b)
	if erra != nil || errb != nil || len(a) == 0 {
		t.Fatalf("seed 42: %d faults, encoded with %v, %v", len(a), erra, errb)
	}
	if !bytes.Equal(ja, jb) {
		t.Fatal("seed 42 gave two different schedules")
	}
	kinds := map[string]int{}
	for _, f := range chaosSchedule(7, chaosDefaultLength) {
		for _, act := range f.Acts {
			kinds[act.Do]++
		}
	}
	t.Logf("default schedule of seed 7: %v", kinds)
	if n := len(chaosSchedule(7, chaosDefaultLength)); n < 8 || n > 20 {
		t.Fatalf("default schedule has %d faults, want about a dozen", n)
	}

	// Over many seeds: planned moves of every kind come, clean ones among
	// them, each with chaosQuiet of nothing else around it; no node is
	// killed or frozen while its data directory is full.
	counts := map[string]int{}
	for seed := range uint64(100) {
		fs := chaosSchedule(seed, chaosDefaultLength)
		for i, f := range fs {
			from, to := f.span()
			if f.Planned {
				counts["planned"]++
			}
			if f.Clean {
				counts["clean"]++
				for j, g := range fs {
					if gFrom, gTo := g.span(); j != i && gTo+chaosQuiet > from && to+chaosQuiet > gFrom {
						t.Fatalf("seed %d: the clean move %q at %v has %q at %v-%v", seed, f.Label, from, g.Label, gFrom, gTo)
					}
				}
			}
			for _, a := range f.Acts {
				counts[a.Do]++
				for _, o := range a.Ops {
					counts[o.Cmd]++
					if o.planned() && o.Node == "active" {
						counts["... on the active node"]++
					}
				}
				if a.Host == "src" {
					counts["kill/start of the node a move holds"]++
				}
				if a.Do == "kill" && a.Host == "fleet" {
					counts["kill of the fleet aggregator"]++
				}
			}
			if f.Acts[0].Do != "fill" {
				continue
			}
			for _, g := range fs {
				for _, a := range g.Acts {
					if (a.Do == "kill" || a.Do == "freeze") && a.Host == f.Acts[0].Host && a.At >= from && a.At <= to {
						t.Fatalf("seed %d: %q during %q", seed, g.Label, f.Label)
					}
				}
			}
		}
	}
	t.Logf("100 default schedules: %v", counts)
	for _, k := range []string{"clean", cmdSwitchover, cmdFailoverStart, cmdFailoverStop, "... on the active node", "fill", "free",
		"kill/start of the node a move holds", "kill of the fleet aggregator"} {
		if counts[k] == 0 {
			t.Errorf("100 default schedules have no %s", k)
		}
	}
}

// TestChaosMonitorCatches feeds the monitor made-up samples: it must
// report what breaks an invariant and only that.
func TestChaosMonitorCatches(t *testing.T) {
	t0 := time.Now()
	at := func(s float64) time.Time { return t0.Add(seconds(s)) }
	newMon := func() *chaosMonitor {
		return &chaosMonitor{start: t0, chart: timeline.New("test", t0), hist: map[string][]sample{}, transSince: map[string]time.Time{}}
	}
	node := func(s float64, status string, seen bool) sample {
		return sample{at: at(s), ok: true, status: status, peerSeen: seen}
	}
	// play samples the Main every chaosNodeSamplePeriod from from to to,
	// the Standby half a period later, each answer lat after it was sent,
	// saying what mainAt and standbyAt say (status "": no answer).
	type say func(s float64) (status string, seen bool)
	play := func(m *chaosMonitor, from, to, lat float64, mainAt, standbyAt say) {
		p := chaosNodeSamplePeriod.Seconds()
		for s := from; s < to; s += p {
			for _, x := range []struct {
				name string
				at   float64
				f    say
			}{{"main", s, mainAt}, {"standby", s + p/2, standbyAt}} {
				st, seen := x.f(x.at)
				m.record(x.name, sample{at: at(x.at), got: at(x.at + lat), ok: st != "", status: st, peerSeen: seen})
			}
		}
	}
	// both: both Active from a to b (seeing each other or not), the Main
	// alone Active otherwise.
	both := func(a, b float64, seen bool) (say, say) {
		return func(float64) (string, bool) { return "active", seen },
			func(s float64) (string, bool) {
				if s >= a && s < b {
					return "active", seen
				}
				return "inactive", seen
			}
	}
	check := func(m *chaosMonitor, faults ...chaosFault) {
		m.checkTwoActive(faults, at(1000))
	}

	m := newMon()
	mn, sb := both(5, 5.15, true)
	play(m, 0, 10, 0.005, mn, sb)
	check(m)
	if len(m.violations) != 0 || m.twoWindows != 1 {
		t.Fatalf("150 ms of two Actives seeing each other: %v, %d windows", m.violations, m.twoWindows)
	}
	m = newMon()
	mn, sb = both(5, 5.4, true)
	play(m, 0, 10, 0.005, mn, sb)
	check(m)
	if len(m.violations) != 1 || !strings.Contains(m.violations[0], "two Active nodes seeing each other") {
		t.Fatalf("400 ms of two Actives seeing each other: %v", m.violations)
	}
	m = newMon()
	mn, sb = both(1, 5, false)
	play(m, 0, 10, 0.005, mn, sb)
	m.paused = []interval{{from: at(9.9), to: at(15)}}
	mn, sb = both(10, 14, true)
	play(m, 10, 15, 0.005, mn, sb)
	check(m)
	if len(m.violations) != 0 || m.rawWindows != 2 || m.rawLongest < 3*time.Second {
		t.Fatalf("two Actives not seeing each other, or paused: %v; %d windows, the longest %v", m.violations, m.rawWindows, m.rawLongest)
	}

	// A hand-over from the Main to the Standby at 10 s, never two Active
	// nodes, with one slow answer of the Main: sent at 9.9 s while it was
	// still Active, answered at 10.05 s, after the Standby's first answer
	// Active. The last samples of the two say Active together; nothing
	// proves two Active nodes, not even during a clean planned move.
	m = newMon()
	handover := func(who string) say {
		return func(s float64) (string, bool) {
			if (s < 10) == (who == "main") {
				return "active", true
			}
			return "inactive", true
		}
	}
	play(m, 0, 9.9, 0.005, handover("main"), handover("standby"))
	m.record("main", sample{at: at(9.9), got: at(10.05), ok: true, status: "active", peerSeen: true})
	m.record("standby", sample{at: at(9.9125), got: at(9.9175), ok: true, status: "inactive", peerSeen: true})
	for s := 10.0125; s < 10.05; s += chaosNodeSamplePeriod.Seconds() {
		m.record("standby", sample{at: at(s), got: at(s + 0.005), ok: true, status: "active", peerSeen: true})
	}
	play(m, 10.05, 20, 0.005, handover("main"), handover("standby"))
	clean := chaosFault{Label: "switchover on main", Planned: true, Clean: true, CleanAsRun: true, Began: 9.5, Ended: 9.6}
	check(m, clean)
	if len(m.violations) != 0 || m.proofs != 0 {
		t.Fatalf("a hand-over with a slow answer: %v, %d samples prove two Actives", m.violations, m.proofs)
	}

	// During a clean planned move, not one sample: 60 ms of two Actives
	// (a few samples) is caught there, and only there.
	mn, sb = both(12, 12.06, true)
	for _, f := range []chaosFault{clean, {Label: "switchover on main, not clean", Planned: true, Began: 9.5, Ended: 9.6}} {
		m = newMon()
		play(m, 0, 20, 0.005, mn, sb)
		check(m, f)
		if want := f.CleanAsRun; (len(m.violations) == 1 && strings.Contains(m.violations[0], "during the clean planned move")) != want ||
			!want && len(m.violations) != 0 {
			t.Fatalf("60 ms of two Actives during %q: %v", f.Label, m.violations)
		}
	}

	// A full data directory: the node cannot step down, so the window
	// counts from the moment it is freed.
	for _, tc := range []struct {
		until float64
		want  int
	}{{8.1, 0}, {8.5, 1}} {
		m = newMon()
		mn, sb = both(6, tc.until, true)
		m.full = map[string][]interval{"main": {{from: at(5), to: at(8)}}}
		play(m, 0, 10, 0.005, mn, sb)
		check(m)
		if len(m.violations) != tc.want {
			t.Fatalf("two Actives from 6 s to %v s, the main's disk full from 5 s to 8 s: %v", tc.until, m.violations)
		}
	}

	// No node Active for 25 s: caught when both answer Inactive, see
	// each other and neither holds for an admin's stop or has its data
	// directory full; not for 15 s, nor otherwise.
	for _, tc := range []struct {
		name        string
		until       float64
		seen, held  bool
		full, wantV bool
	}{
		{"25 s", 30, true, false, false, true},
		{"15 s", 20, true, false, false, false},
		{"25 s, not seeing each other", 30, false, false, false, false},
		{"25 s, the standby held by an admin", 30, true, true, false, false},
		{"25 s, the main's data dir full", 30, true, false, true, false},
	} {
		m = newMon()
		if tc.full {
			m.full = map[string][]interval{"main": {{from: at(4), to: at(tc.until)}}}
		}
		for s := 0.0; s < 40; s += chaosNodeSamplePeriod.Seconds() {
			mst := "active"
			if s >= 5 && s < tc.until {
				mst = "inactive"
			}
			m.record("main", sample{at: at(s), got: at(s + 0.005), ok: true, status: mst, peerSeen: tc.seen})
			m.record("standby", sample{at: at(s + 0.01), got: at(s + 0.015), ok: true, status: "inactive", peerSeen: tc.seen, held: tc.held})
		}
		m.checkNoActive()
		if got := len(m.violations) == 1 && strings.Contains(m.violations[0], "no node Active"); got != tc.wantV || !tc.wantV && len(m.violations) != 0 {
			t.Fatalf("%s with no node Active: %v", tc.name, m.violations)
		}
	}

	m = newMon()
	for s := 0.0; s < 40; s += 0.5 {
		st := "deactivating"
		if int(s)%10 == 9 {
			m.record("cc-main", sample{at: at(s)}) // no answer: does not end the run
			continue
		}
		m.record("cc-main", sample{at: at(s), ok: true, status: st})
	}
	if len(m.violations) != 1 || !strings.Contains(m.violations[0], "cc-main deactivating") {
		t.Fatalf("40 s deactivating: %v", m.violations)
	}

	// The Edge: main answered inactive from 10 s on.
	var h []sample
	for s := 0.0; s < 20; s += 0.1 {
		st := "active"
		if s >= 10 {
			st = "inactive"
		}
		h = append(h, node(s, st, true))
	}
	for _, tc := range []struct {
		sent float64
		want bool
	}{{9.5, false}, {10.5, false}, {11.2, true}, {15, true}} {
		if got := notActiveThroughout(h, at(tc.sent).Add(-chaosEdgeGrace), at(tc.sent+0.01)); got != tc.want {
			t.Errorf("request sent at %v s: not Active throughout = %v, want %v", tc.sent, got, tc.want)
		}
	}

	// A follower of each node: cc-standby running while standby has
	// answered Inactive from 10 s on is caught once cc-standby has gone on
	// for chaosCCGrace; cc-main, following the Active main, is not.
	m = newMon()
	for s := 0.0; s < 25; s += 0.1 {
		mn, sb := "inactive", "active"
		if s >= 10 {
			mn, sb = "active", "inactive"
		}
		m.record("main", node(s, mn, true))
		m.record("standby", node(s+0.02, sb, true))
		m.record("cc-main", node(s+0.04, mn, true))
		m.record("cc-standby", node(s+0.06, "active", true))
	}
	m.checkCC("cc-main", "main")
	m.checkCC("cc-standby", "standby")
	if len(m.violations) != 1 || !strings.Contains(m.violations[0], "cc-standby active while standby") {
		t.Fatalf("cc-standby running 15 s after standby went Inactive: %v", m.violations)
	}

	// The MDS. mdsRun plays main Active until 10 s then as main says from
	// there (status "" is no answer), standby the other way round, and the
	// MDS bound to standby from 10.2 s and to main until mainUntil, each
	// binding refreshed at regAt (its expiry is regAt + chaosMDSExpires).
	mdsRun := func(mainFrom func(s float64) string, mainUntil, regAt float64, kills ...float64) *chaosMonitor {
		m := newMon()
		for _, k := range kills {
			m.noteKill("main", at(k))
		}
		for s := 0.0; s < 30; s += 0.1 {
			mn, sb := "active", "inactive"
			if s >= 10 {
				mn, sb = mainFrom(s), "active"
			}
			if mn == "" {
				m.record("main", sample{at: at(s)})
			} else {
				m.record("main", node(s, mn, true))
			}
			m.record("standby", node(s+0.02, sb, true))
			bound := map[string]time.Time{}
			if s < mainUntil {
				bound["main"] = at(regAt).Add(chaosMDSExpires)
			}
			if s >= 10.2 {
				bound["standby"] = at(s).Add(chaosMDSExpires)
			}
			m.record("mds", sample{at: at(s + 0.04), ok: true, bound: bound})
		}
		m.checkMDS()
		return m
	}
	status := func(st string) func(float64) string { return func(float64) string { return st } }
	// Unregistered as main deactivates: fine, and the overlap is measured.
	m = mdsRun(status("inactive"), 10.5, 8)
	if len(m.violations) != 0 || m.mdsBoth < 200*time.Millisecond {
		t.Fatalf("binding gone within the grace: %v, bound to both for %v", m.violations, m.mdsBoth)
	}
	// Still bound 4 s after main answered Inactive (or deactivating).
	for _, st := range []string{"inactive", "deactivating"} {
		m = mdsRun(status(st), 14, 8)
		if len(m.violations) != 1 || !strings.Contains(m.violations[0], "the MDS bound to main's contact while main has answered Inactive") ||
			strings.Contains(m.violations[0], "killed") {
			t.Fatalf("bound to main 4 s after it answered %s: %v", st, m.violations)
		}
	}
	// Main activating again (its binding about to be refreshed) is not
	// Inactive.
	if m = mdsRun(status("activating"), 14, 8); len(m.violations) != 0 {
		t.Fatalf("bound to an activating main: %v", m.violations)
	}
	// Killed -9 at 10 s: its binding may stay while it does not answer...
	dead := func(until float64) func(float64) string {
		return func(s float64) string {
			if s < until {
				return ""
			}
			return "inactive"
		}
	}
	m = mdsRun(dead(18), 18, 8, 10)
	if len(m.violations) != 0 {
		t.Fatalf("bound to a dead main: %v", m.violations)
	}
	// ...not once it answers Inactive again, restarted.
	m = mdsRun(dead(12), 18, 8, 10)
	if len(m.violations) != 1 || !strings.Contains(m.violations[0], "killed -9 at 10.0s") {
		t.Fatalf("bound to a restarted, Inactive main: %v", m.violations)
	}
}
