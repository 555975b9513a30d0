package xds

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/xds/registrar"
)

// testPKI is a CA and a server certificate it signed for dnsName only.
type testPKI struct {
	caFile string
	server tls.Certificate
}

func newTestPKI(t *testing.T, dnsName string) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "xds test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: dnsName}, DNSNames: []string{dnsName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return testPKI{caFile: caFile, server: tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}}
}

// startTLSRegistrar serves a registrar over TLS on a free loopback port.
func startTLSRegistrar(t *testing.T, cert tls.Certificate, opts registrar.Options) *registrar.Server {
	t.Helper()
	opts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return startRegistrar(t, "tls", opts)
}

// Over TLS the MDS's certificate is checked against the CA file and the
// server name configured for it (default: the registrar's host).
func TestTLSTransport(t *testing.T) {
	pki := newTestPKI(t, "mds.test")
	srv := startTLSRegistrar(t, pki.server, registrar.Options{User: "pbx", Password: "pw"})
	for _, tc := range []struct {
		name, caFile, serverName, want string
	}{
		{"CA and server name", pki.caFile, "mds.test", ""},
		{"wrong server name", pki.caFile, "other.test", "x509: certificate is valid for mds.test, not other.test"},
		{"default server name: the host", pki.caFile, "", "x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"},
		{"system roots", "", "mds.test", "x509: certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			opts := fastOptions(nil, rec)
			opts.ProbeInterval = time.Hour
			opts.TLSCAFile = tc.caFile
			if tc.serverName != "" {
				opts.TLSServerNames = map[string]string{"mds1": tc.serverName}
			}
			r := startXDS(t, Config{Contact: testContact, MDS: []MDS{mds("mds1", srv.Addr(), "tls", "pbx", "pw")}}, opts)
			r.Activate(1)
			ev, _ := rec.wait(t, 0, 20*time.Second, outcome)
			if tc.want == "" {
				if ev.Kind != EventRegistered {
					t.Fatalf("%+v", ev)
				}
				b, ok := bindingOf(srv, testContact)
				if !ok || b.Transport != "TLS" {
					t.Errorf("binding = %+v, %v", b, ok)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := r.Deactivate(ctx); err != nil {
					t.Errorf("Deactivate: %v", err)
				}
				return
			}
			if ev.Kind != EventFailed || ev.Err == nil || !strings.Contains(ev.Err.Error(), tc.want) ||
				!strings.HasPrefix(ev.Err.Error(), "mds1: REGISTER to tls "+srv.Addr()) {
				t.Errorf("event = %+v, want a failure saying %q", ev, tc.want)
			}
		})
	}
}

func TestTLSBadCAFile(t *testing.T) {
	_, err := New(Config{Contact: testContact, MDS: []MDS{mds("m", "127.0.0.1", "tls", "", "")}},
		Options{TLSCAFile: filepath.Join(t.TempDir(), "missing.pem")})
	if err == nil || !strings.Contains(err.Error(), "xds: TLS CA file") {
		t.Errorf("New = %v, want an error naming the CA file", err)
	}
}
