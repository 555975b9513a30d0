package services

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/resman-pbx/resman/config/confcheck"
	"github.com/resman-pbx/resman/services/hysteresis"
)

// This file is the config of a list of services: the items of the file's
// services (a node's) and cc.services (a CC follower's). Package config
// composes it into the file's Config; the keys, defaults and checks of an
// item live here. Whether a file may list services at all (only a main or
// standby node, or a CC follower) is a rule across sections, in config.

// Values returned by Service.Kind and Check.Kind.
const (
	KindCommands = "commands"
	KindUnit     = "unit"
	KindRun      = "run"

	KindSIP  = "sip"
	KindExec = "exec"
	KindTCP  = "tcp"
	KindHTTP = "http"
)

// Service is one local service, started in order and stopped in reverse.
// Exactly one of Start/Stop (commands), Unit (a systemd unit) or Run (a
// foreground process resman supervises) says how it is driven.
type Service struct {
	// Name is unique within its list. Required.
	Name string `mapstructure:"name"`
	// Start and Stop are argv lists, both or neither.
	Start []string `mapstructure:"start"`
	Stop  []string `mapstructure:"stop"`
	// Unit is a systemd unit name; start/stop use systemctl.
	Unit string `mapstructure:"unit"`
	// Run is a foreground command resman starts and keeps; stop sends
	// SIGTERM, then SIGKILL after Timeout.
	Run []string `mapstructure:"run"`
	// Timeout bounds one start or stop. Default: 30s.
	Timeout time.Duration `mapstructure:"timeout"`
	// Check is the optional health probe.
	Check *Check `mapstructure:"check"`
	// Critical: unhealthy makes the node unhealthy (failover in auto mode).
	// Default: false.
	Critical bool `mapstructure:"critical"`
}

// Check is a health probe; exactly one of SIP, Exec, TCP, HTTP is set.
type Check struct {
	// SIP is a sip: or sips: URI probed with SIP OPTIONS, port optional.
	SIP string `mapstructure:"sip"`
	// Exec is an argv list; exit status 0 is healthy.
	Exec []string `mapstructure:"exec"`
	// TCP is a host:port that must accept a connection.
	TCP string `mapstructure:"tcp"`
	// HTTP is an http(s) URL; a GET answered 200-399 passes (redirects are
	// not followed).
	HTTP string `mapstructure:"http"`
	// Interval between probes. Default: 1s.
	Interval time.Duration `mapstructure:"interval"`
	// Timeout of one probe. Default: 1s, or Interval when that is shorter.
	// Never above Interval.
	Timeout time.Duration `mapstructure:"timeout"`
	// Rise consecutive passes make it healthy, Fall consecutive failures
	// unhealthy. Defaults: 2 and 2.
	Rise int `mapstructure:"rise"`
	Fall int `mapstructure:"fall"`
}

// Kind says how the service is driven: KindCommands (start and stop),
// KindUnit or KindRun, or "" when none is set. On a validated config
// exactly one is set.
func (s Service) Kind() string {
	switch {
	case len(s.Start) > 0 || len(s.Stop) > 0:
		return KindCommands
	case s.Unit != "":
		return KindUnit
	case len(s.Run) > 0:
		return KindRun
	}
	return ""
}

// Kind is the probe type: KindSIP, KindExec, KindTCP or KindHTTP, or ""
// when none is set. On a validated config exactly one is set.
func (c Check) Kind() string {
	switch {
	case c.SIP != "":
		return KindSIP
	case len(c.Exec) > 0:
		return KindExec
	case c.TCP != "":
		return KindTCP
	case c.HTTP != "":
		return KindHTTP
	}
	return ""
}

// ApplyDefaults fills the defaults of the list ss at key path list
// ("services", "cc.services") for the keys given reports absent.
func ApplyDefaults(given confcheck.Given, list string, ss []Service) {
	for i := range ss {
		s := &ss[i]
		key := fmt.Sprintf("%s[%d]", list, i)
		confcheck.Default(given, key+".timeout", &s.Timeout, 30*time.Second)
		if ch := s.Check; ch != nil {
			confcheck.Default(given, key+".check.interval", &ch.Interval, time.Second)
			timeout := time.Second
			if ch.Interval > 0 && ch.Interval < timeout {
				timeout = ch.Interval // a probe never outlives its interval
			}
			confcheck.Default(given, key+".check.timeout", &ch.Timeout, timeout)
			confcheck.Default(given, key+".check.rise", &ch.Rise, hysteresis.DefaultRise)
			confcheck.Default(given, key+".check.fall", &ch.Fall, hysteresis.DefaultFall)
		}
	}
}

// Validate checks the list ss at key path list, defaults filled, and
// records its problems in ps.
func Validate(ps *confcheck.Problems, list string, ss []Service) {
	seen := map[string]int{}
	for i, s := range ss {
		key := fmt.Sprintf("%s[%d]", list, i)
		ps.NameIn(seen, list, i, s.Name, "a service name, like asterisk")

		var kinds []string
		if len(s.Start) > 0 || len(s.Stop) > 0 {
			kinds = append(kinds, "start+stop")
			if len(s.Start) == 0 {
				ps.Add(key+".start", "required with stop: the command that starts the service")
			}
			if len(s.Stop) == 0 {
				ps.Add(key+".stop", "required with start: the command that stops the service")
			}
			ps.Command(key+".start", s.Start)
			ps.Command(key+".stop", s.Stop)
		}
		if s.Unit != "" {
			kinds = append(kinds, "unit")
			if strings.ContainsFunc(s.Unit, unicode.IsSpace) {
				ps.Add(key+".unit", "must be one systemd unit name without spaces, got %q", s.Unit)
			}
		}
		if len(s.Run) > 0 {
			kinds = append(kinds, "run")
			ps.Command(key+".run", s.Run)
		}
		switch len(kinds) {
		case 0:
			ps.Add(key, "needs one of start+stop, unit or run to say how the service is driven")
		case 1:
		default:
			ps.Add(key, "set only one of start+stop, unit or run, got %s", strings.Join(kinds, " and "))
		}
		ps.Positive(key+".timeout", s.Timeout)
		if s.Check != nil {
			s.Check.validate(ps, key+".check")
		}
	}
}

// validate checks the probe at key path key.
func (ch Check) validate(ps *confcheck.Problems, key string) {
	var kinds []string
	if ch.SIP != "" {
		kinds = append(kinds, "sip")
		if !confcheck.ValidSIP(ch.SIP) {
			ps.Add(key+".sip", "must be a sip: or sips: URI with a host, like sip:127.0.0.1:5060, got %q", ch.SIP)
		}
	}
	if len(ch.Exec) > 0 {
		kinds = append(kinds, "exec")
		ps.Command(key+".exec", ch.Exec)
	}
	if ch.TCP != "" {
		kinds = append(kinds, "tcp")
		ps.HostPort(key+".tcp", ch.TCP, true, "127.0.0.1:5432")
	}
	if ch.HTTP != "" {
		kinds = append(kinds, "http")
		ps.URL(key+".http", ch.HTTP, false, "http://127.0.0.1:8080/health")
	}
	switch len(kinds) {
	case 0:
		ps.Add(key, "needs one of sip, exec, tcp or http")
	case 1:
	default:
		ps.Add(key, "set only one of sip, exec, tcp or http, got %s", strings.Join(kinds, " and "))
	}
	ps.Positive(key+".interval", ch.Interval)
	ps.Positive(key+".timeout", ch.Timeout)
	if ch.Interval > 0 && ch.Timeout > ch.Interval {
		ps.Add(key+".timeout", "must not exceed %s.interval (%s), got %s", key, ch.Interval, ch.Timeout)
	}
	ps.AtLeastOne(key+".rise", ch.Rise)
	ps.AtLeastOne(key+".fall", ch.Fall)
}
