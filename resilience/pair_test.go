package resilience

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/resman-pbx/resman/resilience/golden"
)

// This file models the pair: two machines, the network between them, their
// disks, their services and the runtime's switchover procedure, driven one
// operation at a time. The two-node scenario files (testdata/pair/*.txt)
// and the explorer (explore_test.go) both run on it.
//
// An operation is one line, printed by FormatOp and read by parseOp, each
// the exact inverse of the other, so a trace the explorer finds pastes into
// a scenario file as it is:
//
//	boot main             the node starts (Boot with its persisted decision)
//	crash main            the node dies: no Step reaches it any more
//	deliver main          main receives the current view of its peer
//	tick main             one tick of main's clock
//	done main ok|fail     main's long action under way ends
//	disk main full|ok     main's data directory can take writes, or not
//	health main sick|well main's critical services
//	cut | heal            the network between the nodes
//	admin main start [force] | stop | failover | failover-stop | switchover
//	sw                    the switchover procedure's next step
//
// A node's view of its peer changes only with deliver (gossip delivers
// the current state, late or not at all, but never out of order); an
// admin's Start carries a fresh view, as the runtime fetches one.

// pairNames names the nodes in operations; index 0 is the Main.
var pairNames = [2]string{"main", "standby"}

// pairFailoverTicks is how long an admin's manual HA failover lasts.
const pairFailoverTicks = 3

type opKind int

const (
	opBoot opKind = iota
	opCrash
	opDeliver
	opTick
	opDone
	opDisk
	opHealth
	opCut
	opHeal
	opAdmin
	opSw
	opCalls
)

// pairOp is one operation on the pair. Node is the index of the node it
// concerns; Arg is ok/fail, full/ok, sick/well or the admin command.
type pairOp struct {
	Kind opKind
	Node int
	Arg  string
}

var opVerbs = map[opKind]string{opBoot: "boot", opCrash: "crash", opDeliver: "deliver", opTick: "tick",
	opDone: "done", opDisk: "disk", opHealth: "health", opCut: "cut", opHeal: "heal", opAdmin: "admin", opSw: "sw", opCalls: "calls"}

// opArgs lists the arguments each kind takes (nil: none).
var opArgs = map[opKind][]string{
	opDone:   {"ok", "fail"},
	opDisk:   {"full", "ok"},
	opHealth: {"sick", "well"},
	opCalls:  {"some", "none"},
	opAdmin:  {"start", "start force", "stop", "failover", "failover-stop", "switchover"},
}

// FormatOp prints op as a scenario line (without the "> ").
func FormatOp(op pairOp) string {
	switch op.Kind {
	case opCut, opHeal, opSw:
		return opVerbs[op.Kind]
	}
	s := opVerbs[op.Kind] + " " + pairNames[op.Node]
	if op.Arg != "" {
		s += " " + op.Arg
	}
	return s
}

func parseOp(s string) (pairOp, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return pairOp{}, errors.New("empty operation")
	}
	var op pairOp
	found := false
	for k, v := range opVerbs {
		if v == f[0] {
			op.Kind, found = k, true
		}
	}
	if !found {
		return op, fmt.Errorf("unknown operation %q", f[0])
	}
	switch op.Kind {
	case opCut, opHeal, opSw:
		if len(f) != 1 {
			return op, fmt.Errorf("%s takes no argument", f[0])
		}
		return op, nil
	}
	if len(f) < 2 {
		return op, fmt.Errorf("%s needs a node (main or standby)", f[0])
	}
	op.Node = slices.Index(pairNames[:], f[1])
	if op.Node < 0 {
		return op, fmt.Errorf("unknown node %q", f[1])
	}
	op.Arg = strings.Join(f[2:], " ")
	if args := opArgs[op.Kind]; !slices.Contains(args, op.Arg) && !(args == nil && op.Arg == "") {
		return op, fmt.Errorf("%s: argument %q is not one of %q", f[0], op.Arg, args)
	}
	return op, nil
}

// pairConfig is the configuration both nodes share, in ticks.
type pairConfig struct {
	Mode              Mode
	Lost, Hold, Grace int
	FailbackAuto      bool
}

func (c pairConfig) String() string {
	fb := "auto"
	if !c.FailbackAuto {
		fb = "manual"
	}
	return fmt.Sprintf("pair mode=%s lost=%d hold=%d grace=%d failback=%s", c.Mode, c.Lost, c.Hold, c.Grace, fb)
}

func parsePairConfig(line string) (pairConfig, error) {
	kv, err := parseKV(strings.TrimPrefix(line, "pair "))
	if err != nil {
		return pairConfig{}, err
	}
	c := pairConfig{Mode: Mode(kv["mode"]), FailbackAuto: kv["failback"] != "manual"}
	for key, n := range map[string]*int{"lost": &c.Lost, "hold": &c.Hold, "grace": &c.Grace} {
		if c.Mode == ModeAuto || kv[key] != "" {
			if *n, err = strconv.Atoi(kv[key]); err != nil {
				return c, fmt.Errorf("%s=%q: want a whole number of ticks", key, kv[key])
			}
		}
	}
	return c, nil
}

func (c pairConfig) core(i int) Config {
	return Config{Name: "xivo-" + pairNames[i], Role: []Role{RoleMain, RoleStandby}[i], Mode: c.Mode,
		LostTicks: c.Lost, FailbackAuto: c.FailbackAuto, FailbackHoldTicks: c.Hold, BootGraceTicks: c.Grace}
}

// pairNode is one node as the pair sees it. Its fields are values (the
// machine is copied whole), so copying a pairNode clones it.
type pairNode struct {
	m        Machine
	alive    bool
	saved    *Saved // what its disk holds (never mutated: replaced)
	work     Action // the long action under way: StartServices or StopServices
	diskFull bool
	sick     bool
	// took is the highest epoch this node's activations took.
	took uint64
}

// switchover is the runtime's switchover procedure, run on node From.
type switchover struct {
	From  int
	ID    string
	Phase int // 0: stopping here; 1: the peer fetched its view; 2: starting the peer; 3: rolling back
	// View is the view of this node that the peer fetched for its Start:
	// it may be stale by the time the Start steps, as over HTTP.
	View PeerView
}

// pairWorld is the whole pair. Copying it (with clone) is cheap.
type pairWorld struct {
	cfg pairConfig
	n   [2]pairNode
	cut bool
	// verbose: apply returns what the nodes did, for scenario files; the
	// explorer runs without it.
	verbose bool
	log     []string // what settle did, when verbose
	sw      *switchover
	swSeq   int
	// faulted: a fault (crash, cut, full disk, sick services, forced
	// start) happened: the planned-move rule no longer applies.
	faulted bool
}

func newPairWorld(cfg pairConfig) *pairWorld {
	w := &pairWorld{cfg: cfg}
	for i := range w.n {
		m, err := New(cfg.core(i))
		if err != nil {
			panic(err)
		}
		w.n[i].m = *m
	}
	return w
}

func (w *pairWorld) clone() *pairWorld {
	c := *w
	if w.sw != nil {
		sw := *w.sw
		c.sw = &sw
	}
	return &c
}

// view is what node i would see of its peer now.
func (w *pairWorld) view(i int) PeerView {
	j := 1 - i
	o := &w.n[j]
	if !o.alive || w.cut {
		return PeerView{Name: o.m.cfg.Name}
	}
	calls, known := o.m.Calls()
	return PeerView{Name: o.m.cfg.Name, Reachable: true, Status: o.m.Status(), Epoch: o.m.Epoch(),
		Holding: o.m.Holding(), Unhealthy: len(o.m.Unhealthy()) > 0, Calls: calls, CallsKnown: known}
}

// lags reports whether node i's view of its live, reachable peer is not
// the current one. A tick, a completion or a health change on i before
// gossip delivered the change is a lag, and counts as a fault: when
// nothing is wrong, gossip delivers in milliseconds, before the node's
// next decision.
func (w *pairWorld) lags(i int) bool {
	o := &w.n[1-i]
	return w.n[i].alive && o.alive && !w.cut && w.n[i].m.peer != w.view(i)
}

// pairErr is a broken rule, found while an operation ran.
type pairErr struct{ msg string }

func (e pairErr) Error() string { return e.msg }

// apply runs op and returns what each node did, as printable lines. A
// broken rule of the runtime (not of the pair) panics with pairErr.
func (w *pairWorld) apply(op pairOp) []string {
	var out []string
	step := func(i int, ev Event) error {
		acts, err, lines := w.step(i, ev)
		_ = acts
		out = append(out, lines...)
		return err
	}
	i := op.Node
	nd := &w.n[i]
	switch op.Kind {
	case opBoot:
		if nd.alive {
			return nil
		}
		m, _ := New(w.cfg.core(i))
		nd.m, nd.alive, nd.work = *m, true, nil
		step(i, Boot{Saved: nd.saved, Peer: w.view(i)})
		if !nd.m.booted {
			// The runtime exits when it cannot persist its boot decision.
			nd.alive = false
			return append(out, pairNames[i]+": boot not persisted: resman exits")
		}
		if nd.sick {
			step(i, Health{Unhealthy: []string{"asterisk"}})
		}
	case opCrash:
		if !nd.alive {
			return nil
		}
		w.faulted = true
		nd.alive, nd.work = false, nil
		if w.sw != nil && w.sw.From == i {
			w.sw = nil // the procedure died with its node
		}
	case opDeliver:
		if nd.alive {
			step(i, PeerSeen{Peer: w.view(i)})
		}
	case opTick:
		if nd.alive {
			w.faulted = w.faulted || w.lags(i)
			step(i, Tick{})
		}
	case opDone:
		if !nd.alive || nd.work == nil {
			return nil
		}
		w.faulted = w.faulted || w.lags(i)
		msg := ""
		if op.Arg == "fail" {
			msg = "boom"
		}
		a := nd.work
		nd.work = nil
		if _, ok := a.(StartServices); ok {
			step(i, ServicesStarted{Err: msg})
		} else {
			step(i, ServicesStopped{Err: msg})
		}
	case opDisk:
		nd.diskFull = op.Arg == "full"
		w.faulted = w.faulted || nd.diskFull
		if !nd.diskFull && nd.alive {
			// The runtime's probe of the data directory succeeds.
			step(i, StoreWritable{})
		}
	case opHealth:
		nd.sick = op.Arg == "sick"
		w.faulted = w.faulted || nd.sick || w.lags(i)
		if nd.alive {
			var u []string
			if nd.sick {
				u = []string{"asterisk"}
			}
			step(i, Health{Unhealthy: u})
		}
	case opCalls:
		// What the node's calls command counts now (the runtime steps it
		// every failover.calls.interval).
		if nd.alive {
			n := 0
			if op.Arg == "some" {
				n = 3
			}
			step(i, Calls{N: n, Known: true})
		}
	case opCut:
		w.cut, w.faulted = true, true
	case opHeal:
		w.cut = false
	case opAdmin:
		if !nd.alive {
			return nil
		}
		who := "admin"
		switch op.Arg {
		case "start":
			step(i, AdminStart{Who: who, Reason: "r", Peer: w.view(i)})
		case "start force":
			w.faulted = true
			step(i, AdminStart{Who: who, Reason: "r", Force: true, Peer: w.view(i)})
		case "stop":
			step(i, AdminStop{Who: who, Reason: "r"})
		case "failover":
			step(i, AdminFailover{Who: who, Reason: "r", ForTicks: pairFailoverTicks, For: "3 ticks"})
		case "failover-stop":
			step(i, AdminFailoverStop{Who: who, Reason: "r"})
		case "switchover":
			// The runtime's preconditions: this node Active, the peer
			// answering Inactive; one switchover at a time.
			p := w.view(i)
			if w.sw != nil || nd.m.Status() != Active || !p.Reachable || p.Status != Inactive {
				out = append(out, pairNames[i]+": switchover refused by its preconditions")
				return out
			}
			w.swSeq++
			id := fmt.Sprintf("sw%d", w.swSeq)
			if step(i, SwitchoverStop{Who: who, Reason: "r", ID: id}) == nil {
				w.sw = &switchover{From: i, ID: id}
			}
		}
	case opSw:
		out = append(out, w.advanceSwitchover(step)...)
	}
	return out
}

// advanceSwitchover takes the switchover procedure one step further when
// what it waits for has happened, as node.Switchover does.
func (w *pairWorld) advanceSwitchover(step func(int, Event) error) []string {
	sw := w.sw
	if sw == nil {
		return nil
	}
	i, j := sw.From, 1-sw.From
	from, to := &w.n[i], &w.n[j]
	end := func() {
		w.sw = nil
		step(i, SwitchoverEnded{ID: sw.ID, Peer: w.view(i)})
	}
	rollback := func() {
		sw.Phase = 3
		step(i, AdminStart{Who: "admin", Reason: "rollback of " + sw.ID, Peer: w.view(i), Rollback: sw.ID})
	}
	switch sw.Phase {
	case 0: // the stop here ended (the command waits for that): ask the peer to start
		if from.m.Status() == Deactivating {
			return nil
		}
		if !to.alive || w.cut {
			rollback()
			return nil
		}
		// The peer's runtime fetches a view of this node first...
		sw.Phase, sw.View = 1, w.view(j)
	case 1: // ...and steps its Start with it, a moment later
		sw.Phase = 2
		if !to.alive || w.cut {
			rollback()
			return nil
		}
		if step(j, AdminStart{Who: "xivo-" + pairNames[i], Reason: "switchover " + sw.ID, Peer: sw.View}) != nil {
			rollback()
		}
	case 2: // the peer's start answers when its transition ends
		switch {
		case !to.alive || w.cut:
			rollback()
		case to.m.Status() == Active:
			end()
		case to.m.Status() == Inactive:
			rollback()
		}
	case 3: // the rollback's start answers when it ends
		if s := from.m.Status(); s == Active || s == Inactive {
			end()
		}
	}
	return nil
}

// step feeds ev to node i as the runtime does: Persist first, and when
// the disk refuses it, PersistFailed and nothing else of that Step. It
// checks the rules of the runtime's contract and of epochs on the way.
func (w *pairWorld) step(i int, ev Event) ([]Action, error, []string) {
	nd := &w.n[i]
	name := pairNames[i]
	var lines []string
	acts, err := nd.m.Step(ev)
	for _, a := range acts {
		if _, ok := a.(Persist); ok && nd.diskFull {
			lines = append(lines, name+": "+FormatAction(a)+" (fails: disk full)")
			back, berr := nd.m.Step(PersistFailed{Err: "no space left on device"})
			if berr != nil && !errors.Is(berr, ErrNotDurable) {
				panic(pairErr{fmt.Sprintf("%s: PersistFailed answered %v, want ErrNotDurable", name, berr)})
			}
			for _, b := range back {
				switch b := b.(type) {
				case Persist, StartServices:
					panic(pairErr{fmt.Sprintf("%s: PersistFailed asked for %s", name, FormatAction(b))})
				case StopServices:
					// The rollback of a failed start goes on.
					if nd.work != nil {
						panic(pairErr{fmt.Sprintf("%s: stop-services while %s is under way", name, FormatAction(nd.work))})
					}
					nd.work = b
				}
				lines = append(lines, name+": "+FormatAction(b))
			}
			if berr != nil {
				lines = append(lines, name+": error: "+berr.Error())
			}
			return nil, berr, lines
		}
		if w.verbose {
			lines = append(lines, name+": "+FormatAction(a))
		}
		switch a := a.(type) {
		case Persist:
			s := a.Saved
			nd.saved = &s
		case StartServices:
			if nd.work != nil {
				panic(pairErr{fmt.Sprintf("%s: start-services while %s is under way", name, FormatAction(nd.work))})
			}
			nd.work = a
			_, boot := ev.(Boot)
			restore := boot && nd.saved != nil && nd.saved.Status == Active && a.Epoch == nd.took
			if !restore {
				if a.Epoch <= nd.took || a.Epoch%2 != slot(nd.m.cfg.Role) {
					panic(pairErr{fmt.Sprintf("%s: activation at epoch %d: not above its last (%d) or not of its slot", name, a.Epoch, nd.took)})
				}
				if other := w.n[1-i].took; a.Epoch == other {
					panic(pairErr{fmt.Sprintf("%s: epoch %d taken twice", name, a.Epoch)})
				}
				nd.took = a.Epoch
			}
		case StopServices:
			if nd.work != nil {
				panic(pairErr{fmt.Sprintf("%s: stop-services while %s is under way", name, FormatAction(nd.work))})
			}
			nd.work = a
		}
	}
	if err != nil && w.verbose {
		lines = append(lines, name+": error: "+err.Error())
	}
	return acts, err, lines
}

// stateLine prints where the pair stands: each node's status and epoch and
// what holds it, the network and the switchover under way.
func (w *pairWorld) stateLine() string {
	var parts []string
	for i := range w.n {
		nd := &w.n[i]
		if !nd.alive {
			parts = append(parts, pairNames[i]+" down")
			continue
		}
		s := fmt.Sprintf("%s %s:%d", pairNames[i], nd.m.Status(), nd.m.Epoch())
		switch {
		case nd.m.AdminHold():
			s += " held-by-admin"
		case nd.m.Holding():
			s += " holding"
		}
		if nd.diskFull {
			s += " disk-full"
		}
		parts = append(parts, s)
	}
	s := "= " + strings.Join(parts, " | ")
	if w.cut {
		s += " | cut"
	}
	if w.sw != nil {
		s += fmt.Sprintf(" | switchover %s from %s", w.sw.ID, pairNames[w.sw.From])
	}
	return s
}

// checkPair checks the rules of the pair that hold at every instant.
func (w *pairWorld) checkPair() error {
	a, b := &w.n[0], &w.n[1]
	for i := range w.n {
		nd := &w.n[i]
		if !nd.alive || !nd.m.booted {
			continue
		}
		// Durable before acting: the disk holds what the node does.
		st := nd.m.Status()
		want := Inactive
		if st.claimsActive() {
			want = Active
		}
		if nd.m.dirty && (st == Deactivating || st == Inactive) && nd.saved != nil &&
			nd.saved.Status == Active && nd.saved.Epoch == nd.m.Epoch() {
			// Stopping after a failed start that could not be persisted:
			// stopping is the safe way; the disk catches up later.
			continue
		}
		if nd.saved == nil || nd.saved.Status != want || nd.saved.Epoch != nd.m.Epoch() {
			return fmt.Errorf("%s is %s at epoch %d but its disk holds %v", pairNames[i], st, nd.m.Epoch(), nd.saved)
		}
	}
	if !a.alive || !b.alive {
		return nil
	}
	if !w.faulted && a.m.Status().claimsActive() && b.m.Status().claimsActive() {
		return errors.New("two Active nodes during planned moves (no fault happened)")
	}
	if w.cfg.Mode == ModeAuto && a.m.Status() == Active && b.m.Status() == Active && !w.cut &&
		a.m.peer == w.view(0) && b.m.peer == w.view(1) {
		return errors.New("two Active nodes that see each other as they are")
	}
	return nil
}

// settle heals every fault and runs a fair schedule for rounds rounds:
// work ends well, the switchover advances, and each clock ticks right
// after its node got the current view (no lag). It returns the rounds it took until exactly one
// node was Active and stayed so through a full round, or an error.
func (w *pairWorld) settle(rounds int) (int, error) {
	do := func(op pairOp) {
		lines := w.apply(op)
		if w.verbose && len(lines) > 0 {
			w.log = append(w.log, "  "+FormatOp(op))
			w.log = append(w.log, lines...)
		}
	}
	w.cut = false
	for i := range w.n {
		w.n[i].diskFull = false
		if w.n[i].sick {
			w.n[i].sick = false
			if w.n[i].alive {
				w.step(i, Health{})
			}
		}
		if !w.n[i].alive {
			do(pairOp{Kind: opBoot, Node: i})
		}
	}
	fresh := func() {
		do(pairOp{Kind: opDeliver, Node: 0})
		do(pairOp{Kind: opDeliver, Node: 1})
		do(pairOp{Kind: opDeliver, Node: 0})
	}
	for r := 1; r <= rounds; r++ {
		for i := range w.n {
			fresh()
			do(pairOp{Kind: opDone, Node: i, Arg: "ok"})
		}
		fresh()
		do(pairOp{Kind: opSw})
		for i := range w.n {
			fresh()
			do(pairOp{Kind: opTick, Node: i})
		}
		if err := w.checkPair(); err != nil {
			return r, err
		}
		if w.settled() {
			return r, nil
		}
	}
	if w.n[0].m.AdminHold() && w.n[1].m.AdminHold() {
		return rounds, nil // an admin stopped both: none Active is their will
	}
	if w.cfg.Mode == ModeManual {
		return rounds, nil // manual mode does not move: nothing to settle
	}
	return rounds, fmt.Errorf("not settled after %d rounds: %s", rounds, w.stateLine())
}

// settled: exactly one node Active, the other Inactive, no work under way,
// no switchover running.
func (w *pairWorld) settled() bool {
	a, b := w.n[0].m.Status(), w.n[1].m.Status()
	return w.sw == nil && w.n[0].work == nil && w.n[1].work == nil &&
		((a == Active && b == Inactive) || (a == Inactive && b == Active))
}

// TestPairScenarios runs every testdata/pair/*.txt file: a "pair" config
// line, then "> op" lines, each followed by what the nodes did and the
// state line. Rules are checked after every operation; "! settle N" runs
// the fair schedule and says how many rounds it took.
func TestPairScenarios(t *testing.T) {
	golden.Files(t, "testdata/pair/*.txt", runPairScenario)
}

func runPairScenario(src string) (out string, err error) {
	var b strings.Builder
	var w *pairWorld
	inBlock := false
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(pairErr)
			if !ok {
				panic(r)
			}
			err = pe
		}
	}()
	for n, line := range strings.Split(strings.TrimRight(src, "\n"), "\n") {
		where := fmt.Sprintf("line %d", n+1)
		switch {
		case strings.HasPrefix(line, "pair "):
			c, err := parsePairConfig(line)
			if err != nil {
				return "", fmt.Errorf("%s: %w", where, err)
			}
			w = newPairWorld(c)
			w.verbose = true
			b.WriteString(line + "\n")
		case strings.HasPrefix(line, "> ") || strings.HasPrefix(line, "! settle "):
			if w == nil {
				return "", fmt.Errorf("%s: operation before the pair line", where)
			}
			b.WriteString(line + "\n")
			inBlock = true
			if rounds, ok := strings.CutPrefix(line, "! settle "); ok {
				r, err := strconv.Atoi(rounds)
				if err != nil {
					return "", fmt.Errorf("%s: settle wants a number of rounds", where)
				}
				took, serr := w.settle(r)
				for _, l := range w.log {
					b.WriteString(l + "\n")
				}
				w.log = nil
				if serr != nil {
					fmt.Fprintf(&b, "error: %v\n", serr)
				} else {
					fmt.Fprintf(&b, "settled in %d rounds\n", took)
				}
				b.WriteString(w.stateLine() + "\n")
				continue
			}
			op, err := parseOp(strings.TrimPrefix(line, "> "))
			if err != nil {
				return "", fmt.Errorf("%s: %w", where, err)
			}
			for _, l := range w.apply(op) {
				b.WriteString(l + "\n")
			}
			if err := w.checkPair(); err != nil {
				fmt.Fprintf(&b, "broken: %v\n", err)
			}
			b.WriteString(w.stateLine() + "\n")
		case inBlock && line != "" && !strings.HasPrefix(line, "#"):
		default:
			inBlock = false
			b.WriteString(line + "\n")
		}
	}
	return b.String(), nil
}

// TestOpRoundTrip: every operation prints to a line that reads back as
// the same operation, so a trace pastes into a scenario file.
func TestOpRoundTrip(t *testing.T) {
	for _, op := range allOps() {
		s := FormatOp(op)
		back, err := parseOp(s)
		if err != nil || back != op {
			t.Errorf("%q read back as %+v (%v), want %+v", s, back, err, op)
		}
	}
	for _, bad := range []string{"", "boot", "boot witness", "done main maybe", "cut main", "admin main dance", "jump main"} {
		if _, err := parseOp(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

// allOps is every operation there is.
func allOps() []pairOp {
	var ops []pairOp
	for _, k := range []opKind{opBoot, opCrash, opDeliver, opTick, opDone, opDisk, opHealth, opAdmin} {
		for i := range pairNames {
			args := opArgs[k]
			if args == nil {
				args = []string{""}
			}
			for _, a := range args {
				ops = append(ops, pairOp{Kind: k, Node: i, Arg: a})
			}
		}
	}
	return append(ops, pairOp{Kind: opCut}, pairOp{Kind: opHeal}, pairOp{Kind: opSw})
}
