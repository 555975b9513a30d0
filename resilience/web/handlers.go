package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/resman-pbx/resman/resilience/api"
)

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// active answers 200 when the node is Active and 503 otherwise, with
// api.Active and nothing more: it needs no auth.
func (s *Server) active(c *fiber.Ctx) error {
	a := s.node.Active()
	code := fiber.StatusServiceUnavailable
	if a.Status == api.StatusActive {
		code = fiber.StatusOK
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(code).JSON(api.Active{Status: a.Status, Epoch: a.Epoch})
}

func (s *Server) status(c *fiber.Ctx) error {
	return c.JSON(s.node.Status())
}

func (s *Server) startServices(c *fiber.Ctx) error {
	var req api.StartRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if err := checkReason(req.Reason); err != nil {
		return err
	}
	st, err := s.node.StartServices(s.baseCtx, who(c), req)
	if err != nil {
		return s.nodeError(c, "start", err)
	}
	return c.JSON(st)
}

func (s *Server) stopServices(c *fiber.Ctx) error {
	var req api.StopRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if err := checkReason(req.Reason); err != nil {
		return err
	}
	st, err := s.node.StopServices(s.baseCtx, who(c), req)
	if err != nil {
		return s.nodeError(c, "stop", err)
	}
	return c.JSON(st)
}

func (s *Server) audit(c *fiber.Ctx) error {
	args := c.Context().QueryArgs()
	limit := DefaultAuditLimit
	if args.Has("limit") {
		n, err := strconv.Atoi(string(args.Peek("limit")))
		if err != nil || n < 1 || n > MaxAuditLimit {
			return errorf(fiber.StatusBadRequest, "limit must be an integer from 1 to %d", MaxAuditLimit)
		}
		limit = n
	}
	var before uint64
	if args.Has("before") {
		n, err := strconv.ParseUint(string(args.Peek("before")), 10, 64)
		if err != nil {
			return errorf(fiber.StatusBadRequest, "before must be an audit entry ID (an unsigned integer)")
		}
		before = n
	}
	entries, err := s.node.Audit(s.baseCtx, limit, before)
	if err != nil {
		return s.nodeError(c, "audit", err)
	}
	if entries == nil {
		entries = []api.AuditEntry{}
	}
	return c.JSON(entries)
}

// decodeBody decodes the JSON object of a write request into v: the
// Content-Type must be application/json (parameters allowed), the body
// exactly one object with known fields only.
func decodeBody(c *fiber.Ctx, v any) error {
	ct := c.Get(fiber.HeaderContentType)
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != fiber.MIMEApplicationJSON {
		return errorf(fiber.StatusUnsupportedMediaType, "Content-Type must be application/json")
	}
	if ce := c.Get(fiber.HeaderContentEncoding); ce != "" && !strings.EqualFold(ce, "identity") {
		return errorf(fiber.StatusUnsupportedMediaType, "Content-Encoding %q is not supported", ce)
	}
	// The raw body: fiber's Body() would decompress it past BodyLimit.
	body := c.Request().Body()
	if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' {
		return errorf(fiber.StatusBadRequest, "the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(fiber.StatusBadRequest, "invalid JSON body: %s", jsonMessage(err))
	}
	if err := dec.Decode(new(json.RawMessage)); !errors.Is(err, io.EOF) {
		return errorf(fiber.StatusBadRequest, "invalid JSON body: data after the object")
	}
	return nil
}

// jsonMessage strips the "json: " prefix of encoding/json errors.
func jsonMessage(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func checkReason(r string) error {
	if strings.TrimSpace(r) == "" {
		return errorf(fiber.StatusBadRequest, "reason is required")
	}
	if utf8.RuneCountInString(r) > MaxReasonLength {
		return errorf(fiber.StatusBadRequest, "reason is longer than %d characters", MaxReasonLength)
	}
	return nil
}

func (s *Server) runReplication(c *fiber.Ctx) error {
	rn, ok := s.node.(ReplicationNode)
	if !ok {
		return errorf(fiber.StatusPreconditionFailed, "this node runs no replication")
	}
	var req api.ReplicationRunRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if err := checkReason(req.Reason); err != nil {
		return err
	}
	st, err := rn.RunReplication(s.baseCtx, who(c), req)
	if err != nil {
		return s.nodeError(c, "replication run", err)
	}
	return c.JSON(st)
}

// failover starts (POST) or stops (DELETE) a manual HA failover.
func (s *Server) failover(c *fiber.Ctx) error {
	fn, ok := s.node.(FailoverNode)
	if !ok {
		return errorf(fiber.StatusPreconditionFailed, "this node runs no manual HA failover")
	}
	var st api.Status
	var err error
	if c.Method() == fiber.MethodDelete {
		var req api.StopRequest
		if err := decodeBody(c, &req); err != nil {
			return err
		}
		if err := checkReason(req.Reason); err != nil {
			return err
		}
		st, err = fn.StopFailover(s.baseCtx, who(c), req)
	} else {
		var req api.FailoverRequest
		if err := decodeBody(c, &req); err != nil {
			return err
		}
		if err := checkReason(req.Reason); err != nil {
			return err
		}
		st, err = fn.StartFailover(s.baseCtx, who(c), req)
	}
	if err != nil {
		return s.nodeError(c, "failover", err)
	}
	return c.JSON(st)
}

func (s *Server) switchover(c *fiber.Ctx) error {
	sn, ok := s.node.(SwitchoverNode)
	if !ok {
		return errorf(fiber.StatusPreconditionFailed, "this node runs no switchover")
	}
	var req api.SwitchoverRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if err := checkReason(req.Reason); err != nil {
		return err
	}
	st, err := sn.Switchover(s.baseCtx, who(c), req)
	if err != nil {
		return s.nodeError(c, "switchover", err)
	}
	return c.JSON(st)
}
