package resilience

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestExplorePair checks the rules of the pair over every interleaving of
// the operations of pair_test.go, breadth first up to a depth, from a
// starting point. After every operation:
//   - no epoch is taken twice, and each activation's epoch is above the
//     node's last and of its slot (checked as the actions are carried out);
//   - a node's disk holds the decision it acts on (durable before acting);
//   - with no fault so far, never two nodes Active or activating at once
//     (planned moves: switchover both ways, manual failover and its stop,
//     stop/start, failback);
//   - never two Active nodes that see each other as they are (auto mode);
//   - healed and left to run fairly, the pair ends with exactly one node
//     Active within settleRounds (unless an admin stopped both, or in
//     manual mode, which never moves by itself).
//
// A broken rule prints the trace as a pair scenario file: paste it into
// testdata/pair/ and run with -rewrite to see it fail step by step.
// RESMAN_EXPLORE_DEPTH adds to every case's depth, for a longer run.
func TestExplorePair(t *testing.T) {
	if raceEnabled {
		t.Skip("the explorer is one goroutine per case with nothing to race; under -race it would take ten times as long (the plain run covers it)")
	}
	extra := 0
	if testing.Short() {
		// One step less: about a fifth of the time (the quick feedback
		// loop); make test explores to the full depth.
		extra = -1
	}
	if v := os.Getenv("RESMAN_EXPLORE_DEPTH"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("RESMAN_EXPLORE_DEPTH=%q: want a number", v)
		}
		extra = n
	}
	auto := pairConfig{Mode: ModeAuto, Lost: 1, Hold: 2, Grace: 2, FailbackAuto: true}
	up := []string{"boot main", "boot standby", "done main ok", "done standby ok", "deliver main", "deliver standby"}
	planned := opsOf("tick main", "tick standby", "done main ok", "done standby ok",
		"admin main stop", "admin main start", "admin standby stop", "admin standby start",
		"admin main failover", "admin main failover-stop", "admin main switchover", "admin standby switchover", "sw")
	everything := allOps()
	cases := []struct {
		name  string
		cfg   pairConfig
		setup []string
		ops   []pairOp
		depth int
		// faults and admins bound how many fault and admin operations one
		// trace holds (the rest of the depth is the pair running).
		faults, admins int
		// allowed, when set, filters the operations in a state; settled,
		// when set, is checked once the pair has settled.
		allowed func(*pairWorld, pairOp) bool
		settled func(*pairWorld) error
		// gossip: views are delivered to both nodes after every operation.
		gossip bool
	}{
		// Gossip delivers at once: every interleaving of admin moves,
		// completions, ticks and the switchover's steps (whose Start on
		// the peer steps with a view fetched a step earlier, as over HTTP).
		{name: "planned-moves", cfg: auto, setup: up, ops: planned, depth: 14, faults: 0, admins: 3, gossip: true},
		{name: "faults", cfg: auto, setup: up, ops: everything, depth: 8, faults: 2, admins: 1},
		// Both nodes start, in any order, the second within the boot
		// grace of the first: the Main ends Active and the Standby never
		// activated.
		{name: "boot-any-order", cfg: auto, ops: opsOf("boot main", "boot standby", "deliver main", "deliver standby",
			"tick main", "tick standby", "done main ok", "done standby ok"), depth: 12,
			allowed: func(w *pairWorld, op pairOp) bool {
				nd := &w.n[op.Node]
				return op.Kind != opTick || w.n[1-op.Node].alive || nd.m.bootTicks+1 < w.cfg.Grace
			},
			settled: func(w *pairWorld) error {
				if w.n[0].m.Status() != Active || w.n[1].took != 0 {
					return fmt.Errorf("want the Main Active and no activation on the Standby: %s, the Standby took epoch %d",
						w.stateLine(), w.n[1].took)
				}
				return nil
			}},
		{name: "manual", cfg: pairConfig{Mode: ModeManual}, setup: up, ops: everything, depth: 7, faults: 2, admins: 2},
		// Partitions and crashes while calls come and go on either side:
		// the calls rule of a healed split brain never leaves two Active
		// nodes that see each other, and the pair settles with one.
		{name: "calls", cfg: auto, setup: append(slices.Clone(up), "calls main some", "calls standby none"),
			ops: opsOf("cut", "heal", "deliver main", "deliver standby", "tick main", "tick standby", "done main ok", "done standby ok",
				"crash main", "boot main", "calls main some", "calls main none", "calls standby some", "calls standby none"),
			depth: 14, faults: 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			t.Parallel()
			e := explorer{cfg: c.cfg, ops: c.ops, faults: c.faults, admins: c.admins, allowed: c.allowed, settled: c.settled, gossip: c.gossip}
			n, err := e.run(c.setup, c.depth+extra)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("measured: %s: %d states explored to depth %d in %s", c.name, n, c.depth+extra, time.Since(start).Round(time.Millisecond))
		})
	}
}

func opsOf(lines ...string) []pairOp {
	ops := make([]pairOp, len(lines))
	for i, l := range lines {
		op, err := parseOp(l)
		if err != nil {
			panic(err)
		}
		ops[i] = op
	}
	return ops
}

// settleRounds is the bound within which a healed pair must end with one
// Active node: the boot grace, the failback hold, the manual failover and
// a few rounds per transition fit well within it.
const settleRounds = 20

type explorer struct {
	cfg            pairConfig
	ops            []pairOp
	faults, admins int
	allowed        func(*pairWorld, pairOp) bool
	settled        func(*pairWorld) error
	gossip         bool
}

type explored struct {
	w      *pairWorld
	trace  []pairOp
	faults int
	admins int
}

// isFault: the operation is a fault (a tick with a stale view of a live
// peer is one too: see pairWorld.lags).
func isFault(op pairOp) bool {
	switch op.Kind {
	case opCrash, opCut:
		return true
	case opDisk:
		return op.Arg == "full"
	case opHealth:
		return op.Arg == "sick"
	case opAdmin:
		return op.Arg == "start force"
	}
	return false
}

// run explores from the state the setup operations make, and returns the
// number of distinct states seen.
func (e *explorer) run(setup []string, depth int) (int, error) {
	w := newPairWorld(e.cfg)
	var trace []pairOp
	for _, l := range setup {
		op, err := parseOp(l)
		if err != nil {
			return 0, err
		}
		done, err := e.try(w, op, trace)
		if err != nil {
			return 0, err
		}
		trace = append(trace, done...)
	}
	seen := map[string]bool{}
	frontier := []explored{{w: w, trace: trace}}
	seen[w.key()+"/0/0"] = true
	for d := 0; d < depth && len(frontier) > 0; d++ {
		var next []explored
		for _, s := range frontier {
			for _, op := range e.ops {
				if e.allowed != nil && !e.allowed(s.w, op) {
					continue
				}
				f, a := s.faults, s.admins
				if isFault(op) || ((op.Kind == opTick || op.Kind == opDone || op.Kind == opHealth) && s.w.lags(op.Node)) {
					f++
				}
				if op.Kind == opAdmin && op.Arg != "start force" {
					a++
				}
				if f > e.faults || a > e.admins {
					continue
				}
				w := s.w.clone()
				done, err := e.try(w, op, s.trace)
				if err != nil {
					return len(seen), err
				}
				k := w.key() + "/" + strconv.Itoa(f) + "/" + strconv.Itoa(a)
				if seen[k] {
					continue
				}
				seen[k] = true
				tr := append(s.trace[:len(s.trace):len(s.trace)], done...)
				if err := e.liveness(w, tr); err != nil {
					return len(seen), err
				}
				next = append(next, explored{w: w, trace: tr, faults: f, admins: a})
			}
		}
		frontier = next
	}
	return len(seen), nil
}

// try applies op (and, with instant gossip, the deliveries after it) and
// checks the rules. It returns the operations applied; the error carries
// the trace.
func (e *explorer) try(w *pairWorld, op pairOp, trace []pairOp) (done []pairOp, err error) {
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(pairErr)
			if !ok {
				panic(r)
			}
			err = e.broken(append(trace[:len(trace):len(trace)], done...), pe.msg)
		}
	}()
	ops := []pairOp{op}
	if e.gossip && op.Kind != opDeliver {
		for _, i := range []int{0, 1, 0} {
			ops = append(ops, pairOp{Kind: opDeliver, Node: i})
		}
	}
	for _, o := range ops {
		done = append(done, o)
		w.apply(o)
		if cerr := w.checkPair(); cerr != nil {
			return done, e.broken(append(trace[:len(trace):len(trace)], done...), cerr.Error())
		}
	}
	return done, nil
}

// liveness: healed and run fairly, the pair settles.
func (e *explorer) liveness(w *pairWorld, trace []pairOp) (err error) {
	if e.cfg.Mode == ModeManual {
		return nil // manual mode never moves by itself: nothing settles
	}
	c := w.clone()
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(pairErr)
			if !ok {
				panic(r)
			}
			err = e.broken(trace, "while settling: "+pe.msg)
		}
	}()
	hint := fmt.Sprintf(" (add \"! settle %d\" to the scenario)", settleRounds)
	if _, serr := c.settle(settleRounds); serr != nil {
		return e.broken(trace, serr.Error()+hint)
	}
	if e.settled != nil {
		if serr := e.settled(c); serr != nil {
			return e.broken(trace, serr.Error()+hint)
		}
	}
	return nil
}

func (e *explorer) broken(trace []pairOp, msg string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nthe trace, as a pair scenario file:\n\n%s\n", msg, e.cfg)
	for _, op := range trace {
		b.WriteString("> " + FormatOp(op) + "\n")
	}
	return fmt.Errorf("%s", b.String())
}

// key identifies a state of the pair for the explorer: what can change
// what happens next. Counters are capped past every threshold in use, so
// time passing does not make new states forever.
func (w *pairWorld) key() string {
	var b strings.Builder
	c := func(n int) int { return min(n, 8) }
	for i := range w.n {
		nd := &w.n[i]
		m := &nd.m
		fmt.Fprintf(&b, "%t %t %s %d %+v %d %t %d %d %d %d %d %d %d %t %d %t %t %t %d %t|",
			nd.alive, m.booted, m.status, m.epoch, m.peer, m.peerEpoch, len(m.unhealthy) > 0,
			c(m.peerLostFor), c(m.unhealthyFor), c(m.peerSickFor), c(m.peerEligibleFor), c(m.peerSettledFor), m.holdTicks, m.failoverTicks,
			m.adminHold, c(m.bootTicks), m.peerSeenSinceBoot, m.noFailback,
			m.switchover != "" && w.sw != nil && m.switchover == w.sw.ID, len(m.persistErr), m.switchover != "")
		fmt.Fprintf(&b, "%v %T %t %t %d|", nd.saved, nd.work, nd.diskFull, nd.sick, nd.took)
	}
	fmt.Fprintf(&b, "%t %t", w.cut, w.faulted)
	if w.sw != nil {
		fmt.Fprintf(&b, " sw%d/%d/%+v", w.sw.From, w.sw.Phase, w.sw.View)
	}
	return b.String()
}
