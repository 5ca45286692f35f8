package bootstrap

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/logger"
	"go.uber.org/zap"

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
