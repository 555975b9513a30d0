package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/resman-pbx/resman/resilience"
	"github.com/resman-pbx/resman/resilience/api"
)

// httpError is an answer whose message is safe to show to the client.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return fmt.Sprintf("%d: %s", e.code, e.msg) }

func errorf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// errInternal is the answer to an unexpected failure; its detail is logged,
// never sent.
var errInternal = &httpError{code: fiber.StatusInternalServerError, msg: "internal error"}

// nodeError maps a refusal or failure of the node to an answer: the
// message of a refusal, of a command that was carried out and failed
// (ErrFailed, a 500), of a decision the node could not persist, so did
// not carry out (ErrNotDurable, a 503), and of a node shutting down
// (ErrStopping, a 503), is meant for the admin and is sent
// as is; any other error is logged and answered with a generic 500.
func (s *Server) nodeError(c *fiber.Ctx, op string, err error) error {
	switch {
	case errors.Is(err, resilience.ErrNotDurable):
		// The node's disk, not the request: the same command may work
		// once node.data_dir is writable again.
		s.log.Error("node command not carried out: the decision could not be persisted", "op", op, "who", who(c), "err", err)
		return &httpError{code: fiber.StatusServiceUnavailable, msg: err.Error()}
	case errors.Is(err, resilience.ErrStopping):
		s.log.Info("node command refused: the node is shutting down", "op", op, "who", who(c))
		return &httpError{code: fiber.StatusServiceUnavailable, msg: err.Error()}
	case errors.Is(err, resilience.ErrFailed):
		s.log.Error("node command failed", "op", op, "who", who(c), "err", err)
		return &httpError{code: fiber.StatusInternalServerError, msg: err.Error()}
	}
	code := 0
	switch {
	case errors.Is(err, resilience.ErrConflict), errors.Is(err, resilience.ErrBusy):
		code = fiber.StatusConflict
	case errors.Is(err, resilience.ErrInvalid):
		code = fiber.StatusBadRequest
	case errors.Is(err, resilience.ErrPrecondition):
		code = fiber.StatusPreconditionFailed
	}
	if code == 0 {
		s.log.Error("node call failed", "op", op, "who", who(c), "err", err)
		return errInternal
	}
	s.log.Info("node refused", "op", op, "who", who(c), "code", code, "err", err)
	return &httpError{code: code, msg: err.Error()}
}

// handleError is fiber's ErrorHandler: every error answer is an api.Error.
// fiber's own errors get a fixed message per status code, since some carry
// request text (a malformed header may hold the Authorization value).
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	var (
		he *httpError
		fe *fiber.Error
	)
	code, msg := fiber.StatusInternalServerError, errInternal.msg
	switch {
	case errors.As(err, &he):
		code, msg = he.code, he.msg
	case errors.As(err, &fe):
		code = fe.Code
		msg = statusMessage(code)
	default:
		s.log.Error("request failed", "route", s.routeLabel(c.Path()), "err", err)
	}
	if code == fiber.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="resman"`)
	}
	return c.Status(code).JSON(api.Error{Error: msg})
}

// statusMessage is the message of an error answer with no detail.
func statusMessage(code int) string {
	switch code {
	case fiber.StatusNotFound:
		return "not found"
	case fiber.StatusMethodNotAllowed:
		return "method not allowed"
	case fiber.StatusRequestEntityTooLarge:
		return fmt.Sprintf("request body is larger than %d bytes", BodyLimit)
	}
	if code >= 500 {
		return errInternal.msg
	}
	if t := http.StatusText(code); t != "" {
		return strings.ToLower(t)
	}
	return "request refused"
}

// writeJSONError answers ctx outside fiber's router.
func writeJSONError(ctx *fasthttp.RequestCtx, code int, msg string) {
	body, _ := json.Marshal(api.Error{Error: msg})
	ctx.Response.SetStatusCode(code)
	ctx.Response.Header.SetContentType(fiber.MIMEApplicationJSON)
	ctx.Response.SetBodyRaw(body)
}
