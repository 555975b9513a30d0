package cluster

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// rejectWarnEvery bounds the warnings about one address with a wrong key:
// a member with the wrong key sends several packets a second.
const rejectWarnEvery = time.Minute

// logBridge receives memberlist's log lines ("[LEVEL] memberlist: text"),
// logs them at debug and turns the ones that show a wrong gossip key into
// a warning and a count.
type logBridge struct {
	log      *slog.Logger
	rejected func()

	mu     sync.Mutex
	warned map[string]time.Time
}

func newLogBridge(log *slog.Logger, rejected func()) *logBridge {
	return &logBridge{log: log, rejected: rejected, warned: map[string]time.Time{}}
}

// Write is called by log.Logger once per line.
func (b *logBridge) Write(p []byte) (int, error) {
	for line := range strings.SplitSeq(strings.TrimRight(string(p), "\n"), "\n") {
		b.line(line)
	}
	return len(p), nil
}

func (b *logBridge) line(line string) {
	level, text := splitLevel(line)
	if dir, addr, ok := keyRejection(text); ok {
		b.reject(dir, addr)
	}
	if b.log.Enabled(context.Background(), slog.LevelDebug) {
		b.log.Debug(text, "source", "memberlist", "level_memberlist", level)
	}
}

// splitLevel splits "[ERR] memberlist: text" into "ERR" and "text".
func splitLevel(line string) (level, text string) {
	text = line
	if strings.HasPrefix(text, "[") {
		if i := strings.IndexByte(text, ']'); i > 0 {
			level, text = text[1:i], strings.TrimSpace(text[i+1:])
		}
	}
	text = strings.TrimPrefix(text, "memberlist: ")
	return level, text
}

// keyRejection recognises the memberlist lines that mean a member could not
// decrypt what another sent: dir is "from" when this node refused incoming
// gossip, "to" when the other side refused ours (a join or a push/pull).
func keyRejection(text string) (dir, addr string, ok bool) {
	switch {
	case strings.HasPrefix(text, "Decrypt packet failed:"):
		return "from", fromAddr(text), true
	case strings.HasPrefix(text, "failed to receive:") && isDecryptError(text):
		return "from", fromAddr(text), true
	case strings.HasPrefix(text, "failed to join ") && isDecryptError(text):
		rest := strings.TrimPrefix(text, "failed to join ")
		addr, _, _ = strings.Cut(rest, ": ")
		return "to", addr, true
	case strings.HasPrefix(text, "Push/Pull with ") && isDecryptError(text):
		rest := strings.TrimPrefix(text, "Push/Pull with ")
		addr, _, _ = strings.Cut(rest, " ")
		return "to", addr, true
	}
	return "", "", false
}

// isDecryptError reports whether text holds one of the memberlist errors a
// wrong or missing gossip.key causes.
func isDecryptError(text string) bool {
	for _, e := range [...]string{
		"no installed keys could decrypt the message",
		"encryption is configured but remote state is not encrypted",
		"remote state is encrypted and encryption is not configured",
		"payload is too small to decrypt",
		"cannot decrypt empty payload",
	} {
		if strings.Contains(text, e) {
			return true
		}
	}
	return false
}

// fromAddr extracts ADDR from a line ending in "from=ADDR".
func fromAddr(text string) string {
	i := strings.LastIndex(text, "from=")
	if i < 0 {
		return "unknown"
	}
	addr, _, _ := strings.Cut(text[i+len("from="):], " ")
	return addr
}

func (b *logBridge) reject(dir, addr string) {
	b.rejected()
	key := dir + " " + addr
	now := time.Now()
	b.mu.Lock()
	last, seen := b.warned[key]
	warn := !seen || now.Sub(last) >= rejectWarnEvery
	if warn {
		b.warned[key] = now
	}
	b.mu.Unlock()
	if warn {
		b.log.Warn("gossip "+dir+" "+addr+" rejected: wrong gossip.key?",
			"peer", addr, "hint", "each member must accept the key the others encrypt with: the same gossip.key, or during a rotation the other's key in gossip.extra_keys; further rejections from this address are counted in resman_gossip_rejected_total and logged at most once a minute")
	}
}
