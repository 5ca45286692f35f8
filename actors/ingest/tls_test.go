package ingest

import (
	"crypto/tls"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/skiffdb/skiff/test/natstest"
	"github.com/skiffdb/skiff/test/testcert"
)

func TestParseConfigTLS(t *testing.T) {
	cert, key := testcert.Write(t, t.TempDir())
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
	cert, key := testcert.Write(t, t.TempDir())
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
	tcfg, err := cfg.TLS.ClientConfig()
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
