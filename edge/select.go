package edge

// The Edge's side selection, as a pure function (no I/O, no clock): which
// side receives the traffic, from each side's health and epoch as the
// checks (check.go) count them. Its rules are stated in
// testdata/select/*.txt, run by select_test.go.

// sideView is what the selection reads of one side.
type sideView struct {
	// Health is HealthUp, HealthDown, HealthUnknown or "" (never checked):
	// only HealthUp may receive traffic. The rise and fall counting that
	// makes it is upstream, in observe.
	Health string
	// Epoch is the highest epoch the side's node has answered.
	Epoch uint64
}

// pick returns the index in sides of the side that should have the
// traffic, -1 for none: the side that is up; several being up (each
// claims Active), the highest epoch (the most recent activation); on a
// tie, cur (the side routed now, -1 for none), else the first listed.
func pick(sides []sideView, cur int) int {
	best := -1
	for i, s := range sides {
		if s.Health != HealthUp {
			continue
		}
		switch {
		case best < 0, s.Epoch > sides[best].Epoch, s.Epoch == sides[best].Epoch && i == cur:
			best = i
		}
	}
	return best
}
