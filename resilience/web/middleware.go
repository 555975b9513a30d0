package web

import (
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/resman-pbx/resman/resilience/auth"
)

// Header names of the API.
const (
	// HeaderActor names the person or tool behind an API call, for the
	// audit log: "who" becomes "api:<value>".
	HeaderActor = "X-Resman-Actor"
)

// localWho is the fiber Locals key of the authenticated principal.
const localWho = "resman.who"

// observe is the outermost middleware: it recovers panics, turns errors
// into JSON answers, and records the metrics and the access log.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	if err := s.next(c); err != nil {
		if herr := s.handleError(c, err); herr != nil {
			s.log.Error("writing an error answer", "err", herr)
			c.Status(fiber.StatusInternalServerError)
		}
	}
	code := c.Response().StatusCode()
	route := s.routeLabel(c.Path())
	method := methodLabel(c.Method())
	d := time.Since(start)
	s.metrics.observe(route, method, code, d)
	s.log.Debug("request", "route", route, "method", method, "code", code, "duration", d)
	return nil
}

// next runs the rest of the chain, turning a panic into an error.
func (s *Server) next(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in handler", "route", s.routeLabel(c.Path()), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = errInternal
		}
	}()
	return c.Next()
}

// routeLabel is the route template of path, or "other": paths that match no
// route do not make new label values.
func (s *Server) routeLabel(path string) string {
	if _, ok := s.allow[path]; ok {
		return path
	}
	return "other"
}

func methodLabel(m string) string {
	switch m {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut,
		fiber.MethodDelete, fiber.MethodPatch, fiber.MethodOptions:
		return m
	}
	return "other"
}

// authenticate establishes who makes the call and stores it for the
// handlers (see who). A request with an Authorization header must carry
// the bearer token, or a read token for a read (GET, HEAD); one without it
// may use a web session cookie instead (with the CSRF token on writes):
// who is then "web:<user>".
func (s *Server) authenticate(c *fiber.Ctx) error {
	if ok, err := s.sessionAuth(c); ok {
		if err != nil {
			return err
		}
		return c.Next()
	}
	who, access, err := s.bearer(c)
	if err != nil {
		return err
	}
	if access != auth.Full && c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead {
		s.log.Warn("write refused: the token may only read", "who", who, "route", s.routeLabel(c.Path()), "method", methodLabel(c.Method()), "ip", s.clientIP(c).String())
		return errorf(fiber.StatusForbidden, "this token may only read (it is one of the node's api.read_tokens): a write needs the node's api.token")
	}
	c.Locals(localWho, who)
	return c.Next()
}

// bearer checks the Authorization header and returns the principal ("api",
// or "api:<actor>" with a valid X-Resman-Actor header) and what its token
// may do.
func (s *Server) bearer(c *fiber.Ctx) (string, auth.Access, error) {
	token := auth.Bearer(c.Get(fiber.HeaderAuthorization))
	if token == "" {
		return "", auth.None, errorf(fiber.StatusUnauthorized, "a bearer token is required")
	}
	access := s.token.Load().Check(token)
	if access == auth.None {
		return "", auth.None, errorf(fiber.StatusUnauthorized, "invalid bearer token")
	}
	actor := c.Get(HeaderActor)
	if actor == "" {
		return "api", access, nil
	}
	if err := checkActor(actor); err != nil {
		return "", auth.None, err
	}
	return "api:" + strings.Clone(actor), access, nil
}

// checkActor accepts up to MaxActorLength printable ASCII characters (HTTP
// has trimmed the blanks around the value).
func checkActor(a string) error {
	if len(a) > MaxActorLength {
		return errorf(fiber.StatusBadRequest, "%s is longer than %d characters", HeaderActor, MaxActorLength)
	}
	for i := 0; i < len(a); i++ {
		if a[i] < 0x20 || a[i] > 0x7e {
			return errorf(fiber.StatusBadRequest, "%s must be printable ASCII", HeaderActor)
		}
	}
	return nil
}

// who is the principal authenticate stored.
func who(c *fiber.Ctx) string {
	w, _ := c.Locals(localWho).(string)
	return w
}

// contentSecurityPolicy lets the page load only its own assets and talk
// only to its own node; no inline script or style, no framing.
const contentSecurityPolicy = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

// securityHeaders sets the browser protections on every answer.
func securityHeaders(c *fiber.Ctx) error {
	c.Set("Content-Security-Policy", contentSecurityPolicy)
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	return c.Next()
}

// noStore keeps API answers out of caches.
func noStore(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Next()
}
