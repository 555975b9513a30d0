package main

// BenchmarkSwitchover measures a planned switchover between two real nodes
// on loopback, from the command to the answer (the peer Active), back and
// forth:
//
//	go test -run '^$' -bench Switchover -benchtime 5x ./cmd/resman/
//	RESMAN_BENCH_BIG=1 go test -run '^$' -bench 'Switchover/sync-1GiB' -benchtime 2x ./cmd/resman/
//
// nosync: no data; sync-1000-new: 1,000 small new files cross first;
// sync-1000-unchanged: a sync with nothing to send (the manifest only);
// sync-1GiB-new: one new 1 GiB file (only with RESMAN_BENCH_BIG=1).

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

func BenchmarkSwitchover(b *testing.B) {
	cases := []struct {
		name string
		sync bool
		prep func(b *testing.B, root string, i int)
	}{
		{"nosync", false, nil},
		{"sync-1000-new", true, func(b *testing.B, root string, i int) {
			writeSmallFiles(b, filepath.Join(root, fmt.Sprint("run", i)), 1000)
		}},
		{"sync-1000-unchanged", true, nil},
		{"sync-1GiB-new", true, func(b *testing.B, root string, i int) {
			writeBigFile(b, filepath.Join(root, fmt.Sprint("big", i)), 1<<30)
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			if tc.name == "sync-1GiB-new" && os.Getenv("RESMAN_BENCH_BIG") == "" {
				b.Skip("set RESMAN_BENCH_BIG=1 to copy a 1 GiB file")
			}
			roots := [2]string{b.TempDir(), b.TempDir()}
			job := func(root string) string {
				return fmt.Sprintf("replication:\n  - {name: conf, every: 1h, files: {roots: [{name: etc, path: %s}], max_file_mib: 2048, max_total_mib: 20480}}\n", root)
			}
			if tc.name == "sync-1000-unchanged" {
				writeSmallFiles(b, roots[0], 1000)
				writeSmallFiles(b, roots[1], 0)
			}
			mainP, standbyP, _, _ := pairWith(b, job(roots[0]), job(roots[1]))
			testkit.Eventually(b, func() bool { return status(b, mainP.url).Status == "active" }, "main active")
			procs := [2]*proc{mainP, standbyP}
			if tc.name == "sync-1000-unchanged" {
				if _, stderr, code := cli(b, "replication", "run", "--node", mainP.url, "--reason", "bench: first copy"); code != 0 {
					b.Fatalf("first copy: %s", stderr)
				}
			}
			var d []time.Duration
			b.ResetTimer()
			for i := range b.N {
				from := i % 2 // alternate: main to standby, then back
				if tc.prep != nil {
					b.StopTimer()
					tc.prep(b, roots[from], i)
					b.StartTimer()
				}
				args := []string{"switchover", "--node", procs[from].url, "--reason", "bench", "--timeout", "10m"}
				if tc.sync {
					args = append(args, "--sync")
				}
				t0 := time.Now()
				if _, stderr, code := cli(b, args...); code != 0 {
					b.Fatalf("switchover %d: %s", i, stderr)
				}
				d = append(d, time.Since(t0))
			}
			slices.Sort(d)
			b.ReportMetric(float64(d[len(d)/2].Milliseconds()), "median-ms")
			b.ReportMetric(float64(d[len(d)-1].Milliseconds()), "max-ms")
		})
	}
}

func writeSmallFiles(b *testing.B, dir string, n int) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d.conf", i)), []byte(fmt.Sprintf("; file %d\n[section]\nkey=value\n", i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

func writeBigFile(b *testing.B, path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	rand.Read(chunk)
	for written := int64(0); written < size; written += int64(len(chunk)) {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
}
