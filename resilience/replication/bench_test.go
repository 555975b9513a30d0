package replication

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// Benchmarks of files jobs on loopback, through the node API (the
// receiver mounted on resilience/web, as on a Standby). See README.md:
//
//	go test -run '^$' -bench . -benchtime 5x ./resilience/replication/
//	RESMAN_BENCH_BIG=1 go test -run '^$' -bench BigFile -benchtime 1x ./resilience/replication/

func benchPair(b *testing.B) *pair {
	b.Helper()
	p := newPair(b, func(j *Job) { j.Limits = Limits{MaxFileSize: 2 << 30} })
	rc, err := NewReceiver(ReceiverOptions{Jobs: []Job{p.recvJob}, Token: testToken})
	must(b, err)
	p.rc = rc
	url := serveMounted(b, rc.Handler())
	p.runner, err = New(Options{Jobs: []Job{p.job}, PeerURL: url, Token: testToken, HTTPClient: &http.Client{Transport: p.wire}})
	must(b, err)
	return p
}

func (p *pair) benchRun(b *testing.B) Result {
	b.Helper()
	p.wire.reset()
	res, err := p.runner.RunNow(context.Background(), "conf")
	if err != nil {
		b.Fatal(err)
	}
	return res
}

// BenchmarkResyncNoChange: a re-sync of 1,000 unchanged files sends the
// manifest only.
func BenchmarkResyncNoChange(b *testing.B) {
	p := benchPair(b)
	makeFiles(b, p.src, 1000)
	p.benchRun(b)
	var res Result
	for b.Loop() {
		res = p.benchRun(b)
	}
	if n := p.wire.count(PathChunk); n != 0 {
		b.Fatalf("%d uploads", n)
	}
	b.ReportMetric(float64(res.BytesSent), "wire-bytes/op")
	b.ReportMetric(float64(p.wire.count(PathChunk)), "uploads/op")
	b.ReportMetric(float64(p.wire.count(PathBegin)+p.wire.count(PathManifest)+p.wire.count(PathCommit)), "requests/op")
}

// BenchmarkFiles1000: 1,000 small files to an empty Standby.
func BenchmarkFiles1000(b *testing.B) {
	p := benchPair(b)
	makeFiles(b, p.src, 1000)
	var res Result
	for b.Loop() {
		b.StopTimer()
		must(b, os.RemoveAll(p.dst))
		must(b, os.MkdirAll(p.dst, 0o755))
		b.StartTimer()
		res = p.benchRun(b)
	}
	if res.FilesSent != 1000 {
		b.Fatalf("sent %d", res.FilesSent)
	}
	b.ReportMetric(float64(res.BytesSent), "wire-bytes/op")
	b.ReportMetric(float64(p.wire.count(PathChunk)), "uploads/op")
}

// BenchmarkBigFile1GiB: one 1 GiB file (sparse on the Main) to an empty
// Standby, through the node API (64 KiB requests) and, for comparison,
// straight to the receiver with 8 MiB requests (what raising the node
// API's body limit would give). Only with RESMAN_BENCH_BIG=1.
func BenchmarkBigFile1GiB(b *testing.B) {
	if os.Getenv("RESMAN_BENCH_BIG") != "1" {
		b.Skip("set RESMAN_BENCH_BIG=1 to copy a 1 GiB file")
	}
	for _, c := range []struct {
		name   string
		direct bool
		req    int
	}{{"node-api-64KiB", false, 0}, {"direct-8MiB", true, 8 << 20}} {
		b.Run(c.name, func(b *testing.B) {
			p := benchPair(b)
			if c.direct {
				rc, err := NewReceiver(ReceiverOptions{Jobs: []Job{p.recvJob}, Token: testToken, MaxRequestBytes: c.req})
				must(b, err)
				srv := httptest.NewServer(rc.Handler())
				b.Cleanup(srv.Close)
				p.runner, err = New(Options{Jobs: []Job{p.job}, PeerURL: srv.URL, Token: testToken,
					HTTPClient: &http.Client{Transport: p.wire}, MaxRequestBytes: c.req})
				must(b, err)
			}
			f, err := os.Create(filepath.Join(p.src, "big.bin"))
			must(b, err)
			must(b, f.Truncate(1<<30))
			// Some data every 64 MiB, so that the file is not all zeros.
			for off := int64(0); off < 1<<30; off += 64 << 20 {
				_, err := f.WriteAt([]byte("resman"), off)
				must(b, err)
			}
			must(b, f.Close())
			b.SetBytes(1 << 30)
			var res Result
			for b.Loop() {
				b.StopTimer()
				must(b, os.RemoveAll(filepath.Join(p.dst, "big.bin")))
				b.StartTimer()
				res = p.benchRun(b)
			}
			if res.FilesSent != 1 {
				b.Fatalf("sent %d", res.FilesSent)
			}
			b.ReportMetric(float64(p.wire.count(PathChunk)), "uploads/op")
		})
	}
}
