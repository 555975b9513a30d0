package edge

import (
	"context"
	"crypto/tls"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/resman-pbx/resman/resilience/testkit"
	"github.com/resman-pbx/resman/resilience/testkit/sippeers"
)

// TestSIPFrontTLSAndWebSocketFromConfig: edge.sip.tls, edge.sip.ws and
// edge.sip.wss from the config: the certificate files are loaded, the
// listeners are up and in the status, and a softphone on wss (a
// WebSocket client checking the certificate) registers with the side's
// registrar through the Edge.
func TestSIPFrontTLSAndWebSocketFromConfig(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	regPort := testkit.Port(t)
	reg := sippeers.Registrar(t, regPort)
	port := func() string { return "127.0.0.1:" + strconv.Itoa(testkit.Port(t)) }
	sipAddr, tlsAddr, wsAddr, wssAddr := port(), port(), port(), port()
	node := lowNode(t, active(1))
	e := startLowEdge(t, fast(), []sideSpec{benchSide("a", node)},
		withSIP(sipAddr, "sip:127.0.0.1:"+strconv.Itoa(regPort)), func(o *Options) {
			o.Config.SIP.TLS = &SIPTLS{Listen: tlsAddr, Cert: certFile, Key: keyFile}
			o.Config.SIP.WS = &SIPListen{Listen: wsAddr}
			o.Config.SIP.WSS = &SIPListen{Listen: wssAddr}
		})
	e.waitRouted(t, "a")
	testkit.EventuallyWithin(t, waitLimit, func() bool {
		st := e.Status().SIP
		return st != nil && st.TLS == tlsAddr && st.WS == wsAddr && st.WSS == wssAddr
	}, "the SIP front's listeners")

	// SIP over TLS: the certificate of the files.
	c, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("TLS with edge.sip.tls.cert trusted: %v", err)
	}
	c.Close()

	// A softphone on wss.
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+wssAddr+"/", &websocket.DialOptions{
		Subprotocols: []string{"sip"},
		HTTPClient:   &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	reg1 := "REGISTER sip:" + wssAddr + ";transport=wss SIP/2.0\r\n" +
		"Via: SIP/2.0/WSS k3l9.invalid;branch=z9hG4bKwss1\r\n" +
		"From: <sip:900@example.com>;tag=w9\r\nTo: <sip:900@example.com>\r\n" +
		"Call-ID: wss-900\r\nCSeq: 1 REGISTER\r\nContact: <sip:900@k3l9.invalid;transport=ws>\r\n" +
		"Expires: 600\r\nMax-Forwards: 70\r\n\r\n" // no Content-Length: the frame delimits it
	if err := ws.Write(ctx, websocket.MessageText, []byte(reg1)); err != nil {
		t.Fatal(err)
	}
	typ, res, err := ws.Read(ctx)
	if err != nil || typ != websocket.MessageText || !strings.HasPrefix(string(res), "SIP/2.0 200") {
		t.Fatalf("answer on the wss connection: %v %q %v", typ, res, err)
	}
	if got := sippeers.Contacts(reg); !slices.Equal(got, []string{"sip:900@k3l9.invalid;transport=ws"}) {
		t.Fatalf("side a holds %q", got)
	}
	if st := e.Status().SIP; st.Transports["wss"] != 1 {
		t.Errorf("status transports %v", st.Transports)
	}
}

func TestNewRejectsBadSIPCertificate(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.crt")
	cfg := Config{Listen: ":0", Sides: []Side{{Name: "a", Node: "http://127.0.0.1:1", SIP: "sip:127.0.0.1:5060",
		Routes: []Route{{Path: "/", Upstream: "http://127.0.0.1:1"}}}},
		SIP: &SIP{Listen: "127.0.0.1:5060", Expires: 60, RegisterRate: 200,
			TLS: &SIPTLS{Listen: "127.0.0.1:5061", Cert: missing, Key: missing}}}
	if _, err := New(Options{Config: cfg}); err == nil || !strings.Contains(err.Error(), "edge.sip.tls") {
		t.Errorf("New with a missing edge.sip.tls.cert = %v", err)
	}
}
