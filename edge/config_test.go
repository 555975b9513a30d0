package edge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCertPool(t *testing.T) {
	t.Parallel()
	certFile, _ := pbxCert(t, []string{"xivo-main"}, nil)
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	// A bundle: two certificates, with text around them.
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(bundle, append(append([]byte("xivo-main\n"), b...), b...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{certFile, bundle} {
		if pool, err := CertPool(f); err != nil || pool == nil {
			t.Errorf("CertPool(%s) = %v, %v", f, pool, err)
		}
	}
	if _, err := CertPool(filepath.Join(t.TempDir(), "none")); err == nil || strings.Contains(err.Error(), "none") {
		t.Errorf("CertPool of a missing file = %v, want an error that does not repeat the path", err)
	}
}
