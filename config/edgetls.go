package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// CertPool reads a PEM file of certificates (a CA, a chain, or a server's
// self-signed certificate) into a pool: edge.sides[].upstream_tls.ca_file.
// It fails when the file cannot be read, holds no certificate, or one of
// its certificates does not parse; the error does not repeat the path.
func CertPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot read: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	var other []string
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			other = append(other, b.Type)
			continue
		}
		n++
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %w", n, err)
		}
		pool.AddCert(cert)
	}
	if n == 0 {
		if len(other) > 0 {
			return nil, fmt.Errorf("no PEM certificate in it, only %q blocks: give the certificate, not its key", other)
		}
		return nil, errors.New("not a PEM file: want one or more -----BEGIN CERTIFICATE----- blocks")
	}
	return pool, nil
}

// upstreamTLS checks edge.sides[i].upstream_tls (key) of side s.
func (v *checker) upstreamTLS(key string, s Side) {
	t := s.UpstreamTLS
	if t == nil {
		return
	}
	if *t == (UpstreamTLS{}) {
		return // an empty section: the default verification
	}
	https := strings.HasPrefix(s.Node, "https://")
	for _, r := range s.Routes {
		https = https || strings.HasPrefix(r.Upstream, "https://")
	}
	if !https {
		v.add(key, "has no effect: neither the node nor an upstream of this side is an https:// URL")
	}
	switch {
	case t.CAFile == "":
	case !filepath.IsAbs(t.CAFile):
		// resman runs from / under systemd: a relative path would be read
		// from elsewhere than where config check found it.
		v.add(key+".ca_file", "must be an absolute path, like /etc/resman/xivo-main.crt, got %q", t.CAFile)
	default:
		if _, err := CertPool(t.CAFile); err != nil {
			v.add(key+".ca_file", "%q: %v", t.CAFile, err)
		}
	}
	if n := t.ServerName; n != "" {
		host := strings.Trim(n, "[]")
		if strings.ContainsFunc(n, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) ||
			strings.ContainsAny(n, "/@") || (strings.Contains(host, ":") && net.ParseIP(host) == nil) {
			v.add(key+".server_name", "must be a host name (no scheme, no port), like xivo-main.example.com, got %q", n)
		}
	}
	if t.InsecureSkipVerify && t.CAFile != "" {
		v.add(key+".insecure_skip_verify", "true ignores ca_file: set one or the other")
	}
}
