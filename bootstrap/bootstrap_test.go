package bootstrap

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/logger"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors"
	"github.com/skiffdb/skiff/actors/lifecycle"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestConfigValidate(t *testing.T) {
	good := Config{DataDir: "d"}.WithDefaults()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if good.NodeID != good.RaftAdvAddr {
		t.Fatalf("node ID defaults to %q, want the advertised Raft address", good.NodeID)
	}
	for name, mut := range map[string]func(*Config){
		"no data dir":       func(c *Config) { c.DataDir = "" },
		"bad address":       func(c *Config) { c.HTTPAddr = "nocolon" },
		"same adv address":  func(c *Config) { c.HTTPAdvAddr = c.RaftAdvAddr },
		"bad raft loglevel": func(c *Config) { c.RaftLogLevel = "LOUD" },
		"election too low":  func(c *Config) { c.RaftElectionTimeout = c.RaftHeartbeatTimeout },
	} {
		c := good
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func waitPhase(t *testing.T, n *Node, p lifecycle.Phase) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for n.State().Phase != p {
		if time.Now().After(deadline) {
			t.Fatalf("phase %s after 20s, want %s", n.State().Phase, p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A node restarted on its directory keeps its identity; flags that
// contradict it stop the node with a clear error instead of starting a
// different node on the same data.
func TestIdentityIsImmutable(t *testing.T) {
	dir := t.TempDir()
	raft := freeAddr(t)
	cfg := Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: raft, NodeID: "n1", Logger: zap.NewNop()}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, n, lifecycle.Ready)
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	cfg.NodeID = "other"
	n, err = Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Wait(ctx); !errors.Is(err, ErrIdentityChanged) {
		t.Fatalf("Wait = %v, want ErrIdentityChanged", err)
	}
}

// Shutdown right after Start, while the replica is still starting, is clean
// and bounded; a restart afterwards works.
func TestShutdownWhileStarting(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: freeAddr(t), Logger: zap.NewNop()}
	for range 3 {
		n, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if err := n.Shutdown(); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(t0); el > cfg.WithDefaults().ShutdownTimeout {
			t.Fatalf("shutdown took %s", el)
		}
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, n, lifecycle.Ready)
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
}

// When startup fails before the replica was started, shutdown skips the
// replica's step: Wait returns the startup failure alone, not an "unknown
// actor: replica" error from a shutdown that in fact went fine.
func TestStartupFailureBeforeReplicaShutsDownCleanly(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(t *testing.T, cfg *Config)
		want    error // nil: any error
	}{
		{
			name: "data directory is a file",
			prepare: func(t *testing.T, cfg *Config) {
				f := filepath.Join(t.TempDir(), "file")
				if err := os.WriteFile(f, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				cfg.DataDir = f
			},
		},
		{
			name: "identity changed",
			prepare: func(t *testing.T, cfg *Config) {
				if err := os.MkdirAll(cfg.WithDefaults().localStoreDir(), 0o755); err != nil {
					t.Fatal(err)
				}
				st, err := openLocalStore(cfg.WithDefaults().localStoreDir(), zap.NewNop())
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				if err := st.saveIdentity(identity{NodeID: "someone-else", ShardID: 1, ReplicaID: 1, RaftAddr: cfg.WithDefaults().RaftAdvAddr}); err != nil {
					t.Fatal(err)
				}
			},
			want: ErrIdentityChanged,
		},
		{
			// API.md 5: a new Raft address needs -join or peers.json.
			name: "raft address changed without -join",
			prepare: func(t *testing.T, cfg *Config) {
				saveTestIdentity(t, cfg, identity{NodeID: "n1", ShardID: 1, ReplicaID: 1, RaftAddr: "127.0.0.1:1"})
			},
			want: ErrIdentityChanged,
		},
		{
			name: "malformed peers.json",
			prepare: func(t *testing.T, cfg *Config) {
				saveTestIdentity(t, cfg, identity{NodeID: "n1", ShardID: 1, ReplicaID: 1, RaftAddr: cfg.WithDefaults().RaftAdvAddr})
				c := cfg.WithDefaults()
				if err := os.MkdirAll(c.nodeHostDir(), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(c.nodeHostDir(), peersFile), []byte(`[]`), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want: ErrPeers,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: freeAddr(t), NodeID: "n1", Logger: zap.NewNop()}
			tc.prepare(t, &cfg)
			n, err := Start(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err = n.Wait(ctx)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Wait = %v, want a startup failure (%v)", err, tc.want)
			}
			if errors.Is(err, actors.ErrUnknownActor) || strings.Contains(err.Error(), "did not stop") {
				t.Fatalf("shutdown after a failed startup reported: %v", err)
			}
			// Shutting down again is clean too.
			if err := n.Shutdown(); err != nil {
				t.Fatalf("second Shutdown = %v", err)
			}
		})
	}
}

// Dragonboat calls Panicf on broken invariants and carries on with corrupt
// state if it returns (DRAGONBOAT.md 4.3): routed into zap, it must panic.
func TestDragonboatPanicfPanics(t *testing.T) {
	dbLogs.install(zap.NewNop(), zap.WarnLevel)
	defer func() {
		if recover() == nil {
			t.Fatal("Panicf returned")
		}
	}()
	logger.GetLogger("skiff-test").Panicf("invariant %d broken", 1)
}

// saveTestIdentity stores id in cfg's data directory, as a first start did.
func saveTestIdentity(t *testing.T, cfg *Config, id identity) {
	t.Helper()
	dir := cfg.WithDefaults().localStoreDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := openLocalStore(dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.saveIdentity(id); err != nil {
		t.Fatal(err)
	}
}
