package resilience

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/resman-pbx/resman/resilience/golden"
)

// TestScenarios runs every testdata/*.txt file. A file starts with a config
// line; each "> event" line is followed by the actions it produced, an
// "error: ..." line for a refusal, and "= status epoch=N [holding |
// held-by-admin]". Run with -rewrite
// to regenerate the expected lines, then read the diff.
func TestScenarios(t *testing.T) {
	golden.Files(t, "testdata/*.txt", runScenario)
}

// runScenario replays the events of a scenario file and returns the file
// with every expected block replaced by what the machine did.
func runScenario(src string) (string, error) {
	var out strings.Builder
	var m *Machine
	inBlock := false
	for n, line := range strings.Split(strings.TrimRight(src, "\n"), "\n") {
		where := fmt.Sprintf("line %d", n+1)
		switch {
		case strings.HasPrefix(line, "> "):
			if m == nil {
				return "", fmt.Errorf("%s: event before the config line", where)
			}
			ev, err := parseEvent(strings.TrimPrefix(line, "> "))
			if err != nil {
				return "", fmt.Errorf("%s: %w", where, err)
			}
			out.WriteString(line + "\n")
			var acts []Action
			var stepErr error
			for range repeat(line) {
				a, err := m.Step(ev)
				acts, stepErr = append(acts, a...), err
			}
			for _, a := range acts {
				out.WriteString(FormatAction(a) + "\n")
			}
			if stepErr != nil {
				out.WriteString("error: " + stepErr.Error() + "\n")
			}
			fmt.Fprintf(&out, "= %s epoch=%d", m.Status(), m.Epoch())
			if m.AdminHold() {
				out.WriteString(" held-by-admin")
			} else if m.Holding() {
				out.WriteString(" holding")
			}
			out.WriteString("\n")
			inBlock = true
		case inBlock && line != "" && !strings.HasPrefix(line, "#"):
			// An expected line of the block: replaced by what ran.
		case strings.HasPrefix(line, "config "):
			kv, err := parseKV(strings.TrimPrefix(line, "config "))
			if err != nil {
				return "", fmt.Errorf("%s: %w", where, err)
			}
			c, err := scenarioConfig(kv)
			if err != nil {
				return "", fmt.Errorf("%s: %w", where, err)
			}
			m, err = New(c)
			if err != nil {
				return "", fmt.Errorf("%s: %w", where, err)
			}
			out.WriteString(line + "\n")
		default:
			inBlock = false
			out.WriteString(line + "\n")
		}
	}
	return out.String(), nil
}

// repeat is N for a "> tick N" line, else 1.
func repeat(line string) int {
	if n, err := strconv.Atoi(strings.TrimPrefix(line, "> tick ")); err == nil && strings.HasPrefix(line, "> tick ") {
		return n
	}
	return 1
}

func parseEvent(s string) (Event, error) {
	verb, rest, _ := strings.Cut(s, " ")
	if verb == "tick" {
		return Tick{}, nil
	}
	if verb == "peer" {
		p, err := parsePeer(strings.TrimSpace(rest))
		return PeerSeen{Peer: p}, err
	}
	kv, err := parseKV(rest)
	if err != nil {
		return nil, err
	}
	switch verb {
	case "boot":
		var b Boot
		if v := kv["saved"]; v != "" && v != "none" {
			st, ep, err := parseStatusEpoch(v)
			if err != nil {
				return nil, err
			}
			b.Saved = &Saved{Status: st, Epoch: ep}
		}
		b.Peer, err = parsePeer(kv["peer"])
		return b, err
	case "start":
		p, err := parsePeer(kv["peer"])
		return AdminStart{Who: kv["who"], Reason: kv["reason"], Force: kv["force"] == "true", Peer: p, Rollback: kv["rollback"]}, err
	case "stop":
		return AdminStop{Who: kv["who"], Reason: kv["reason"]}, nil
	case "started":
		return ServicesStarted{Err: kv["err"]}, nil
	case "stopped":
		return ServicesStopped{Err: kv["err"]}, nil
	case "health":
		var names []string
		if v := kv["unhealthy"]; v != "" {
			names = strings.Split(v, ",")
		}
		return Health{Unhealthy: names}, nil
	case "failover":
		n, _ := strconv.Atoi(kv["for"])
		return AdminFailover{Who: kv["who"], Reason: kv["reason"], ForTicks: n, For: kv["for"] + " ticks", NotReady: kv["not-ready"]}, nil
	case "switchover-stop":
		return SwitchoverStop{Who: kv["who"], Reason: kv["reason"], ID: kv["id"]}, nil
	case "switchover-ended":
		p, err := parsePeer(kv["peer"])
		return SwitchoverEnded{ID: kv["id"], Peer: p}, err
	case "persist-failed":
		return PersistFailed{Err: kv["err"]}, nil
	case "store-writable":
		return StoreWritable{}, nil
	case "failover-stop":
		return AdminFailoverStop{Who: kv["who"], Reason: kv["reason"]}, nil
	case "reconfigure":
		c, err := scenarioConfig(kv)
		return Reconfigure{Config: c, Who: "admin"}, err
	case "witness":
		return WitnessSeen{Witness: WitnessView{Alive: kv["alive"] == "true", SeesPeer: kv["sees-peer"] == "true"}}, nil
	}
	return nil, fmt.Errorf("unknown event %q", verb)
}

// parsePeer reads "unreachable" or "status:epoch", optionally prefixed by
// "name/".
func parsePeer(s string) (PeerView, error) {
	name := ""
	if n, rest, ok := strings.Cut(s, "/"); ok {
		name, s = n, rest
	}
	if s == "" || s == "unreachable" {
		return PeerView{Name: name}, nil
	}
	if s == "unreadable" {
		return PeerView{Name: name, Reachable: true, Unreadable: true}, nil
	}
	s, flags, _ := strings.Cut(s, "+")
	st, ep, err := parseStatusEpoch(s)
	p := PeerView{Name: name, Reachable: true, Status: st, Epoch: ep}
	for _, f := range strings.Split(flags, "+") {
		switch f {
		case "":
		case "holding":
			p.Holding = true
		case "unhealthy":
			p.Unhealthy = true
		default:
			return p, fmt.Errorf("unknown peer flag %q", f)
		}
	}
	return p, err
}

func parseStatusEpoch(s string) (Status, uint64, error) {
	st, ep, ok := strings.Cut(s, ":")
	if !ok {
		return "", 0, fmt.Errorf("want status:epoch, got %q", s)
	}
	n, err := strconv.ParseUint(ep, 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("epoch in %q: %w", s, err)
	}
	switch Status(st) {
	case Active, Inactive, Activating, Deactivating:
	default:
		return "", 0, fmt.Errorf("unknown status %q", st)
	}
	return Status(st), n, nil
}

// parseKV reads space-separated key=value pairs; values may be Go-quoted.
func parseKV(s string) (map[string]string, error) {
	kv := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		key, rest, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("want key=value in %q", s)
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, fmt.Errorf("value of %s: %w", key, err)
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			val, rest, _ = strings.Cut(rest, " ")
		}
		kv[key] = val
		s = rest
	}
	return kv, nil
}

// scenarioConfig reads a config line's keys; lost and hold, when given,
// must be whole numbers (a typo must not silently mean 0).
func scenarioConfig(kv map[string]string) (Config, error) {
	c := Config{Name: kv["name"], Role: Role(kv["role"]), Mode: Mode(kv["mode"]),
		FailbackAuto: kv["failback"] != "manual", Witness: kv["witness"] == "true"}
	for key, n := range map[string]*int{"lost": &c.LostTicks, "hold": &c.FailbackHoldTicks, "grace": &c.BootGraceTicks} {
		if v, ok := kv[key]; ok {
			var err error
			if *n, err = strconv.Atoi(v); err != nil {
				return Config{}, fmt.Errorf("%s=%q: want a whole number of ticks", key, v)
			}
		}
	}
	return c, nil
}
