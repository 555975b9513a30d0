package xds

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/xds/registrar"
)

// The SIP client sends from Options.SourceAddress; by default from the
// host of xds.contact (this node's address) when it is a local address and
// not shared with the peer; else from whatever the routes pick.
func TestSourceAddress(t *testing.T) {
	for _, tc := range []struct {
		name, network, contact, peer, source, want string
	}{
		{"set udp", "udp", testContact, "", "127.0.0.2", "127.0.0.2"},
		{"set tcp", "tcp", testContact, "", "127.0.0.2", "127.0.0.2"},
		{"default: the contact's host", "udp", "sip:pbx@127.0.0.3:5099", "", "", "127.0.0.3"},
		{"default tcp", "tcp", "sip:pbx@127.0.0.3:5099", "", "", "127.0.0.3"},
		{"shared contact: routes", "udp", "sip:pbx@127.0.0.3:5099", "sip:pbx@127.0.0.3:5099", "", "127.0.0.1"},
		{"not local: routes", "udp", "sip:pbx@192.0.2.1:5099", "", "", "127.0.0.1"},
		{"unspecified: routes", "udp", "sip:pbx@127.0.0.3:5099", "", "0.0.0.0", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startRegistrar(t, tc.network, registrar.Options{})
			rec := newRecorder()
			opts := fastOptions(nil, rec)
			opts.SourceAddress, opts.PeerContact = tc.source, tc.peer
			r := startXDS(t, Config{Contact: tc.contact, MDS: []MDS{mds("mds1", srv.Addr(), tc.network, "", "")}}, opts)
			r.Activate(1)
			rec.wait(t, 0, 5*time.Second, kind("mds1", EventRegistered))
			bs := srv.Bindings()
			if len(bs) != 1 {
				t.Fatalf("bindings: %+v", bs)
			}
			host, _, err := net.SplitHostPort(bs[0].Source)
			if err != nil || host != tc.want {
				t.Errorf("REGISTER came from %s, want %s", bs[0].Source, tc.want)
			}
		})
	}
}

func TestSourceAddressInvalid(t *testing.T) {
	_, err := New(Config{Contact: testContact, MDS: []MDS{mds("m", "127.0.0.1", "udp", "", "")}}, Options{SourceAddress: "not-an-ip"})
	if err == nil || !strings.Contains(err.Error(), "source address") {
		t.Errorf("New = %v, want an error about the source address", err)
	}
}
