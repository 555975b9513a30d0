package testkit

import (
	"fmt"
	"testing"
	"time"
)

// Patience bounds every wait of Eventually and Until: a safety net for a
// loaded machine, never a timing under test. A wait that needs longer
// (a process started in a container, say) names its own bound with
// EventuallyWithin.
const Patience = 30 * time.Second

// The polling interval starts short, for the waits of a few milliseconds
// that most unit tests make, and grows to pollMax, so that a long wait on
// a condition that costs a request does not load the machine.
const (
	pollMin = 5 * time.Millisecond
	pollMax = 50 * time.Millisecond
)

// Eventually polls cond until it holds, and fails the test (fatally) after
// Patience, saying what it waited for: msgf and args, as for fmt.Sprintf.
// Call it from the test's goroutine.
func Eventually(t testing.TB, cond func() bool, msgf string, args ...any) {
	t.Helper()
	EventuallyWithin(t, Patience, cond, msgf, args...)
}

// EventuallyWithin is Eventually bounded by timeout.
func EventuallyWithin(t testing.TB, timeout time.Duration, cond func() bool, msgf string, args ...any) {
	t.Helper()
	if polls, ok := poll(timeout, cond); !ok {
		t.Fatalf("timed out after %s waiting for %s (checked %d times)", timeout, fmt.Sprintf(msgf, args...), polls)
	}
}

// Until polls get until ok holds of what it returns, and returns that
// value. After Patience it fails the test (fatally), saying what it
// waited for and the last value it saw.
func Until[T any](t testing.TB, get func() T, ok func(T) bool, msgf string, args ...any) T {
	t.Helper()
	return until(t, Patience, get, ok, msgf, args...)
}

func until[T any](t testing.TB, timeout time.Duration, get func() T, ok func(T) bool, msgf string, args ...any) T {
	t.Helper()
	var last T
	_, held := poll(timeout, func() bool {
		last = get()
		return ok(last)
	})
	if !held {
		t.Fatalf("timed out after %s waiting for %s: last saw %+v", timeout, fmt.Sprintf(msgf, args...), last)
	}
	return last
}

// Poll polls cond until it holds or timeout passes, and reports whether it
// held: for a test that goes on (or says more) when it does not.
func Poll(timeout time.Duration, cond func() bool) bool {
	_, ok := poll(timeout, cond)
	return ok
}

// poll checks cond at least once, however short timeout is.
func poll(timeout time.Duration, cond func() bool) (polls int, ok bool) {
	deadline := time.Now().Add(timeout)
	interval := pollMin
	for {
		polls++
		if cond() {
			return polls, true
		}
		if time.Now().After(deadline) {
			return polls, false
		}
		time.Sleep(interval)
		interval = min(interval*3/2, pollMax)
	}
}
