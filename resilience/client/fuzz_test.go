package client_test

// Fuzz targets of the event stream reader (Client.Events): it reads bytes a
// node, or anything between the client and the node, sends, and hands
// typed events to the CLI, the Edge's switch-over checks and the CC
// follower. What they protect:
//
//   - FuzzEvents: any stream, however malformed, ends Events with nil or an
//     error (no panic, no hang); every event handed over has a known name
//     with the matching Go type of Data; no event is handed over without
//     the blank line that ends it; and whatever was accepted is accepted
//     again, unchanged, once written back the way the server writes it.
//   - FuzzEventsRoundTrip: events written as the server writes them (and
//     in the variants SSE allows: CRLF ends of line, "data:" without its
//     space, data split over several lines, comments, events of unknown
//     names) come back exactly, in order, the unknown ones skipped.
//
// The seed corpus is in testdata/fuzz/<target>/.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/api"
	"github.com/resman-pbx/resman/resilience/client"
)

// streamTransport answers every request with an event stream of body.
type streamTransport []byte

func (b streamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"text/event-stream"}},
		Body:       io.NopCloser(bytes.NewReader(b)),
		Request:    req,
	}, nil
}

// readStream runs Events over body and returns the events handed over.
func readStream(t *testing.T, body []byte) ([]api.Event, error) {
	t.Helper()
	c := client.New("http://node.test", "token", client.WithHTTPClient(&http.Client{Transport: streamTransport(body)}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []api.Event
	err := c.Events(ctx, func(ev api.Event) error {
		got = append(got, ev)
		return nil
	})
	if ctx.Err() != nil {
		t.Fatalf("Events did not end with its finite stream: %v", err)
	}
	return got, err
}

// encode writes events as the server does: name, id, one data line of
// JSON, a blank line.
func encode(t *testing.T, events []api.Event) []byte {
	t.Helper()
	var b bytes.Buffer
	for i, ev := range events {
		data, err := json.Marshal(ev.Data)
		if err != nil {
			t.Fatalf("encode %+v: %v", ev, err)
		}
		fmt.Fprintf(&b, "event: %s\nid: %d\ndata: %s\n\n", ev.Name, i+1, data)
	}
	return b.Bytes()
}

// sameEvents compares events by name and JSON data (decoded times carry
// zones of their own, which reflect.DeepEqual would tell apart).
func sameEvents(t *testing.T, got, want []api.Event) bool {
	t.Helper()
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Name != want[i].Name || reflect.TypeOf(got[i].Data) != reflect.TypeOf(want[i].Data) {
			return false
		}
		g, err1 := json.Marshal(got[i].Data)
		w, err2 := json.Marshal(want[i].Data)
		if err1 != nil || err2 != nil || !bytes.Equal(g, w) {
			return false
		}
	}
	return true
}

func FuzzEvents(f *testing.F) {
	f.Add([]byte("event: status\nid: 1\ndata: {\"node\":\"n1\"}\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := readStream(t, body)
		if err != nil && !strings.HasPrefix(err.Error(), "GET /api/v1/events: decode ") {
			t.Fatalf("a stream read whole ended with %q, want nil or a decode error", err)
		}
		blank := 0
		for _, line := range strings.Split(string(body), "\n") {
			if strings.TrimSuffix(line, "\r") == "" {
				blank++
			}
		}
		if len(got) > blank {
			t.Fatalf("%d events handed over, but the stream has only %d blank lines to end them", len(got), blank)
		}
		for _, ev := range got {
			var ok bool
			switch ev.Name {
			case api.EventStatus:
				_, ok = ev.Data.(api.Status)
			case api.EventAudit:
				_, ok = ev.Data.(api.AuditEntry)
			}
			if !ok {
				t.Fatalf("event %q handed over with data of type %T", ev.Name, ev.Data)
			}
		}
		again, err2 := readStream(t, body)
		if !sameEvents(t, again, got) || fmt.Sprint(err) != fmt.Sprint(err2) {
			t.Fatalf("the same stream read twice differs: %v, %v / %v, %v", got, err, again, err2)
		}
		// What was accepted, written back as the server writes it, reads
		// back the same.
		back, err := readStream(t, encode(t, got))
		if err != nil || !sameEvents(t, back, got) {
			t.Fatalf("accepted events written back read as %+v, %v; want %+v", back, err, got)
		}
	})
}

func FuzzEventsRoundTrip(f *testing.F) {
	f.Add("xivo-main", "api:alice@host", "planned switch", uint64(42), false, false, false, "keep-alive")
	f.Fuzz(func(t *testing.T, node, who, reason string, id uint64, crlf, noSpace, split bool, comment string) {
		at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		sent := []api.Event{
			{Name: api.EventStatus, Data: api.Status{Node: node, Status: api.StatusActive, Epoch: id, Since: at}},
			{Name: "future-event", Data: map[string]string{"node": node}}, // skipped
			{Name: api.EventAudit, Data: api.AuditEntry{ID: id, Time: at, Who: who, Action: "stop", Reason: reason, Outcome: api.OutcomeOK}},
			{Name: api.EventStatus, Data: api.Status{Node: reason, Status: api.StatusInactive}},
		}
		eol, field := "\n", "data: "
		if crlf {
			eol = "\r\n"
		}
		if noSpace {
			field = "data:"
		}
		// A comment is one line: what a line break would start is not a
		// comment any more.
		comment = strings.NewReplacer("\r", "", "\n", "").Replace(comment)
		var b strings.Builder
		for i, ev := range sent {
			var data []byte
			var err error
			if split {
				data, err = json.MarshalIndent(ev.Data, "", "  ") // breaks only between tokens
			} else {
				data, err = json.Marshal(ev.Data)
			}
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, ":%s%s", comment, eol)
			fmt.Fprintf(&b, "event: %s%sid: %d%s", ev.Name, eol, i+1, eol)
			for _, line := range strings.Split(string(data), "\n") {
				b.WriteString(field + line + eol)
			}
			b.WriteString(eol)
		}
		got, err := readStream(t, []byte(b.String()))
		if err != nil {
			t.Fatalf("Events: %v\nstream:\n%s", err, b.String())
		}
		// Expected: the known events, as JSON carries them (invalid UTF-8
		// becomes U+FFFD on the way).
		var want []api.Event
		for _, ev := range sent {
			data, _ := json.Marshal(ev.Data)
			switch ev.Name {
			case api.EventStatus:
				var st api.Status
				if err := json.Unmarshal(data, &st); err != nil {
					t.Fatal(err)
				}
				want = append(want, api.Event{Name: ev.Name, Data: st})
			case api.EventAudit:
				var e api.AuditEntry
				if err := json.Unmarshal(data, &e); err != nil {
					t.Fatal(err)
				}
				want = append(want, api.Event{Name: ev.Name, Data: e})
			}
		}
		if !sameEvents(t, got, want) {
			t.Fatalf("events read back:\n%+v\nwant\n%+v\nstream:\n%s", got, want, b.String())
		}
	})
}
