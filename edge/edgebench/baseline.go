package main

import (
	"bytes"
	"net"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// The baselines (-baselines) tell where a proxy's CPU goes: the same job
// as the Edge's on the benchmark's requests, with less and less of it.
//
//   - relay: the least a Go proxy can do. A goroutine per client
//     connection, with its own upstream connection; it forwards the
//     request's bytes as read, then the answer's as read until its
//     Content-Length is reached. No header is read or changed, no pool, no
//     deadline: correct for wrk's GETs and the upstream's answers only.
//   - fasthttp: a bare fasthttp proxy with the Edge's server and upstream
//     settings (buffers, streamed answers, timeouts, keep-alive pool) and
//     none of its work (routes, checks, hop-by-hop and forwarded headers,
//     metrics).
func serveBaseline(kind, listen, upstream string) {
	switch kind {
	case "relay":
		ln := must(net.Listen("tcp", listen))
		for {
			c, err := ln.Accept()
			if err != nil {
				fatalf("relay: %v", err)
			}
			go relay(c, upstream)
		}
	case "fasthttp":
		hc := &fasthttp.HostClient{
			Addr:                          upstream,
			MaxConns:                      4096,
			MaxConnWaitTimeout:            10 * time.Second,
			MaxIdleConnDuration:           90 * time.Second,
			WriteTimeout:                  30 * time.Second,
			ReadBufferSize:                16 << 10,
			WriteBufferSize:               16 << 10,
			StreamResponseBody:            true,
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
			NoDefaultUserAgentHeader:      true,
		}
		srv := &fasthttp.Server{
			Handler: func(ctx *fasthttp.RequestCtx) {
				if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
					ctx.Error("bad gateway", fasthttp.StatusBadGateway)
				}
			},
			NoDefaultServerHeader: true,
			NoDefaultContentType:  true,
			NoDefaultDate:         true,
			ReadBufferSize:        16 << 10,
			WriteBufferSize:       16 << 10,
			ReadTimeout:           60 * time.Second,
			IdleTimeout:           120 * time.Second,
			MaxRequestBodySize:    1 << 30,
			StreamRequestBody:     true,
		}
		if err := srv.ListenAndServe(listen); err != nil {
			fatalf("fasthttp proxy: %v", err)
		}
	default:
		fatalf("-serve: %q is neither relay nor fasthttp", kind)
	}
}

// relay serves one client connection (see serveBaseline).
func relay(c net.Conn, upstream string) {
	defer c.Close()
	up, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer up.Close()
	req, ans := make([]byte, 16<<10), make([]byte, 16<<10)
	for {
		n, err := c.Read(req)
		if err != nil {
			return
		}
		if _, err := up.Write(req[:n]); err != nil {
			return
		}
		// The answer: its head, then as many bytes as its Content-Length.
		got, want := 0, -1
		for want < 0 || got < want {
			m, err := up.Read(ans)
			if err != nil {
				return
			}
			if want < 0 {
				want = answerSize(ans[:m])
			}
			got += m
			if _, err := c.Write(ans[:m]); err != nil {
				return
			}
		}
	}
}

// answerSize is the size of an answer, head and body, from its first
// bytes; -1 when they do not hold its whole head.
func answerSize(b []byte) int {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return -1
	}
	head := b[:end]
	// The upstream's own spelling.
	const key = "\r\nContent-Length:"
	i := bytes.Index(head, []byte(key))
	if i < 0 {
		return end + 4
	}
	v := head[i+len(key):]
	if j := bytes.IndexByte(v, '\r'); j >= 0 {
		v = v[:j]
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
	if err != nil {
		return end + 4
	}
	return end + 4 + n
}
