package sipfront

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// defaultPhoneExpires is a REGISTER's expiry when it asks none (RFC 3261
// §10.2.1.1 leaves it to the registrar; 3600 is usual).
const defaultPhoneExpires = 3600

// binding is one phone's registration through the front: an AOR and a
// contact, the flow it came from, and where it is registered upstream.
type binding struct {
	key     string
	aor     string
	contact string // the Contact's URI, as the phone wrote it
	fl      flow
	// From and To of the phone's REGISTER, without tags; the Request-URI.
	from, to string
	ruri     sip.Uri
	ua       string // User-Agent
	// requested is the expiry the phone asked, sent upstream.
	requested int
	// phoneUntil: the phone's registration with the front ends then.
	phoneUntil time.Time
	// side holds the upstream binding, nil when none; upUntil is its end.
	side    *side
	upUntil time.Time
	// callID and cseq are the front's own towards the sides.
	callID string
	cseq   uint32
	// challenged: a side asked credentials the front cannot give; the
	// phone's next REGISTER goes to it.
	challenged bool
	busy       bool // a REGISTER for this binding is under way
	// toward is the side the phone's own REGISTER is under way to, nil
	// when none: a switch to that side has nothing to move.
	toward *side
}

// rehome is one re-homing: moving the bindings to the new Active side.
type rehome struct {
	from, to string
	started  time.Time
	total    int
	pending  map[string]bool // bindings not yet on the new side
	done     []time.Duration // each binding, from the switch to its 2xx
	edge     int             // of done, re-registered by the front itself
	failed   int             // the front could not (a challenge, no answer)
	removed  int             // removed from the side that lost Active
	finished time.Time
}

type registry struct {
	f        *Front
	mu       sync.Mutex
	bindings map[string]*binding
	last     *rehome // the latest re-homing, nil before any
	cancel   context.CancelFunc
	pending  map[string]struct{} // phones' REGISTERs under way: call-id+cseq
	wg       sync.WaitGroup
	// life is Serve's context (set before any message is handled): the
	// REGISTERs sent for phones and bindings end with it, so a shutdown
	// does not wait for their answers.
	life context.Context
}

func newRegistry(f *Front) *registry {
	return &registry{f: f, bindings: map[string]*binding{}, pending: map[string]struct{}{}, life: context.Background()}
}

// run starts a re-homing at each change of the Active side and expires
// the bindings of phones that stopped refreshing, until ctx is done.
func (r *registry) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.mu.Lock()
			if r.cancel != nil {
				r.cancel()
			}
			r.mu.Unlock()
			r.wg.Wait()
			return
		case <-r.f.changed:
			r.switched(ctx)
		case <-t.C:
			r.expire(ctx)
			r.f.dialogs.endNotOn(ctx, r.f, "", &r.wg) // only ages them
		}
	}
}

func aorOf(u sip.Uri) string {
	return strings.ToLower(u.User + "@" + u.Host)
}

func uriKey(u sip.Uri) string {
	hp := u.Host
	if u.Port != 0 {
		hp += ":" + strconv.Itoa(u.Port)
	}
	return strings.ToLower(u.User + "@" + hp)
}

// flowOfContact is the flow of the phone registered with contact u.
func (r *registry) flowOfContact(u sip.Uri) (flow, bool) {
	k := uriKey(u)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bindings {
		var cu sip.Uri
		if sip.ParseUri(b.contact, &cu) == nil && uriKey(cu) == k {
			return b.fl, true
		}
	}
	return flow{}, false
}

// expiresOf is the expiry a REGISTER asks for contact c.
func expiresOf(req *sip.Request, c *sip.ContactHeader) int {
	if v, ok := c.Params.Get("expires"); ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
			return n
		}
	}
	if h := req.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n >= 0 {
			return n
		}
	}
	return defaultPhoneExpires
}

// onRegister handles a phone's REGISTER: answered from the cache when the
// Active side's binding is not due, sent to the Active side otherwise.
func (r *registry) onRegister(req *sip.Request, from flow) {
	f := r.f
	contacts := req.GetHeaders("Contact")
	aor := aorOf(req.To().Address)
	if len(contacts) == 0 {
		f.reply(req, from, 200, "OK", r.contactsOf(aor))
		return
	}
	c, ok := contacts[0].(*sip.ContactHeader)
	if !ok || c.Address.Wildcard {
		r.unregisterAll(req, from, aor)
		return
	}
	exp := expiresOf(req, c)
	key := aor + "|" + uriKey(c.Address)
	txKey := req.CallID().Value() + "|" + strconv.FormatUint(uint64(req.CSeq().SeqNo), 10)
	now := time.Now()
	act := f.active.Load()

	r.mu.Lock()
	if _, dup := r.pending[txKey]; dup {
		r.mu.Unlock() // a retransmission while the side answers
		return
	}
	b := r.bindings[key]
	if exp == 0 {
		if b != nil {
			delete(r.bindings, key)
			r.forgetLocked(b)
		}
		r.mu.Unlock()
		target := act
		if b != nil && b.side != nil {
			target = b.side
		}
		if target == nil {
			f.reply(req, from, 200, "OK", nil)
			return
		}
		if b == nil {
			b = r.newBinding(key, aor, c, req, from, 0)
		}
		r.forwardRegister(req, from, b, target, 0, txKey)
		return
	}
	due := b == nil || b.side == nil || b.side != act || b.challenged || b.fl != from ||
		time.Until(b.upUntil) < time.Duration(f.expires)*time.Second*3/2+5*time.Second ||
		b.requested != exp
	if b != nil && !due {
		// The side's binding outlives the phone's next refresh: answer.
		b.phoneUntil = now.Add(time.Duration(f.expires) * time.Second)
		granted := min(f.expires, int(time.Until(b.upUntil)/time.Second))
		r.mu.Unlock()
		f.metrics.localRegisters.Inc()
		f.reply(req, from, 200, "OK", []sip.Header{contactWith(c, granted)})
		return
	}
	if act == nil {
		if b != nil && b.side != nil && now.Before(b.upUntil) {
			b.phoneUntil = now.Add(time.Duration(f.expires) * time.Second)
			r.mu.Unlock()
			f.metrics.localRegisters.Inc()
			f.reply(req, from, 200, "OK", []sip.Header{contactWith(c, f.expires)})
			return
		}
		r.mu.Unlock()
		f.reply(req, from, 503, "Service Unavailable", []sip.Header{sip.NewHeader("Retry-After", retryAfter)})
		return
	}
	if b == nil {
		b = r.newBinding(key, aor, c, req, from, exp)
		r.bindings[key] = b
	} else {
		b.fl, b.requested, b.contact = from, exp, c.Address.String()
		b.from, b.to, b.ruri = stripTag(req.From().Value()), stripTag(req.To().Value()), req.Recipient
		if ua := req.GetHeader("User-Agent"); ua != nil {
			b.ua = ua.Value()
		}
	}
	r.pending[txKey] = struct{}{}
	b.toward = act
	r.mu.Unlock()
	r.forwardRegister(req, from, b, act, exp, txKey)
}

// stripTag is a From or To value without its tag parameter.
func stripTag(h string) string {
	// ASCII case only: strings.ToLower would change the length of a
	// value with invalid UTF-8, and the index with it (found by
	// FuzzMessage).
	lower := []byte(h)
	for i, c := range lower {
		if 'A' <= c && c <= 'Z' {
			lower[i] = c + 'a' - 'A'
		}
	}
	if i := strings.Index(string(lower), ";tag="); i >= 0 {
		end := strings.IndexByte(h[i+1:], ';')
		if end < 0 {
			return h[:i]
		}
		return h[:i] + h[i+1+end:]
	}
	return h
}

func (r *registry) newBinding(key, aor string, c *sip.ContactHeader, req *sip.Request, from flow, exp int) *binding {
	b := &binding{
		key: key, aor: aor, contact: c.Address.String(), fl: from, requested: exp,
		from: stripTag(req.From().Value()), to: stripTag(req.To().Value()), ruri: req.Recipient,
		callID: "sf-" + r.f.nonce + "-" + hash64(key, time.Now().String()),
		// Forgotten like any silent phone if no side ever takes it.
		phoneUntil: time.Now().Add(time.Duration(r.f.expires) * time.Second),
	}
	if ua := req.GetHeader("User-Agent"); ua != nil {
		b.ua = ua.Value()
	}
	return b
}

// contactWith is c with expires=n, the other parameters dropped.
func contactWith(c *sip.ContactHeader, n int) sip.Header {
	out := &sip.ContactHeader{DisplayName: c.DisplayName, Address: c.Address, Params: sip.NewParams()}
	out.Params.Add("expires", strconv.Itoa(max(n, 0)))
	return out
}

func (r *registry) contactsOf(aor string) []sip.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	var hs []sip.Header
	for _, b := range r.bindings {
		if b.aor == aor {
			var u sip.Uri
			if sip.ParseUri(b.contact, &u) == nil {
				c := &sip.ContactHeader{Address: u, Params: sip.NewParams()}
				c.Params.Add("expires", strconv.Itoa(max(0, int(time.Until(b.phoneUntil)/time.Second))))
				hs = append(hs, c)
			}
		}
	}
	return hs
}

// unregisterAll handles Contact: * (Expires: 0): every binding of the AOR
// is removed here and on its side.
func (r *registry) unregisterAll(req *sip.Request, from flow, aor string) {
	r.mu.Lock()
	var gone []*binding
	for k, b := range r.bindings {
		if b.aor == aor {
			gone = append(gone, b)
			delete(r.bindings, k)
			r.forgetLocked(b)
		}
	}
	r.mu.Unlock()
	for _, b := range gone {
		if b.side != nil {
			r.wg.Go(func() { r.remove(r.life, b, b.side, "unregister") })
		}
	}
	r.f.reply(req, from, 200, "OK", nil)
}

// forwardRegister sends the phone's REGISTER to s as the front's own
// (its Call-ID, CSeq and Path; the phone's credentials), then answers the
// phone: a 2xx with the short expiry, or the side's answer (a challenge).
func (r *registry) forwardRegister(req *sip.Request, from flow, b *binding, s *side, exp int, txKey string) {
	f := r.f
	auth := append(req.GetHeaders("Authorization"), req.GetHeaders("Proxy-Authorization")...)
	r.wg.Go(func() {
		defer func() {
			r.mu.Lock()
			delete(r.pending, txKey)
			if b.toward == s {
				b.toward = nil
			}
			r.mu.Unlock()
		}()
		reason := "phone"
		if exp == 0 {
			reason = "unregister"
		}
		res, err := r.send(r.life, b, s, exp, auth, reason)
		if err != nil {
			f.reply(req, from, 504, "Server Time-out", nil)
			return
		}
		c := req.Contact()
		if !res.IsSuccess() {
			out := sip.NewResponseFromRequest(req, res.StatusCode, res.Reason, nil)
			for _, name := range []string{"WWW-Authenticate", "Proxy-Authenticate", "Retry-After", "Min-Expires", "Warning"} {
				for _, h := range res.GetHeaders(name) {
					out.AppendHeader(sip.NewHeader(h.Name(), h.Value()))
				}
			}
			if to := out.To(); to != nil && !to.Params.Has("tag") {
				if rt := res.To(); rt != nil {
					if tag, ok := rt.Params.Get("tag"); ok {
						to.Params.Add("tag", tag)
					}
				}
			}
			f.metrics.answers.WithLabelValues(strconv.Itoa(res.StatusCode)).Inc()
			if err := f.tr.send(r.life, replyFlow(req, from), out); err != nil {
				f.log.Debug("cannot answer", "error", err)
			}
			return
		}
		if exp == 0 {
			f.reply(req, from, 200, "OK", nil)
			return
		}
		granted := grantedOf(res, b.contact, exp)
		r.mu.Lock()
		prev := b.side
		now := time.Now()
		b.phoneUntil = now.Add(time.Duration(min(f.expires, granted)) * time.Second)
		act := f.active.Load()
		if act != nil && s != act && prev == act {
			// The Active side changed while the REGISTER was under way,
			// and the re-homing already put the binding on the new side:
			// keep it there, and take back the one just made on s.
			r.mu.Unlock()
			r.wg.Go(func() { r.remove(r.life, b, s, "rehome") })
			f.reply(req, from, 200, "OK", []sip.Header{contactWith(c, min(f.expires, granted))})
			return
		}
		b.side, b.upUntil, b.challenged = s, now.Add(time.Duration(granted)*time.Second), false
		r.noteMovedLocked(b, prev, s, false)
		rh := r.last
		r.mu.Unlock()
		if prev != nil && prev != s {
			r.wg.Go(func() { r.remove(r.life, b, prev, "rehome") })
		}
		if act != nil && s != act && rh != nil && rh.to == act.name {
			// It landed on the side that lost Active after the re-homing
			// listed the bindings: move it too, not at the phone's next
			// refresh.
			r.wg.Go(func() {
				if act.pacer.wait(r.life) == nil {
					r.rehomeOne(r.life, rh, act, b)
				}
			})
		}
		f.reply(req, from, 200, "OK", []sip.Header{contactWith(c, min(f.expires, granted))})
	})
}

func replyFlow(req *sip.Request, from flow) flow {
	if v := req.Via(); v != nil && from.net == "udp" {
		if fl, ok := viaFlow(v); ok {
			return fl
		}
	}
	return from
}

// grantedOf is the expiry the side granted the contact.
func grantedOf(res *sip.Response, contact string, asked int) int {
	var want sip.Uri
	_ = sip.ParseUri(contact, &want)
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok || uriKey(c.Address) != uriKey(want) {
			continue
		}
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return n
			}
		}
	}
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n > 0 {
			return n
		}
	}
	return asked
}

// noteMovedLocked records a binding that reached the new Active side
// during the current re-homing.
func (r *registry) noteMovedLocked(b *binding, prev, to *side, byEdge bool) {
	rh := r.last
	if rh == nil || rh.to != to.name || !rh.pending[b.key] {
		return
	}
	delete(rh.pending, b.key)
	d := time.Since(rh.started)
	rh.done = append(rh.done, d)
	if byEdge {
		rh.edge++
	}
	r.f.metrics.rehome.Observe(d.Seconds())
	rh.settledLocked()
}

// settledLocked notes the end of the re-homing once no binding is pending.
func (rh *rehome) settledLocked() {
	if len(rh.pending) == 0 && rh.finished.IsZero() {
		rh.finished = time.Now()
	}
}

// forgetLocked drops a binding that went away from the pending ones.
func (r *registry) forgetLocked(b *binding) {
	if rh := r.last; rh != nil && rh.pending[b.key] {
		delete(rh.pending, b.key)
		rh.total--
		rh.settledLocked()
	}
}

// send sends one REGISTER of the front for b to s and waits for its final
// answer, retransmitting over UDP. exp 0 removes the binding.
func (r *registry) send(ctx context.Context, b *binding, s *side, exp int, auth []sip.Header, reason string) (*sip.Response, error) {
	f := r.f
	r.mu.Lock()
	b.cseq++
	req := sip.NewRequest(sip.REGISTER, b.ruri)
	branch := f.newBranch()
	req.AppendHeader(f.via(s.dest, branch))
	mf := sip.MaxForwardsHeader(defaultMF)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.NewHeader("From", b.from+";tag="+hash64(b.callID)[:10]))
	req.AppendHeader(sip.NewHeader("To", b.to))
	cid := sip.CallIDHeader(b.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: b.cseq, MethodName: sip.REGISTER})
	req.AppendHeader(sip.NewHeader("Contact", "<"+b.contact+">;expires="+strconv.Itoa(exp)))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(exp)))
	path := f.ourURI(paramDir, faceSide, paramSide, s.name, paramFlow, b.fl.token())
	req.AppendHeader(sip.NewHeader("Path", "<"+path.String()+">"))
	req.AppendHeader(sip.NewHeader("Supported", "path"))
	if b.ua != "" {
		req.AppendHeader(sip.NewHeader("User-Agent", b.ua))
	}
	for _, h := range auth {
		req.AppendHeader(sip.NewHeader(h.Name(), h.Value()))
	}
	req.AppendHeader(sip.NewHeader("Content-Length", "0"))
	r.mu.Unlock()
	f.metrics.upstream.WithLabelValues(s.name, reason).Inc()
	return f.transact(ctx, s.dest, req, branch)
}

// transact sends req (the front's own) to dst and waits for the final
// answer, retransmitting every 500 ms doubling (UDP) until the timeout.
func (f *Front) transact(ctx context.Context, dst flow, req *sip.Request, branch string) (*sip.Response, error) {
	ch := make(chan *sip.Response, 8)
	f.clientTx.Store(branch, ch)
	defer f.clientTx.Delete(branch)
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if err := f.tr.send(ctx, dst, req); err != nil {
		return nil, err
	}
	every := 500 * time.Millisecond
	rt := time.NewTimer(every)
	defer rt.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, errors.New("no answer in time")
		case res := <-ch:
			if res.StatusCode >= 200 {
				return res, nil
			}
		case <-rt.C:
			if dst.net == "udp" {
				_ = f.tr.send(ctx, dst, req)
				every = min(2*every, 4*time.Second)
				rt.Reset(every)
			}
		}
	}
}

// remove sends Expires: 0 for b's contact to s, paced: the side that lost
// Active, or the side of a phone that left.
func (r *registry) remove(ctx context.Context, b *binding, s *side, reason string) {
	if err := s.pacer.wait(ctx); err != nil {
		return
	}
	res, err := r.send(ctx, b, s, 0, nil, reason)
	ok := err == nil && res.IsSuccess()
	r.mu.Lock()
	if rh := r.last; ok && rh != nil && rh.from == s.name {
		rh.removed++
	}
	r.mu.Unlock()
	if !ok {
		r.f.log.Debug("could not remove a binding", "side", s.name, "aor", b.aor, "error", err)
	}
}

// switched starts re-homing every binding to the new Active side, and
// ends the calls of the side that lost it.
func (r *registry) switched(ctx context.Context) {
	to := r.f.active.Load()
	if to != nil {
		r.f.dialogs.endNotOn(ctx, r.f, to.name, &r.wg)
	}
	r.mu.Lock()
	if r.cancel != nil {
		r.cancel()
		r.cancel = nil
	}
	if to == nil {
		r.mu.Unlock()
		r.f.log.Info("no side is active: phones' registrations kept, answered from the cache")
		return
	}
	var move []*binding
	for _, b := range r.bindings {
		if b.side != to && b.toward != to {
			move = append(move, b)
		}
	}
	from := ""
	if r.last != nil {
		from = r.last.to
	}
	rh := &rehome{from: from, to: to.name, started: time.Now(), total: len(move), pending: map[string]bool{}}
	for _, b := range move {
		rh.pending[b.key] = true
	}
	for _, b := range move {
		if b.side != nil && b.side != to {
			rh.from = b.side.name
			break
		}
	}
	if len(move) == 0 {
		rh.finished = rh.started
	}
	r.last = rh
	jctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	r.mu.Unlock()
	r.f.log.Info("re-homing registrations", "to", to.name, "bindings", len(move), "rate", r.f.rate)
	// Oldest refresh first does not matter: every binding is due.
	slices.SortFunc(move, func(a, b *binding) int { return strings.Compare(a.key, b.key) })
	r.wg.Go(func() { r.rehome(jctx, rh, to, move) })
}

// rehome re-registers each binding on to, paced by its pacer, with a few
// REGISTERs in flight; each that lands is removed from its previous side.
func (r *registry) rehome(ctx context.Context, rh *rehome, to *side, move []*binding) {
	work := make(chan *binding)
	var wg sync.WaitGroup
	for range min(32, max(1, len(move))) {
		wg.Go(func() {
			for b := range work {
				r.rehomeOne(ctx, rh, to, b)
			}
		})
	}
	for _, b := range move {
		if to.pacer.wait(ctx) != nil {
			break
		}
		select {
		case work <- b:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
}

func (r *registry) rehomeOne(ctx context.Context, rh *rehome, to *side, b *binding) {
	r.mu.Lock()
	if r.bindings[b.key] != b || b.side == to || b.busy || b.toward == to {
		r.mu.Unlock() // gone, or moved (or being moved) by its phone meanwhile
		return
	}
	b.busy = true
	exp := b.requested
	r.mu.Unlock()
	res, err := r.send(ctx, b, to, exp, nil, "rehome")
	r.mu.Lock()
	b.busy = false
	if err != nil || !res.IsSuccess() {
		b.challenged = err == nil // the phone's next REGISTER goes there
		rh.failed++
		r.mu.Unlock()
		code := "no answer"
		if err == nil {
			code = strconv.Itoa(res.StatusCode)
		}
		r.f.log.Debug("re-homing left to the phone", "aor", b.aor, "side", to.name, "answer", code)
		return
	}
	prev := b.side
	b.side = to
	b.upUntil = time.Now().Add(time.Duration(grantedOf(res, b.contact, exp)) * time.Second)
	r.noteMovedLocked(b, prev, to, true)
	r.mu.Unlock()
	if prev != nil && prev != to {
		// Apart, paced by the old side's own pacer: the workers keep to
		// the new side.
		r.wg.Go(func() { r.remove(ctx, b, prev, "rehome") })
	}
}

// expire forgets the bindings of phones that stopped refreshing (a grace
// of half the expiry) and removes them from their side.
func (r *registry) expire(ctx context.Context) {
	now := time.Now()
	grace := time.Duration(r.f.expires) * time.Second / 2
	r.mu.Lock()
	var gone []*binding
	for k, b := range r.bindings {
		if !b.busy && now.After(b.phoneUntil.Add(grace)) {
			gone = append(gone, b)
			delete(r.bindings, k)
			r.forgetLocked(b)
		}
	}
	r.mu.Unlock()
	if len(gone) == 0 {
		return
	}
	for _, b := range gone {
		if b.side != nil {
			r.wg.Go(func() { r.remove(ctx, b, b.side, "expired") })
		}
	}
}

// pacer spaces events 1/rate apart.
type pacer struct {
	mu    sync.Mutex
	every time.Duration
	next  time.Time
}

func newPacer(rate int) *pacer { return &pacer{every: time.Second / time.Duration(max(rate, 1))} }

func (p *pacer) wait(ctx context.Context) error {
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(p.every)
	p.mu.Unlock()
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return ctx.Err()
}
