package edge

import (
	"bufio"
	"bytes"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// BenchmarkProxy sends GET / through an Edge to an upstream, all in this
// process over loopback, and reports the cost of one proxied request
// (client, Edge and upstream together: compare runs, not absolutes). The
// request carries a browser's headers (Connection: keep-alive among them)
// and the upstream answers as nginx does (Connection: keep-alive,
// Keep-Alive), so that the hop-by-hop handling of both directions is in
// the measure. edge/bench.sh (edge/edgebench, with wrk) measures the Edge
// as a process beside nginx.
func BenchmarkProxy(b *testing.B) {
	page := bytes.Repeat([]byte("x"), 1100)
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Content-Type", "text/html")
		ctx.Response.Header.Set("Keep-Alive", "timeout=60")
		ctx.Response.Header.Set("Connection", "keep-alive")
		ctx.Response.Header.Set("Cache-Control", "no-cache")
		ctx.SetBody(page)
	}, NoDefaultDate: true}
	go up.Serve(upLn)
	b.Cleanup(func() { up.Shutdown() })

	node := newFakeNode(b, active(1))
	e := startEdge(b, fast(), []sideSpec{{name: "main", node: node,
		routes: []Route{{Path: "/", Upstream: "http://" + upLn.Addr().String()}}}})
	e.waitRouted(b, "main")

	hc := &fasthttp.HostClient{Addr: e.Addr(), MaxConns: 64}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(res)
		for pb.Next() {
			req.Reset()
			req.SetRequestURI("http://pbx.example.org/")
			h := &req.Header
			h.Set("Connection", "keep-alive")
			h.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36")
			h.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
			h.Set("Accept-Encoding", "gzip, deflate")
			h.Set("Accept-Language", "fr-FR,fr;q=0.9,en;q=0.8")
			h.Set("Sec-Fetch-Mode", "navigate")
			h.Set("Sec-Fetch-Site", "none")
			h.Set("Cookie", "session=0123456789abcdef0123456789abcdef")
			if err := hc.DoTimeout(req, res, 10*time.Second); err != nil {
				b.Error(err)
				return
			}
			if res.StatusCode() != 200 || len(res.Body()) != len(page) {
				b.Errorf("answer %d, %d bytes", res.StatusCode(), len(res.Body()))
				return
			}
		}
	})
}

// browserHead is a browser's request head; nginxAnswerHead the head of
// an answer as nginx writes it (Connection: keep-alive, Keep-Alive).
const (
	browserHead = "GET /index.html HTTP/1.1\r\n" +
		"Host: pbx.example.org\r\n" +
		"Connection: keep-alive\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36\r\n" +
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
		"Accept-Encoding: gzip, deflate\r\n" +
		"Accept-Language: fr-FR,fr;q=0.9,en;q=0.8\r\n" +
		"Sec-Fetch-Mode: navigate\r\n" +
		"Sec-Fetch-Site: none\r\n" +
		"Cookie: session=0123456789abcdef0123456789abcdef\r\n" +
		"\r\n"
	nginxAnswerHead = "HTTP/1.1 200 OK\r\n" +
		"Server: nginx\r\n" +
		"Date: Sun, 06 Dec 2026 23:00:00 GMT\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n" +
		"Content-Length: 1100\r\n" +
		"Connection: keep-alive\r\n" +
		"Keep-Alive: timeout=60\r\n" +
		"Cache-Control: no-cache\r\n" +
		"X-Frame-Options: SAMEORIGIN\r\n" +
		"\r\n"
)

// BenchmarkPrepare turns a browser's request, as read from the client,
// into the upstream's (parse, check, then prepare): the per-request header
// work of the Edge alone.
func BenchmarkPrepare(b *testing.B) {
	u, _ := url.Parse("http://10.0.0.21:8080")
	e := &Edge{}
	s := &side{edge: e, name: "main"}
	rt := newRoute(s, "/", u, nil)
	raw := []byte(browserHead)
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 40000}, nil)
	rd := bytes.NewReader(raw)
	br := bufio.NewReader(rd)
	b.ReportAllocs()
	for b.Loop() {
		ctx.Request.Reset()
		rd.Reset(raw)
		br.Reset(rd)
		if err := ctx.Request.Header.Read(br); err != nil {
			b.Fatal(err)
		}
		h := &ctx.Request.Header
		s := seenIn(h)
		if status, _ := checkRequest(h, s); status != 0 {
			b.Fatal(status)
		}
		rt.prepare(&ctx, s, false)
	}
}

// BenchmarkStripResponse removes the hop-by-hop headers of an answer as
// nginx writes it (Connection: keep-alive, Keep-Alive), as the upstream
// client reads it.
func BenchmarkStripResponse(b *testing.B) {
	raw := []byte(nginxAnswerHead)
	var h fasthttp.ResponseHeader
	h.DisableNormalizing()
	rd := bytes.NewReader(raw)
	br := bufio.NewReader(rd)
	b.ReportAllocs()
	for b.Loop() {
		h.Reset()
		h.DisableNormalizing()
		rd.Reset(raw)
		br.Reset(rd)
		if err := h.Read(br); err != nil {
			b.Fatal(err)
		}
		stripResponse(&h)
	}
}

// BenchmarkFastHead is BenchmarkPrepare on the fast path: a browser's
// request head checked (scanHead) and written for the upstream
// (appendUpstreamHead).
func BenchmarkFastHead(b *testing.B) {
	u, _ := url.Parse("http://10.0.0.21:8080")
	rt := newRoute(&side{edge: &Edge{}, name: "main"}, "/", u, nil)
	head := []byte(browserHead)
	ip := []byte("192.0.2.10")
	var r fastRequest
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		n := headEnd(head)
		if n != len(head) || !scanHead(head[:n], &r) {
			b.Fatal("not taken")
		}
		dst = appendUpstreamHead(dst[:0], head, &r, rt, ip, "http")
	}
}

// BenchmarkFastAnswerHead reads an answer's head as nginx writes it and
// relays it to the client (readRawHead, parseAnswer, relayHead): the
// fast path's per-answer header work.
func BenchmarkFastAnswerHead(b *testing.B) {
	raw := []byte(nginxAnswerHead)
	rd := bytes.NewReader(raw)
	br := bufio.NewReader(rd)
	var head, out []byte
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(raw)
		br.Reset(rd)
		// As the fast path does: the first byte awaited, then the head.
		if _, err := br.Peek(1); err != nil {
			b.Fatal(err)
		}
		var err error
		if head, err = readRawHead(head, br); err != nil {
			b.Fatal(err)
		}
		if _, err := parseAnswer(head); err != nil {
			b.Fatal(err)
		}
		out = relayHead(out[:0], head, headKept)
	}
}
