package edge

import (
	"slices"
	"testing"
)

// The Edge returns memory to the system after a load of many connections
// has fallen, twice (at once, then once the idle workers are gone), and
// not during a load, nor after a small one.
func TestTrimmerAfterLoad(t *testing.T) {
	type step struct {
		open int
		trim bool
	}
	var steps []step
	add := func(open, n int, trimAt ...int) {
		for i := range n {
			steps = append(steps, step{open, slices.Contains(trimAt, i)})
		}
	}
	// A small load: never.
	add(10, 5)
	add(trimMinPeak-1, 5)
	add(0, 20)
	// A load of 1,000 connections with a dip of one sample: not yet.
	add(1000, 3)
	add(100, 1)
	add(1000, 3)
	// It ends: the second low sample, then the twelfth.
	add(5, 20, trimFirst-1, trimAgain-1)
	// Another load, that falls to a quarter and stays there.
	add(400, 2)
	add(100, trimAgain, trimFirst-1, trimAgain-1)
	var tr trimmer
	for i, s := range steps {
		if got := tr.observe(s.open); got != s.trim {
			t.Fatalf("sample %d (%d open): trim %v, want %v", i, s.open, got, s.trim)
		}
	}
}
