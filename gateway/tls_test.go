package gateway

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/test/testcert"
)

// testCA issues certificates for the mTLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
	pool *x509.CertPool
	// serial numbers the certificates issued.
	serial int64
}

func newTestCA(t *testing.T, dir string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, file: filepath.Join(dir, "ca.pem"), pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	if err := os.WriteFile(ca.file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue writes a certificate for cn (a server one for 127.0.0.1 when
// server) and its key as name.pem and name-key.pem, and returns the pair.
func (ca *testCA) issue(t *testing.T, dir, name, cn string, server bool) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial + 1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pair
}

// tlsGet GETs url with a client trusting roots and presenting certs.
func tlsGet(url string, roots *x509.CertPool, certs ...tls.Certificate) (*http.Response, error) {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func startTLSGateway(t *testing.T, tc *TLS) string {
	t.Helper()
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	return "https://" + strings.TrimPrefix(startGatewayCfg(t, Config{TLS: tc}, &fakeData{}, p), "http://")
}

func TestHTTPSSelfSigned(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Write(t, dir)
	base := startTLSGateway(t, &TLS{CertFile: cert, KeyFile: key})
	pemBytes, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	resp, err := tlsGet(base+"/status", roots)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		HTTP struct {
			TLS map[string]any `json:"tls"`
		} `json:"http"`
		Cluster struct {
			HTTPS string `json:"https"`
		} `json:"cluster"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || doc.HTTP.TLS["enabled"] != "true" || doc.HTTP.TLS["cert_file"] != cert ||
		doc.HTTP.TLS["key_file"] != key || doc.HTTP.TLS["client_auth"] != "false" || doc.Cluster.HTTPS != "true" {
		t.Fatalf("status %d, http.tls %v, cluster.https %q", resp.StatusCode, doc.HTTP.TLS, doc.Cluster.HTTPS)
	}
	// Plain HTTP on the HTTPS port gets no API answer.
	if r, err := http.Get("http://" + strings.TrimPrefix(base, "https://") + "/status"); err == nil {
		r.Body.Close()
		if r.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered 200 on the HTTPS port")
		}
	}
	// HTTP/2 is offered over TLS, as rqlite does (ALPN h2, http/1.1).
	h2 := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer h2.CloseIdleConnections()
	r2, err := h2.Get(base + "/status")
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusOK || r2.ProtoMajor != 2 {
		t.Fatalf("HTTP/2: status %d, proto %s", r2.StatusCode, r2.Proto)
	}
	// TLS 1.1 is refused (TLS 1.2 minimum).
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS11}}}
	if r, err := c.Get(base + "/status"); err == nil {
		r.Body.Close()
		t.Fatal("TLS 1.1 accepted")
	}
}

func TestHTTPSClientVerification(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	srvCert, srvKey, _ := ca.issue(t, dir, "server", "server", true)
	_, _, good := ca.issue(t, dir, "good", "good-client", false)
	_, _, wrongCN := ca.issue(t, dir, "wrong", "someone-else", false)
	otherCA := newTestCA(t, t.TempDir())
	_, _, stranger := otherCA.issue(t, t.TempDir(), "stranger", "good-client", false)

	t.Run("verify client", func(t *testing.T) {
		base := startTLSGateway(t, &TLS{CertFile: srvCert, KeyFile: srvKey, CACertFile: ca.file, VerifyClient: true})
		if r, err := tlsGet(base+"/status", ca.pool); err == nil {
			r.Body.Close()
			t.Fatal("a client without a certificate was served")
		}
		if r, err := tlsGet(base+"/status", ca.pool, stranger); err == nil {
			r.Body.Close()
			t.Fatal("a client certificate from another CA was accepted")
		}
		r, err := tlsGet(base+"/status", ca.pool, wrongCN)
		if err != nil {
			t.Fatalf("any common name is accepted without -http-verify-common-name: %v", err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status %d", r.StatusCode)
		}
	})
	t.Run("verify common name", func(t *testing.T) {
		base := startTLSGateway(t, &TLS{CertFile: srvCert, KeyFile: srvKey, CACertFile: ca.file, VerifyClient: true, VerifyCommonName: "good-client"})
		r, err := tlsGet(base+"/status", ca.pool, good)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status %d", r.StatusCode)
		}
		if r, err := tlsGet(base+"/status", ca.pool, wrongCN); err == nil {
			r.Body.Close()
			t.Fatal("a client certificate with the wrong common name was accepted")
		}
		if r, err := tlsGet(base+"/status", ca.pool); err == nil {
			r.Body.Close()
			t.Fatal("a client without a certificate was served")
		}
	})
}

func TestTLSConfigValidate(t *testing.T) {
	for _, tc := range []TLS{{CertFile: "c"}, {KeyFile: "k"}, {}, {CertFile: "c", KeyFile: "k", VerifyCommonName: "x"}} {
		if err := (Config{AdvAddr: "a:1", TLS: &tc}).WithDefaults().Validate(); err == nil {
			t.Fatalf("%+v accepted", tc)
		}
	}
}

// servedLeaf opens a new connection and returns the certificate served.
func servedLeaf(t *testing.T, addr string) []byte {
	t.Helper()
	// The test checks which certificate is served, not its trust.
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw
}

func TestHTTPSHotReload(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Write(t, dir)
	addr := strings.TrimPrefix(startTLSGateway(t, &TLS{CertFile: cert, KeyFile: key}), "https://")
	old := servedLeaf(t, addr)
	// A connection open across the rotation keeps working.
	kept, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	testcert.Write(t, dir)
	future := time.Now().Add(time.Hour)
	for _, f := range []string{cert, key} {
		if err := os.Chtimes(f, future, future); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(20 * time.Second)
	for bytes.Equal(old, servedLeaf(t, addr)) {
		select {
		case <-deadline:
			t.Fatal("new connections still get the old certificate")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if _, err := kept.Write([]byte("GET /status HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatalf("connection open across the reload: %v", err)
	}
	buf := make([]byte, 12)
	if _, err := kept.Read(buf); err != nil || !strings.HasPrefix(string(buf), "HTTP/1.1 200") {
		t.Fatalf("connection open across the reload: %q %v", buf, err)
	}
}

// A follower's 301 sends the client to the leader's advertised URL, which
// carries https:// when the leader serves TLS (bootstrap records it so).
func TestHTTPSRedirectKeepsScheme(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Write(t, dir)
	p := &phases{}
	self := lifecycle.Member{NodeID: "n1", ReplicaID: 1, RaftAddr: "127.0.0.1:4002", APIAddr: "https://127.0.0.1:4001", Voter: true}
	leader := lifecycle.Member{NodeID: "n2", ReplicaID: 2, RaftAddr: "127.0.0.2:4002", APIAddr: "https://127.0.0.2:4001", Voter: true}
	p.st.Store(&lifecycle.State{Phase: lifecycle.Ready, Since: time.Now(), StartedAt: time.Now(), LeaderReplicaID: 2, NodeReady: true,
		Identity: lifecycle.Identity{NodeID: "n1", ReplicaID: 1, RaftAddr: self.RaftAddr, APIAddr: self.APIAddr, Voter: true},
		Members:  []lifecycle.Member{self, leader}})
	base := "https://" + strings.TrimPrefix(startGatewayCfg(t, Config{TLS: &TLS{CertFile: cert, KeyFile: key}}, &fakeData{}, p), "http://")
	pemBytes, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer c.CloseIdleConnections()
	resp, err := c.Post(base+"/db/execute?redirect", "application/json", strings.NewReader(`["CREATE TABLE t (x)"]`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || loc != "https://127.0.0.2:4001/db/execute?redirect" {
		t.Fatalf("status %d, Location %q", resp.StatusCode, loc)
	}
}
