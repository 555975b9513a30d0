// Package timeline draws what the components of a resman deployment were
// doing over time, as an SVG picture: one lane per component (a node, a CC
// follower, a side of an Edge), coloured by state, and the faults injected
// into them as vertical lines and shaded bands. The fault-injection tests
// and the benchmark against keepalived write one, so that a failover can be
// seen at a glance. Standard library only.
//
// Like its parent testkit, it is for tests only: only _test.go files and
// test-support packages may import it.
package timeline

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// State is what a lane shows at a moment.
type State string

// The states of a lane. Unknown is drawn as nothing (before the first
// sample, or for a component not yet started).
const (
	Unknown     State = ""
	Active      State = "active"
	Inactive    State = "inactive"
	Transition  State = "transition" // activating, deactivating, or a keepalived state change
	Unreachable State = "unreachable"
)

// FromStatus maps a resman status ("active", "inactive", "activating",
// "deactivating") to a State; anything else is Unknown.
func FromStatus(s string) State {
	switch s {
	case "active":
		return Active
	case "inactive":
		return Inactive
	case "activating", "deactivating":
		return Transition
	}
	return Unknown
}

// Span is one stretch of a lane in one state.
type Span struct {
	From, To time.Time
	State    State
	// Note is shown when hovering the span (a status with its epoch, say).
	Note string
}

// Fault is an injected fault: a line at From, a shaded band up to To when
// To is after From.
type Fault struct {
	From, To time.Time
	Label    string
}

// Chart collects lanes and faults. Its methods are safe for concurrent use:
// each component is usually sampled by a goroutine of its own.
type Chart struct {
	mu     sync.Mutex
	title  string
	start  time.Time
	end    time.Time
	order  []string
	lanes  map[string][]Span
	faults []Fault
}

// New starts a chart whose time axis begins at start.
func New(title string, start time.Time) *Chart {
	return &Chart{title: title, start: start, end: start, lanes: map[string][]Span{}}
}

// Lane declares a lane, so that lanes appear in the order they are
// declared rather than in the order of their first sample.
func (c *Chart) Lane(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lane(name)
}

func (c *Chart) lane(name string) {
	if _, ok := c.lanes[name]; !ok {
		c.lanes[name] = nil
		c.order = append(c.order, name)
	}
}

// Set records that lane was in state s at time at (a sample). The state
// lasts until the next sample of the lane; samples in the same state and
// with the same note extend the current span.
func (c *Chart) Set(lane string, at time.Time, s State, note string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lane(lane)
	if at.After(c.end) {
		c.end = at
	}
	spans := c.lanes[lane]
	if n := len(spans); n > 0 {
		last := &spans[n-1]
		if at.Before(last.To) {
			return // a late sample: the lane has already moved on
		}
		last.To = at
		if last.State == s && last.Note == note {
			return
		}
	}
	c.lanes[lane] = append(spans, Span{From: at, To: at, State: s, Note: note})
}

// Fault marks a fault from from to to (to equal to from: an instant).
func (c *Chart) Fault(from, to time.Time, label string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if to.Before(from) {
		to = from
	}
	if to.After(c.end) {
		c.end = to
	}
	c.faults = append(c.faults, Fault{From: from, To: to, Label: label})
}

// Spans returns a copy of a lane's spans.
func (c *Chart) Spans(lane string) []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Span(nil), c.lanes[lane]...)
}

// Layout of the picture, in pixels.
const (
	minMargin    = 150 // left of the lanes, for their names
	marginRight  = 30
	headerHeight = 130 // room for the rotated fault labels
	laneHeight   = 22
	laneGap      = 8
	axisHeight   = 40
	legendHeight = 30
	pxPerSecond  = 14.0
	minPlotWidth = 900
	maxPlotWidth = 8000
)

var fills = map[State]string{
	Active:      "#2e9d4a",
	Inactive:    "#c4c4c4",
	Transition:  "#f0a202",
	Unreachable: "url(#unreachable)",
}

var legendNames = []struct {
	s    State
	name string
}{
	{Active, "Active"},
	{Inactive, "Inactive"},
	{Transition, "activating / deactivating"},
	{Unreachable, "unreachable (dead, frozen or cut off)"},
}

// WriteSVG draws the chart.
func (c *Chart) WriteSVG(w io.Writer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := c.end.Sub(c.start).Seconds()
	if total <= 0 {
		total = 1
	}
	plotW := math.Min(math.Max(total*pxPerSecond, minPlotWidth), maxPlotWidth)
	scale := plotW / total
	marginLeft := float64(minMargin)
	for _, name := range c.order {
		marginLeft = math.Max(marginLeft, 7*float64(len([]rune(name)))+20)
	}
	x := func(t time.Time) float64 {
		return marginLeft + math.Max(0, t.Sub(c.start).Seconds())*scale
	}
	lanesTop := float64(headerHeight)
	lanesH := float64(len(c.order)*(laneHeight+laneGap)) - laneGap
	if lanesH < 0 {
		lanesH = 0
	}
	width := marginLeft + plotW + marginRight
	height := lanesTop + lanesH + axisHeight + legendHeight

	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	p(`<defs><pattern id="unreachable" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
		`<rect width="6" height="6" fill="#f6d5d5"/><line x1="0" y1="0" x2="0" y2="6" stroke="#d62728" stroke-width="3"/></pattern></defs>` + "\n")
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="8" y="18" font-size="14" font-weight="bold">%s</text>`+"\n", esc(c.title))

	// Fault bands first, under the lanes.
	for _, f := range c.faults {
		if f.To.After(f.From) {
			p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#1f77b4" fill-opacity="0.08"><title>%s (%s – %s)</title></rect>`+"\n",
				x(f.From), lanesTop-4, math.Max(x(f.To)-x(f.From), 1), lanesH+8, esc(f.Label), c.sec(f.From), c.sec(f.To))
		}
	}
	for i, name := range c.order {
		y := lanesTop + float64(i*(laneHeight+laneGap))
		p(`<text x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", marginLeft-8, y+laneHeight/2, esc(name))
		p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="none" stroke="#eeeeee"/>`+"\n", marginLeft, y, plotW, laneHeight)
		for _, s := range c.lanes[name] {
			fill, ok := fills[s.State]
			if !ok {
				continue
			}
			note := string(s.State)
			if s.Note != "" {
				note = s.Note
			}
			p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s"><title>%s: %s, %s – %s</title></rect>`+"\n",
				x(s.From), y, math.Max(x(s.To)-x(s.From), 1), laneHeight, fill, esc(name), esc(note), c.sec(s.From), c.sec(s.To))
		}
	}
	// Fault lines and their labels, rotated in the header.
	for _, f := range c.faults {
		fx := x(f.From)
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#1f3b73" stroke-width="1" stroke-dasharray="3,2"/>`+"\n",
			fx, lanesTop-6, fx, lanesTop+lanesH+4)
		p(`<text x="%.1f" y="%.1f" transform="rotate(-50 %.1f %.1f)" font-size="11" fill="#1f3b73">%s</text>`+"\n",
			fx+2, lanesTop-10, fx+2, lanesTop-10, esc(truncate(f.Label, 30)))
	}
	// Time axis.
	axisY := lanesTop + lanesH + 8
	p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", marginLeft, axisY, marginLeft+plotW, axisY)
	step := tickStep(total, plotW)
	for s := 0.0; s <= total+1e-9; s += step {
		tx := marginLeft + s*scale
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", tx, axisY, tx, axisY+4)
		p(`<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11">%s</text>`+"\n", tx, axisY+16, tickLabel(s))
	}
	p(`<text x="%.1f" y="%.1f" text-anchor="end" font-size="11" fill="#555">time since start</text>`+"\n", marginLeft+plotW, axisY+30)
	// Legend.
	ly := axisY + axisHeight
	lx := marginLeft
	for _, l := range legendNames {
		p(`<rect x="%.1f" y="%.1f" width="14" height="12" fill="%s"/>`+"\n", lx, ly-10, fills[l.s])
		p(`<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+18, ly, esc(l.name))
		lx += 18 + 7*float64(len(l.name)) + 20
	}
	p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#1f3b73" stroke-dasharray="3,2"/>`+"\n", lx, ly-10, lx, ly+2)
	p(`<text x="%.1f" y="%.1f">fault (shaded while it lasts)</text>`+"\n", lx+6, ly)
	p("</svg>\n")
	return bw.Flush()
}

// WriteFile draws the chart into path, creating its directory.
func (c *Chart) WriteFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := c.WriteSVG(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (c *Chart) sec(t time.Time) string {
	return fmt.Sprintf("%.1f s", t.Sub(c.start).Seconds())
}

// tickStep picks a round step for about one tick per 80 pixels.
func tickStep(total, plotW float64) float64 {
	want := total / math.Max(plotW/80, 1)
	steps := []float64{0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600}
	i := sort.SearchFloat64s(steps, want)
	if i == len(steps) {
		return steps[len(steps)-1]
	}
	return steps[i]
}

func tickLabel(s float64) string {
	switch {
	case s >= 60 && math.Mod(s, 60) == 0:
		return fmt.Sprintf("%.0f min", s/60)
	case s == math.Trunc(s):
		return fmt.Sprintf("%.0f s", s)
	}
	return fmt.Sprintf("%.1f s", s)
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func esc(s string) string { return html.EscapeString(strings.TrimSpace(s)) }
