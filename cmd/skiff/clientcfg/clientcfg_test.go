package clientcfg

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/skiffdb/skiff/test/testcert"
)

// The zero Config keeps Go's defaults; each file loads into its field.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Write(t, dir)

	tc, err := Config{}.TLS()
	if err != nil || tc != nil {
		t.Fatalf("zero: %+v, %v; want nil, nil", tc, err)
	}
	tc, err = Config{CACert: cert, ClientCert: cert, ClientKey: key}.TLS()
	if err != nil {
		t.Fatal(err)
	}
	if tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.InsecureSkipVerify {
		t.Fatalf("loaded %+v", tc)
	}
	if tc, err = (Config{Insecure: true}).TLS(); err != nil || tc == nil || !tc.InsecureSkipVerify || tc.RootCAs != nil {
		t.Fatalf("insecure: %+v, %v", tc, err)
	}
}

// Every bad configuration is ErrInvalidConfig, from Validate when the
// files need not be read.
func TestTLSRefusals(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Write(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]Config{
		"cert without key": {ClientCert: cert},
		"key without cert": {ClientKey: key},
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate: %v", name, err)
		}
	}
	for name, c := range map[string]Config{
		"cert without key": {ClientCert: cert},
		"missing CA":       {CACert: filepath.Join(dir, "missing.pem")},
		"CA not PEM":       {CACert: notPEM},
		"pair not PEM":     {ClientCert: notPEM, ClientKey: key},
		"key for cert":     {ClientCert: key, ClientKey: cert},
	} {
		if tc, err := c.TLS(); !errors.Is(err, ErrInvalidConfig) || tc != nil {
			t.Errorf("%s: %+v, %v", name, tc, err)
		}
		if _, err := c.Transport(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Transport: %v", name, err)
		}
	}
}

// The transport carries the TLS configuration and the environment's proxy.
func TestTransport(t *testing.T) {
	dir := t.TempDir()
	cert, _ := testcert.Write(t, dir)
	tr, err := Config{CACert: cert}.Transport()
	if err != nil {
		t.Fatal(err)
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.RootCAs == nil || tr.Proxy == nil {
		t.Fatalf("transport TLS %+v, proxy set %v", tr.TLSClientConfig, tr.Proxy != nil)
	}
	if tr, err = (Config{}).Transport(); err != nil || tr.TLSClientConfig != nil || tr.Proxy == nil {
		t.Fatalf("zero: %+v, %v", tr, err)
	}
}
