package main

import (
	"context"
	"log/slog"

	"github.com/emiago/sipgo/sip"
)

// routeSIPLogs sends sipgo's own log lines, which it writes to a global
// logger ("UDP ref went negative on try close" at every shutdown, "Unhandled
// sip response" for a retransmitted answer), to h at debug level with
// component=sipgo: they are the library's housekeeping, not the admin's
// business, and they otherwise reach stderr in another format.
func routeSIPLogs(h slog.Handler) {
	sip.SetDefaultLogger(slog.New(debugOnly{h}).With("component", "sipgo"))
}

// debugOnly passes every record on at debug level.
type debugOnly struct{ h slog.Handler }

func (d debugOnly) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.h.Enabled(ctx, slog.LevelDebug)
}

func (d debugOnly) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return d.h.Handle(ctx, r)
}

func (d debugOnly) WithAttrs(attrs []slog.Attr) slog.Handler { return debugOnly{d.h.WithAttrs(attrs)} }
func (d debugOnly) WithGroup(name string) slog.Handler       { return debugOnly{d.h.WithGroup(name)} }
