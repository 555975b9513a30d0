package replication

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

const testToken = "test-token-0123456789abcdef"

// wire counts what the sender puts on the wire, by route, and may break a
// request.
type wire struct {
	next http.RoundTripper

	mu       sync.Mutex
	requests map[string]int   // by path
	bodies   map[string]int64 // request body bytes by path
	paths    []string         // ?path= of each chunk request, in order
	// cut, when set, is asked for each request: a value n >= 0 makes the
	// request body fail after n bytes.
	cut func(r *http.Request) int64
}

func newWire() *wire {
	return &wire{next: http.DefaultTransport, requests: map[string]int{}, bodies: map[string]int64{}}
}

func (w *wire) RoundTrip(r *http.Request) (*http.Response, error) {
	var n int64
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		n = int64(len(b))
		var body io.Reader = bytes.NewReader(b)
		if w.cut != nil {
			if at := w.cut(r); at >= 0 {
				body = io.MultiReader(bytes.NewReader(b[:at]), errReader{})
			}
		}
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(body)
		r.GetBody = nil
	}
	w.mu.Lock()
	w.requests[r.URL.Path]++
	w.bodies[r.URL.Path] += n
	if r.URL.Path == PathChunk {
		w.paths = append(w.paths, r.URL.Query().Get("path"))
	}
	w.mu.Unlock()
	return w.next.RoundTrip(r)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, fmt.Errorf("connection cut by the test") }

func (w *wire) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.requests = map[string]int{}
	w.bodies = map[string]int64{}
	w.paths = nil
}

func (w *wire) count(path string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.requests[path]
}

func (w *wire) total() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for _, b := range w.bodies {
		n += b
	}
	return n
}

func (w *wire) uploaded() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.paths...)
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// pair is a sender and a receiver of one files job over loopback HTTP.
type pair struct {
	t        testing.TB
	src, dst string // the root "conf" on each side
	job      Job
	wire     *wire
	rc       *Receiver
	runner   *Runner
	srv      *httptest.Server
	sendDir  string // data dirs
	recvDir  string
	clock    *clock
	results  chan Result
	handler  http.Handler // wraps the receiver's, when set before start
	recvJob  Job          // the receiver's job, when it differs
	token    string
	recvOpts func(*ReceiverOptions)
}

func newPair(t testing.TB, mod func(j *Job)) *pair {
	t.Helper()
	base := t.TempDir()
	p := &pair{t: t, src: filepath.Join(base, "main", "conf"), dst: filepath.Join(base, "standby", "conf"),
		sendDir: filepath.Join(base, "main-data"), recvDir: filepath.Join(base, "standby-data"),
		wire: newWire(), clock: newClock(), results: make(chan Result, 100), token: testToken}
	for _, d := range []string{p.src, p.dst, p.sendDir, p.recvDir} {
		must(t, os.MkdirAll(d, 0o755))
	}
	p.job = Job{Name: "conf", Every: time.Hour, Roots: []Root{{Name: "conf", Path: p.src}}}
	if mod != nil {
		mod(&p.job)
	}
	p.recvJob = p.job
	p.recvJob.Roots = []Root{{Name: "conf", Path: p.dst}}
	return p
}

// start makes the receiver, its server and the runner.
func (p *pair) start() *pair {
	p.t.Helper()
	p.startReceiver()
	h := p.rc.Handler()
	if p.handler != nil {
		h = p.handler
	}
	p.srv = httptest.NewServer(h)
	p.t.Cleanup(p.srv.Close)
	p.startRunner()
	return p
}

func (p *pair) startReceiver() {
	p.t.Helper()
	opts := ReceiverOptions{Jobs: []Job{p.recvJob}, Token: testToken, DataDir: p.recvDir, Now: p.clock.Now,
		Logger: testLogger(p.t)}
	if p.recvOpts != nil {
		p.recvOpts(&opts)
	}
	rc, err := NewReceiver(opts)
	must(p.t, err)
	p.rc = rc
}

func (p *pair) startRunner() {
	p.t.Helper()
	r, err := New(Options{Jobs: []Job{p.job}, PeerURL: p.srv.URL, Token: p.token, DataDir: p.sendDir,
		HTTPClient: &http.Client{Transport: p.wire}, Now: p.clock.Now, Logger: testLogger(p.t),
		OnResult: func(res Result) { p.results <- res }})
	must(p.t, err)
	p.runner = r
}

func (p *pair) run() (Result, error) {
	p.t.Helper()
	p.wire.reset()
	return p.runner.RunNow(context.Background(), p.job.Name)
}

func (p *pair) mustRun() Result {
	p.t.Helper()
	res, err := p.run()
	if err != nil {
		p.t.Fatalf("run: %v", err)
	}
	return res
}

// raw calls the receiver directly, for requests a sender would not make.
func (p *pair) raw(method, path string, q url.Values, body []byte, token string) (int, string) {
	p.t.Helper()
	u := p.srv.URL + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	must(p.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	must(p.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// begin opens a session by hand and returns its id.
func (p *pair) begin() string {
	p.t.Helper()
	body, _ := json.Marshal(beginRequest{Job: p.job.Name, Roots: []string{"conf"}, Delete: p.job.Delete})
	code, out := p.raw(http.MethodPost, PathBegin, nil, body, testToken)
	if code != http.StatusOK {
		p.t.Fatalf("begin: %d %s", code, out)
	}
	var br beginResponse
	must(p.t, json.Unmarshal([]byte(out), &br))
	return br.Session
}

func (p *pair) manifest(session string, entries ...entry) (int, string) {
	p.t.Helper()
	body, _ := json.Marshal(manifestRequest{Root: "conf", Entries: entries})
	return p.raw(http.MethodPost, PathManifest, url.Values{"session": {session}}, body, testToken)
}

func (p *pair) chunk(session, path string, offset int64, data []byte) (int, string) {
	p.t.Helper()
	q := url.Values{"session": {session}, "root": {"conf"}, "path": {path}, "offset": {fmt.Sprint(offset)}}
	return p.raw(http.MethodPut, PathChunk, q, data, testToken)
}

func fileEntry(path string, content []byte) entry {
	sum := sha256.Sum256(content)
	return entry{Path: path, Type: typeFile, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]),
		Mode: 0o644, MTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(content), 0o644))
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return string(b)
}

// listTree lists the paths under dir with what identifies them: a file's
// mode and hash, a directory's mode, a symlink's target.
func listTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link " + target
		case d.IsDir():
			out[rel] = fmt.Sprintf("dir %o", info.Mode().Perm())
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			out[rel] = fmt.Sprintf("file %o %x %d", info.Mode().Perm(), sum[:6], info.ModTime().Unix())
		}
		return nil
	})
	must(t, err)
	return out
}

func sameTree(t testing.TB, a, b string) {
	t.Helper()
	ta, tb := listTree(t, a), listTree(t, b)
	var diffs []string
	for k, v := range ta {
		if tb[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s: %q vs %q", k, v, tb[k]))
		}
	}
	for k, v := range tb {
		if _, ok := ta[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing vs %q", k, v))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("trees differ in %d paths: %s", len(diffs), strings.Join(diffs[:min(len(diffs), 10)], "; "))
	}
}

// temps lists the temp files under dir.
func temps(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tempPrefix) {
			out = append(out, p)
		}
		return nil
	}))
	return out
}

func noTemps(t testing.TB, dir string) {
	t.Helper()
	if ts := temps(t, dir); len(ts) > 0 {
		t.Fatalf("temp files left: %v", ts)
	}
}

// testLogger logs to the test with -v only: the runs log every file.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return testkit.Logger(t)
	}
	return nil
}

// makeFiles writes n small files under dir, in subdirectories of 100.
func makeFiles(t testing.TB, dir string, n int) {
	t.Helper()
	for i := range n {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("d%02d", i/100), fmt.Sprintf("f%04d.conf", i)), fmt.Sprintf("file %d\n%s", i, strings.Repeat("x", i%200)))
	}
}
