package xds

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// errUnreadable marks an answer that came but could not be parsed.
var errUnreadable = errors.New("unreadable response")

// unreadableError is an answer the SIP stack could not parse; it matches
// errUnreadable.
type unreadableError string

func (e unreadableError) Error() string        { return string(e) }
func (e unreadableError) Is(target error) bool { return target == errUnreadable }

// parseWatch sits in front of the SIP stack's log handler to learn of the
// answers it could not parse: sipgo (v1.7) drops them with an error record
// "failed to parse" carrying the raw data and the parser's error, and the
// transaction would end as a mere timeout. The raw data's Via names the
// branch of our request, which the transaction looks up when it ends
// without an answer. The records still go on to the inner handler.
type parseWatch struct {
	inner slog.Handler
	seen  *parseFailures
}

// parseFailures maps a Via branch to the first unparsable answer for it.
type parseFailures struct {
	mu sync.Mutex
	m  map[string]parseFailure
}

type parseFailure struct {
	firstLine string
	err       string
}

// maxParseFailures bounds the map: entries of branches nobody asks about
// (strays, late answers) are dropped past it.
const maxParseFailures = 256

var branchRE = regexp.MustCompile(`(?i);\s*branch\s*=\s*([^;,\s]+)`)

func (w parseWatch) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || w.inner.Enabled(ctx, l)
}

func (w parseWatch) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && r.Message == "failed to parse" {
		var data, perr string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "data":
				data = a.Value.String()
			case "error":
				perr = a.Value.String()
			}
			return true
		})
		w.seen.note(data, perr)
	}
	if !w.inner.Enabled(ctx, r.Level) {
		return nil
	}
	return w.inner.Handle(ctx, r)
}

func (w parseWatch) WithAttrs(a []slog.Attr) slog.Handler {
	return parseWatch{w.inner.WithAttrs(a), w.seen}
}

func (w parseWatch) WithGroup(name string) slog.Handler {
	return parseWatch{w.inner.WithGroup(name), w.seen}
}

func (p *parseFailures) note(data, perr string) {
	m := branchRE.FindStringSubmatch(data)
	if m == nil {
		return
	}
	first, _, _ := strings.Cut(data, "\n")
	first = strings.TrimRight(first, "\r")
	if len(first) > 80 {
		first = first[:80] + "..."
	}
	if h := faultyHeader(data); h != "" {
		perr = h + " header: " + perr
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil || len(p.m) >= maxParseFailures {
		p.m = make(map[string]parseFailure)
	}
	if _, ok := p.m[m[1]]; !ok {
		p.m[m[1]] = parseFailure{firstLine: first, err: perr}
	}
}

// take returns and forgets the unparsable answer noted for branch.
func (p *parseFailures) take(branch string) (parseFailure, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, ok := p.m[branch]
	delete(p.m, branch)
	return f, ok
}

// faultyHeader names the first header of a message that does not parse on
// its own (each is tried after a valid status line), "" if none does.
func faultyHeader(data string) string {
	head, _, _ := strings.Cut(data, "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	p := sip.NewParser()
	for _, line := range lines[1:] {
		name, _, ok := strings.Cut(line, ":")
		if !ok || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			continue
		}
		msg := "SIP/2.0 200 OK\r\n" + line + "\r\nContent-Length: 0\r\n\r\n"
		if _, err := p.ParseSIP([]byte(msg)); err != nil {
			return strings.TrimSpace(name)
		}
	}
	return ""
}
