package audit

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
)

// Every test here opens damaged files in the test process itself: a file
// that reached bbolt's memory map past its end would kill the process with
// SIGBUS, so a test that passes proves the open did not crash.

// writeLog makes a real audit log with n entries (epochs 1..n, each with a
// detail of size bytes) and returns its path and its page size.
func writeLog(t *testing.T, n, size int) (string, int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if _, err := l.Append(api.AuditEntry{Who: "alice", Action: "stop services", Outcome: api.OutcomeOK,
			Epoch: uint64(i), Detail: strings.Repeat("x", size)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, int(binary.NativeEndian.Uint32(raw[pageHeaderSize+8:]))
}

// highWater is the page count the newest valid meta claims.
func highWater(t *testing.T, path string) int {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := int(binary.NativeEndian.Uint32(raw[pageHeaderSize+8:]))
	m0, m1 := raw[pageHeaderSize:], raw[ps+pageHeaderSize:]
	m := m0
	if binary.NativeEndian.Uint64(m1[48:]) > binary.NativeEndian.Uint64(m0[48:]) {
		m = m1
	}
	return int(binary.NativeEndian.Uint64(m[40:]))
}

// wantCorrupt asserts err refuses the file at path as damaged, naming it,
// saying what is wrong (want) and what to do.
func wantCorrupt(t *testing.T, err error, path, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s refused as damaged, got no error", path)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("error does not match ErrCorrupt: %v", err)
	}
	msg := err.Error()
	for _, s := range []string{path, want, "--reset", "backup"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not say %q", msg, s)
		}
	}
}

func TestOpenRefusesAFileCutTo8KiB(t *testing.T) {
	for _, n := range []int{3, 50} {
		path, ps := writeLog(t, n, 200)
		if err := os.Truncate(path, 8<<10); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path)
		if ps >= 8<<10 {
			// Both metas are gone with a page size of 8 KiB or more.
			wantCorrupt(t, err, path, "no valid header")
			continue
		}
		wantCorrupt(t, err, path, "cut short")
	}
}

// Cut at a page boundary and in the middle of a page, with both metas
// intact: the file ends before the last page its header claims.
func TestOpenRefusesAFileCutShortWithValidMetas(t *testing.T) {
	for _, cut := range []string{"page boundary", "mid page", "one byte"} {
		t.Run(cut, func(t *testing.T) {
			path, ps := writeLog(t, 200, 400)
			hw := highWater(t, path)
			if hw < 6 {
				t.Fatalf("want a log of more than 6 pages to cut, got %d", hw)
			}
			size := map[string]int{"page boundary": (hw - 2) * ps, "mid page": (hw-1)*ps + ps/2, "one byte": hw*ps - 1}[cut]
			if err := os.Truncate(path, int64(size)); err != nil {
				t.Fatal(err)
			}
			_, err := Open(path)
			wantCorrupt(t, err, path, "cut short")
			if err != nil && !strings.Contains(err.Error(), "only") {
				t.Errorf("error does not give the sizes: %v", err)
			}
		})
	}
}

func TestOpenRefusesGarbledMetas(t *testing.T) {
	path, ps := writeLog(t, 3, 10)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// One byte of the root bucket in each meta: the checksum no longer
	// matches.
	raw[pageHeaderSize+16] ^= 0xff
	raw[ps+pageHeaderSize+16] ^= 0xff
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path)
	wantCorrupt(t, err, path, "no valid header")
	if err != nil && !strings.Contains(err.Error(), "checksum") {
		t.Errorf("error does not say why the headers are invalid: %v", err)
	}
}

func TestOpenRefusesAFileThatIsNotABboltFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	wantCorrupt(t, err, path, "no valid header")
	if err != nil && !strings.Contains(err.Error(), "magic") {
		t.Errorf("error does not say why the headers are invalid: %v", err)
	}
	// Shorter than one meta.
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path)
	wantCorrupt(t, err, path, "no valid header")
}

// bbolt keeps two metas so that a torn write of one leaves the other: one
// garbled meta is not damage, whichever it is, and the entries it covers
// are all there.
func TestOpenTakesTheOtherMetaWhenOneIsGarbled(t *testing.T) {
	for _, which := range []int{0, 1} {
		path, ps := writeLog(t, 3, 10)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		raw[which*ps+pageHeaderSize] ^= 0xff // the magic
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := Open(path)
		if err != nil {
			t.Fatalf("meta %d garbled: %v", which, err)
		}
		es, err := l.List(10, 0)
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		// The newer meta covers 3 entries, the older one 2 (each append
		// is one transaction).
		if len(es) < 2 {
			t.Fatalf("meta %d garbled: %d entries, want the log up to the other meta", which, len(es))
		}
	}
}

// What the check of the file cannot see (a garbled page inside it) ends in
// an error from Open, not in a crash.
func TestOpenRefusesAGarbledFreelistPage(t *testing.T) {
	path, ps := writeLog(t, 3, 10)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := raw[pageHeaderSize:]
	if binary.NativeEndian.Uint64(raw[ps+pageHeaderSize+48:]) > binary.NativeEndian.Uint64(m[48:]) {
		m = raw[ps+pageHeaderSize:]
	}
	fl := int(binary.NativeEndian.Uint64(m[32:]))
	for i := range ps {
		raw[fl*ps+i] = 0xa5
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path)
	wantCorrupt(t, err, path, "freelist")
}

// The safety net under the check: a fault in bbolt's memory map (the
// SIGBUS of the 8 KiB file) becomes an error when the check is bypassed.
func TestOpenBoltTurnsAFaultIntoAnError(t *testing.T) {
	path, ps := writeLog(t, 3, 10)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := raw[pageHeaderSize:]
	if binary.NativeEndian.Uint64(raw[ps+pageHeaderSize+48:]) > binary.NativeEndian.Uint64(m[48:]) {
		m = raw[ps+pageHeaderSize:]
	}
	// bbolt maps at least 32 KiB: the freelist page must be inside the
	// map and past the end of the file for the read of it to fault.
	if fl := int(binary.NativeEndian.Uint64(m[32:])); fl < 2 || (fl+1)*ps > 32<<10 {
		t.Skipf("the freelist is on page %d of %d bytes, not inside bbolt's first 32 KiB map: no fault to provoke", fl, ps)
	}
	if err := os.Truncate(path, int64(2*ps)); err != nil {
		t.Fatal(err)
	}
	db, _, err := openBolt(path, false)
	if err == nil {
		db.Close()
		t.Fatal("a file cut to its two metas opened without error")
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "faulted") {
		t.Fatalf("want a fault error naming %s, got %v", path, err)
	}
}

// A file of 0 bytes is what bbolt makes a new database of: Open does so
// (whether a new log is right next to the node's state is the node's
// rule, not the log's).
func TestOpenInitializesAnEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if es, err := l.List(10, 0); err != nil || len(es) != 0 {
		t.Fatalf("new log: %v, %v", es, err)
	}
}

func TestMaxEpochAndInspect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	// No file, and a file of 0 bytes: no history, and nothing created.
	if h, err := Inspect(path); err != nil || h != (History{}) {
		t.Fatalf("missing file: %+v, %v", h, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Inspect created the file: %v", err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if h, err := Inspect(path); err != nil || h != (History{}) {
		t.Fatalf("empty file: %+v, %v", h, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("Inspect wrote to the empty file: %v, %v", fi, err)
	}

	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := l.MaxEpoch(); err != nil || e != 0 {
		t.Fatalf("new log: max epoch %d, %v", e, err)
	}
	// Not the last one: the highest.
	for _, e := range []uint64{2, 7, 4} {
		if _, err := l.Append(api.AuditEntry{Who: "bob", Epoch: e}); err != nil {
			t.Fatal(err)
		}
	}
	if e, err := l.MaxEpoch(); err != nil || e != 7 {
		t.Fatalf("max epoch %d, %v; want 7", e, err)
	}
	l.Close()
	if h, err := Inspect(path); err != nil || h != (History{Entries: 3, MaxEpoch: 7}) {
		t.Fatalf("Inspect = %+v, %v; want 3 entries up to epoch 7", h, err)
	}

	// A damaged file is refused by Inspect as by Open: here meta 0 is
	// whole, and the file ends after it.
	if err := os.Truncate(path, 100); err != nil {
		t.Fatal(err)
	}
	_, err = Inspect(path)
	wantCorrupt(t, err, path, "cut short")
}

// Inspect reads only: it must not wait for, nor take, the lock of a running
// node beyond its timeout.
func TestInspectWhileOpenIsRefusedAsLocked(t *testing.T) {
	path, _ := writeLog(t, 1, 10)
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := Inspect(path); err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("Inspect of an open log: want the lock error, got %v", err)
	}
}

// A log cut short while the node has it open (an admin's mistake, a
// restore over it) makes reads and writes fail with an error that names
// the file, instead of killing the process with SIGBUS: the node keeps
// running and says its audit log cannot be written.
func TestLogCutWhileOpenFailsWithoutCrashing(t *testing.T) {
	l, path := openCutWhileOpen(t)
	_, appendErr := l.Append(api.AuditEntry{Who: "test", Action: "after the cut"})
	_, listErr := l.List(500, 0)
	_, epochErr := l.MaxEpoch()
	for what, err := range map[string]error{"Append": appendErr, "List": listErr, "MaxEpoch": epochErr} {
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "cut from") {
			t.Errorf("%s on a log cut while open: %v, want a CorruptError naming %s and the cut", what, err, path)
		}
	}
}

// The net under the size check: a cut it cannot see (made between the
// check and bbolt's read) faults inside bbolt's memory map, which can
// leave bbolt's locks held; the fault is an error, and every later call
// answers it without touching bbolt again rather than hang.
func TestLogFaultWhileOpenBreaksItForGood(t *testing.T) {
	l, _ := openCutWhileOpen(t)
	l.size.Store(0) // as if the cut came after the check
	_, err := l.List(500, 0)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "faulted") {
		t.Fatalf("List over a cut file: %v, want a fault turned into a CorruptError", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Append(api.AuditEntry{Who: "test", Action: "after the fault"})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "faulted") {
			t.Errorf("Append after the fault: %v, want the same CorruptError", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Append after a fault hangs (bbolt's locks held by the faulted call)")
	}
}

// openCutWhileOpen opens a log, fills it past its first pages, and cuts
// the file to 4 KiB under it (the log is closed at the test's end).
func openCutWhileOpen(t *testing.T) (*Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for i := range 200 {
		if _, err := l.Append(api.AuditEntry{Who: "test", Action: "fill", Reason: strings.Repeat("x", 200), Epoch: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	return l, path
}
