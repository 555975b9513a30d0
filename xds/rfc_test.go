package xds

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/xds/registrar"
)

// A refusal with Retry-After (503, 500, 480, 486) holds every REGISTER to
// that MDS until it has passed (RFC 3261 21.5.4 and 20.33), whatever the
// backoff, a kick or a probe say.
func TestRetryAfterHonoured(t *testing.T) {
	for _, code := range []int{503, 500, 480, 486} {
		t.Run(strings.ReplaceAll(registrarReason(code), " ", "_"), func(t *testing.T) {
			t.Parallel()
			srv := startRegistrar(t, "udp", registrar.Options{Knobs: registrar.Knobs{FailCode: code, RetryAfter: 120}})
			rec := newRecorder()
			opts := fastOptions(nil, rec) // backoff 20ms to 200ms
			r := startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "udp", "", "")}}, opts)
			r.Activate(1)
			ev, _ := rec.wait(t, 0, 5*time.Second, kind("mds1", EventFailed))
			if ev.Err == nil || !strings.HasSuffix(ev.Err.Error(), "(the MDS asks to retry after 120s)") {
				t.Errorf("failure = %v", ev.Err)
			}
			if st := r.Status()[0]; st.NextRefresh.Before(time.Now().Add(110 * time.Second)) {
				t.Errorf("next REGISTER at %s, want 120s after the refusal", st.NextRefresh)
			}
			// The MDS recovers, and answers probes all along (kicks are
			// tried by a probe flip below): still nothing is sent to it.
			// Watched for 10 backoff ceilings, a bounded negative
			// observation: without Retry-After the backoff (200ms at most)
			// would have sent several.
			srv.SetKnobs(registrar.Knobs{Drop: true})
			rec.wait(t, 0, 5*time.Second, kind("mds1", EventUnreachable))
			srv.SetKnobs(registrar.Knobs{})
			n := len(rec.all())
			rec.wait(t, n, 5*time.Second, kind("mds1", EventReachable))
			time.Sleep(10 * opts.BackoffMax)
			if got := srv.Stats().Registers; got != 1 {
				t.Errorf("%d REGISTERs, want 1 (no other before Retry-After)", got)
			}
			// Nor an unregistration: it is deferred, and Deactivate says so.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := r.Deactivate(ctx); err == nil || !strings.Contains(err.Error(), "mds1: unregistration deferred by ") || !strings.HasSuffix(err.Error(), "(Retry-After)") {
				t.Errorf("Deactivate = %v", err)
			}
			if got := srv.Stats().Registers; got != 1 {
				t.Errorf("%d REGISTERs after Deactivate, want 1", got)
			}
		})
	}
}

func registrarReason(code int) string {
	switch code {
	case 503:
		return "503 Service Unavailable"
	case 500:
		return "500 Server Internal Error"
	case 480:
		return "480 Temporarily Unavailable"
	}
	return "486 Busy Here"
}

// A provisional answer (100 Trying) extends the wait for the final one from
// RequestTimeout to Timer F (64*T1, RFC 3261 17.1.2.2), per MDS.
func TestProvisionalExtendsTheWait(t *testing.T) {
	srv := startRegistrar(t, "udp", registrar.Options{Knobs: registrar.Knobs{Trying: true, Delay: time.Second}})
	slow := startRegistrar(t, "udp", registrar.Options{Knobs: registrar.Knobs{Trying: true, Delay: time.Minute}})
	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.RequestTimeout = 200 * time.Millisecond // far below the 1s Delay
	opts.ProbeInterval = time.Hour
	opts.MDSTimers = map[string]Timers{"slow": {T1: 10 * time.Millisecond}} // Timer F 640ms
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{
		mds("mds1", srv.Addr(), "udp", "", ""),
		mds("slow", slow.Addr(), "udp", "", ""),
	}}, opts)
	r.Activate(1)
	ev, _ := rec.wait(t, 0, 5*time.Second, func(ev Event) bool {
		return ev.MDS == "mds1" && (ev.Kind == EventRegistered || ev.Kind == EventFailed)
	})
	if ev.Kind != EventRegistered {
		t.Errorf("mds1: %+v, want registered after 100 Trying then 200 a second later", ev)
	}
	ev, _ = rec.wait(t, 0, 5*time.Second, kind("slow", EventFailed))
	const want = "slow: no final response to REGISTER from udp " // ... after 100 Trying within 640ms
	if ev.Err == nil || !strings.HasPrefix(ev.Err.Error(), want) || !strings.Contains(ev.Err.Error(), ": 100 Trying, then nothing within 640ms") {
		t.Errorf("slow: %v", ev.Err)
	}
	if !errors.Is(ev.Err, context.DeadlineExceeded) {
		t.Errorf("slow: %v is not a timeout", ev.Err)
	}
}

// Every challenge of the answer is considered and the strongest algorithm
// we support is answered; -sess variants are supported.
func TestStrongestChallengeAnswered(t *testing.T) {
	for _, tc := range []struct {
		offered []string
		want    string
	}{
		{[]string{"MD5", "SHA-256"}, "SHA-256"},
		{[]string{"SHA-256", "MD5"}, "SHA-256"},
		{[]string{"MD5", "SHA-512-256", "SHA-256"}, "SHA-512-256"},
		{[]string{"MD5-sess"}, "MD5-sess"},
		{[]string{"MD5", "SHA-256-sess"}, "SHA-256-sess"},
		{[]string{"SHA-1", "MD5"}, "MD5"},
	} {
		t.Run(strings.Join(tc.offered, ","), func(t *testing.T) {
			for _, proxy := range []bool{false, true} {
				srv := startRegistrar(t, "udp", registrar.Options{User: "pbx", Password: "pw", Algorithms: tc.offered, ProxyAuth: proxy})
				rec := newRecorder()
				opts := fastOptions(nil, rec)
				opts.ProbeInterval = time.Hour
				r := startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "udp", "pbx", "pw")}}, opts)
				r.Activate(1)
				ev, _ := rec.wait(t, 0, 20*time.Second, outcome)
				if ev.Kind != EventRegistered {
					t.Fatalf("proxy %v: %+v", proxy, ev)
				}
				if got := srv.Stats().Algorithm; got != tc.want {
					t.Errorf("proxy %v: answered %q, want %q", proxy, got, tc.want)
				}
			}
		})
	}
}

// Challenges we cannot answer are said to be so, not taken for a wrong
// password.
func TestUnsupportedChallengeSaidSo(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts registrar.Options
		want string
	}{
		{"auth-int", registrar.Options{QOP: "auth-int"},
			"mds1: cannot answer the challenge in 401 Unauthorized: qop auth-int is not supported"},
		{"SHA-1", registrar.Options{Algorithms: []string{"SHA-1"}},
			"mds1: cannot answer the challenge in 401 Unauthorized: algorithm SHA-1 is not supported"},
		{"sess alone", registrar.Options{Algorithms: []string{"-sess"}},
			"mds1: cannot answer the challenge in 401 Unauthorized: algorithm -sess is not supported"},
		{"sess without qop", registrar.Options{Algorithms: []string{"MD5-sess"}, NoQOP: true},
			"mds1: cannot answer the challenge in 401 Unauthorized: algorithm MD5-sess without qop is not supported"},
		{"two unsupported", registrar.Options{Algorithms: []string{"SHA-1", "MD5"}, QOP: "auth-int"},
			"mds1: cannot answer the challenge in 401 Unauthorized: algorithm SHA-1 is not supported; qop auth-int is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.User, tc.opts.Password = "pbx", "pw"
			srv := startRegistrar(t, "udp", tc.opts)
			rec := newRecorder()
			opts := fastOptions(nil, rec)
			opts.ProbeInterval = time.Hour
			r := startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "udp", "pbx", "pw")}}, opts)
			r.Activate(1)
			ev, _ := rec.wait(t, 0, 5*time.Second, kind("mds1", EventFailed))
			if ev.Err == nil || ev.Err.Error() != tc.want {
				t.Errorf("error = %v, want %q", ev.Err, tc.want)
			}
			var re *ResponseError
			if !errors.As(ev.Err, &re) || re.Kind != KindUnsupported || re.StatusCode != 401 {
				t.Errorf("error %#v is not an unsupported-challenge ResponseError", ev.Err)
			}
			if srv.Stats().Registers != 1 {
				t.Errorf("%d REGISTERs before the failure, want 1 (no answer to send)", srv.Stats().Registers)
			}
		})
	}
}

// An answer that does not parse is reported as what it is, naming the MDS
// and the fault, not as a timeout; and counted as such.
func TestUnparsableAnswerSaidSo(t *testing.T) {
	addr := scriptedPeer(t, "SIP/2.0 2x0 Whatever")
	rec := newRecorder()
	reg := prometheus.NewRegistry()
	opts := fastOptions(nil, rec)
	opts.Registerer = reg
	opts.RequestTimeout = 200 * time.Millisecond
	opts.ProbeInterval = time.Hour
	r := startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", addr, "udp", "", "")}}, opts)
	r.Activate(1)
	ev, _ := rec.wait(t, 0, 5*time.Second, kind("mds1", EventFailed))
	const want = `mds1: unreadable response to REGISTER from udp ` // then the address, the fault and the first line
	if ev.Err == nil || !strings.HasPrefix(ev.Err.Error(), want) || !strings.HasSuffix(ev.Err.Error(), `(in "SIP/2.0 2x0 Whatever")`) {
		t.Errorf("error = %v", ev.Err)
	}
	if errors.Is(ev.Err, context.DeadlineExceeded) {
		t.Errorf("%v is reported as a timeout", ev.Err)
	}
	if v := testkit.Metric(t, reg, "resman_xds_register_failures_total", map[string]string{"mds": "mds1", "code": "unreadable"}); v < 1 {
		t.Errorf("unreadable failures = %v", v)
	}
}

// Timer F: per MDS, else for all, else 64*T1; never past sipgo's own.
func TestTimerFChoice(t *testing.T) {
	o := Options{
		Timers:    Timers{T1: 100 * time.Millisecond},
		MDSTimers: map[string]Timers{"a": {TimerF: 3 * time.Second}, "long": {TimerF: time.Hour}},
	}
	for name, want := range map[string]time.Duration{
		"a":     3 * time.Second,
		"other": 6400 * time.Millisecond,
		"long":  32 * time.Second, // sipgo ends its transactions then
	} {
		if got := timerF(o, name); got != want {
			t.Errorf("Timer F of %s = %s, want %s", name, got, want)
		}
	}
	if got := timerF(Options{}, "x"); got != 32*time.Second {
		t.Errorf("default Timer F = %s, want 32s (64*T1)", got)
	}
}

// An OPTIONS answer that does not parse is said so in the unreachable
// event, not taken for silence.
func TestUnparsableProbeAnswerSaidSo(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() { // answers every request with a bad status line, Via copied
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var via string
			for _, line := range strings.Split(string(buf[:n]), "\r\n") {
				if strings.HasPrefix(strings.ToLower(line), "via:") {
					via = line
				}
			}
			_, _ = pc.WriteTo([]byte("SIP/2.0 2x0 Whatever\r\n"+via+"\r\nContent-Length: 0\r\n\r\n"), from)
		}
	}()
	rec := newRecorder()
	opts := fastOptions(nil, rec)
	opts.RequestTimeout = 100 * time.Millisecond
	startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", pc.LocalAddr().String(), "udp", "", "")}}, opts)
	ev, _ := rec.wait(t, 0, 5*time.Second, kind("mds1", EventUnreachable))
	if ev.Err == nil || !strings.HasPrefix(ev.Err.Error(), "mds1: unreadable response to OPTIONS from udp ") {
		t.Errorf("unreachable: %v", ev.Err)
	}
}
