package timeline

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

func TestSpansMergeAndOrder(t *testing.T) {
	t0 := time.Date(2025, 10, 1, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	c := New("test", t0)
	c.Lane("main")
	c.Lane("standby")
	c.Set("standby", at(0), Inactive, "")
	c.Set("main", at(0), Active, "")
	c.Set("main", at(1), Active, "")
	c.Set("main", at(2), Unreachable, "")
	c.Set("main", at(1.5), Active, "") // late: ignored
	c.Set("main", at(3), Inactive, "")
	c.Set("standby", at(1), Transition, "")
	c.Set("standby", at(2), Active, "epoch 2")
	c.Set("standby", at(3), Active, "epoch 2")

	got := c.Spans("main")
	want := []Span{
		{From: at(0), To: at(2), State: Active},
		{From: at(2), To: at(3), State: Unreachable},
		{From: at(3), To: at(3), State: Inactive},
	}
	if len(got) != len(want) {
		t.Fatalf("main spans: %+v", got)
	}
	for i := range want {
		if !got[i].From.Equal(want[i].From) || !got[i].To.Equal(want[i].To) || got[i].State != want[i].State {
			t.Fatalf("main span %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if s := c.Spans("standby"); len(s) != 3 || s[2].Note != "epoch 2" || !s[2].To.Equal(at(3)) {
		t.Fatalf("standby spans: %+v", s)
	}

	c.Fault(at(1.8), at(2.9), "kill -9 main")
	c.Fault(at(2.5), at(2.5), `SIGHUP <standby> & "more"`)
	var buf bytes.Buffer
	if err := c.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	svg := buf.String()
	// Well-formed XML, labels escaped, lanes in declared order.
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, svg)
		}
	}
	if strings.Index(svg, ">main<") > strings.Index(svg, ">standby<") {
		t.Fatal("lanes not in declared order")
	}
	for _, s := range []string{"kill -9 main", "SIGHUP &lt;standby&gt;", fills[Active], fills[Transition], `id="unreachable"`} {
		if !strings.Contains(svg, s) {
			t.Errorf("SVG lacks %q", s)
		}
	}
}

func TestTickStep(t *testing.T) {
	for _, tc := range []struct {
		total, width, want float64
	}{
		{60, 900, 10},
		{600, 8000, 10},
		{3, 900, 0.5},
		{36000, 8000, 600},
	} {
		if got := tickStep(tc.total, tc.width); got != tc.want {
			t.Errorf("tickStep(%v, %v) = %v, want %v", tc.total, tc.width, got, tc.want)
		}
	}
}
