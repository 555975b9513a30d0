package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/hashicorp/memberlist"
)

// A member's keyring: the primary key gossip is encrypted with, and the
// extra keys also accepted to decrypt it. memberlist tries every key of the
// ring on what arrives, the primary first, and encrypts with the primary
// only. Changing the ring at run time is how a key is rotated without a gap
// (see SetKeys).
//
// memberlist's Keyring is safe to change while gossip runs: its methods
// take its lock, and AddKey and UseKey install a fresh slice of keys, so a
// decryption under way keeps iterating the keys it read. RemoveKey is the
// exception: it shifts the keys after the removed one in place, in the
// array a decryption under way may be reading (a data race). Removing the
// last key shifts nothing, so SetKeys only ever removes the last key of
// the ring (see removeKeys).

// Fingerprint names a gossip key without revealing it: the first 8 hex
// digits of the SHA-256 of its bytes, as printed by
// `printf %s "$KEY" | base64 -d | sha256sum | cut -c1-8`. 32 bits of a hash
// say nothing usable about a random key of 128 bits or more; they tell
// which key a member uses, to follow a rotation in the logs and metrics.
func Fingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// KeyInfo is a member's keyring, by fingerprints: never the keys.
type KeyInfo struct {
	// Primary is the key gossip is encrypted with.
	Primary string
	// Extra are the other keys accepted, in the ring's order.
	Extra []string
}

// Count is the number of keys installed, the primary included.
func (k KeyInfo) Count() int { return 1 + len(k.Extra) }

func (k KeyInfo) String() string {
	s := "primary " + k.Primary
	if len(k.Extra) > 0 {
		s += fmt.Sprintf(", also accepted %v", k.Extra)
	}
	return s
}

// checkKeys checks a primary key and the extra keys: 16, 24 or 32 bytes
// each. An extra key equal to the primary, or given twice, is dropped by
// ringKeys.
func checkKeys(primary []byte, extra [][]byte) []string {
	var bad []string
	switch len(primary) {
	case 16, 24, 32:
	case 0:
		bad = append(bad, "gossip key missing: 16, 24 or 32 bytes, the same on every member")
	default:
		bad = append(bad, fmt.Sprintf("gossip key of %d bytes: must be 16, 24 or 32", len(primary)))
	}
	for i, k := range extra {
		if err := memberlist.ValidateKey(k); err != nil {
			bad = append(bad, fmt.Sprintf("extra gossip key %d of %d bytes: must be 16, 24 or 32", i, len(k)))
		}
	}
	return bad
}

// ringKeys lists the wanted ring, primary first, each key once, as copies
// the caller may not change afterwards.
func ringKeys(primary []byte, extra [][]byte) [][]byte {
	out := [][]byte{slices.Clone(primary)}
	for _, k := range extra {
		if !containsKey(out, k) {
			out = append(out, slices.Clone(k))
		}
	}
	return out
}

func containsKey(keys [][]byte, k []byte) bool {
	return slices.ContainsFunc(keys, func(x []byte) bool { return bytes.Equal(x, k) })
}

// Keys returns this member's keyring by fingerprints.
func (c *Cluster) Keys() KeyInfo {
	keys := c.keyring.GetKeys()
	info := KeyInfo{}
	for i, k := range keys {
		if i == 0 {
			info.Primary = Fingerprint(k)
		} else {
			info.Extra = append(info.Extra, Fingerprint(k))
		}
	}
	return info
}

// SetKeys changes the keyring while gossip runs, without restarting it:
// afterwards gossip is encrypted with primary, and primary and extra are
// the keys accepted. It works in the order that never refuses what was
// accepted and is still wanted: the new keys are installed first, then the
// primary is switched, and only then are the keys no longer wanted
// removed. It returns whether the ring changed.
//
// A rotation without a gap is three calls on every member, one member at a
// time: the new key as an extra key; once every member has it, the new key
// as primary and the old one as extra; once every member encrypts with the
// new key, the new key alone.
func (c *Cluster) SetKeys(primary []byte, extra [][]byte) (changed bool, err error) {
	if bad := checkKeys(primary, extra); len(bad) > 0 {
		return false, fmt.Errorf("%w: %s", ErrInvalid, bad)
	}
	want := ringKeys(primary, extra)
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	before := c.Keys()
	kr := c.keyring
	for _, k := range want {
		if !containsKey(kr.GetKeys(), k) {
			// Cannot fail: the key is valid.
			if err := kr.AddKey(k); err != nil {
				return changed, fmt.Errorf("cluster: install a gossip key: %w", err)
			}
			changed = true
		}
	}
	if !bytes.Equal(kr.GetPrimaryKey(), want[0]) {
		// Cannot fail: the key was just installed.
		if err := kr.UseKey(want[0]); err != nil {
			return changed, fmt.Errorf("cluster: use the primary gossip key: %w", err)
		}
		changed = true
	}
	if removed, err := c.removeKeys(want); err != nil {
		return true, err
	} else if removed {
		changed = true
	}
	if changed {
		after := c.Keys()
		c.met.setKeys(after)
		c.log.Info("gossip keys changed", "was", before.String(), "now", after.String(), "keys", after.Count())
	}
	return changed, nil
}

// removeKeys removes from the ring the keys that are not in want, only
// ever removing the last key of the ring (see the top of this file). When
// a key to remove has wanted keys after it, those are removed too, from
// the last, and installed again at once: for that instant a packet
// encrypted with one of them is refused, as if it were lost on the way,
// which the probes' retries absorb. In a rotation this does not happen
// (the key removed is the last one), unless more extra keys are kept.
// Called with keyMu held.
func (c *Cluster) removeKeys(want [][]byte) (bool, error) {
	kr := c.keyring
	// GetKeys returns the ring's own slice: copy it before changing the ring.
	keys := slices.Clone(kr.GetKeys())
	first := slices.IndexFunc(keys, func(k []byte) bool { return !containsKey(want, k) })
	if first < 0 {
		return false, nil
	}
	// keys[0] is the primary, which is wanted, so first >= 1.
	tail := keys[first:]
	for i := len(tail) - 1; i >= 0; i-- {
		if err := kr.RemoveKey(tail[i]); err != nil {
			return true, fmt.Errorf("cluster: remove a gossip key: %w", err)
		}
	}
	for _, k := range tail {
		if containsKey(want, k) {
			if err := kr.AddKey(k); err != nil {
				return true, fmt.Errorf("cluster: install a gossip key again: %w", err)
			}
		}
	}
	return true, nil
}
