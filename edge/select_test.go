package edge

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/resman-pbx/resman/resilience/golden"
)

// TestSelectScenarios runs every testdata/select/*.txt file. Each "> "
// line gives the sides in their listed order, "name=health@epoch" (health
// up, down or unknown), and optionally "routed=name|none" to set the side
// routed before the line; it is followed by the side pick routes to,
// "= name, kept" or "= name, switched from other" ("none" for no side).
// The routed side carries over from one line to the next, as in the Edge.
// Lines starting with "#" say why. Run with -rewrite to regenerate the
// expected lines, then read the diff.
func TestSelectScenarios(t *testing.T) {
	golden.Files(t, "testdata/select/*.txt", runSelect)
}

// runSelect returns src with the line after every "> " line (its expected
// answer, "= ...") replaced by what pick answers.
func runSelect(src string) (string, error) {
	var out strings.Builder
	routed := "none"
	lines := strings.Split(strings.TrimRight(src, "\n"), "\n")
	for n := 0; n < len(lines); n++ {
		line := lines[n]
		out.WriteString(line + "\n")
		if !strings.HasPrefix(line, "> ") {
			continue
		}
		names, views, set, err := parseSides(strings.TrimPrefix(line, "> "))
		if err != nil {
			return "", fmt.Errorf("line %d: %w", n+1, err)
		}
		if set != "" {
			routed = set
		}
		cur := -1
		for i, name := range names {
			if name == routed {
				cur = i
			}
		}
		if cur < 0 && routed != "none" {
			return "", fmt.Errorf("line %d: the routed side %s is not on the line", n+1, routed)
		}
		to := "none"
		if i := pick(views, cur); i >= 0 {
			to = names[i]
		}
		if to == routed {
			fmt.Fprintf(&out, "= %s, kept\n", to)
		} else {
			fmt.Fprintf(&out, "= %s, switched from %s\n", to, routed)
		}
		routed = to
		if n+1 < len(lines) && strings.HasPrefix(lines[n+1], "= ") {
			n++ // the expected line, replaced
		}
	}
	return out.String(), nil
}

// parseSides reads "name=health@epoch ... [routed=name]".
func parseSides(s string) (names []string, views []sideView, routed string, err error) {
	for _, f := range strings.Fields(s) {
		name, v, ok := strings.Cut(f, "=")
		if !ok || name == "" || name == "none" {
			return nil, nil, "", fmt.Errorf("%q: want name=health@epoch or routed=name", f)
		}
		if name == "routed" {
			routed = v
			continue
		}
		health, ep, ok := strings.Cut(v, "@")
		if !ok {
			return nil, nil, "", fmt.Errorf("%q: want name=health@epoch", f)
		}
		switch health {
		case HealthUp, HealthDown, HealthUnknown:
		default:
			return nil, nil, "", fmt.Errorf("%q: health is up, down or unknown", f)
		}
		epoch, err := strconv.ParseUint(ep, 10, 64)
		if err != nil {
			return nil, nil, "", fmt.Errorf("%q: the epoch is a whole number", f)
		}
		for _, seen := range names {
			if seen == name {
				return nil, nil, "", fmt.Errorf("side %s twice", name)
			}
		}
		names = append(names, name)
		views = append(views, sideView{Health: health, Epoch: epoch})
	}
	if len(names) == 0 {
		return nil, nil, "", fmt.Errorf("no side")
	}
	return names, views, routed, nil
}
