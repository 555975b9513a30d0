package xds

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Kinds of ResponseError.
const (
	KindRefused     = "refused"     // a 4xx, 5xx or 6xx final answer
	KindUnexpected  = "unexpected"  // an answer REGISTER should not get (3xx)
	KindMalformed   = "malformed"   // an answer that cannot be used as it is
	KindNotHeld     = "not held"    // a 200 OK whose list of bindings lacks our contact
	KindUnsupported = "unsupported" // a challenge we cannot answer (algorithm, qop)
)

// ResponseError is an MDS answer that is not the success asked for. Its
// message carries the status line and, for authentication failures, the
// config keys to check; never the credentials.
type ResponseError struct {
	MDS        string
	Kind       string // KindRefused, KindUnexpected or KindMalformed
	What       string // registration or unregistration (KindRefused)
	StatusCode int
	Reason     string
	Detail     string // e.g. "after authentication", "invalid Expires header"
	Hint       string // e.g. "check xds.mds[0].user/password"
	// RetryAfter is the delay the MDS asked for (Retry-After on a 500,
	// 503, 480 or 486), 0 if none.
	RetryAfter time.Duration
}

func (e *ResponseError) Error() string {
	var s strings.Builder
	s.WriteString(e.MDS)
	switch e.Kind {
	case KindRefused:
		what := e.What
		if what == "" {
			what = "registration"
		}
		s.WriteString(": " + what + " refused: ")
	case KindUnexpected:
		s.WriteString(": unexpected response to REGISTER: ")
	case KindNotHeld:
		s.WriteString(": registration not held: ")
	case KindUnsupported:
		s.WriteString(": cannot answer the challenge in ")
	default:
		s.WriteString(": malformed response to REGISTER: ")
	}
	s.WriteString(strconv.Itoa(e.StatusCode))
	if e.Reason != "" {
		s.WriteString(" " + e.Reason)
	}
	if e.Detail != "" {
		if e.Kind == KindRefused || e.Kind == KindNotHeld {
			s.WriteString(" " + e.Detail)
		} else {
			s.WriteString(": " + e.Detail)
		}
	}
	if e.Hint != "" {
		s.WriteString(" (" + e.Hint + ")")
	}
	return s.String()
}

// failureCode is the code label of a failed registration: the SIP status,
// "not_held" for a success that does not list our contact, "unreadable"
// for an answer that does not parse, "timeout" when
// no answer came, "error" otherwise.
func failureCode(err error) string {
	var re *ResponseError
	switch {
	case errors.As(err, &re) && re.Kind == KindNotHeld:
		return "not_held"
	case errors.Is(err, errUnreadable):
		return "unreadable"
	case errors.As(err, &re):
		return strconv.Itoa(re.StatusCode)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	default:
		return "error"
	}
}
