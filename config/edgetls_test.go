package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/resman-pbx/resman/edge"
)

// writeCert writes a self-signed certificate, as a XiVO PBX makes at
// install, and returns the certificate file and its key file.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "xivo-main"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"xivo-main"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// edgeWithSide is an Edge file whose first side has the given node, upstream
// and upstream_tls (a YAML flow mapping, or "" for none).
func edgeWithSide(node, upstream, upstreamTLS string) string {
	y := fmt.Sprintf(`api: {token: 0123456789abcdef0123}
edge:
  listen: 0.0.0.0:8443
  token: 0123456789abcdef0123
  sides:
    - name: main
      node: %q
      routes: [{path: /, upstream: %q}]
`, node, upstream)
	if upstreamTLS != "" {
		y += "      upstream_tls: " + upstreamTLS + "\n"
	}
	return y
}

func TestEdgeUpstreamTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile := writeCert(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "der.crt")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badCert := filepath.Join(dir, "bad.crt")
	if err := os.WriteFile(badCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.crt")
	// A relative path that reads from the test's directory: resman under
	// systemd runs from /, where it would not.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	relative, err := filepath.Rel(wd, certFile)
	if err != nil {
		t.Fatal(err)
	}

	c := mustParse(t, edgeWithSide("http://10.0.0.1:9440", "https://10.0.0.1",
		fmt.Sprintf("{ca_file: %q, server_name: xivo-main.example.com}", certFile)), nil)
	want := &edge.UpstreamTLS{CAFile: certFile, ServerName: "xivo-main.example.com"}
	if got := c.Edge.Sides[0].UpstreamTLS; !reflect.DeepEqual(got, want) {
		t.Errorf("upstream_tls = %+v, want %+v", got, want)
	}
	// Nothing secret: printed as it is, and read back the same.
	if r := c.Redacted(); !reflect.DeepEqual(r.Edge.Sides, c.Edge.Sides) {
		t.Errorf("redacted sides = %+v", r.Edge.Sides)
	}
	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), certFile) || !strings.Contains(string(out), "server_name: xivo-main.example.com") {
		t.Errorf("printed config lacks upstream_tls:\n%s", out)
	}
	if back, err := Parse(out, nil); err != nil || !reflect.DeepEqual(back.Edge, c.Edge) {
		t.Errorf("round trip: %v\n%s", err, out)
	}
	// An https node alone is enough for the section to matter.
	c = mustParse(t, edgeWithSide("https://10.0.0.1:9440", "http://10.0.0.1", "{insecure_skip_verify: true}"), nil)
	if u := c.Edge.Sides[0].UpstreamTLS; u == nil || !u.InsecureSkipVerify {
		t.Errorf("insecure_skip_verify not read: %+v", u)
	}
	// Inside edge.sides, a list of sections: no environment override.
	c = mustParse(t, edgeWithSide("http://10.0.0.1:9440", "https://10.0.0.1", ""),
		map[string]string{"RESMAN_EDGE_SIDES_UPSTREAM_TLS_CA_FILE": missing, "RESMAN_EDGE_UPSTREAM_TLS_CA_FILE": missing})
	if c.Edge.Sides[0].UpstreamTLS != nil {
		t.Errorf("an environment variable set upstream_tls: %+v", c.Edge.Sides[0].UpstreamTLS)
	}

	const key = "edge.sides[0].upstream_tls"
	tests := []struct {
		name, node, upstream, tls string
		want                      []string
	}{
		{name: "missing file", tls: fmt.Sprintf("{ca_file: %q}", missing),
			want: []string{fmt.Sprintf("%s.ca_file: %q: cannot read: no such file or directory", key, missing)}},
		{name: "relative path", tls: fmt.Sprintf("{ca_file: %q}", relative),
			want: []string{fmt.Sprintf("%s.ca_file: must be an absolute path, like /etc/resman/xivo-main.crt, got %q", key, relative)}},
		{name: "not PEM", tls: fmt.Sprintf("{ca_file: %q}", notPEM),
			want: []string{fmt.Sprintf("%s.ca_file: %q: not a PEM file: want one or more -----BEGIN CERTIFICATE----- blocks", key, notPEM)}},
		{name: "a key, not a certificate", tls: fmt.Sprintf("{ca_file: %q}", keyFile),
			want: []string{`no PEM certificate in it, only ["EC PRIVATE KEY"] blocks: give the certificate, not its key`}},
		{name: "a certificate that does not parse", tls: fmt.Sprintf("{ca_file: %q}", badCert),
			want: []string{key + ".ca_file: " + fmt.Sprintf("%q", badCert) + ": certificate 1 does not parse"}},
		{name: "server name with a port", tls: "{server_name: \"xivo-main:443\"}",
			want: []string{key + `.server_name: must be a host name (no scheme, no port), like xivo-main.example.com, got "xivo-main:443"`}},
		{name: "server name as a URL", tls: "{server_name: \"https://xivo-main\"}",
			want: []string{key + ".server_name: must be a host name"}},
		{name: "IPv6 server name", tls: "{server_name: \"::1\"}"},
		{name: "insecure and a CA", tls: fmt.Sprintf("{ca_file: %q, insecure_skip_verify: true}", certFile),
			want: []string{key + ".insecure_skip_verify: true ignores ca_file: set one or the other"}},
		{name: "not a boolean", tls: "{insecure_skip_verify: maybe}",
			want: []string{key + `.insecure_skip_verify: expected true or false, got "maybe"`}},
		{name: "empty section", tls: "{}"},
		{name: "nothing https on the side", upstream: "http://10.0.0.1", tls: "{server_name: xivo-main}",
			want: []string{key + ": has no effect: neither the node nor an upstream of this side is an https:// URL"}},
		{name: "unknown key", tls: "{ca: /etc/x.pem}",
			want: []string{key + ".ca: unknown key, expected one of ca_file, server_name, insecure_skip_verify"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			node, upstream := tt.node, tt.upstream
			if node == "" {
				node = "http://10.0.0.1:9440"
			}
			if upstream == "" {
				upstream = "https://10.0.0.1"
			}
			_, err := Parse([]byte(edgeWithSide(node, upstream, tt.tls)), nil)
			checkProblems(t, err, tt.want)
		})
	}
}
