package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// errPortsBusy is wrapped by the error of a demo whose ports are taken.
var errPortsBusy = errors.New("demo ports in use")

// list names every port of the demo with what listens there and on which
// protocols, in the order of the banner.
func (p demoPorts) list() []demoPort {
	return []demoPort{
		{p.MainAPI, "the Main's API and page", "tcp+udp"}, {p.StandbyAPI, "the Standby's API and page", "tcp+udp"}, // udp: the second path
		{p.EdgeProxy, "the Edge", "tcp"}, {p.EdgeAPI, "the Edge's status API", "tcp"},
		{p.CCMainAPI, "cc-main's API", "tcp"}, {p.CCStandbyAPI, "cc-standby's API", "tcp"},
		{p.MainSIP, "the Main's stand-in Asterisk", "udp"}, {p.StandbySIP, "the Standby's stand-in Asterisk", "udp"},
		{p.MainWeb, "the Main's stand-in web app", "tcp"}, {p.StandbyWeb, "the Standby's stand-in web app", "tcp"},
		{p.CCMainWeb, "cc-main's stand-in CC", "tcp"}, {p.CCStandbyWeb, "cc-standby's stand-in CC", "tcp"},
		{p.MainGossip, "the Main's gossip", "tcp+udp"}, {p.StandbyGossip, "the Standby's gossip", "tcp+udp"},
		{p.MDS, "the MDS stand-in", "udp"}, {p.EdgeSIP, "the Edge's SIP front", "tcp+udp"},
	}
}

type demoPort struct {
	port  int
	what  string
	proto string // tcp, udp or tcp+udp
}

// checkFree tries every demo port on 127.0.0.1 and says, in one error,
// which are taken and what to do: most often a demo still running.
func (p demoPorts) checkFree(base int) error {
	var busy []string
	for _, dp := range p.list() {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(dp.port))
		free := true
		if dp.proto != "udp" {
			if l, err := net.Listen("tcp", addr); err != nil {
				free = false
			} else {
				l.Close()
			}
		}
		if dp.proto != "tcp" {
			if c, err := net.ListenPacket("udp", addr); err != nil {
				free = false
			} else {
				c.Close()
			}
		}
		if !free {
			busy = append(busy, fmt.Sprintf("%d (%s)", dp.port, dp.what))
		}
	}
	if len(busy) == 0 {
		return nil
	}
	more := ""
	if len(busy) > 1 {
		more = fmt.Sprintf(" (and %d more)", len(busy)-1)
	}
	return fmt.Errorf("%w: port %s is taken%s: another demo may still run (stop it: pkill -f 'resman demo'), or use other ports: --base-port %d",
		errPortsBusy, busy[0], more, base+1000)
}
