package edge

import (
	"net/http"

	"github.com/valyala/fasthttp"
)

// pages are the Edge's own answers. They name no upstream, no address and
// no side: a user learns nothing of the inside from them.
type pages struct {
	retryAfter string
	bodies     map[int][]byte
}

func newPages(retryAfter string) pages {
	p := pages{retryAfter: retryAfter, bodies: map[int][]byte{}}
	add := func(code int, title, text, head string) {
		p.bodies[code] = []byte("<!doctype html>\n<html><head><meta charset=\"utf-8\">" + head +
			"<title>" + title + "</title></head>\n<body><h1>" + title + "</h1>\n<p>" + text + "</p></body></html>\n")
	}
	add(http.StatusServiceUnavailable, "Service unavailable",
		"The service is switching over or stopped. This page reloads in "+retryAfter+" s.",
		"<meta http-equiv=\"refresh\" content=\""+retryAfter+"\">")
	add(http.StatusBadGateway, "Bad gateway", "The service did not answer. Please try again.", "")
	add(http.StatusNotFound, "Not found", "There is nothing at this address.", "")
	add(http.StatusBadRequest, "Bad request",
		"The request is not valid HTTP/1.1, or asks for a protocol this service does not speak.", "")
	add(http.StatusHTTPVersionNotSupported, "HTTP version not supported", "This service speaks HTTP/1.1.", "")
	add(http.StatusRequestHeaderFieldsTooLarge, "Request header too large", "The request's header is too large.", "")
	add(http.StatusRequestTimeout, "Request timeout", "The request did not arrive in time.", "")
	return p
}

// write answers code with its page; a 503 says when to retry.
func (p pages) write(ctx *fasthttp.RequestCtx, code int) {
	ctx.SetStatusCode(code)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if code == http.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", p.retryAfter)
	}
	ctx.Response.SetBodyRaw(p.bodies[code])
}
