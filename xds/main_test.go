package xds

import (
	"log/slog"
	"os"
	"testing"
)

// TestMain quiets the process-wide default logger: sipgo logs a warning
// there for every UDP socket when a user agent closes (a refcount quirk of
// v1.7), which would drown the test output. Errors still show.
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	os.Exit(m.Run())
}
