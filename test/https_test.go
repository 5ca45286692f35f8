package test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skiffdb/skiff/test/testcert"
)

// certPool trusts the certificate in file and returns its DER too.
func certPool(t *testing.T, file string) (*x509.CertPool, []byte) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("no PEM in %s", file)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return pool, blk.Bytes
}

// TestHTTPS serves the API over HTTPS (-http-cert, -http-key; API.md 1.13):
// /status reports it, data flows over it, api_addr says https://, and a
// rotated certificate is served to new connections without a restart.
func TestHTTPS(t *testing.T) {
	n := newNode(t)
	certDir := t.TempDir()
	cert, key := testcert.Write(t, certDir)
	pool, oldDER := certPool(t, cert)
	n.args = []string{"-http-cert", cert, "-http-key", key}
	n.tlsClient = &tls.Config{RootCAs: pool}
	n.useTLS(n.client)
	n.start()
	n.waitReady(readyTimeout)

	var st struct {
		HTTP struct {
			TLS map[string]any `json:"tls"`
		} `json:"http"`
		Cluster struct {
			HTTPS   string `json:"https"`
			APIAddr string `json:"api_addr"`
		} `json:"cluster"`
	}
	r := n.get("/status")
	if err := json.Unmarshal(r.body, &st); err != nil || r.status != 200 {
		t.Fatalf("/status: %v %s", err, r)
	}
	if tl := st.HTTP.TLS; tl["enabled"] != "true" || tl["cert_file"] != cert || tl["key_file"] != key || st.Cluster.HTTPS != "true" ||
		st.Cluster.APIAddr != "https://"+n.httpAddr {
		t.Fatalf("http.tls %v, cluster.https %q, cluster.api_addr %q", tl, st.Cluster.HTTPS, st.Cluster.APIAddr)
	}

	wantOK(t, "create", n.execute(`["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"]`),
		`{"results":[{}]}`)
	if r := n.execute(`[["INSERT INTO t(v) VALUES(?)", "over-tls"]]`); r.status != 200 || !strings.Contains(string(r.body), `"rows_affected":1`) {
		t.Fatalf("insert: %s", r)
	}
	if r := n.query("SELECT v FROM t"); r.status != 200 || !strings.Contains(string(r.body), `"over-tls"`) {
		t.Fatalf("query: %s", r)
	}
	if r := n.get("/nodes"); r.status != 200 || !strings.Contains(string(r.body), `"api_addr":"https://`+n.httpAddr+`"`) {
		t.Fatalf("/nodes: %s", r)
	}

	// Rotate: new files, a later mtime; new connections get the new pair.
	testcert.Write(t, certDir)
	future := time.Now().Add(time.Hour)
	for _, f := range []string{cert, key} {
		if err := os.Chtimes(f, future, future); err != nil {
			t.Fatal(err)
		}
	}
	newPool, newDER := certPool(t, cert)
	if bytes.Equal(oldDER, newDER) {
		t.Fatal("testcert wrote the same certificate twice")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := tls.Dial("tcp", n.httpAddr, &tls.Config{RootCAs: newPool})
		if err == nil {
			served := conn.ConnectionState().PeerCertificates[0].Raw
			conn.Close()
			if bytes.Equal(served, newDER) {
				break
			}
		}
		if time.Now().After(deadline) {
			n.dumpLogs()
			t.Fatalf("the rotated certificate is not served: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.tlsClient = &tls.Config{RootCAs: newPool}
	n.client = n.useTLS(newClient(requestTimeout, false))
	if r := n.query("SELECT v FROM t"); r.status != 200 || !strings.Contains(string(r.body), `"over-tls"`) {
		t.Fatalf("query after rotation: %s", r)
	}
	if !n.logContains(n.proc.logPath, "TLS certificate reloaded") {
		t.Error("the reload was not logged")
	}
	n.sigterm()
}

// TestHTTPSRefusedStarts: half a pair, or a pair that does not load, stops
// the start with a message instead of serving plain HTTP.
func TestHTTPSRefusedStarts(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Write(t, dir)
	bad := filepath.Join(dir, "bad-key.pem")
	if err := os.WriteFile(bad, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, flag string
		args       []string
		want       *regexp.Regexp
	}{
		{"cert without key", "http-key", []string{"-http-cert", cert}, regexp.MustCompile(`given together`)},
		{"key without cert", "http-cert", []string{"-http-key", key}, regexp.MustCompile(`given together`)},
		{"unloadable key", "bad-key.pem", []string{"-http-cert", cert, "-http-key", bad}, regexp.MustCompile(`load TLS certificate and key`)},
		{"common name without client verification", "http-verify-common-name",
			[]string{"-http-cert", cert, "-http-key", key, "-http-verify-common-name", "x"}, regexp.MustCompile(`needs -http-verify-client`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			n.args = tc.args
			wantRefused(t, n, tc.flag, tc.want)
		})
	}
}
