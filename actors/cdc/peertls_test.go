package cdc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/skiffdb/skiff/bootstrap/nodetls"
)

// With node-to-node TLS (Config.PeerTLS) a backfill asks the peer's Raft
// port over https:// with the node's TLS client, which must trust the
// peer; without it, plain http://.
func TestBackfillOverNodeTLS(t *testing.T) {
	if got := nodetls.PeerURL(true, "127.0.0.1:4002", ""); got != "https://127.0.0.1:4002" {
		t.Fatalf("TLS base %q", got)
	}
	if got := nodetls.PeerURL(false, "127.0.0.1:4002", ""); got != "http://127.0.0.1:4002" {
		t.Fatalf("plain base %q", got)
	}
	if got := nodetls.PeerURL(true, "http://h:1/", ""); got != "http://h:1" {
		t.Fatalf("a URL passes as is: %q", got)
	}
	ob := openOutbox(t, t.TempDir())
	captureRange(t, ob, 1, 5)
	var applied atomic.Uint64
	applied.Store(5)
	srv := httptest.NewTLSServer(ob.PeerHandler(applied.Load))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "https://")
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	client := defaultPeerClient(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	if tr := client.Transport.(*http.Transport); tr.Proxy != nil || tr.TLSHandshakeTimeout == 0 {
		t.Fatal("the peer client must not use a proxy and must bound the handshake")
	}
	var log chunkLog
	if err := fetchRange(context.Background(), client, nodetls.PeerURL(true, addr, ""), 1, 5, 1<<20, log.store); err != nil {
		t.Fatal(err)
	}
	sameGroups(t, log.groups, storedGroups(t, ob, 1, 5))
	// A client that does not trust the peer's certificate gets nothing.
	log = chunkLog{}
	err := fetchRange(context.Background(), defaultPeerClient(&tls.Config{MinVersion: tls.VersionTLS12}), nodetls.PeerURL(true, addr, ""), 1, 5, 1<<20, log.store)
	if err == nil || !strings.Contains(err.Error(), "certificate") || len(log.groups) != 0 {
		t.Fatalf("untrusted peer: %v, %d groups", err, len(log.groups))
	}
}
