package testkit

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Logger is a debug-level text logger writing to t.Log: shown with -v or
// when the test fails. Lines logged once the test's cleanups have run
// (by a goroutine that outlived it) are dropped, not a panic.
func Logger(t testing.TB) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(w.end)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct {
	mu    sync.Mutex
	t     testing.TB
	ended bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ended {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tWriter) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended = true
}

// BufferLogger is a debug-level text logger writing into a Buffer the test
// reads, searches or waits on; the buffer is printed to the test's log if
// the test fails. Nothing writes to the test itself while it runs, so a
// goroutine outliving the test is harmless.
func BufferLogger(t testing.TB) (*slog.Logger, *Buffer) {
	b := &Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", b.String())
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// FailureLogger is BufferLogger for a test that does not read the logs:
// they are shown only if it fails, even with -v.
func FailureLogger(t testing.TB) *slog.Logger {
	l, _ := BufferLogger(t)
	return l
}

// Buffer is a bytes.Buffer safe for concurrent writers (a logger, a
// process's output) and the test's reads. The zero value is empty and
// ready.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Contains reports whether s was written (within one write or across).
func (b *Buffer) Contains(s string) bool {
	return strings.Contains(b.String(), s)
}
