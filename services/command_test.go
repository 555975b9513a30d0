package services

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/resman-pbx/resman/resilience/procexec"
	"github.com/resman-pbx/resman/resilience/testkit"
)

func TestTailBuffer(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		writes []string
		want   string
	}{
		{"empty", 10, nil, ""},
		{"short", 10, []string{"abc"}, "abc"},
		{"keeps the end", 5, []string{"abcdef", "gh"}, "defgh"},
		{"lines joined", 100, []string{"one\n\n  two  \nthree\n"}, "one; two; three"},
		{"cut rune dropped", 2, []string{"aé!"}, "!"}, // é is 2 bytes: the tail starts mid-rune
		{"blank only", 10, []string{"\n \n"}, ""},
	}
	for _, tt := range tests {
		b := procexec.NewTail(tt.max)
		for _, w := range tt.writes {
			b.Write([]byte(w))
		}
		if got := b.Line(0); got != tt.want {
			t.Errorf("%s: Line(0) = %q, want %q", tt.name, got, tt.want)
		}
		if got, want := quote(b.Line(0)), map[bool]string{true: "", false: ": " + tt.want}[tt.want == ""]; got != want {
			t.Errorf("%s: quote() = %q, want %q", tt.name, got, want)
		}
	}
}

func TestLineLogger(t *testing.T) {
	var lb testkit.Buffer
	log := slog.New(slog.NewTextHandler(&lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tail := procexec.NewTail(tailSize)
	l := newLineLogger(log, "stdout", tail)
	l.Write([]byte("first li"))
	l.Write([]byte("ne\r\nsecond\nthi"))
	l.Write([]byte(strings.Repeat("x", maxLogLine)))
	l.Write([]byte("rest"))
	l.flush()
	var lines []string
	for _, rec := range strings.Split(strings.TrimSpace(lb.String()), "\n") {
		_, line, _ := strings.Cut(rec, "line=")
		lines = append(lines, line)
	}
	want := []string{`"first line"`, "second", "thi" + strings.Repeat("x", maxLogLine), "rest"}
	if len(lines) != len(want) {
		t.Fatalf("logged %d lines, want %d: %q", len(lines), len(want), lines)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d = %.40q, want %.40q", i, lines[i], want[i])
		}
	}
	if !strings.HasSuffix(tail.String(), "rest") {
		t.Errorf("tail = %q, want the output's end", tail.String())
	}
}
