package bootstrap

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/skiffdb/skiff/bootstrap/nodetls"
	"github.com/skiffdb/skiff/test/testcert"
)

// tlsMux starts a mux with node TLS (mutual) in front of echoRaft and a
// peer handler, and returns it with a client TLS trusted by it. A non-zero
// timeout replaces handshakeTimeout.
func tlsMux(t *testing.T, timeout time.Duration) (*raftMux, *nodetls.TLS, *observer.ObservedLogs) {
	t.Helper()
	dir := t.TempDir()
	ca := testcert.NewCA(t, "ca")
	caFile := ca.WriteCA(t, dir, "ca")
	open := func(name string) *nodetls.TLS {
		cert, key := ca.Issue(t, dir, name, testcert.Leaf{})
		n, err := nodetls.New(nodetls.Config{CertFile: cert, KeyFile: key, CACertFile: caFile, VerifyClient: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		return n
	}
	srv, cl := open("server"), open("client")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log, logs := observed()
	m := newRaftMux(ln, echoRaft, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "peer "+r.URL.Path)
	}), log)
	m.useTLS(srv)
	if timeout != 0 {
		m.tls.timeout = timeout
	}
	m.start()
	t.Cleanup(m.close)
	return m, cl, logs
}

// With node TLS every connection is TLS: Raft frames and peer HTTP are
// routed by their first decrypted byte.
func TestRaftMuxTLSRoutes(t *testing.T) {
	m, cl, _ := tlsMux(t, 0)
	addr := m.ln.Addr().String()
	c, err := tls.Dial("tcp", addr, cl.Client())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantRaftEcho(t, c)
	resp, err := cl.HTTPClient(10 * time.Second).Get("https://" + addr + "/skiff/node")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "peer /skiff/node" {
		t.Fatalf("http answer %q", body)
	}
	if st := m.tlsStatus(); st["tls_handshakes"].(uint64) != 2 || st["tls_handshake_failures"].(uint64) != 0 || st["encrypted"] != "true" {
		t.Fatalf("status %v", st)
	}
	// Plain HTTP is refused with a reason; a plaintext Raft frame is cut.
	resp, err = (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/skiff/node")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "requires node-to-node TLS") {
		t.Fatalf("plain HTTP: %d %q", resp.StatusCode, body)
	}
	p, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Write(append(testFrame([]byte("raft")), make([]byte, 32)...)); err != nil {
		t.Fatal(err)
	}
	_ = p.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 64)
	if n, err := p.Read(got); err == nil {
		t.Fatalf("a plaintext Raft connection got %q back", got[:n])
	}
	if st := m.tlsStatus(); st["tls_handshake_failures"].(uint64) != 2 {
		t.Fatalf("status %v", st)
	}
}

// A connection that never finishes its handshake is dropped after the
// handshake timeout, logged and counted; the mux serves others meanwhile.
func TestRaftMuxTLSHandshakeTimeout(t *testing.T) {
	m, cl, logs := tlsMux(t, 200*time.Millisecond)
	addr := m.ln.Addr().String()
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// A half handshake: a TLS record header and nothing more.
	if _, err := silent.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(silent); err != nil {
		t.Fatalf("the silent connection was not closed by the mux: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("dropped after %v", el)
	}
	if st := m.tlsStatus(); st["tls_handshake_failures"].(uint64) != 1 {
		t.Fatalf("status %v", st)
	}
	if !hasLog(logs, "raft port: TLS handshake failed", "timeout") {
		t.Fatalf("the timeout was not logged: %v", logs.All())
	}
	resp, err := cl.HTTPClient(10 * time.Second).Get("https://" + addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestMuxTLSStatusPlaintext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	m := newRaftMux(ln, echoRaft, http.NotFoundHandler(), zap.NewNop())
	m.useTLS(nil)
	if st := m.tlsStatus(); st["tls"] != "disabled" || len(st) != 2 {
		t.Fatalf("plaintext status %v", st)
	}
}
