package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/resman-pbx/resman/resilience"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []Meta{
		{},
		{Role: "main", Status: "active", Version: "2025.10.3", Epoch: resilience.MaxEpoch, Healthy: true, Sees: []string{"standby", "witness"}},
		{Role: "witness", Status: "inactive", Sees: []string{"a"}, Leaving: true},
		{Role: "main", Status: "inactive", Epoch: 7, Holding: true},
	} {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got := Meta{Name: "kept"}
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		m.Name = "kept"
		if !got.Equal(m) {
			t.Errorf("round trip of %+v = %+v", m, got)
		}
	}
}

func TestMetaIsCompact(t *testing.T) {
	m := Meta{Role: "standby", Status: "deactivating", Version: "2025.10.3", Epoch: 12345, Healthy: true,
		Sees: []string{"xivo-main-paris-01", "resman-witness-01"}}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 80 {
		t.Errorf("meta is %d bytes", len(b))
	}
}

func TestMetaTooLong(t *testing.T) {
	var sees []string
	for i := range 40 {
		sees = append(sees, fmt.Sprintf("member-with-a-long-name-%02d", i))
	}
	m := Meta{Role: "main", Status: "active", Version: "1", Sees: sees}
	if _, err := m.MarshalBinary(); err == nil {
		t.Fatal("no error for a meta over the limit")
	}
	b, trimmed := fitMeta(m, MaxMetaSize)
	if !trimmed || len(b) > MaxMetaSize {
		t.Fatalf("fitMeta: %d bytes, trimmed %t", len(b), trimmed)
	}
	var got Meta
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if got.Role != "main" || got.Status != "active" || len(got.Sees) == 0 || len(got.Sees) >= 40 {
		t.Errorf("trimmed meta = %+v", got)
	}

	long := Meta{Role: "main", Version: strings.Repeat("v", 600)}
	b, _ = fitMeta(long, MaxMetaSize)
	if len(b) > MaxMetaSize || len(b) == 0 {
		t.Errorf("fitMeta of a long version: %d bytes", len(b))
	}
}

func TestMetaDecodeErrors(t *testing.T) {
	good, _ := Meta{Role: "main", Sees: []string{"b"}}.MarshalBinary()
	// The last two fields (failover-until, calls: one byte each here) are
	// absent from an older member's meta: cut before them, the meta still
	// decodes.
	for i := range len(good) - 2 {
		var m Meta
		if err := m.UnmarshalBinary(good[:i]); !errors.Is(err, errMeta) {
			t.Errorf("truncated at %d: err = %v", i, err)
		}
	}
	var old Meta
	if err := old.UnmarshalBinary(good[:len(good)-2]); err != nil || old.Role != "main" || old.FailoverUntil != 0 || old.CallsKnown {
		t.Errorf("an older meta without failover-until: %+v, %v", old, err)
	}
	if err := old.UnmarshalBinary(good[:len(good)-1]); err != nil || old.Role != "main" || old.CallsKnown {
		t.Errorf("an older meta without calls: %+v, %v", old, err)
	}
	for _, c := range []Meta{{Role: "main", CallsKnown: true}, {Role: "main", Calls: 41, CallsKnown: true}} {
		b, _ := c.MarshalBinary()
		var got Meta
		if err := got.UnmarshalBinary(b); err != nil || got.Calls != c.Calls || !got.CallsKnown {
			t.Errorf("calls round trip of %d: %+v, %v", c.Calls, got, err)
		}
	}
	withFailover, _ := Meta{Role: "main", Holding: true, FailoverUntil: 1796601600}.MarshalBinary()
	if err := old.UnmarshalBinary(withFailover); err != nil || old.FailoverUntil != 1796601600 || !old.Holding {
		t.Errorf("failover-until round trip: %+v, %v", old, err)
	}
	var m Meta
	if err := m.UnmarshalBinary([]byte{0}); !errors.Is(err, errMeta) {
		t.Errorf("version 0: err = %v", err)
	}
	// A newer version appends fields: the known prefix still decodes.
	newer := append([]byte{metaVersion + 1}, good[1:]...)
	newer = append(newer, 0xff, 0x01)
	if err := m.UnmarshalBinary(newer); err != nil || m.Role != "main" {
		t.Errorf("newer version: %+v, %v", m, err)
	}
}

// A meta whose epoch is above the maximum is refused whole: corrupt or
// forged, none of its fields is taken.
func TestMetaAbsurdEpochIsRefused(t *testing.T) {
	for _, epoch := range []uint64{resilience.MaxEpoch + 1, 1<<64 - 1} {
		b, err := Meta{Role: "main", Status: "inactive", Epoch: epoch, Healthy: true}.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		before := Meta{Name: "main", Role: "main", Status: "active", Epoch: 4, Sees: []string{"standby"}}
		m := before.Clone()
		err = m.UnmarshalBinary(b)
		if !errors.Is(err, errMeta) || !errors.Is(err, errMetaEpoch) || !strings.Contains(err.Error(), fmt.Sprint(epoch)) {
			t.Errorf("epoch %d: err = %v, want a refusal naming the epoch", epoch, err)
		}
		if !m.Equal(before) {
			t.Errorf("epoch %d: the refused meta changed the view: %+v", epoch, m)
		}
	}
}

func FuzzMetaDecode(f *testing.F) {
	good, _ := Meta{Role: "main", Status: "active", Epoch: 7, Healthy: true, Sees: []string{"a", "b"}}.MarshalBinary()
	f.Add(good)
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Meta
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := m.MarshalBinary()
		if err != nil {
			return // decoded fields can be re-encoded longer than the limit
		}
		var m2 Meta
		if err := m2.UnmarshalBinary(again); err != nil || !m2.Equal(m) {
			t.Fatalf("re-decode of %+v: %+v, %v", m, m2, err)
		}
	})
}
