package web

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
	"github.com/resman-pbx/resman/resilience/pairaudit"
)

// DefaultPairAuditLimit and MaxPairAuditLimit bound GET
// /api/v1/audit/pair: how many entries are read from each node.
// PeerAuditTimeout bounds the read of the peer's entries: past it, the
// answer has this node's entries only.
const (
	DefaultPairAuditLimit = 200
	MaxPairAuditLimit     = 1000
	PeerAuditTimeout      = 5 * time.Second
)

const pathPairAudit = "/api/v1/audit/pair"

// PeerAuditNode is a PeerNode that reads its peer's audit log, for the
// pair timeline (GET /api/v1/audit/pair). *node.Node implements it. A
// Node without it answers the timeline with its own entries only.
type PeerAuditNode interface {
	Node
	// PeerAudit reads up to limit entries of the peer's audit log,
	// newest first. Errors are as PeerNode's.
	PeerAudit(ctx context.Context, limit int) ([]api.AuditEntry, error)
}

// pairAudit answers both nodes' audit entries on one time axis with the
// periods and the windows (pairaudit.Build). A peer that cannot be read
// never fails the answer: it has this node's entries and says why.
func (s *Server) pairAudit(c *fiber.Ctx) error {
	args := c.Context().QueryArgs()
	limit := DefaultPairAuditLimit
	if args.Has("limit") {
		n, err := strconv.Atoi(string(args.Peek("limit")))
		if err != nil || n < 1 || n > MaxPairAuditLimit {
			return errorf(fiber.StatusBadRequest, "limit must be an integer from 1 to %d", MaxPairAuditLimit)
		}
		limit = n
	}
	mine, err := s.node.Audit(s.baseCtx, limit, 0)
	if err != nil {
		return s.nodeError(c, "audit", err)
	}
	st := s.node.Status()
	peer := ""
	if st.Peer != nil {
		peer = st.Peer.Name
	}
	var theirs []api.AuditEntry
	peerErr := ""
	switch pn, ok := s.node.(PeerAuditNode); {
	case peer == "":
		peerErr = "this node has no peer"
	case !ok:
		peerErr = "this node cannot read its peer's audit log"
	default:
		ctx, cancel := context.WithTimeout(s.baseCtx, PeerAuditTimeout)
		theirs, err = pn.PeerAudit(ctx, limit)
		cancel()
		if err != nil {
			peerErr = s.peerAuditError(c, peer, err)
		}
	}
	return c.JSON(pairaudit.Build(st.Node, peer, mine, theirs, peerErr, limit, time.Now().UTC()))
}

// peerAuditError says, for the admin, why the peer's entries are missing.
func (s *Server) peerAuditError(c *fiber.Ctx, peer string, err error) string {
	s.log.Warn("pair timeline without the peer's entries", "peer", peer, "who", who(c), "err", err)
	var ce *client.Error
	switch {
	case errors.As(err, &ce):
		if ce.StatusCode == fiber.StatusUnauthorized || ce.StatusCode == fiber.StatusForbidden {
			return peer + " refused this node's API token: " + ce.Message
		}
		return peer + " answered " + ce.Error()
	case errors.Is(err, client.ErrUnreachable):
		return peer + " unreachable: " + strings.TrimPrefix(err.Error(), client.ErrUnreachable.Error()+": ")
	case errors.Is(err, context.DeadlineExceeded):
		return peer + " did not answer within " + PeerAuditTimeout.String()
	}
	return peer + ": " + err.Error()
}
