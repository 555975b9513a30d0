package web

import (
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
)

// peerNode is the node as a PeerNode, or an answer saying it is not one.
func (s *Server) peerNode() (PeerNode, error) {
	pn, ok := s.node.(PeerNode)
	if !ok {
		return nil, errorf(fiber.StatusPreconditionFailed, "this node cannot reach its peer through the API")
	}
	return pn, nil
}

func (s *Server) peerStatus(c *fiber.Ctx) error {
	pn, err := s.peerNode()
	if err != nil {
		return err
	}
	st, err := pn.PeerStatus(s.baseCtx)
	if err != nil {
		return s.peerError(c, "peer status", err)
	}
	return c.JSON(st)
}

func (s *Server) peerStart(c *fiber.Ctx) error {
	pn, err := s.peerNode()
	if err != nil {
		return err
	}
	var req api.StartRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if err := checkReason(req.Reason); err != nil {
		return err
	}
	st, err := pn.PeerStartServices(s.baseCtx, who(c), req)
	if err != nil {
		return s.peerError(c, "peer start", err)
	}
	return c.JSON(st)
}

func (s *Server) peerStop(c *fiber.Ctx) error {
	pn, err := s.peerNode()
	if err != nil {
		return err
	}
	var req api.StopRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if err := checkReason(req.Reason); err != nil {
		return err
	}
	st, err := pn.PeerStopServices(s.baseCtx, who(c), req)
	if err != nil {
		return s.peerError(c, "peer stop", err)
	}
	return c.JSON(st)
}

// peerError maps an error of a call forwarded to the peer: the peer's own
// answer (*client.Error) keeps its status code and message, except that
// the peer refusing this node's credentials (401, 403) is a 502 (it is not
// the caller's authentication that failed); an unreachable peer is a 502
// naming it; anything else is mapped as the node's own errors are.
func (s *Server) peerError(c *fiber.Ctx, op string, err error) error {
	name := "peer"
	if st := s.node.Status(); st.Peer != nil && st.Peer.Name != "" {
		name = "peer " + st.Peer.Name
	}
	var ce *client.Error
	switch {
	case errors.As(err, &ce):
		code, msg := ce.StatusCode, ce.Message
		switch {
		case code == fiber.StatusUnauthorized || code == fiber.StatusForbidden:
			code, msg = fiber.StatusBadGateway, name+" refused this node's API token: "+msg
		case code < 400 || code > 599:
			code, msg = fiber.StatusBadGateway, name+" answered "+ce.Error()
		}
		if code >= 500 {
			s.log.Error("peer call failed", "op", op, "who", who(c), "code", code, "err", err)
		} else {
			s.log.Info("peer refused", "op", op, "who", who(c), "code", code, "err", err)
		}
		return &httpError{code: code, msg: msg}
	case errors.Is(err, client.ErrUnreachable):
		detail := strings.TrimPrefix(err.Error(), client.ErrUnreachable.Error()+": ")
		s.log.Warn("peer unreachable", "op", op, "who", who(c), "err", err)
		return errorf(fiber.StatusBadGateway, "%s unreachable: %s", name, detail)
	}
	// A refusal of this node (no peer configured: ErrPrecondition), or a
	// failure.
	return s.nodeError(c, op, err)
}
