package replication

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/web"
)

// serveMounted serves h the way a node does: mounted on the node API
// (resilience/web, its 64 KiB body limit and buffered answers), on
// loopback. It returns the base URL.
func serveMounted(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := web.New(nil, web.Options{Token: testToken, Mounts: []web.Mount{{Prefix: Prefix, Handler: h}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil && !errors.Is(err, web.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// Through the node API: the default request size fits its body limit.
func TestFilesThroughNodeAPI(t *testing.T) {
	p := newPair(t, func(j *Job) { j.Delete = true })
	p.startReceiver()
	url := serveMounted(t, p.rc.Handler())
	r, err := New(Options{Jobs: []Job{p.job}, PeerURL: url, Token: testToken, HTTPClient: &http.Client{Transport: p.wire}})
	must(t, err)
	p.runner = r
	makeFiles(t, p.src, 300)
	big := make([]byte, 5<<20+7)
	rand.Read(big)
	must(t, os.WriteFile(filepath.Join(p.src, "big.bin"), big, 0o640))
	writeFile(t, filepath.Join(p.dst, "extra.conf"), "extra")
	res := p.mustRun()
	sameTree(t, p.src, p.dst)
	if res.FilesSent != 301 || res.FilesDeleted != 1 {
		t.Fatalf("result %+v", res)
	}
	res = p.mustRun()
	if p.wire.count(PathChunk) != 0 || res.FilesChanged != 0 {
		t.Fatalf("re-sync: %d uploads, %+v", p.wire.count(PathChunk), res)
	}
	// The node's own routes are not the receiver's, and the token is
	// checked by the receiver.
	p.token = "wrong-token-wrong-token"
	r2, err := New(Options{Jobs: []Job{p.job}, PeerURL: url, Token: p.token})
	must(t, err)
	if _, err := r2.RunNow(context.Background(), "conf"); err == nil {
		t.Fatal("wrong token accepted")
	}
}
