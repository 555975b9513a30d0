package fleet

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// PairsChange is what SetPairs changed.
type PairsChange struct {
	// Pairs is how many pairs are watched now.
	Pairs int
	// Added are the pairs watched from now on, Removed those no longer
	// watched, Changed those kept by name whose nodes or token changed
	// (watched afresh, as if added), each in the order of their list.
	Added, Removed, Changed []string
}

// Empty reports whether nothing changed.
func (c PairsChange) Empty() bool {
	return len(c.Added) == 0 && len(c.Removed) == 0 && len(c.Changed) == 0
}

// String says it in words: "3 pairs (added lyon-1, lyon-2; removed
// paris-2)", or "3 pairs (unchanged)".
func (c PairsChange) String() string {
	var parts []string
	for _, x := range []struct {
		what  string
		names []string
	}{{"added", c.Added}, {"removed", c.Removed}, {"changed", c.Changed}} {
		if len(x.names) > 0 {
			parts = append(parts, x.what+" "+strings.Join(x.names, ", "))
		}
	}
	if len(parts) == 0 {
		parts = []string{"unchanged"}
	}
	noun := "pairs"
	if c.Pairs == 1 {
		noun = "pair"
	}
	return fmt.Sprintf("%d %s (%s)", c.Pairs, noun, strings.Join(parts, "; "))
}

// SetPairs makes pairs the pairs watched, in that order, while Run runs
// (or before). A pair kept (same name, same nodes in the same order, same
// token) keeps its last known state, its place in the reads under way and
// what the feed remembers of it: it gives no event. A pair removed is no
// longer read (a read under way for it is dropped), and vanishes from
// Snapshot, the feed's future and the metrics (its resman_fleet_* series
// are deleted). A pair added, or changed (same name, other nodes or
// token), starts not read yet and is read at the next tick of Run. The
// interval, timeout and concurrency stay those of New.
//
// pairs are checked as by New (LoadPairs reads and checks a fleet section
// with its pairs_dir): on a problem, or with no pair, nothing changes and
// the error says why.
func (a *Aggregator) SetPairs(pairs []PairConfig) (PairsChange, error) {
	if len(pairs) == 0 {
		return PairsChange{}, errors.New("fleet: no pair: the aggregator watches at least one")
	}
	if ps := CheckPairs([]PairList{{Key: "pairs", Pairs: pairs}}, a.token); len(ps) > 0 {
		return PairsChange{}, ps
	}
	a.setMu.Lock()
	defer a.setMu.Unlock()

	old, _ := a.current()
	byName := make(map[string]*pairState, len(old))
	for _, ps := range old {
		byName[ps.name] = ps
	}
	var ch PairsChange
	next := make([]*pairState, 0, len(pairs))
	var targets []*target
	var fresh []*pairState // added or changed
	kept := make(map[*pairState]bool, len(old))
	for _, p := range pairs {
		ps := byName[p.Name]
		switch {
		case ps != nil && ps.same(p):
			kept[ps] = true
		case ps != nil:
			ch.Changed = append(ch.Changed, p.Name)
			ps = a.newPair(p)
			fresh = append(fresh, ps)
		default:
			ch.Added = append(ch.Added, p.Name)
			ps = a.newPair(p)
			fresh = append(fresh, ps)
		}
		next = append(next, ps)
		targets = append(targets, ps.nodes...)
	}
	// First the pairs dropped (removed, or replaced by a changed one):
	// marked so that no read under way changes them any more, then their
	// series deleted. A changed pair's new state is not read before the
	// swap below, so its series start afresh.
	for _, ps := range old {
		if kept[ps] {
			continue
		}
		if !slices.ContainsFunc(pairs, func(p PairConfig) bool { return p.Name == ps.name }) {
			ch.Removed = append(ch.Removed, ps.name)
		}
		ps.mu.Lock()
		ps.removed = true
		ps.mu.Unlock()
		a.metrics.pollErrors.DeleteLabelValues(ps.name)
	}
	a.mu.Lock()
	a.pairs, a.targets = next, targets
	a.mu.Unlock()
	for _, ps := range fresh {
		a.metrics.pollErrors.WithLabelValues(ps.name) // a pair without errors shows 0
	}
	ch.Pairs = len(next)
	return ch, nil
}

// same reports whether p is the pair ps watches: same nodes, same token.
func (ps *pairState) same(p PairConfig) bool {
	if ps.token != p.Token || len(ps.nodes) != len(p.Nodes) {
		return false
	}
	for i, t := range ps.nodes {
		if t.url != p.Nodes[i] {
			return false
		}
	}
	return true
}
