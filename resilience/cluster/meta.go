package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/resman-pbx/resman/resilience"
)

// MaxMetaSize is the largest encoded Meta memberlist accepts.
const MaxMetaSize = 512

// metaVersion is the first byte of an encoded Meta. A newer encoding only
// appends fields, so an older reader decodes the fields it knows and skips
// the rest.
const metaVersion = 1

const (
	flagHealthy byte = 1 << iota
	flagLeaving
	flagHolding
	flagHeldByAdmin
)

// errMeta is wrapped by every decoding error.
var errMeta = errors.New("cluster: bad member meta")

// errMetaEpoch is wrapped by the decoding error of a meta whose epoch is
// above resilience.MaxEpoch: corrupt or forged, the whole meta is refused.
var errMetaEpoch = fmt.Errorf("%w: absurd epoch", errMeta)

// Meta is what each member gossips about itself.
type Meta struct {
	// Name is the member's node name. It is not encoded: the receiver fills
	// it from the gossip node name.
	Name string
	// Role is main, standby or witness; Status is active, inactive,
	// activating or deactivating; Version is the PBX stack version.
	Role, Status, Version string
	// Epoch of the member's last activation.
	Epoch uint64
	// Healthy is true when no critical local service is unhealthy.
	Healthy bool
	// Sees lists, sorted, the other members this member currently sees
	// alive. The cluster keeps it up to date for its own meta: SetMeta
	// ignores the value given. A witness's Sees is its verdict.
	Sees []string
	// Leaving is set by Run just before a graceful Leave, so that a Down
	// after it can be told from a crash or a partition. SetMeta ignores it.
	Leaving bool
	// Holding: the member will not go Active by itself (it stepped down
	// and waits out a hold, or an admin stopped it in auto mode).
	Holding bool
	// HeldByAdmin: an admin's Stop holds it until an admin's Start (an
	// older member never sets the flag).
	HeldByAdmin bool
	// FailoverUntil: a manual HA failover holds the member Inactive until
	// then (Unix seconds; 0: none), so its peer's readiness says so too.
	FailoverUntil int64
	// Calls in progress on the member's PBX, when CallsKnown (it counts
	// them: failover.calls).
	Calls      int
	CallsKnown bool
}

// SeesMember reports whether name is in m.Sees.
func (m Meta) SeesMember(name string) bool {
	_, ok := slices.BinarySearch(m.Sees, name)
	return ok
}

// Equal reports whether m and o are the same meta.
func (m Meta) Equal(o Meta) bool {
	return m.Name == o.Name && m.Role == o.Role && m.Status == o.Status &&
		m.Version == o.Version && m.Epoch == o.Epoch && m.Healthy == o.Healthy &&
		m.Leaving == o.Leaving && m.Holding == o.Holding && m.HeldByAdmin == o.HeldByAdmin && slices.Equal(m.Sees, o.Sees) &&
		m.FailoverUntil == o.FailoverUntil && m.Calls == o.Calls && m.CallsKnown == o.CallsKnown
}

// Clone returns a copy of m that shares no memory with it.
func (m Meta) Clone() Meta {
	m.Sees = slices.Clone(m.Sees)
	return m
}

// MarshalBinary encodes m compactly (without Name):
//
//	version(1) role status version(len-prefixed) epoch(uvarint) flags(1)
//	count(uvarint) sees...(len-prefixed) failover-until(uvarint)
//	calls+1(uvarint; 0: not counted)
//
// It fails when the result is longer than MaxMetaSize.
func (m Meta) MarshalBinary() ([]byte, error) {
	b := m.appendTo(make([]byte, 0, 64))
	if len(b) > MaxMetaSize {
		return nil, fmt.Errorf("cluster: meta is %d bytes, more than the %d gossip allows", len(b), MaxMetaSize)
	}
	return b, nil
}

func (m Meta) appendTo(b []byte) []byte {
	b = append(b, metaVersion)
	for _, s := range []string{m.Role, m.Status, m.Version} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, m.Epoch)
	var flags byte
	if m.Healthy {
		flags |= flagHealthy
	}
	if m.Leaving {
		flags |= flagLeaving
	}
	if m.Holding {
		flags |= flagHolding
	}
	if m.HeldByAdmin {
		flags |= flagHeldByAdmin
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(m.Sees)))
	for _, s := range m.Sees {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(max(m.FailoverUntil, 0)))
	var calls uint64
	if m.CallsKnown {
		calls = uint64(max(m.Calls, 0)) + 1
	}
	return binary.AppendUvarint(b, calls)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalBinary decodes what MarshalBinary encoded. Name is left as it
// was. A meta with an epoch above resilience.MaxEpoch is refused whole
// (m is left as it was): no field of a corrupt or forged meta is taken.
func (m *Meta) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v < metaVersion {
		return fmt.Errorf("%w: version %d", errMeta, v)
	}
	var out Meta
	out.Name = m.Name
	out.Role = d.string()
	out.Status = d.string()
	out.Version = d.string()
	out.Epoch = d.uvarint()
	flags := d.byte()
	out.Healthy = flags&flagHealthy != 0
	out.Leaving = flags&flagLeaving != 0
	out.Holding = flags&flagHolding != 0
	out.HeldByAdmin = flags&flagHeldByAdmin != 0
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.fail("sees count %d", n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		out.Sees = append(out.Sees, d.string())
	}
	if d.err == nil && len(d.b) > 0 { // absent from an older member's meta
		out.FailoverUntil = int64(min(d.uvarint(), 1<<62))
	}
	if d.err == nil && len(d.b) > 0 { // absent from an older member's meta
		if c := min(d.uvarint(), 1<<31); c > 0 {
			out.Calls, out.CallsKnown = int(c-1), true
		}
	}
	if d.err != nil {
		return d.err
	}
	if err := resilience.ValidEpoch(out.Epoch); err != nil {
		return fmt.Errorf("%w: %w", errMetaEpoch, err)
	}
	slices.Sort(out.Sees)
	*m = out
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errMeta, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("string of %d bytes in %d", n, len(d.b))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// fitMeta encodes m within limit bytes: when it is too long it drops Sees
// entries from the end, then shortens Version. It reports whether anything
// was dropped.
func fitMeta(m Meta, limit int) ([]byte, bool) {
	b := m.appendTo(nil)
	if len(b) <= limit {
		return b, false
	}
	for len(m.Sees) > 0 && len(b) > limit {
		m.Sees = m.Sees[:len(m.Sees)-1]
		b = m.appendTo(nil)
	}
	for len(m.Version) > 0 && len(b) > limit {
		m.Version = m.Version[:len(m.Version)-min(len(m.Version), len(b)-limit)]
		b = m.appendTo(nil)
	}
	if len(b) > limit {
		return nil, true
	}
	return b, true
}
