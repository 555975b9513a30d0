package main

// BenchmarkPhonesKeepalivedVIP is the comparison of
// BenchmarkPhonesFollowActive (phones_e2e_test.go): the same sipp phones
// and the same kamailio registrar per side, but with keepalived (VRRP, the
// timers of BenchmarkVersusKeepalived) moving a virtual IP between the two
// registrars instead of resman's Edge in front of them. Each registrar
// runs in a network namespace of a lab (lab_test.go) and listens on the
// virtual IP (net.ipv4.ip_nonlocal_bind=1 lets the Standby's kamailio bind
// it before holding it); the phones run in the test's own namespace and
// register to the virtual IP.
//
// Nothing re-homes the phones when the virtual IP moves: each keeps its
// binding on the registrar it last reached and is known to the new side
// only when it refreshes its own registration. So the phones here refresh,
// as real ones do: every RESMAN_PHONES_REFRESH seconds (default the expiry
// less 5 s, pjsip's margin), the first time after a random delay spread
// evenly over that period, as phones that booted at different times are;
// a refresh that gets no answer (the virtual IP in flight) is retransmitted
// on UDP's timers (sipp: up to 7 times, T1 500 ms).

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/resilience/testkit/sippeers"
)

// BenchmarkPhonesKeepalivedVIP reports, for RESMAN_PHONES phones (default
// 100; UDP, one sipp process per pair) with expiry RESMAN_PHONES_EXPIRY
// (default 300 s, as BenchmarkPhonesFollowActive's phones), the time from
// (a) kill -9 of the Main's keepalived and of its kamailio (the Active PBX
// dies), and (b) a planned move (SIGTERM to the Main's keepalived: it hands
// the virtual IP over with a priority-0 advert; its kamailio keeps
// running), to each phone's binding in the Standby's registrar, counted as
// BenchmarkPhonesFollowActive counts it (the k-th binding arrives when
// kamailio's location_contacts reaches k; polled every 20 ms the first
// 10 s, then every 100 ms), p50, p95 and max among the phones re-homed;
// how many were not re-homed within the expiry + 30 s; the time to the
// Standby holding the virtual IP (polled with `ip addr`); and the REGISTER
// rate the Standby's kamailio accepted (mean and peak over 1 s, as
// BenchmarkPhonesFollowActive). The two moves run at the same time, each
// on a pair of its own (two labs), so that one run lasts about one refresh
// period. RESMAN_PHONES_ADVERT=0.1 runs keepalived with 0.1 s VRRPv3
// adverts instead of 1 s VRRPv2 (it changes only the move of the virtual
// IP, not the phones' refresh).
//
//	go test -run '^$' -bench BenchmarkPhonesKeepalivedVIP -benchtime 1x -timeout 20m ./cmd/resman/
//	RESMAN_PHONES=50 RESMAN_PHONES_EXPIRY=60 go test -run '^$' -bench BenchmarkPhonesKeepalivedVIP -benchtime 1x -timeout 10m ./cmd/resman/
//	RESMAN_PHONES=1000 go test -run '^$' -bench BenchmarkPhonesKeepalivedVIP -benchtime 1x -timeout 20m ./cmd/resman/
//
// Measured on a 2-core machine (AMD EPYC; keepalived 2.2.7, kamailio
// 5.6.3 and sipp 3.6.1 from Debian) shared with other work (load average
// 10 to 15), one run each (times in s from the trigger):
//
//	phones expiry  kill -9: VIP moved, p50 / p95 / max   planned: VIP moved, p50 / p95 / max   not re-homed  new side REGISTER/s (mean, peak 1 s)
//	    50     60  3.01, 31.7 / 53.1 / 54.2              0.63, 25.1 / 51.9 / 54.7              0, 0          1.0, 4 / 0.9, 5
//	  1000    300  3.60, 150.1 / 280.5 / 294.4           0.69, 143.9 / 281.1 / 295.0           0, 0          3.4, 11 / 3.4, 10
//
// Side by side with BenchmarkPhonesFollowActive, and why the virtual IP
// loses: docs/proof.md (Phones behind the virtual IP).
func BenchmarkPhonesKeepalivedVIP(b *testing.B) {
	skipShort(b)
	requireNetAdmin(b)
	requireKeepalived(b)
	sippeers.NeedTool(b, "sipp", "sip-tester")
	sippeers.NeedTool(b, "kamailio", "kamailio")
	sippeers.NeedTool(b, "kamcmd", "kamailio")
	n := envInt(b, "RESMAN_PHONES", 100)
	expiry := envInt(b, "RESMAN_PHONES_EXPIRY", phoneExpires)
	if expiry < 10 {
		b.Fatalf("RESMAN_PHONES_EXPIRY: want 10 s at least, got %d", expiry)
	}
	refresh := envInt(b, "RESMAN_PHONES_REFRESH", expiry-5)
	if refresh >= expiry {
		b.Fatalf("RESMAN_PHONES_REFRESH (%d s) must be below the expiry (%d s)", refresh, expiry)
	}
	ka := ka1s
	if os.Getenv("RESMAN_PHONES_ADVERT") == "0.1" {
		ka = kaFast
	}
	for range b.N {
		res := runPhonesVIP(b, n, expiry, refresh, ka)
		for _, m := range res {
			pre := m.cause
			b.ReportMetric(m.p50.Seconds(), pre+"-p50-s")
			b.ReportMetric(m.p95.Seconds(), pre+"-p95-s")
			b.ReportMetric(m.max.Seconds(), pre+"-max-s")
			b.ReportMetric(m.vipMoved.Seconds(), pre+"-vip-move-s")
			b.ReportMetric(float64(m.notRehomed), pre+"-not-rehomed")
			b.ReportMetric(m.regMean, pre+"-newside-REGISTER/s-mean")
			b.ReportMetric(m.regPeak, pre+"-newside-REGISTER/s-peak1s")
			b.Logf("%s", m)
		}
		b.ReportMetric(float64(n), "phones")
		b.ReportMetric(float64(expiry), "expiry-s")
	}
}

// vipMove is what one move of the virtual IP measured.
type vipMove struct {
	cause, keepalived  string
	phones             int
	expiry, refresh    int
	bound              time.Duration // the wait for the phones, from the trigger
	vipMoved           time.Duration // trigger to the Standby holding the VIP
	p50, p95, max      time.Duration // among the phones re-homed
	rehomed            int
	notRehomed         int
	reachable2s        int // phones on the Standby's registrar 2 s after the VIP moved
	regMean, regPeak   float64
	oldLeft            int // bindings the Main's registrar still holds at the end; -1: killed
	arrivals           []time.Duration
	samples            []phRegSample
	vipAt, t0          time.Time
	pair               *vipPair
	finished, timedOut bool
}

func (m vipMove) String() string {
	s := fmt.Sprintf("%s (main -> standby, %d phones, %s, virtual IP; expiry %d s, refresh every %d s): VIP on the standby %.2fs after the trigger; "+
		"in the new registrar p50 %.2fs p95 %.2fs max %.2fs after the trigger (%d re-homed); not re-homed within %.0fs: %d; "+
		"new side accepted %.1f REGISTER/s mean, %.0f/s peak over 1 s; reachable on the new side 2 s after the VIP moved: %d of %d; ",
		m.cause, m.phones, m.keepalived, m.expiry, m.refresh, m.vipMoved.Seconds(),
		m.p50.Seconds(), m.p95.Seconds(), m.max.Seconds(), m.rehomed, m.bound.Seconds(), m.notRehomed,
		m.regMean, m.regPeak, m.reachable2s, m.phones)
	if m.oldLeft < 0 {
		s += "old registrar killed with its bindings"
	} else {
		s += fmt.Sprintf("old registrar still holds %d bindings (stale, until they expire)", m.oldLeft)
	}
	return s
}

// vipPair is one lab: keepalived moving a virtual IP between a Main and a
// Standby, a kamailio on the virtual IP in each, phones registered to it.
type vipPair struct {
	lab    *lab
	ka     *kaPair
	reg    map[string]*phKam
	phones *sippeers.Sipp
}

// vipRegPort is the registrars' port on the virtual IP.
const vipRegPort = 5060

// startVIPPair builds one pair and registers n phones to its virtual IP,
// all of them on the Main's registrar.
func startVIPPair(b *testing.B, n, expiry, refresh int, ka kaOpts, scenario string) *vipPair {
	b.Helper()
	l := newLab(b, "main", "standby")
	p := &vipPair{lab: l, reg: map[string]*phKam{}}
	vip := l.subnet + ".100" // startKeepalived's virtual IP
	tpl, err := filepath.Abs(filepath.Join("..", "..", "edge", "sipfront", "testdata", "kamailio.cfg"))
	if err != nil {
		b.Fatal(err)
	}
	for _, host := range []string{"main", "standby"} {
		l.inNS(l.host(host), "sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=1")
		p.reg[host] = startPhKamIn(b, tpl, l.host(host).ns, vip, vipRegPort)
	}
	p.ka = startKeepalived(b, l, ka, "")
	p.ka.settled(b)
	if !sippeers.Ping(vip + ":" + strconv.Itoa(vipRegPort)) {
		b.Fatalf("the registrar on the virtual IP %s does not answer OPTIONS", vip)
	}
	// The phones, on the lab's bridge address, for longer than the run.
	limit := 2*time.Duration(expiry)*time.Second + 10*time.Minute
	p.phones = sippeers.StartSippWith(b, sippeers.SippOptions{Timeout: limit}, scenario, "-s", "ph", "-m", strconv.Itoa(n), "-l", strconv.Itoa(n),
		"-r", "200", "-i", l.subnet+".254", "-p", strconv.Itoa(testkit.Port(b)), "-t", "u1", vip+":"+strconv.Itoa(vipRegPort))
	testkit.EventuallyWithin(b, phonesLimit, func() bool {
		select {
		case <-p.phones.Done():
			b.Fatalf("sipp exited: %v", p.phones.Err())
		default:
		}
		return phStat(b, p.reg["main"], "location_contacts") == n && phStat(b, p.reg["standby"], "location_contacts") == 0
	}, "every phone in the main's registrar, none in the standby's")
	return p
}

// runPhonesVIP builds two pairs, kills the Main of one with -9 and moves
// the other with a graceful stop of its Main's keepalived, at the same
// time, and follows both until every phone is on its Standby's registrar
// or the expiry + 30 s have passed.
func runPhonesVIP(b *testing.B, n, expiry, refresh int, ka kaOpts) []*vipMove {
	b.Helper()
	scenario := filepath.Join(b.TempDir(), "phone.xml")
	text := strings.NewReplacer("{{EXPIRES}}", strconv.Itoa(expiry), "{{REFRESH_MS}}", strconv.Itoa(refresh*1000)).Replace(vipPhoneXML)
	if err := os.WriteFile(scenario, []byte(text), 0o600); err != nil {
		b.Fatal(err)
	}
	bound := time.Duration(expiry+30) * time.Second
	moves := []*vipMove{
		{cause: "kill9", pair: startVIPPair(b, n, expiry, refresh, ka, scenario)},
		{cause: "switchover", pair: startVIPPair(b, n, expiry, refresh, ka, scenario)},
	}
	for _, m := range moves {
		m.keepalived, m.phones, m.expiry, m.refresh, m.bound = ka.name, n, expiry, refresh, bound
		if c := phStat(b, m.pair.reg["standby"], "location_contacts"); c != 0 {
			b.Fatalf("%s: the standby's registrar holds %d contacts before the move", m.cause, c)
		}
	}

	// (a) The Active PBX dies: its keepalived and its kamailio, kill -9.
	kill := moves[0]
	kill.t0 = time.Now()
	kill.pair.ka.kill("main")
	kill.pair.reg["main"].Signal(b, syscall.SIGKILL)
	// (b) A planned move: keepalived stopped as `systemctl stop` does.
	planned := moves[1]
	planned.t0 = time.Now()
	if err := planned.pair.ka.procs["main"].Process.Signal(syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}

	for {
		busy := false
		for _, m := range moves {
			if !m.finished {
				m.poll(b)
				busy = busy || !m.finished
			}
		}
		if !busy {
			break
		}
		if time.Since(planned.t0) < 10*time.Second {
			time.Sleep(20 * time.Millisecond)
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}

	for _, m := range moves {
		m.samples = append(m.samples, phRegSample{time.Now(), phStat(b, m.pair.reg["standby"], "accepted_regs")})
		m.regMean, m.regPeak = phRegRates(m.samples)
		d := slices.Sorted(slices.Values(m.arrivals))
		m.rehomed, m.notRehomed = len(d), n-len(d)
		if len(d) > 0 {
			m.p50, m.p95, m.max = percentile(d, 0.5), percentile(d, 0.95), d[len(d)-1]
		}
		m.vipMoved = m.vipAt.Sub(m.t0)
		for _, a := range d {
			if a <= m.vipMoved+2*time.Second {
				m.reachable2s++
			}
		}
		m.oldLeft = -1
		if m.cause != "kill9" {
			m.oldLeft = phStat(b, m.pair.reg["main"], "location_contacts")
		}
		if m.notRehomed > 0 {
			if raw, err := os.ReadFile(filepath.Join(m.pair.phones.Dir, "errors.log")); err == nil && len(raw) > 0 {
				b.Logf("%s: sipp errors:\n%s", m.cause, raw[max(0, len(raw)-2000):])
			}
		}
	}
	return moves
}

// poll samples one pair once: the virtual IP, the Standby's registrar.
func (m *vipMove) poll(b *testing.B) {
	b.Helper()
	reg := m.pair.reg["standby"]
	m.samples = append(m.samples, phRegSample{time.Now(), phStat(b, reg, "accepted_regs")})
	if m.vipAt.IsZero() && m.pair.ka.hasVIP("standby") {
		m.vipAt = time.Now()
	}
	c := phStat(b, reg, "location_contacts")
	for len(m.arrivals) < c {
		m.arrivals = append(m.arrivals, time.Since(m.t0))
	}
	switch {
	case m.vipAt.IsZero():
		if time.Since(m.t0) > 30*time.Second {
			b.Fatalf("%s: the keepalived standby did not take the virtual IP in 30 s", m.cause)
		}
	case len(m.arrivals) >= m.phones:
		m.finished = true
	case time.Since(m.t0) > m.bound:
		m.finished, m.timedOut = true, true
	}
}

// vipPhoneXML: each sipp call is one phone, user ph[call_number], its
// contact on sipp's socket. It registers, waits a random part of its
// refresh period (phones booted at different times), then refreshes its
// registration every period, as phones do, for as long as sipp runs.
const vipPhoneXML = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="refreshing phone">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:[service][call_number]@example.com>;tag=[pid]-[call_number]
      To: <sip:[service][call_number]@example.com>
      Call-ID: [call_id]
      CSeq: [cseq] REGISTER
      Contact: <sip:[service][call_number]@[local_ip]:[local_port];transport=[transport]>
      Expires: {{EXPIRES}}
      Max-Forwards: 70
      User-Agent: sipp phone
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
  <pause distribution="uniform" min="0" max="{{REFRESH_MS}}"/>
  <label id="refresh"/>
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:[service][call_number]@example.com>;tag=[pid]-[call_number]
      To: <sip:[service][call_number]@example.com>
      Call-ID: [call_id]
      CSeq: [cseq] REGISTER
      Contact: <sip:[service][call_number]@[local_ip]:[local_port];transport=[transport]>
      Expires: {{EXPIRES}}
      Max-Forwards: 70
      User-Agent: sipp phone
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
  <pause milliseconds="{{REFRESH_MS}}" next="refresh"/>
</scenario>
`
