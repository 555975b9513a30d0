package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
)

// maxAnswer bounds an answer of the receiver read by the sender.
const maxAnswer = 4 << 20

// peerError is an answer of the receiver other than 2xx.
type peerError struct {
	code int
	msg  string
}

func (e *peerError) Error() string { return fmt.Sprintf("the peer answered %d: %s", e.code, e.msg) }

// pushClient calls the receiver's routes on the peer.
type pushClient struct {
	base    string
	token   string
	hc      *http.Client
	timeout time.Duration
}

// do sends one request with body and decodes a 2xx JSON answer into out.
// The body's length is added to *sent, even when the request fails.
func (c *pushClient) do(ctx context.Context, method, path string, q url.Values, body []byte, out any, sent *int64) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if method == http.MethodPut {
		req.Header.Set("Content-Type", "application/octet-stream")
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	if sent != nil {
		*sent += int64(len(body))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e api.Error
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return fmt.Errorf("%s %s: %w", method, path, &peerError{code: resp.StatusCode, msg: msg})
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
		}
	}
	return nil
}

// postJSON encodes in and posts it.
func (c *pushClient) postJSON(ctx context.Context, path string, q url.Values, in, out any, sent *int64) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("POST %s: encode: %w", path, err)
	}
	return c.do(ctx, http.MethodPost, path, q, body, out, sent)
}

// peerCode is the status code of a peerError in err's chain, or 0.
func peerCode(err error) int {
	var pe *peerError
	if errors.As(err, &pe) {
		return pe.code
	}
	return 0
}
