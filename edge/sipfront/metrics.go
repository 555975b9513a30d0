package sipfront

import (
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the resman_edge_sip_* metrics.
type metrics struct {
	messages       *prometheus.CounterVec
	answers        *prometheus.CounterVec
	upstream       *prometheus.CounterVec
	forwarded      prometheus.Counter
	sent           prometheus.Counter
	localRegisters prometheus.Counter
	endedDialogs   prometheus.Counter
	rehome         prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, f *Front) (*metrics, error) {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resman_edge_sip_messages_total",
			Help: "SIP messages received by the Edge's SIP front, by kind (request, response, malformed: not SIP, too large or lacking a mandatory header; dropped: a response not for the Edge; unsent: could not be sent on)."}, []string{"kind"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resman_edge_sip_answers_total",
			Help: "Answers the SIP front sent of its own (REGISTERs answered, 400, 481, 482, 483, 503, ...), by status code."}, []string{"code"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resman_edge_sip_upstream_registers_total",
			Help: "REGISTERs the SIP front sent to a side, by side and reason (phone: a phone's registration or refresh that was due; rehome: re-registering on the new Active side and removing from the old; unregister; expired: a phone that stopped refreshing)."}, []string{"side", "reason"}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: "resman_edge_sip_forwarded_total",
			Help: "SIP requests and responses the front sent on."}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "resman_edge_sip_sent_total",
			Help: "SIP messages the front wrote: forwarded, its own answers and requests, their retransmissions."}),
		localRegisters: prometheus.NewCounter(prometheus.CounterOpts{Name: "resman_edge_sip_cached_registers_total",
			Help: "Phones' REGISTER refreshes answered from the cache: the side's binding was not due."}),
		endedDialogs: prometheus.NewCounter(prometheus.CounterOpts{Name: "resman_edge_sip_ended_dialogs_total",
			Help: "Calls of a side that lost Active ended by the Edge: a BYE to a phone when another side took Active, or an in-dialog request answered 481."}),
		rehome: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "resman_edge_sip_rehome_seconds",
			Help:    "Time from a switch of the Active side to each phone's registration on the new side.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120}}),
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.messages, m.answers, m.upstream, m.forwarded, m.sent, m.localRegisters, m.endedDialogs, m.rehome}
	for _, s := range f.sides {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "resman_edge_sip_registered",
			Help:        "Phones registered through the Edge whose binding is on this side (side=\"none\": not on any side yet).",
			ConstLabels: prometheus.Labels{"side": s.name}}, func() float64 { return float64(f.regs.count(s)) }))
	}
	cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "resman_edge_sip_registered",
		Help:        "Phones registered through the Edge whose binding is on this side (side=\"none\": not on any side yet).",
		ConstLabels: prometheus.Labels{"side": "none"}}, func() float64 { return float64(f.regs.count(nil)) }))
	for _, q := range []struct {
		label string
		pick  func(Rehome) float64
	}{{"0.5", func(r Rehome) float64 { return r.P50 }}, {"0.95", func(r Rehome) float64 { return r.P95 }}, {"1", func(r Rehome) float64 { return r.Max }}} {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "resman_edge_sip_last_rehome_seconds",
			Help:        "The last re-homing: time from the switch to each phone's registration on the new side, by quantile (1: the last phone).",
			ConstLabels: prometheus.Labels{"quantile": q.label}}, func() float64 {
			if r := f.regs.lastRehome(); r != nil {
				return q.pick(*r)
			}
			return 0
		}))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register edge sip metrics (one front per registry): %w", err)
		}
	}
	return m, nil
}

// count is the number of bindings on s (nil: on no side).
func (r *registry) count(s *side) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, b := range r.bindings {
		if b.side == s {
			n++
		}
	}
	return n
}

// Status is the SIP front's part of the Edge's status.
type Status struct {
	// Listen is the UDP and TCP address; Advertise the one in Via,
	// Record-Route and Path.
	Listen    string `json:"listen"`
	Advertise string `json:"advertise"`
	// TLS, WS and WSS are the phones' SIP over TLS and WebSocket
	// addresses, absent when off.
	TLS string `json:"tls,omitempty"`
	WS  string `json:"ws,omitempty"`
	WSS string `json:"wss,omitempty"`
	// Active is the side requests go to, empty when none.
	Active string `json:"active"`
	// Expires is the expiry granted to phones, seconds.
	Expires      int `json:"expires"`
	RegisterRate int `json:"register_rate"`
	// Registered counts the phones' bindings through the Edge.
	Registered int          `json:"registered"`
	Sides      []SideStatus `json:"sides"`
	// Unplaced counts the bindings on no side (none was Active yet, or
	// the side refused).
	Unplaced int `json:"unplaced"`
	// Calls counts the confirmed calls through the Edge it knows of.
	Calls int `json:"calls"`
	// Transports counts the bindings by the phone's transport (udp, tcp,
	// tls, ws, wss).
	Transports map[string]int `json:"transports,omitempty"`
	// LastRehome is the latest re-homing, absent before any switch.
	LastRehome *Rehome `json:"last_rehome,omitempty"`
}

// SideStatus is one side's PBX and the phones registered on it.
type SideStatus struct {
	Name       string `json:"name"`
	SIP        string `json:"sip"`
	Registered int    `json:"registered"`
}

// Rehome is one re-homing: after a switch to To, every binding through
// the Edge registered on To. Times are seconds from the switch.
type Rehome struct {
	From    string    `json:"from,omitempty"`
	To      string    `json:"to"`
	Started time.Time `json:"started"`
	// Bindings to move; Moved of them are on To (ByEdge re-registered by
	// the Edge, the others by their phone); Pending are not yet.
	Bindings int `json:"bindings"`
	Moved    int `json:"moved"`
	ByEdge   int `json:"by_edge"`
	Pending  int `json:"pending"`
	// Failed counts the Edge's attempts a side refused or did not answer
	// (those bindings move at their phone's next REGISTER).
	Failed int `json:"failed"`
	// Removed counts the bindings removed from the side that lost Active.
	Removed int `json:"removed"`
	// Done is set once no binding is pending; Seconds is then the
	// re-homing's length.
	Done    bool    `json:"done"`
	Seconds float64 `json:"seconds,omitempty"`
	P50     float64 `json:"p50"`
	P95     float64 `json:"p95"`
	Max     float64 `json:"max"`
}

func (r *registry) lastRehome() *Rehome {
	r.mu.Lock()
	defer r.mu.Unlock()
	rh := r.last
	if rh == nil {
		return nil
	}
	out := &Rehome{From: rh.from, To: rh.to, Started: rh.started.UTC(), Bindings: rh.total, Moved: len(rh.done),
		ByEdge: rh.edge, Pending: len(rh.pending), Failed: rh.failed, Removed: rh.removed, Done: !rh.finished.IsZero()}
	if out.Done {
		out.Seconds = rh.finished.Sub(rh.started).Seconds()
	}
	if n := len(rh.done); n > 0 {
		d := slices.Clone(rh.done)
		slices.Sort(d)
		q := func(p float64) float64 { return d[min(n-1, int(p*float64(n)))].Seconds() }
		out.P50, out.P95, out.Max = q(0.5), q(0.95), d[n-1].Seconds()
	}
	return out
}

// Status is a snapshot of the front.
func (f *Front) Status() Status {
	st := Status{Listen: f.listen, Advertise: f.hostPort(), Active: f.Active(), Expires: f.expires, RegisterRate: f.rate}
	if a := f.Addr(); a != "" {
		st.Listen = a
	}
	for _, s := range f.sides {
		n := f.regs.count(s)
		st.Sides = append(st.Sides, SideStatus{Name: s.name, SIP: s.uri, Registered: n})
		st.Registered += n
	}
	st.Unplaced = f.regs.count(nil)
	st.Registered += st.Unplaced
	st.LastRehome = f.regs.lastRehome()
	st.Calls = f.dialogs.count()
	st.Transports = f.regs.byTransport()
	st.TLS, st.WS, st.WSS = f.listenOf("tls", f.tlsListen), f.listenOf("ws", f.wsListen), f.listenOf("wss", f.wssListen)
	return st
}

// listenOf is the bound address of transport, or its configured one
// before Serve ("" when off).
func (f *Front) listenOf(transport, configured string) string {
	if a := f.BoundAddr(transport); a != "" {
		return a
	}
	return configured
}

// byTransport counts the bindings by their phone's transport.
func (r *registry) byTransport() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bindings) == 0 {
		return nil
	}
	m := map[string]int{}
	for _, b := range r.bindings {
		m[b.fl.net]++
	}
	return m
}
