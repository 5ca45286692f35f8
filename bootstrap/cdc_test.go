package bootstrap

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/cdc"
	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/sm"
)

func stdoutCDC(t *testing.T) *cdc.Config {
	t.Helper()
	c, err := cdc.ParseConfig("stdout")
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// A node with -cdc-config opens its outbox under <data>/cdc, publishes the
// cdc section of /status and store.cdc, and closes the outbox at shutdown
// (a second start opens it again).
func TestCDCNode(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: freeAddr(t), NodeID: "n1", Logger: zap.NewNop(), CDC: stdoutCDC(t)}
	if !sm.CaptureSupported() {
		// A build without the pre-update hook refuses CDC at start.
		if _, err := Start(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("Start without capture support = %v, want ErrInvalidConfig", err)
		}
		return
	}
	for range 2 {
		n, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		waitPhase(t, n, lifecycle.Ready)
		if _, err := os.Stat(filepath.Join(dir, "cdc")); err != nil {
			t.Fatal("no outbox directory:", err)
		}
		resp, err := http.Get("http://" + n.HTTPAddr().String() + "/status")
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			CDC   map[string]any `json:"cdc"`
			Store struct {
				CDC map[string]any `json:"cdc"`
			} `json:"store"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if st.CDC["node_id"] != "n1" || st.CDC["endpoint"] != "stdout" || st.Store.CDC["enabled"] != true {
			t.Fatalf("status cdc %v, store.cdc %v", st.CDC, st.Store.CDC)
		}
		// The leader transmits (lifecycle says it leads).
		deadline := time.Now().Add(10 * time.Second)
		for n.cdcSvc.Status().(map[string]any)["leader"] != true {
			if time.Now().After(deadline) {
				t.Fatal("the single node's CDC service never transmits")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := n.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
}

// CDC runs on voters only: refused with -raft-non-voter, and on a node
// whose stored identity is a read replica.
func TestCDCNonVoterRefused(t *testing.T) {
	cfg := Config{DataDir: "d", CDC: stdoutCDC(t), NonVoter: true, Join: []string{"a:1"}}.WithDefaults()
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "-raft-non-voter") {
		t.Fatalf("Validate: %v", err)
	}
	if !sm.CaptureSupported() {
		return // refused at Start already (TestCDCNode)
	}
	dir := t.TempDir()
	cfg = Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: freeAddr(t), NodeID: "r1", Logger: zap.NewNop(), CDC: stdoutCDC(t)}
	nonVoter := true
	saveTestIdentity(t, &cfg, identity{NodeID: "r1", ShardID: 1, ReplicaID: 7, RaftAddr: cfg.RaftAddr, NonVoter: &nonVoter, Joiner: true})
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = n.Wait(ctx)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "read replica") {
		t.Fatalf("Wait: %v", err)
	}
}
