package web

import (
	"bufio"
	"encoding/json"
	"math"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/resman-pbx/resman/resilience/api"
)

// events streams the node's events as Server-Sent Events: "event: status"
// or "event: audit", an "id:" counting the events of this stream from 1,
// and the JSON "data:"; a comment every keepAlive. The stream ends when the
// node closes the subscription, the client goes away (a write fails) or
// the server shuts down.
func (s *Server) events(c *fiber.Ctx) error {
	select {
	case <-s.closing:
		return errorf(fiber.StatusServiceUnavailable, "the server is shutting down")
	default:
	}
	// A stream is counted against its client (the web session, or the
	// bearer token from one address) and against all streams.
	var client any = bearerClient{addr: s.sourceOf(c)}
	sess, _ := c.Locals(localSession).(*session)
	if sess != nil {
		client = sess
	}
	release, refusal := s.streams.acquire(client)
	if refusal != "" {
		s.metrics.streamsRefused.WithLabelValues(refusal).Inc()
		s.log.Warn("event stream refused", "who", who(c), "ip", c.Context().RemoteIP().String(), "limit", refusal)
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(max(1, int(math.Ceil(s.keepAlive.Seconds())))))
		if refusal == limitClient {
			return errorf(fiber.StatusTooManyRequests, "too many event streams open for this client (%d): close one, or retry later", s.streams.perClient)
		}
		return errorf(fiber.StatusTooManyRequests, "too many event streams open on this node (%d): retry later", s.streams.total)
	}
	s.metrics.streams.Inc()

	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	c.Status(fiber.StatusOK)

	// The stream writer runs after this handler returns, when c is no
	// longer valid: capture what it needs now.
	conn := c.Context().Conn()
	principal := who(c)
	// A stream opened with a web session ends with it.
	var (
		ended <-chan struct{}
		alive func() bool
	)
	if sess != nil {
		ended = sess.done
		alive = func() bool { return s.auth.sessions.alive(sess) }
	}
	events, cancel := s.node.Subscribe()
	s.log.Debug("event stream opened", "who", principal)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer cancel()
		// Deferred after cancel, so run before it: the place is free by
		// the time the node sees the subscription end.
		defer func() {
			release()
			s.metrics.streams.Dec()
		}()
		why := s.stream(w, conn, events, ended, alive)
		s.log.Debug("event stream closed", "who", principal, "why", why)
	})
	return nil
}

// Limits of streamLimiter, as refusals name them (and the metric's label).
const (
	limitClient = "client"
	limitNode   = "node"
)

// bearerClient is the client of a stream opened with the bearer token: the
// token holder at one address.
type bearerClient struct{ addr string }

// streamLimiter counts the open event streams per client and in all.
type streamLimiter struct {
	perClient, total int

	mu   sync.Mutex
	open map[any]int
	all  int
}

func newStreamLimiter(perClient, total int) *streamLimiter {
	if perClient <= 0 {
		perClient = DefaultEventStreamsPerClient
	}
	if total <= 0 {
		total = DefaultEventStreams
	}
	return &streamLimiter{perClient: perClient, total: total, open: map[any]int{}}
}

// acquire takes a place for a stream of client, or says which limit is
// reached. release gives the place back (once, however often called).
func (l *streamLimiter) acquire(client any) (release func(), refusal string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.open[client] >= l.perClient:
		return nil, limitClient
	case l.all >= l.total:
		return nil, limitNode
	}
	l.open[client]++
	l.all++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.open[client]--; l.open[client] <= 0 {
				delete(l.open, client)
			}
			l.all--
		})
	}, ""
}

// stream writes events to w until it must end, and says why. ended and
// alive (both nil for the bearer token) tell a web session's end: ended is
// closed on logout, alive is asked at each keep-alive (expiry).
func (s *Server) stream(w *bufio.Writer, conn net.Conn, events <-chan api.Event, ended <-chan struct{}, alive func() bool) string {
	keepAlive := time.NewTicker(s.keepAlive)
	defer keepAlive.Stop()
	var id uint64
	for {
		select {
		case <-s.closing:
			return "server shutdown"
		case <-ended:
			return "session ended"
		case ev, ok := <-events:
			if !ok {
				return "subscription closed"
			}
			if ev.Name != api.EventStatus && ev.Name != api.EventAudit {
				s.log.Warn("dropping an event of unknown name", "name", ev.Name)
				continue
			}
			data, err := json.Marshal(ev.Data)
			if err != nil {
				s.log.Error("cannot encode an event", "name", ev.Name, "err", err)
				continue
			}
			id++
			// JSON has no raw newline: one data line.
			buf := make([]byte, 0, len(data)+64)
			buf = append(buf, "event: "...)
			buf = append(buf, ev.Name...)
			buf = append(buf, "\nid: "...)
			buf = strconv.AppendUint(buf, id, 10)
			buf = append(buf, "\ndata: "...)
			buf = append(buf, data...)
			buf = append(buf, "\n\n"...)
			if err := s.send(w, conn, buf); err != nil {
				return "client gone: " + err.Error()
			}
		case <-keepAlive.C:
			if alive != nil && !alive() {
				return "session ended"
			}
			if err := s.send(w, conn, []byte(": keep-alive\n\n")); err != nil {
				return "client gone: " + err.Error()
			}
		}
	}
}

// send writes and flushes b. The connection's write deadline is renewed
// first: the server's WriteTimeout then bounds one stalled write, not the
// whole stream.
func (s *Server) send(w *bufio.Writer, conn net.Conn, b []byte) error {
	if conn != nil {
		_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	return w.Flush()
}
