package bootstrap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/bootstrap/nodetls"
	"github.com/skiffdb/skiff/gateway/auth"
)

// joinAsNode is a Node with -join-as u (password p) and a plaintext peer
// client, enough for joinOne and peerMeta.
func joinAsNode(t *testing.T) *Node {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(path, []byte(`[{"username":"u","password":"p","perms":["join"]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := auth.Open(auth.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &Node{cfg: Config{JoinAs: "u", Auth: store}, log: zap.NewNop(), stopCtx: ctx, stopping: make(chan struct{})}
}

// authSink records whether any request reached it, and with credentials.
type authSink struct{ hits, withAuth atomic.Int32 }

func (s *authSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	if r.Header.Get("Authorization") != "" {
		s.withAuth.Add(1)
	}
	w.WriteHeader(http.StatusOK)
}

// TestJoinCredentialsNotRedirected: the -join-as credentials go on the
// join request itself and never follow a redirect to another host or
// from https to http (review finding 2).
func TestJoinCredentialsNotRedirected(t *testing.T) {
	otherLn, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	other := &authSink{}
	otherHost := httptest.NewUnstartedServer(other)
	otherHost.Listener.Close()
	otherHost.Listener = otherLn
	otherHost.Start()
	defer otherHost.Close()
	plain := &authSink{}
	plainSrv := httptest.NewServer(plain)
	defer plainSrv.Close()

	cases := []struct {
		name   string
		tls    bool
		target string
		sink   *authSink
	}{
		{"another host", false, otherHost.URL, other},
		{"https to http", true, plainSrv.URL, plain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var first atomic.Int32
			redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, pw, ok := r.BasicAuth(); ok && pw == "p" {
					first.Add(1)
				}
				http.Redirect(w, r, tc.target+r.URL.Path, http.StatusTemporaryRedirect)
			})
			srv := httptest.NewUnstartedServer(redirect)
			if tc.tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			n := joinAsNode(t)
			client := (*nodetls.TLS)(nil).HTTPClient(0)
			if tc.tls {
				pool := x509.NewCertPool()
				pool.AddCert(srv.Certificate())
				client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
			}
			defer client.CloseIdleConnections()
			err := n.joinOne(client, n.joinURL(srv.URL), []byte(`{}`))
			if !errors.Is(err, nodetls.ErrRedirect) {
				t.Fatalf("join err = %v, want %v", err, nodetls.ErrRedirect)
			}
			if first.Load() != 1 {
				t.Fatalf("the join request carried the credentials %d times, want 1", first.Load())
			}
			if tc.sink.withAuth.Load() != 0 || tc.sink.hits.Load() != 0 {
				t.Fatalf("redirect target got %d requests, %d with Authorization; want none", tc.sink.hits.Load(), tc.sink.withAuth.Load())
			}
		})
	}
}

// TestMetadataWithoutCredentials: a Raft port's /skiff/node, which does
// not check credentials, gets none unless the call is a notify.
func TestMetadataWithoutCredentials(t *testing.T) {
	sink := &authSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	n := joinAsNode(t)
	client := (*nodetls.TLS)(nil).HTTPClient(0)
	defer client.CloseIdleConnections()
	addr := srv.Listener.Addr().String() // a Raft address, not an API URL
	_, _ = n.peerMeta(context.Background(), client, addr, 0)
	if sink.hits.Load() != 1 || sink.withAuth.Load() != 0 {
		t.Fatalf("metadata call: %d requests, %d with Authorization; want 1, 0", sink.hits.Load(), sink.withAuth.Load())
	}
	_, _ = n.peerMeta(context.Background(), client, addr, 7)
	if sink.hits.Load() != 2 || sink.withAuth.Load() != 1 {
		t.Fatalf("notify: %d requests, %d with Authorization; want 2, 1", sink.hits.Load(), sink.withAuth.Load())
	}
}
