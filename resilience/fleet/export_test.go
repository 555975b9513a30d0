package fleet

// The internal tests' helpers, for the external tests (package
// fleet_test): those that serve a real API with package web, which
// imports config, which imports this package for the fleet section, so
// that an internal test importing web would be an import cycle.

const AggToken = aggToken

var (
	NewSim            = newSim
	StartAggregatorOf = startAggregatorOf
	WaitAllPolled     = waitAllPolled
	Do                = do
)

// Pairs is the fleet config of the simulated pairs.
func (s *sim) Pairs() []PairConfig { return s.pairs() }
