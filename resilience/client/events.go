package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
)

// Events reads the node's event stream (GET /api/v1/events) and calls fn
// with each event: Data is an api.Status for api.EventStatus and an
// api.AuditEntry for api.EventAudit (values, not pointers); events of other
// names are skipped. The first event is the node's current status.
//
// Events returns nil when the node ends the stream (it shuts down), ctx's
// error when ctx is done, fn's error as is when fn fails, and an error
// wrapping ErrUnreachable when the node cannot be reached or the connection
// breaks. It does not reconnect: callers loop.
//
// The client's timeout bounds only the wait for the answer's headers (the
// node sends them with the first event at once); the stream itself lives
// until ctx is done.
func (c *Client) Events(ctx context.Context, fn func(api.Event) error) error {
	const method, path = http.MethodGet, "/api/v1/events"
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	req, err := c.newRequest(ctx, method, path, nil, true)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	// The stream must not inherit an overall timeout of the HTTP client.
	hc := *c.hc
	hc.Timeout = 0

	var timedOut atomic.Bool
	var timer *time.Timer
	if c.timeout > 0 {
		timer = time.AfterFunc(c.timeout, func() {
			timedOut.Store(true)
			cancel()
		})
	}
	resp, err := hc.Do(req)
	if timer != nil {
		timer.Stop()
	}
	if timedOut.Load() {
		if err == nil {
			resp.Body.Close()
		}
		return fmt.Errorf("%w: %s %s: no answer within %s", ErrUnreachable, method, path, c.timeout)
	}
	if err != nil {
		return transportError(parent, method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readError(resp)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/event-stream" {
		return fmt.Errorf("%s %s: the answer is not an event stream (Content-Type %q)", method, path, resp.Header.Get("Content-Type"))
	}

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxBody)
	var (
		name string
		data strings.Builder
	)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if data.Len() > 0 || name != "" {
				ev, ok, err := decodeEvent(name, data.String())
				if err != nil {
					return fmt.Errorf("%s %s: %w", method, path, err)
				}
				if ok {
					if err := fn(ev); err != nil {
						return err
					}
				}
			}
			name = ""
			data.Reset()
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "": // a comment: keep-alive
		case "event":
			name = value
		case "data":
			// The line limit alone would let an event of many lines grow
			// without bound.
			if data.Len()+1+len(value) > maxBody {
				return fmt.Errorf("%s %s: an event is larger than %d bytes", method, path, maxBody)
			}
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
		// "id" and "retry" are not used: there is no reconnection.
	}
	if err := parent.Err(); err != nil {
		return err
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%s %s: an event is larger than %d bytes", method, path, maxBody)
		}
		return fmt.Errorf("%w: %s %s: %w", ErrUnreachable, method, path, err)
	}
	return nil
}

// decodeEvent decodes the data of a known event; ok is false for an event
// of another name.
func decodeEvent(name, data string) (api.Event, bool, error) {
	switch name {
	case api.EventStatus:
		var st api.Status
		if err := json.Unmarshal([]byte(data), &st); err != nil {
			return api.Event{}, false, fmt.Errorf("decode a %s event: %w", name, err)
		}
		return api.Event{Name: name, Data: st}, true, nil
	case api.EventAudit:
		var e api.AuditEntry
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return api.Event{}, false, fmt.Errorf("decode an %s event: %w", name, err)
		}
		return api.Event{Name: name, Data: e}, true, nil
	}
	return api.Event{}, false, nil
}
