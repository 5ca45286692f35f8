package bootstrap

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/gateway"
)

// TestConfirmMember: a node with Raft state started with -join asks the
// targets whether it is a member of their cluster (API.md 5: -join is
// ignored for a member; a node of another cluster must not run on).
func TestConfirmMember(t *testing.T) {
	self := identity{NodeID: "a", ShardID: 1, ReplicaID: 1, RaftAddr: "127.0.0.1:7002"}
	cases := []struct {
		name    string
		meta    *gateway.NodeMeta // nil: the target is down
		wantErr error
	}{
		{"member of the target's cluster: no-op", &gateway.NodeMeta{NodeID: "b", ReplicaID: 9, Phase: "ready",
			Members: map[uint64]string{9: "127.0.0.1:8002", 1: "127.0.0.1:7002"}}, nil},
		{"another cluster (a lone leader, also replica 1, elsewhere)", &gateway.NodeMeta{NodeID: "b", ReplicaID: 1, RaftAddr: "127.0.0.1:8002",
			Phase: "ready", Members: map[uint64]string{1: "127.0.0.1:8002"}}, ErrOtherCluster},
		{"removed from the target's cluster", &gateway.NodeMeta{NodeID: "b", ReplicaID: 9, Phase: "ready",
			Members: map[uint64]string{9: "127.0.0.1:8002"}, Removed: []uint64{1}}, ErrOtherCluster},
		{"target not ready: undecided, starts from its data", &gateway.NodeMeta{NodeID: "b", ReplicaID: 9, Phase: "recovering",
			Members: map[uint64]string{9: "127.0.0.1:8002"}}, nil},
		{"target down: undecided, starts from its data", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case tc.meta == nil:
					w.WriteHeader(http.StatusServiceUnavailable)
				case r.URL.Path == "/skiff/node":
					_ = json.NewEncoder(w).Encode(tc.meta)
				default: // the no-op join
					w.WriteHeader(http.StatusOK)
				}
			}))
			defer srv.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			n := &Node{cfg: Config{RaftAddr: self.RaftAddr, RaftAdvAddr: self.RaftAddr}, log: zap.NewNop(),
				stopCtx: ctx, stopping: make(chan struct{})}
			err := n.confirmMember(self, []string{srv.URL})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}
