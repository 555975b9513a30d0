// Package echo is the pair's second path: a small authenticated UDP echo
// between the Main and the Standby, independent of gossip (its own
// sockets, its own port, and optionally its own network).
//
// Gossip alone cannot tell a dead peer from a lossy link: under 50 %
// loss memberlist sometimes misses enough probes to declare a live peer
// dead, and a Standby that took over then would move every call for
// nothing. So a node takes a gossip loss only when this path agrees. Each
// node probes the other every Every (20 ms by default) and answers the
// other's probes with its status and epoch; a Prober's Verdict is then:
//
//   - Alive: an answer came within the last Window (300 ms by default).
//     Under 50 % loss one way, the chance that 15 probes in a row all
//     fail is 3·10⁻⁵; a lossy link answers.
//   - Refused: the peer's host answered our last probe with ICMP port
//     unreachable: it runs, but its resman does not (kill -9). At once.
//   - Silent: no answer for Window, with at least Window/Every probes
//     sent since the last one: a frozen process (SIGSTOP), a dead host or
//     a cut link. A node whose own prober was held up (a loaded host) has
//     not asked enough to say, and an answer that comes late still counts:
//     it was made after the probe and proves the peer lives.
//
// The Prober probes all the time, not only once gossip has declared the
// peer dead: by then the last Window is already known, so the check adds
// nothing to the failover time.
//
// Probes and answers carry an HMAC-SHA256 made with a key derived from the
// gossip key (every key of the keyring is accepted, the primary signs):
// whoever does not hold the gossip key gets no answer, so the echo
// reflects nothing for strangers, and cannot fake a live peer. An answer
// counts only with the nonce of a probe this Prober sent within Window.
//
// An answer may also be vouched for: a second MAC under a key derived from
// a secret the pair holds apart from the gossip key (api.token). Liveness
// needs only the gossip key; a vouched answer is the peer's own word, as
// trustworthy as its API, and confirms a claim that would make an Active
// node give way in tens of milliseconds where the API, over TCP on a
// lossy link, can take seconds.
package echo

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Meta is what a node says about itself in its answers.
type Meta struct {
	Name    string
	Status  string // inactive, activating, active, deactivating
	Epoch   uint64
	Healthy bool
	Holding bool
}

const (
	magic      = "RSE1"
	kindProbe  = 'P'
	kindAnswer = 'A'
	nonceLen   = 16
	macLen     = 16
	maxName    = 64
	maxStatus  = 16
	// maxPacket bounds what is read: a probe or answer is far smaller.
	maxPacket = 256
)

// ErrBadPacket is any packet that is not a valid probe or answer under
// one of the keys: foreign traffic, a wrong key, a truncated datagram.
var ErrBadPacket = errors.New("echo: not a valid packet")

// deriveKey keeps the echo's MACs apart from anything else the gossip key
// is used for.
func deriveKey(gossipKey []byte) []byte {
	h := hmac.New(sha256.New, gossipKey)
	h.Write([]byte("resman second path v1"))
	return h.Sum(nil)
}

// NewVouchKey derives the key answers are vouched with from the pair's
// shared secret; nil for an empty secret (answers are not vouched for).
func NewVouchKey(secret string) []byte {
	if secret == "" {
		return nil
	}
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte("resman second path vouch v1"))
	return h.Sum(nil)
}

// Keys is the echo's keyring: the first key signs, all verify.
type Keys [][]byte

// NewKeys derives the echo keys from the gossip keyring.
func NewKeys(primary []byte, extra [][]byte) Keys {
	ks := Keys{deriveKey(primary)}
	for _, k := range extra {
		ks = append(ks, deriveKey(k))
	}
	return ks
}

func mac(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)[:macLen]
}

// seal appends the MAC of b under the signing key.
func (ks Keys) seal(b []byte) []byte { return append(b, mac(ks[0], b)...) }

// open checks b's MAC under any key and returns b without it.
func (ks Keys) open(b []byte) ([]byte, bool) {
	if len(b) < macLen {
		return nil, false
	}
	body, sum := b[:len(b)-macLen], b[len(b)-macLen:]
	for _, k := range ks {
		if hmac.Equal(mac(k, body), sum) {
			return body, true
		}
	}
	return nil, false
}

func newNonce() [nonceLen]byte {
	var n [nonceLen]byte
	rand.Read(n[:]) // crypto/rand.Read never fails (Go 1.24)
	return n
}

// probe is "RSE1" 'P' nonce name(len-prefixed) mac.
func encodeProbe(ks Keys, nonce [nonceLen]byte, from string) []byte {
	b := make([]byte, 0, 64)
	b = append(b, magic...)
	b = append(b, kindProbe)
	b = append(b, nonce[:]...)
	b = appendString(b, from, maxName)
	return ks.seal(b)
}

// answer is "RSE1" 'A' nonce epoch(8) flags(1) status name [vouch] mac,
// where vouch, sent with a vouch key, is the MAC of what precedes it under
// that key.
func encodeAnswer(ks Keys, vouch []byte, nonce [nonceLen]byte, m Meta) []byte {
	b := make([]byte, 0, 96)
	b = append(b, magic...)
	b = append(b, kindAnswer)
	b = append(b, nonce[:]...)
	b = binary.BigEndian.AppendUint64(b, m.Epoch)
	var flags byte
	if m.Healthy {
		flags |= 1
	}
	if m.Holding {
		flags |= 2
	}
	b = append(b, flags)
	b = appendString(b, m.Status, maxStatus)
	b = appendString(b, m.Name, maxName)
	if vouch != nil {
		b = append(b, mac(vouch, b)...)
	}
	return ks.seal(b)
}

func appendString(b []byte, s string, max int) []byte {
	if len(s) > max {
		s = s[:max]
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// packet is a decoded probe or answer.
type packet struct {
	kind  byte
	nonce [nonceLen]byte
	meta  Meta // for a probe, only Name
	// vouched is what the vouch covers, vouch the vouch (nil: none).
	vouched, vouch []byte
}

// vouchedBy says whether the packet carries a valid vouch under key.
func (p packet) vouchedBy(key []byte) bool {
	return key != nil && p.vouch != nil && hmac.Equal(mac(key, p.vouched), p.vouch)
}

// decode checks a packet under the keyring and reads it.
func decode(ks Keys, pkt []byte) (p packet, err error) {
	body, ok := ks.open(pkt)
	if !ok || len(body) < len(magic)+1+nonceLen || string(body[:len(magic)]) != magic {
		return p, ErrBadPacket
	}
	p.kind = body[len(magic)]
	copy(p.nonce[:], body[len(magic)+1:])
	rest := body[len(magic)+1+nonceLen:]
	m := &p.meta
	switch p.kind {
	case kindProbe:
		if m.Name, rest, ok = readString(rest, maxName); !ok || len(rest) != 0 {
			return packet{}, ErrBadPacket
		}
	case kindAnswer:
		if len(rest) < 9 {
			return packet{}, ErrBadPacket
		}
		m.Epoch, m.Healthy, m.Holding = binary.BigEndian.Uint64(rest), rest[8]&1 != 0, rest[8]&2 != 0
		rest = rest[9:]
		if m.Status, rest, ok = readString(rest, maxStatus); !ok {
			return packet{}, ErrBadPacket
		}
		if m.Name, rest, ok = readString(rest, maxName); !ok || (len(rest) != 0 && len(rest) != macLen) {
			return packet{}, ErrBadPacket
		}
		if len(rest) == macLen {
			p.vouched, p.vouch = body[:len(body)-macLen], rest
		}
	default:
		return packet{}, ErrBadPacket
	}
	return p, nil
}

func readString(b []byte, max int) (string, []byte, bool) {
	if len(b) < 1 || int(b[0]) > max || len(b) < 1+int(b[0]) {
		return "", nil, false
	}
	return string(b[1 : 1+b[0]]), b[1+b[0]:], true
}

// Verdict is what the second path says about the peer.
type Verdict int

const (
	// Silent: no answer for Window (or never).
	Silent Verdict = iota
	// Alive: an answer within the last Window.
	Alive
	// Refused: the peer's host refused the last probe (nothing listens:
	// its resman is not running).
	Refused
)

func (v Verdict) String() string {
	switch v {
	case Alive:
		return "alive"
	case Refused:
		return "refused"
	}
	return "silent"
}

// State is what a Prober has seen so far.
type State struct {
	LastAnswer time.Time // zero: never answered
	Meta       Meta      // of the last answer
	// Vouched: the last answer carried a valid vouch (see NewVouchKey):
	// its Meta is the peer's own word.
	Vouched   bool
	RefusedAt time.Time // the last refusal, zero if none since the last answer
	// Unanswered counts the probes sent since the last answer (or since
	// the start); Needed is how many must go unanswered before silence
	// counts: a node whose own prober was held up (a loaded host, a pause)
	// has not asked enough to know.
	Unanswered, Needed int
}

// Verdict judges s at now with the window w. A refusal newer than the
// last answer wins: the peer's process is gone, whatever it said before.
// Silence needs both: no answer for w, and enough probes sent since.
func (s State) Verdict(now time.Time, w time.Duration) Verdict {
	switch {
	case !s.RefusedAt.IsZero() && !s.RefusedAt.Before(s.LastAnswer):
		return Refused
	case !s.LastAnswer.IsZero() && now.Sub(s.LastAnswer) < w:
		return Alive
	case !s.LastAnswer.IsZero() && s.Unanswered < s.Needed:
		return Alive // not asked enough since the last answer to say
	}
	return Silent
}

// Describe says in a few words what the verdict means, for causes and the
// page.
func (s State) Describe(now time.Time, w time.Duration, peer string) string {
	switch s.Verdict(now, w) {
	case Alive:
		return fmt.Sprintf("answers over the second path (%s, %v ago)", peer, now.Sub(s.LastAnswer).Round(time.Millisecond))
	case Refused:
		return fmt.Sprintf("its host refuses the second path (%s): resman is not running there", peer)
	}
	if s.LastAnswer.IsZero() {
		return fmt.Sprintf("no answer over the second path (%s) since this node started", peer)
	}
	return fmt.Sprintf("no answer over the second path (%s) for %v", peer, now.Sub(s.LastAnswer).Round(time.Millisecond))
}
