package nodetls

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffdb/skiff/test/testcert"
)

// pki is one test's CA and files.
type pki struct {
	dir string
	ca  *testcert.CA
	// caFile is the CA certificate.
	caFile string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	ca := testcert.NewCA(t, "skiff-test-ca")
	return &pki{dir: dir, ca: ca, caFile: ca.WriteCA(t, dir, "ca")}
}

// node makes a TLS from a certificate issued by the CA (or self-signed)
// and cfg's flags.
func (p *pki) node(t *testing.T, name string, leaf testcert.Leaf, selfSigned bool, cfg Config) *TLS {
	t.Helper()
	var cert, key string
	if selfSigned {
		cert, key = testcert.SelfSigned(t, p.dir, name, leaf)
	} else {
		cert, key = p.ca.Issue(t, p.dir, name, leaf)
	}
	cfg.CertFile, cfg.KeyFile, cfg.CACertFile = cert, key, p.caFile
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// exchange connects client to server over loopback and sends a byte each
// way: with TLS 1.3 a client learns of its refused certificate only when
// it reads. It returns each side's first error.
func exchange(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvDone := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvDone <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(c, server)
		if err := tc.Handshake(); err != nil {
			srvDone <- err
			return
		}
		var b [1]byte
		if _, err := io.ReadFull(tc, b[:]); err != nil {
			srvDone <- err
			return
		}
		_, err = tc.Write(b[:])
		srvDone <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := tls.Dialer{Config: client}
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err == nil {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err = c.Write([]byte{7}); err == nil {
			var b [1]byte
			_, err = io.ReadFull(c, b[:])
		}
	}
	clientErr = err
	if clientErr != nil {
		// The server may wait for a byte a refused client never sends.
		_ = ln.Close()
	}
	select {
	case serverErr = <-srvDone:
	case <-time.After(15 * time.Second):
		t.Fatal("server side did not finish")
	}
	return serverErr, clientErr
}

func TestHandshakes(t *testing.T) {
	p := newPKI(t)
	good := testcert.Leaf{CommonName: "skiff-node"}
	nb, na := testcert.Expired()
	expired := testcert.Leaf{CommonName: "skiff-node", NotBefore: nb, NotAfter: na}
	mtls := Config{VerifyClient: true, VerifyCommonName: "skiff-node"}
	for _, tc := range []struct {
		name string
		// server and client make the two ends; a nil client config uses
		// clientConf.
		server     func() *TLS
		client     func() *TLS
		clientConf func() *tls.Config
		// serverWant and clientWant are substrings of the errors; empty
		// wants no error.
		serverWant, clientWant string
	}{
		{name: "good pair, mutual TLS",
			server: func() *TLS { return p.node(t, "s1", good, false, mtls) },
			client: func() *TLS { return p.node(t, "c1", good, false, Config{}) }},
		{name: "server name set by -node-verify-server-name",
			server: func() *TLS {
				return p.node(t, "s2", testcert.Leaf{DNSNames: []string{"raft.skiff.internal"}}, false, Config{})
			},
			client: func() *TLS { return p.node(t, "c2", good, false, Config{VerifyServerName: "raft.skiff.internal"}) }},
		{name: "wrong server name",
			server:     func() *TLS { return p.node(t, "s3", good, false, Config{}) },
			client:     func() *TLS { return p.node(t, "c3", good, false, Config{VerifyServerName: "other.skiff.internal"}) },
			clientWant: "not other.skiff.internal", serverWant: "bad certificate"},
		{name: "certificate not for the dialed host",
			server:     func() *TLS { return p.node(t, "s4", testcert.Leaf{DNSNames: []string{"elsewhere"}}, false, Config{}) },
			client:     func() *TLS { return p.node(t, "c4", good, false, Config{}) },
			clientWant: "doesn't contain any IP SANs", serverWant: "bad certificate"},
		{name: "wrong common name",
			server:     func() *TLS { return p.node(t, "s5", good, false, mtls) },
			client:     func() *TLS { return p.node(t, "c5", testcert.Leaf{CommonName: "intruder"}, false, Config{}) },
			serverWant: `got "intruder", want "skiff-node"`, clientWant: "bad certificate"},
		{name: "wrong common name of a dialed peer",
			server:     func() *TLS { return p.node(t, "s5b", testcert.Leaf{CommonName: "intruder"}, false, Config{}) },
			client:     func() *TLS { return p.node(t, "c5b", good, false, mtls) },
			clientWant: `got "intruder", want "skiff-node"`, serverWant: "bad certificate"},
		{name: "connecting peer without the cluster's server name",
			server: func() *TLS {
				return p.node(t, "s5c", testcert.Leaf{DNSNames: []string{"raft.internal"}}, false,
					Config{VerifyClient: true, VerifyServerName: "raft.internal"})
			},
			client: func() *TLS {
				return p.node(t, "c5c", testcert.Leaf{DNSNames: []string{"elsewhere.internal"}}, false, Config{VerifyServerName: "raft.internal"})
			},
			serverWant: "not raft.internal", clientWant: "bad certificate"},
		{name: "connecting peer with the cluster's server name",
			server: func() *TLS {
				return p.node(t, "s5d", testcert.Leaf{DNSNames: []string{"raft.internal"}}, false,
					Config{VerifyClient: true, VerifyServerName: "raft.internal", VerifyCommonName: "skiff-node"})
			},
			client: func() *TLS {
				return p.node(t, "c5d", testcert.Leaf{DNSNames: []string{"raft.internal"}}, false,
					Config{VerifyClient: true, VerifyServerName: "raft.internal", VerifyCommonName: "skiff-node"})
			}},
		{name: "expired server certificate",
			server:     func() *TLS { return p.node(t, "s6", expired, false, Config{}) },
			client:     func() *TLS { return p.node(t, "c6", good, false, Config{}) },
			clientWant: "expired", serverWant: "bad certificate"},
		{name: "expired client certificate",
			server:     func() *TLS { return p.node(t, "s7", good, false, mtls) },
			client:     func() *TLS { return p.node(t, "c7", expired, false, Config{}) },
			serverWant: "expired", clientWant: "expired certificate"},
		{name: "self-signed server certificate is untrusted",
			server:     func() *TLS { return p.node(t, "s8", good, true, Config{}) },
			client:     func() *TLS { return p.node(t, "c8", good, false, Config{}) },
			clientWant: "unknown authority", serverWant: "bad certificate"},
		{name: "self-signed client certificate is untrusted",
			server:     func() *TLS { return p.node(t, "s9", good, false, mtls) },
			client:     func() *TLS { return p.node(t, "c9", good, true, Config{}) },
			serverWant: "unknown authority", clientWant: "unknown certificate authority"},
		{name: "no client certificate with -node-verify-client",
			server: func() *TLS { return p.node(t, "s10", good, false, Config{VerifyClient: true}) },
			clientConf: func() *tls.Config {
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM(p.ca.PEM)
				return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			},
			serverWant: "didn't provide a certificate", clientWant: "certificate required"},
		{name: "-node-no-verify accepts a self-signed server",
			server: func() *TLS { return p.node(t, "s11", good, true, Config{}) },
			client: func() *TLS { return p.node(t, "c11", good, false, Config{NoVerify: true}) }},
		{name: "without -node-verify-client any client certificate is accepted",
			server: func() *TLS { return p.node(t, "s12", good, false, Config{}) },
			client: func() *TLS { return p.node(t, "c12", good, true, Config{}) }},
		{name: "-node-no-verify does not turn off -node-verify-client",
			server:     func() *TLS { return p.node(t, "s13", good, false, Config{VerifyClient: true, NoVerify: true}) },
			client:     func() *TLS { return p.node(t, "c13", good, true, Config{NoVerify: true}) },
			serverWant: "unknown authority", clientWant: "unknown certificate authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cc *tls.Config
			if tc.client != nil {
				cc = tc.client().Client()
			} else {
				cc = tc.clientConf()
			}
			serr, cerr := exchange(t, tc.server().Server(), cc)
			check := func(side string, err error, want string) {
				t.Helper()
				switch {
				case want == "" && err != nil:
					t.Errorf("%s: unexpected error %v", side, err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
					t.Errorf("%s: error %v, want one containing %q", side, err, want)
				}
			}
			check("server", serr, tc.serverWant)
			check("client", cerr, tc.clientWant)
		})
	}
}

func TestCommonNameError(t *testing.T) {
	p := newPKI(t)
	srv := p.node(t, "s", testcert.Leaf{}, false, Config{VerifyClient: true, VerifyCommonName: "skiff-node"})
	cl := p.node(t, "c", testcert.Leaf{CommonName: "other"}, false, Config{})
	serr, _ := exchange(t, srv.Server(), cl.Client())
	if !errors.Is(serr, ErrCommonName) {
		t.Fatalf("server error %v, want ErrCommonName", serr)
	}
}

func TestValidate(t *testing.T) {
	p := newPKI(t)
	cert, key := p.ca.Issue(t, p.dir, "n", testcert.Leaf{})
	notPEM := filepath.Join(p.dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("nothing here"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"cert without key", Config{CertFile: cert}, "must be given together"},
		{"key without cert", Config{KeyFile: key}, "must be given together"},
		{"CA alone", Config{CACertFile: p.caFile}, "needs -node-cert and -node-key"},
		{"common name without client verification", Config{CertFile: cert, KeyFile: key, VerifyCommonName: "x"}, "needs -node-verify-client"},
		{"negative interval", Config{CertFile: cert, KeyFile: key, ReloadInterval: -time.Second}, "negative"},
		{"missing CA file", Config{CertFile: cert, KeyFile: key, CACertFile: filepath.Join(p.dir, "none.pem")}, "-node-ca-cert"},
		{"CA file without a certificate", Config{CertFile: cert, KeyFile: key, CACertFile: notPEM}, "no CA certificate"},
		{"key that does not match", Config{CertFile: cert, KeyFile: notPEM}, "load TLS certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(tc.cfg, nil)
			if err == nil {
				n.Close()
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrInvalidConfig containing %q", err, tc.want)
			}
		})
	}
	n, err := New(Config{CertFile: cert, KeyFile: key, CACertFile: p.caFile, VerifyClient: true, VerifyCommonName: "skiff-node"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	n.Close() // idempotent
}

func TestNilIsPlaintext(t *testing.T) {
	var n *TLS
	if n.Server() != nil || n.Client() != nil || n.Scheme() != "http" {
		t.Fatal("a nil TLS must be plaintext")
	}
	if tr := n.HTTPClient(time.Second).Transport.(*http.Transport); tr.TLSClientConfig != nil || tr.Proxy != nil {
		t.Fatal("a nil TLS's HTTP client must be plain and unproxied")
	}
	if got := n.Status()["tls"]; got != "disabled" {
		t.Fatalf("status tls %v", got)
	}
	n.Close()
}

func TestConfigs(t *testing.T) {
	p := newPKI(t)
	n := p.node(t, "n", testcert.Leaf{}, false, Config{VerifyClient: true, VerifyServerName: "raft.internal", NoVerify: true})
	s, c := n.Server(), n.Client()
	if s.MinVersion != tls.VersionTLS12 || c.MinVersion != tls.VersionTLS12 {
		t.Fatal("TLS 1.2 is the minimum")
	}
	if s.ClientAuth != tls.RequireAndVerifyClientCert || len(s.NextProtos) != 0 {
		t.Fatalf("server: client auth %v, ALPN %v", s.ClientAuth, s.NextProtos)
	}
	if c.ServerName != "raft.internal" || !c.InsecureSkipVerify || c.RootCAs == nil {
		t.Fatalf("client: %q %v", c.ServerName, c.InsecureSkipVerify)
	}
	if tr := n.HTTPClient(0).Transport.(*http.Transport); tr.TLSClientConfig == nil || tr.Proxy != nil || tr.TLSHandshakeTimeout == 0 {
		t.Fatal("HTTP client must use the node TLS, no proxy, a bounded handshake")
	}
	if n.Scheme() != "https" {
		t.Fatal("scheme")
	}
	st := n.Status()
	if st["tls"] != "enabled" || st["ca_certificate"] != p.caFile || st["skip_verify"] != "true" || st["verify_client"] != true || st["cert_not_after"] == nil {
		t.Fatalf("status %v", st)
	}
}

// rewrite issues a fresh pair into the same files, with mtimes moved
// forward so the change is seen whatever the filesystem's granularity.
func rewrite(t *testing.T, p *pki, name string, bump time.Duration) {
	t.Helper()
	cert, key := p.ca.Issue(t, p.dir, name, testcert.Leaf{})
	future := time.Now().Add(bump)
	for _, f := range []string{cert, key} {
		if err := os.Chtimes(f, future, future); err != nil {
			t.Fatal(err)
		}
	}
}

// peerLeaf is the certificate a client sees from server.
func peerLeaf(t *testing.T, server *tls.Config, client *tls.Config) []byte {
	t.Helper()
	var got []byte
	client = client.Clone()
	client.VerifyConnection = func(cs tls.ConnectionState) error {
		got = cs.PeerCertificates[0].Raw
		return nil
	}
	if serr, cerr := exchange(t, server, client); serr != nil || cerr != nil {
		t.Fatalf("exchange: %v / %v", serr, cerr)
	}
	return got
}

func TestReloadOnChange(t *testing.T) {
	p := newPKI(t)
	srv := p.node(t, "srv", testcert.Leaf{}, false, Config{VerifyClient: true, ReloadInterval: 5 * time.Millisecond})
	cl := p.node(t, "cl", testcert.Leaf{}, false, Config{})
	// One server configuration throughout, as the Raft-port mux keeps.
	sc := srv.Server()
	before := peerLeaf(t, sc, cl.Client())
	if !bytes.Equal(before, srv.Certificate().Certificate[0]) {
		t.Fatal("the server did not present its certificate")
	}
	rewrite(t, p, "srv", time.Hour)
	deadline := time.Now().Add(10 * time.Second)
	for bytes.Equal(before, srv.Certificate().Certificate[0]) {
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not reload the changed pair")
		}
		time.Sleep(5 * time.Millisecond)
	}
	after := peerLeaf(t, sc, cl.Client())
	if bytes.Equal(before, after) || !bytes.Equal(after, srv.Certificate().Certificate[0]) {
		t.Fatal("a new handshake did not get the reloaded certificate")
	}
	// The client side presents its reloaded certificate too.
	rewrite(t, p, "cl", 2*time.Hour)
	if changed, err := cl.Reload(); !changed || err != nil {
		t.Fatalf("client reload: %v %v", changed, err)
	}
	var seen []byte
	sc2 := srv.Server()
	sc2.VerifyConnection = func(cs tls.ConnectionState) error {
		seen = cs.PeerCertificates[0].Raw
		return nil
	}
	if serr, cerr := exchange(t, sc2, cl.Client()); serr != nil || cerr != nil {
		t.Fatalf("exchange: %v / %v", serr, cerr)
	}
	if !bytes.Equal(seen, cl.Certificate().Certificate[0]) {
		t.Fatal("the client did not present its reloaded certificate")
	}
}

// PeerURL: https:// with node TLS, http:// without; a URL keeps its own.
func TestPeerURL(t *testing.T) {
	for _, tc := range []struct {
		tls              bool
		addr, path, want string
	}{
		{true, "127.0.0.1:4002", "/skiff/node", "https://127.0.0.1:4002/skiff/node"},
		{false, "127.0.0.1:4002", "/skiff/node", "http://127.0.0.1:4002/skiff/node"},
		{true, "http://h:1/", "/join", "http://h:1/join"},
	} {
		if got := PeerURL(tc.tls, tc.addr, tc.path); got != tc.want {
			t.Errorf("PeerURL(%v, %q, %q) = %q, want %q", tc.tls, tc.addr, tc.path, got, tc.want)
		}
	}
}
