package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/skiffdb/skiff/actors/lifecycle"
)

// With node-to-node TLS (Config.PeerTLS), /nodes asks each peer's Raft
// port over https:// with the node's TLS client; a peer whose certificate
// it does not trust is reported unreachable, with the reason.
func TestNodesAsksPeersOverNodeTLS(t *testing.T) {
	peer := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != pathPeerNode {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(NodeMeta{NodeID: "n2", Version: "v-peer", Phase: "ready"})
	}))
	defer peer.Close()
	peerAddr := strings.TrimPrefix(peer.URL, "https://")
	roots := x509.NewCertPool()
	roots.AddCert(peer.Certificate())
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	st := *p.st.Load()
	st.Members = []lifecycle.Member{{NodeID: "n1", ReplicaID: 1, RaftAddr: "127.0.0.1:4002", Voter: true},
		{NodeID: "n2", ReplicaID: 2, RaftAddr: peerAddr, Voter: true}}
	p.st.Store(&st)
	for _, tc := range []struct {
		name      string
		peerTLS   *tls.Config
		reachable bool
		reason    string
	}{
		{"trusted peer", &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, true, `"version":"v-peer"`},
		{"untrusted peer", &tls.Config{MinVersion: tls.VersionTLS12}, false, "certificate"},
		{"plaintext to a TLS peer", nil, false, `"error"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := startGatewayCfg(t, Config{PeerTLS: tc.peerTLS}, &fakeData{}, p)
			r := do(t, "GET", base+"/nodes?timeout=5s", "")
			var doc map[string]map[string]any
			if err := json.Unmarshal([]byte(r.body), &doc); err != nil {
				t.Fatalf("/nodes: %d %s", r.status, r.body)
			}
			n2, _ := json.Marshal(doc["n2"])
			if doc["n2"]["reachable"] != tc.reachable || !strings.Contains(string(n2), tc.reason) {
				t.Fatalf("n2: %s, want reachable %v and %s", n2, tc.reachable, tc.reason)
			}
		})
	}
}
