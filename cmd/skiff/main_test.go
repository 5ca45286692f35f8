package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/skiffdb/skiff/test/testcert"
)

// The security flags of skiff bench: -u's credentials, -ca-cert's pool,
// mutual TLS's pair, and their refusals.
func TestParseBenchSecurityFlags(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Write(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}

	c, _, err := parseBench(nil, io.Discard)
	if err != nil || c.TLS != nil || c.User != "" {
		t.Fatalf("defaults: %v, TLS %v, user %q", err, c.TLS, c.User)
	}
	c, _, err = parseBench([]string{"-u", "alice:pa:ss", "-ca-cert", cert, "-client-cert", cert, "-client-key", key,
		"-a", "https://127.0.0.1:4001"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.User != "alice" || c.Password != "pa:ss" || c.TLS == nil || c.TLS.RootCAs == nil || len(c.TLS.Certificates) != 1 ||
		c.TLS.InsecureSkipVerify {
		t.Fatalf("parsed user %q password %q TLS %+v", c.User, c.Password, c.TLS)
	}
	if c, _, err = parseBench([]string{"-insecure"}, io.Discard); err != nil || c.TLS == nil || !c.TLS.InsecureSkipVerify {
		t.Fatalf("-insecure: %v %+v", err, c.TLS)
	}
	for _, args := range [][]string{
		{"-u", "alice"},
		{"-u", ":pw"},
		{"-ca-cert", notPEM},
		{"-ca-cert", filepath.Join(dir, "missing.pem")},
		{"-client-cert", cert},
	} {
		if _, _, err := parseBench(args, io.Discard); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
