// Package client is the Go client of the resman node HTTP API (served by
// resilience/web), used by the CLI, the peer checks and other tools.
//
// Answers other than 2xx are returned as *Error, with the status code and
// the server's message; failures to reach the node (dial, timeout, broken
// connection) wrap ErrUnreachable, so that callers can tell "the peer is
// down" from "the peer said no".
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
)

// DefaultTimeout bounds each call but Events.
const DefaultTimeout = 5 * time.Second

// Limits on the answers read.
const (
	maxBody      = 16 << 20
	maxErrorBody = 64 << 10
)

// ErrUnreachable wraps transport failures: the node could not be reached
// or did not answer in time.
var ErrUnreachable = errors.New("node unreachable")

// Error is a non-2xx answer of the node.
type Error struct {
	StatusCode int
	Message    string
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.StatusCode, e.Message) }

// Client calls the API of one node. It is safe for concurrent use.
type Client struct {
	base    string
	token   string
	actor   string
	hc      *http.Client
	timeout time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (for TLS settings, a proxy...). Its
// own Timeout, if any, is ignored by Events.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithTimeout bounds each call but Events (default DefaultTimeout); 0 or
// less leaves only the caller's context.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) { c.timeout = d }
}

// WithActor names who is behind the calls (sent as X-Resman-Actor): the
// audit log records "api:<actor>". The server accepts up to 64 printable
// ASCII characters.
func WithActor(actor string) Option {
	return func(c *Client) { c.actor = actor }
}

// New returns a client of the node at baseURL (e.g. "http://10.0.0.2:8443")
// with the API token.
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{
		base:    strings.TrimRight(baseURL, "/"),
		token:   token,
		hc:      &http.Client{},
		timeout: DefaultTimeout,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var st api.Status
	err := c.call(ctx, http.MethodGet, "/api/v1/status", nil, true, &st)
	return st, err
}

// Active asks GET /active. An inactive node answers 503: that is an
// answer, not an error.
func (c *Client) Active(ctx context.Context) (api.Active, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.do(ctx, http.MethodGet, "/active", nil, false)
	if err != nil {
		return api.Active{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return api.Active{}, readError(resp)
	}
	var a api.Active
	if err := decode(ctx, http.MethodGet, "/active", resp, &a); err != nil {
		return api.Active{}, err
	}
	return a, nil
}

// StartServices asks the node to start its services.
func (c *Client) StartServices(ctx context.Context, req api.StartRequest) (api.Status, error) {
	var st api.Status
	err := c.call(ctx, http.MethodPost, "/api/v1/services/start", req, true, &st)
	return st, err
}

// StopServices asks the node to stop its services.
func (c *Client) StopServices(ctx context.Context, req api.StopRequest) (api.Status, error) {
	var st api.Status
	err := c.call(ctx, http.MethodPost, "/api/v1/services/stop", req, true, &st)
	return st, err
}

// Switchover asks the Active node for a planned, ordered swap.
func (c *Client) Switchover(ctx context.Context, req api.SwitchoverRequest) (api.Status, error) {
	var st api.Status
	err := c.call(ctx, http.MethodPost, "/api/v1/switchover", req, true, &st)
	return st, err
}

// StartFailover asks an auto-mode Main for a manual HA failover.
func (c *Client) StartFailover(ctx context.Context, req api.FailoverRequest) (api.Status, error) {
	var st api.Status
	err := c.call(ctx, http.MethodPost, "/api/v1/failover", req, true, &st)
	return st, err
}

// StopFailover ends a manual HA failover early.
func (c *Client) StopFailover(ctx context.Context, req api.StopRequest) (api.Status, error) {
	var st api.Status
	err := c.call(ctx, http.MethodDelete, "/api/v1/failover", req, true, &st)
	return st, err
}

// RunReplication asks the Active node to run one replication job (or all,
// with an empty Job) now; it answers with the jobs' status.
func (c *Client) RunReplication(ctx context.Context, req api.ReplicationRunRequest) ([]api.Replication, error) {
	var st []api.Replication
	err := c.call(ctx, http.MethodPost, "/api/v1/replication/run", req, true, &st)
	return st, err
}

// Audit returns up to limit audit entries, newest first, older than the
// entry before when before is not 0. A limit of 0 takes the server's
// default (100).
func (c *Client) Audit(ctx context.Context, limit int, before uint64) ([]api.AuditEntry, error) {
	q := url.Values{}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if before != 0 {
		q.Set("before", strconv.FormatUint(before, 10))
	}
	path := "/api/v1/audit"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var entries []api.AuditEntry
	err := c.call(ctx, http.MethodGet, path, nil, true, &entries)
	return entries, err
}

func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout > 0 {
		return context.WithTimeout(ctx, c.timeout)
	}
	return context.WithCancel(ctx)
}

// call does one JSON request and decodes a 2xx answer into out.
func (c *Client) call(ctx context.Context, method, path string, in any, auth bool, out any) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = b
	}
	resp, err := c.do(ctx, method, path, body, auth)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return readError(resp)
	}
	return decode(ctx, method, path, resp, out)
}

// do sends a request; transport failures wrap ErrUnreachable, unless the
// caller's context ended first.
func (c *Client) do(ctx context.Context, method, path string, body []byte, auth bool) (*http.Response, error) {
	req, err := c.newRequest(ctx, method, path, body, auth)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, transportError(ctx, method, path, err)
	}
	return resp, nil
}

// do and Events share the request building.
func (c *Client) newRequest(ctx context.Context, method, path string, body []byte, auth bool) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "resman-client")
	if auth {
		req.Header.Set("Authorization", "Bearer "+c.token)
		if c.actor != "" {
			req.Header.Set("X-Resman-Actor", c.actor)
		}
	}
	return req, nil
}

// transportError wraps err in ErrUnreachable, or returns the context's
// error when the caller gave up: that is not the node's fault.
func transportError(ctx context.Context, method, path string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		// url.Error repeats the URL; keep the cause.
		err = ue.Err
	}
	if cerr := context.Cause(ctx); cerr != nil && !errors.Is(cerr, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", method, path, cerr)
	}
	return fmt.Errorf("%w: %s %s: %w", ErrUnreachable, method, path, err)
}

// decode reads a JSON answer; a connection broken while reading wraps
// ErrUnreachable.
func decode(ctx context.Context, method, path string, resp *http.Response, out any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return transportError(ctx, method, path, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
	}
	return nil
}

// readError turns a non-2xx answer into *Error, with the api.Error message
// or, failing that, the status text.
func readError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var e api.Error
	msg := ""
	if err := json.Unmarshal(b, &e); err == nil && e.Error != "" {
		msg = e.Error
	} else if t := strings.TrimSpace(string(b)); t != "" && len(t) <= 200 {
		msg = t
	} else {
		msg = strings.ToLower(http.StatusText(resp.StatusCode))
	}
	return &Error{StatusCode: resp.StatusCode, Message: msg}
}
