package sipfront

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// URI parameters of the front's Record-Route and Path entries: d says
// which way the entry faces (p: the phones, s: a side's PBX), s names the
// side, fl is the phone's flow.
const (
	paramDir   = "d"
	paramSide  = "s"
	paramFlow  = "fl"
	facePhone  = "p"
	faceSide   = "s"
	defaultMF  = 70
	retryAfter = "5"
)

// ours is what the front's own Route entries at the top of a request say.
type ours struct {
	n    int    // how many were popped
	from string // facePhone or faceSide: where the request came from
	side string
	fl   flow
	hasF bool
}

// popOurRoutes removes the front's entries at the top of the Route set.
func (f *Front) popOurRoutes(req *sip.Request) ours {
	var o ours
	for {
		h, ok := req.GetHeader("Route").(*sip.RouteHeader)
		if !ok || h == nil || !f.isMe(h.Address.Host, h.Address.Port) {
			return o
		}
		p := h.Address.UriParams
		d, _ := p.Get(paramDir)
		if o.n == 0 {
			o.from = d
		}
		if s, ok := p.Get(paramSide); ok && o.side == "" {
			o.side = s
		}
		if t, ok := p.Get(paramFlow); ok && !o.hasF {
			o.fl, o.hasF = parseToken(t)
		}
		req.RemoveHeader("Route")
		o.n++
	}
}

// ourURI is a URI of the front with its parameters: the entries that
// face the sides (UDP and TCP).
func (f *Front) ourURI(kv ...string) sip.Uri {
	u := sip.Uri{Scheme: "sip", Host: f.host, Port: f.port, UriParams: sip.NewParams()}
	u.UriParams.Add("lr", "")
	for i := 0; i+1 < len(kv); i += 2 {
		u.UriParams.Add(kv[i], kv[i+1])
	}
	return u
}

// phoneURI is the front's Record-Route entry that faces the phone of
// flow fl: on the port of the phone's transport, with that transport
// (RFC 3261 §16.6 item 4; RFC 7118 §5.4 for WebSocket), so that the
// phone sends its in-dialog requests where it sent the first one.
func (f *Front) phoneURI(fl flow) sip.Uri {
	u := f.ourURI(paramDir, facePhone, paramFlow, fl.token())
	u.Port = f.portFor(fl.net)
	if fl.net != "udp" {
		u.UriParams.Add("transport", fl.net)
	}
	return u
}

func (f *Front) onRequest(req *sip.Request, from flow) {
	via := req.Via()
	if via == nil || req.CallID() == nil || req.CSeq() == nil || req.From() == nil || req.To() == nil ||
		(req.CSeq().MethodName != req.Method) {
		f.metrics.messages.WithLabelValues("malformed").Inc()
		if via != nil && !req.IsAck() {
			setReceived(via, from)
			f.reply(req, from, 400, "Bad Request", nil)
		}
		return
	}
	setReceived(via, from)
	if mf := req.MaxForwards(); mf != nil && *mf == 0 {
		if !req.IsAck() {
			f.reply(req, from, 483, "Too Many Hops", nil)
		}
		return
	}
	// The Edge's own entries say which way the request goes; an entry of
	// the Edge without a direction is a phone's preloaded outbound proxy.
	o := f.popOurRoutes(req)
	toTag := req.To().Params.Has("tag")
	switch {
	case o.from == faceSide:
		f.fromSide(req, from, o, toTag)
	case o.from == facePhone:
		f.fromPhone(req, from, o, toTag)
	case req.Method == sip.REGISTER:
		f.regs.onRegister(req, from)
	case req.Method == sip.OPTIONS && !toTag && f.isMe(req.Recipient.Host, req.Recipient.Port) && req.Recipient.User == "":
		// A keep-alive or a check of the Edge itself.
		f.reply(req, from, 200, "OK", nil)
	default:
		if fl, ok := f.regs.flowOfContact(req.Recipient); ok && f.sideAt(from.addr.Addr()) != nil {
			// A PBX that does not honour Path sends to the contact.
			f.fromSide(req, from, ours{from: faceSide, side: f.sideAt(from.addr.Addr()).name, fl: fl, hasF: true}, toTag)
			return
		}
		f.fromPhone(req, from, o, toTag)
	}
}

// fromPhone sends a phone's request to the Active side. An in-dialog
// request of a dialog of another side is answered 481.
func (f *Front) fromPhone(req *sip.Request, from flow, o ours, toTag bool) {
	act := f.active.Load()
	if o.from == facePhone && o.side != "" && (act == nil || o.side != act.name) {
		// The dialog belongs to a side that lost Active: end it.
		f.metrics.endedDialogs.Inc()
		if !req.IsAck() {
			f.reply(req, from, 481, "Call/Transaction Does Not Exist", nil)
		}
		return
	}
	if act == nil {
		if !req.IsAck() {
			f.reply(req, from, 503, "Service Unavailable", []sip.Header{sip.NewHeader("Retry-After", retryAfter)})
		}
		return
	}
	if !toTag && dialogCreating(req.Method) {
		// Both entries: the top one faces the PBX, the next the phone.
		f.recordRoute(req, f.ourURI(paramDir, faceSide, paramSide, act.name), f.phoneURI(from))
	}
	f.forward(req, from, act.dest)
}

// fromSide sends a PBX's request to the phone's flow.
func (f *Front) fromSide(req *sip.Request, from flow, o ours, toTag bool) {
	s := f.sideAt(from.addr.Addr())
	if s == nil {
		// Only the PBXs may use the entries that lead to phones.
		if !req.IsAck() {
			f.reply(req, from, 403, "Forbidden", nil)
		}
		return
	}
	if !o.hasF {
		if !req.IsAck() {
			f.reply(req, from, 404, "Not Found", nil)
		}
		return
	}
	if !toTag && dialogCreating(req.Method) {
		side := o.side
		if side == "" {
			side = s.name
		}
		if act := f.active.Load(); act == nil || act.name != side {
			// A side that is not Active does not start calls to phones.
			if !req.IsAck() {
				f.reply(req, from, 480, "Temporarily Unavailable", nil)
			}
			return
		}
		f.recordRoute(req, f.phoneURI(o.fl), f.ourURI(paramDir, faceSide, paramSide, side))
	}
	f.forward(req, from, o.fl)
}

// recordRoute adds two Record-Route entries: top faces the next hop,
// second the previous one (double record-routing), so that the entry at
// the top of a later request says where it came from.
func (f *Front) recordRoute(req *sip.Request, top, second sip.Uri) {
	req.PrependHeader(&sip.RecordRouteHeader{Address: top}, &sip.RecordRouteHeader{Address: second})
}

func dialogCreating(m sip.RequestMethod) bool {
	return m == sip.INVITE || m == sip.SUBSCRIBE || m == sip.REFER || m == sip.NOTIFY
}

// sideAt is the side whose PBX has address a, nil if none.
func (f *Front) sideAt(a netip.Addr) *side {
	for _, s := range f.sides {
		if s.dest.addr.Addr() == a.Unmap() {
			return s
		}
	}
	return nil
}

// forward sends req on to dst statelessly: Max-Forwards decremented, loop
// check, the front's Via on top with a branch that is the same for a
// retransmission (and for a CANCEL or non-2xx ACK of the same INVITE).
func (f *Front) forward(req *sip.Request, from flow, dst flow) {
	if mf := req.MaxForwards(); mf != nil {
		mf.Dec()
	} else {
		m := sip.MaxForwardsHeader(defaultMF)
		req.AppendHeader(&m)
	}
	loop := f.loopHash(req)
	for _, h := range req.GetHeaders("Via") {
		if v, ok := h.(*sip.ViaHeader); ok && f.isMe(v.Host, v.Port) {
			if b, _ := v.Params.Get("branch"); strings.HasSuffix(b, "."+loop) {
				f.metrics.answers.WithLabelValues("482").Inc()
				if !req.IsAck() {
					f.reply(req, from, 482, "Loop Detected", nil)
				}
				return
			}
		}
	}
	// The client's branch makes ours: a retransmission, and a CANCEL or
	// a non-2xx ACK of an INVITE (same client branch), get the INVITE's,
	// as the next server matches them by it; an ACK for a 2xx has a
	// branch of its own.
	top := req.Via()
	tb, _ := top.Params.Get("branch")
	branch := fwdBranch + hash64(tb, top.SentBy(), req.CallID().Value(), strconv.FormatUint(uint64(req.CSeq().SeqNo), 10)) + "." + loop
	req.PrependHeader(f.via(dst, branch))
	if err := f.tr.send(context.Background(), dst, req); err != nil {
		f.metrics.messages.WithLabelValues("unsent").Inc()
		f.log.Debug("cannot forward", "method", string(req.Method), "to", dst.String(), "error", err)
		req.RemoveHeader("Via")
		switch {
		case req.IsAck() || req.Method == sip.CANCEL:
		case errors.Is(err, errNoConnection):
			// A phone on TLS or WebSocket whose connection is gone: it
			// is unreachable until it connects and registers again.
			f.reply(req, from, 480, "Temporarily Unavailable", nil)
		default:
			f.reply(req, from, 503, "Service Unavailable", []sip.Header{sip.NewHeader("Retry-After", retryAfter)})
		}
		return
	}
	f.metrics.forwarded.Inc()
}

// loopHash covers what a looping request keeps (RFC 3261 §16.6 item 8):
// not the Vias, but the Request-URI, the tags, Call-ID, CSeq number and
// the Route set left.
func (f *Front) loopHash(req *sip.Request) string {
	parts := []string{req.Recipient.String(), req.CallID().Value(), strconv.FormatUint(uint64(req.CSeq().SeqNo), 10)}
	if t, ok := req.From().Params.Get("tag"); ok {
		parts = append(parts, t)
	}
	if t, ok := req.To().Params.Get("tag"); ok {
		parts = append(parts, t)
	}
	for _, h := range req.GetHeaders("Route") {
		parts = append(parts, h.Value())
	}
	return hash64(parts...)
}

// onResponse sends a response on to the next Via, or to the front's own
// transaction that waits for it.
func (f *Front) onResponse(res *sip.Response, from flow) {
	v := res.Via()
	if v == nil || !f.isMe(v.Host, v.Port) {
		f.metrics.messages.WithLabelValues("dropped").Inc()
		return
	}
	branch, _ := v.Params.Get("branch")
	if strings.HasPrefix(branch, ownBranch) {
		if ch, ok := f.clientTx.Load(branch); ok {
			select {
			case ch.(chan *sip.Response) <- res:
			default:
			}
		}
		return
	}
	if cs := res.CSeq(); cs != nil && res.IsSuccess() {
		switch cs.MethodName {
		case sip.INVITE:
			f.dialogs.confirm(f, res)
		case sip.BYE:
			if id := res.CallID(); id != nil {
				f.dialogs.forget(id.Value())
			}
		}
	}
	res.RemoveHeader("Via")
	next := res.Via()
	if next == nil {
		f.metrics.messages.WithLabelValues("dropped").Inc()
		return
	}
	dst, ok := viaFlow(next)
	if !ok {
		f.metrics.messages.WithLabelValues("dropped").Inc()
		return
	}
	if err := f.tr.send(context.Background(), dst, res); err != nil {
		f.metrics.messages.WithLabelValues("unsent").Inc()
		f.log.Debug("cannot send response on", "to", dst.String(), "error", err)
		return
	}
	f.metrics.forwarded.Inc()
}

// setReceived adds received and rport to the sender's Via (RFC 3261
// §18.2.1, RFC 3581): answers go where the request came from, through NAT.
// On a connection (TCP, TLS, WebSocket) rport is always set: the answer
// goes back on that connection, whose remote port the Via must name (a
// WebSocket client's Via names no address at all, RFC 7118 §5.2).
func setReceived(v *sip.ViaHeader, from flow) {
	if v.Params == nil {
		v.Params = sip.NewParams()
	}
	ip := from.addr.Addr().String()
	if v.Host != ip {
		v.Params.Add("received", ip)
	}
	if v.Params.Has("rport") || from.net != "udp" {
		v.Params.Add("rport", strconv.Itoa(int(from.addr.Port())))
	}
}

// viaFlow is where a response to the request of Via v goes.
func viaFlow(v *sip.ViaHeader) (flow, bool) {
	host := v.Host
	if r, ok := v.Params.Get("received"); ok && r != "" {
		host = r
	}
	port := v.Port
	if rp, ok := v.Params.Get("rport"); ok && rp != "" {
		if n, err := strconv.Atoi(rp); err == nil {
			port = n
		}
	}
	if port == 0 {
		port = 5060
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil || port < 1 || port > 65535 {
		return flow{}, false
	}
	fl := flow{net: strings.ToLower(v.Transport), addr: netip.AddrPortFrom(ip.Unmap(), uint16(port))}
	return fl, fl.valid()
}

// reply answers req statelessly to where it came from.
func (f *Front) reply(req *sip.Request, from flow, code int, reason string, hdrs []sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if to := res.To(); code > 100 && to != nil && !to.Params.Has("tag") {
		id := ""
		if c := req.CallID(); c != nil {
			id = c.Value()
		}
		to.Params.Add("tag", hash64(id, f.nonce))
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	f.metrics.answers.WithLabelValues(strconv.Itoa(code)).Inc()
	dst := from
	if v := req.Via(); v != nil && from.net == "udp" {
		if fl, ok := viaFlow(v); ok {
			dst = fl
		}
	}
	if err := f.tr.send(context.Background(), dst, res); err != nil {
		f.log.Debug("cannot answer", "code", code, "to", dst.String(), "error", err)
	}
}
