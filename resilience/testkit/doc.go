// Package testkit is the plumbing resman's tests share: waiting for a
// condition with a generous bound (Eventually, Until, Poll), loggers that
// write to the test's log or into a buffer the test searches (Logger,
// BufferLogger, Buffer), reading metrics from a Gatherer or from /metrics
// text (Metric, MetricText), and a fake clock that moves only when the
// test advances it (FakeClock).
//
// It is for tests only: only _test.go files and other test-support
// packages may import it, never the code resman ships (the agent's
// TestOnlyTestsImportTestkit checks this). Subpackage timeline draws what
// the fault-injection tests saw.
package testkit
