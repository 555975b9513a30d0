package sipfront

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// dialogLife bounds how long a confirmed dialog is remembered without its
// BYE (a BYE the Edge did not see: a phone that lost its network).
const dialogLife = 12 * time.Hour

// dialogs are the confirmed calls through the front (a 2xx to an INVITE
// went by), so that the calls of a side that lost Active can be ended
// with a BYE to their phones when another side takes it, instead of
// hanging until the phone sends something (which gets a 481).
type dialogs struct {
	mu sync.Mutex
	m  map[string]*dialog // by Call-ID
}

// dialog is one call; ends are its phones through the Edge (two when both
// parties are phones of the Edge: the call spirals through it).
type dialog struct {
	side string
	at   time.Time
	ends []dialogEnd
}

// dialogEnd is what a BYE to one phone of the dialog needs.
type dialogEnd struct {
	fl     flow
	target sip.Uri // the phone's contact
	// from and to of the BYE: the other party, then the phone.
	from, to string
	callID   string
	cseq     uint32
}

func newDialogs() *dialogs { return &dialogs{m: map[string]*dialog{}} }

// confirm notes the dialog of a 2xx to an INVITE from the Edge's
// Record-Route entries in it: each pair is a phone's leg, the order of the
// pair says whether the phone called (the PBX-facing entry first) or was
// called.
func (d *dialogs) confirm(f *Front, res *sip.Response) {
	type entry struct {
		dir, side string
		fl        flow
		ok        bool
	}
	var run []entry
	var runs [][]entry
	for _, h := range res.GetHeaders("Record-Route") {
		rr, ok := h.(*sip.RecordRouteHeader)
		dir := ""
		if ok && f.isMe(rr.Address.Host, rr.Address.Port) {
			dir, _ = rr.Address.UriParams.Get(paramDir)
		}
		if dir == "" {
			if len(run) > 0 {
				runs = append(runs, run)
				run = nil
			}
			continue
		}
		e := entry{dir: dir}
		e.side, _ = rr.Address.UriParams.Get(paramSide)
		if t, ok := rr.Address.UriParams.Get(paramFlow); ok {
			e.fl, e.ok = parseToken(t)
		}
		run = append(run, e)
	}
	if len(run) > 0 {
		runs = append(runs, run)
	}
	from, to, cid, cs := res.From(), res.To(), res.CallID(), res.CSeq()
	if from == nil || to == nil || cid == nil || cs == nil {
		return
	}
	dl := &dialog{at: time.Now()}
	for _, r := range runs {
		if len(r) != 2 {
			continue
		}
		end := dialogEnd{callID: cid.Value(), cseq: cs.SeqNo + 100000}
		var phone entry
		switch {
		case r[0].dir == faceSide && r[1].dir == facePhone: // the phone called
			phone, dl.side = r[1], r[0].side
			end.from, end.to = to.Value(), from.Value()
			end.target = sip.Uri{Scheme: "sip", User: from.Address.User, Host: phone.fl.addr.Addr().String(), Port: int(phone.fl.addr.Port())}
		case r[0].dir == facePhone && r[1].dir == faceSide: // the phone was called
			phone, dl.side = r[0], r[1].side
			end.from, end.to = from.Value(), to.Value()
			if c := res.Contact(); c != nil {
				end.target = c.Address
			} else {
				end.target = sip.Uri{Scheme: "sip", User: to.Address.User, Host: phone.fl.addr.Addr().String(), Port: int(phone.fl.addr.Port())}
			}
		default:
			continue
		}
		if !phone.ok {
			continue
		}
		end.fl = phone.fl
		dl.ends = append(dl.ends, end)
	}
	if len(dl.ends) == 0 || dl.side == "" {
		return
	}
	d.mu.Lock()
	d.m[cid.Value()] = dl
	d.mu.Unlock()
}

// forget drops a dialog that ended (a BYE went by).
func (d *dialogs) forget(callID string) {
	d.mu.Lock()
	delete(d.m, callID)
	d.mu.Unlock()
}

func (d *dialogs) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m)
}

// endNotOn sends a BYE to each phone of the dialogs of sides other than
// active, and forgets them and the dialogs older than dialogLife.
func (d *dialogs) endNotOn(ctx context.Context, f *Front, active string, wg *sync.WaitGroup) {
	var ends []dialogEnd
	d.mu.Lock()
	for id, dl := range d.m {
		switch {
		case time.Since(dl.at) > dialogLife:
			delete(d.m, id)
		case active != "" && dl.side != active:
			ends = append(ends, dl.ends...)
			delete(d.m, id)
		}
	}
	d.mu.Unlock()
	for _, e := range ends {
		f.metrics.endedDialogs.Inc()
		wg.Go(func() { f.bye(ctx, e) })
	}
}

// bye sends the Edge's BYE to one phone of a dialog and waits for its
// answer (retransmitting over UDP).
func (f *Front) bye(ctx context.Context, e dialogEnd) {
	req := sip.NewRequest(sip.BYE, e.target)
	branch := f.newBranch()
	req.AppendHeader(f.via(e.fl, branch))
	mf := sip.MaxForwardsHeader(defaultMF)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.NewHeader("From", e.from))
	req.AppendHeader(sip.NewHeader("To", e.to))
	cid := sip.CallIDHeader(e.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: e.cseq, MethodName: sip.BYE})
	req.AppendHeader(sip.NewHeader("Reason", `SIP;cause=480;text="the PBX of this call lost Active"`))
	req.AppendHeader(sip.NewHeader("Content-Length", "0"))
	res, err := f.transact(ctx, e.fl, req, branch)
	code := "no answer"
	if err == nil {
		code = strconv.Itoa(res.StatusCode)
	}
	f.log.Debug("ended a call of the side that lost Active", "phone", e.fl.String(), "call_id", e.callID, "answer", code)
}
