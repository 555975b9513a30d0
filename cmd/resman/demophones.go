package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// demoPhoneCount is how many simulated phones the demo registers through
// the Edge's SIP front.
const demoPhoneCount = 3

// runDemoPhones keeps n simulated phones (users 1001, 1002, ...)
// registered through the Edge's SIP front at edge (host:port), each from a
// UDP socket of its own, refreshing at half the expiry the Edge grants,
// until ctx is done. registered is closed once every phone has registered
// once. The phones never re-register on their own after a failover: the
// Edge moves them.
func runDemoPhones(ctx context.Context, edge string, n int, registered chan<- struct{}) {
	var wg, first sync.WaitGroup
	first.Add(n)
	for i := range n {
		wg.Go(func() { demoPhone(ctx, edge, strconv.Itoa(1001+i), first.Done) })
	}
	go func() {
		first.Wait()
		close(registered)
	}()
	wg.Wait()
}

func demoPhone(ctx context.Context, edge, user string, registered func()) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return
	}
	defer pc.Close()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	dst, err := net.ResolveUDPAddr("udp", edge)
	if err != nil {
		return
	}
	local := pc.LocalAddr().String()
	once := sync.OnceFunc(registered)
	buf := make([]byte, 8192)
	for cseq := 1; ctx.Err() == nil; cseq++ {
		next := 2 * time.Second // retry after a failure
		msg := fmt.Sprintf("REGISTER sip:%s SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP %s;branch=z9hG4bK-demo-%s-%d;rport\r\n"+
			"Max-Forwards: 70\r\n"+
			"From: <sip:%s@demo.resman>;tag=demo%s\r\n"+
			"To: <sip:%s@demo.resman>\r\n"+
			"Call-ID: demo-phone-%s\r\n"+
			"CSeq: %d REGISTER\r\n"+
			"Contact: <sip:%s@%s>\r\n"+
			"Expires: 3600\r\n"+
			"User-Agent: resman demo phone\r\n"+
			"Content-Length: 0\r\n\r\n",
			edge, local, user, cseq, user, user, user, user, cseq, user, local)
		if _, err := pc.WriteTo([]byte(msg), dst); err == nil {
			_ = pc.SetReadDeadline(time.Now().Add(2 * time.Second))
			for {
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					break
				}
				m, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
				res, ok := m.(*sip.Response)
				if err != nil || !ok || res.StatusCode < 200 {
					continue
				}
				if res.StatusCode == 200 {
					once()
					next = refreshIn(res)
				}
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// refreshIn is half the expiry a 200 to REGISTER grants.
func refreshIn(res *sip.Response) time.Duration {
	if c := res.Contact(); c != nil {
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 1 {
				return time.Duration(n) * time.Second / 2
			}
		}
	}
	return 15 * time.Second
}
