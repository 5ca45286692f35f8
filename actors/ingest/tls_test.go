package ingest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiffdb/skiff/test/natstest"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 (its own CA)
// and its key, and returns their paths.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nats-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestParseConfigTLS(t *testing.T) {
	cert, key := selfSigned(t)
	for _, tc := range []struct {
		tls, wantErr string
	}{
		{tls: `{"ca_cert_file":"` + cert + `","cert_file":"` + cert + `","key_file":"` + key + `","server_name":"x","insecure_skip_verify":true}`},
		{tls: `{"ca_cert_file":"/no/such.pem"}`, wantErr: "ca_cert_file"},
		{tls: `{"ca_cert_file":"` + key + `"}`, wantErr: "no PEM certificate"},
		{tls: `{"cert_file":"` + cert + `"}`, wantErr: "go together"},
		{tls: `{"cert_file":"` + cert + `","key_file":"` + cert + `"}`, wantErr: "key_file"},
		{tls: `{"ca_file":"x"}`, wantErr: `unknown field "ca_file"`},
	} {
		c, err := ParseConfig(writeFile(t, `{"url":"tls://127.0.0.1:4222/sql.in","tls":`+tc.tls+`}`))
		if tc.wantErr != "" {
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("tls %s: err = %v, want %q", tc.tls, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if c.TLS == nil || c.TLS.CACertFile != cert || c.TLS.KeyFile != key || c.TLS.ServerName != "x" || !c.TLS.InsecureSkipVerify {
			t.Fatalf("tls = %+v", c.TLS)
		}
	}
}

// Against a NATS server that requires TLS, with the CA from the config.
func TestTLSConnection(t *testing.T) {
	cert, key := selfSigned(t)
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	_, srv := natstest.Start(t, natstest.TLS(&tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}))
	port := srv.Port()
	url := "tls://127.0.0.1:" + strconv.Itoa(port)
	cfg := testConfig(url)
	cfg.TLS = &TLSConfig{CACertFile: cert}
	data := newFakeData()
	svc := newService(t, cfg, data, nil)
	run(t, svc)

	// The test's own client trusts the same CA.
	tcfg, err := cfg.TLS.tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	_, js, _ := clientOpts(t, url, tcfg, "sql.in")
	publish(t, js, `["INSERT INTO t VALUES(1)"]`, nil)
	settled(t, js)
	if applied, _, _ := data.snapshot(); len(applied) != 1 {
		t.Fatalf("applied %v", applied)
	}
}
