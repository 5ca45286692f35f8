package bootstrap

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/logger"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors"
	"github.com/skiffdb/skiff/actors/ingest"
	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/test/testport"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	return testport.Addr(t)
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
		"no data dir":        func(c *Config) { c.DataDir = "" },
		"bad address":        func(c *Config) { c.HTTPAddr = "nocolon" },
		"same adv address":   func(c *Config) { c.HTTPAdvAddr = c.RaftAdvAddr },
		"bad raft loglevel":  func(c *Config) { c.RaftLogLevel = "LOUD" },
		"election too low":   func(c *Config) { c.RaftElectionTimeout = c.RaftHeartbeatTimeout },
		"ingest without URL": func(c *Config) { c.Ingest = &ingest.Config{Subject: "s"} },
		"negative vacuum":    func(c *Config) { c.AutoVacuumInterval = -time.Second },
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

// The rules on how a node enters a cluster apply on a new data directory
// only (API.md 5: restarts need no -join); Validate accepts every
// combination a restart may come with.
func TestFirstStartCheck(t *testing.T) {
	base := Config{DataDir: "d"}.WithDefaults()
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		ok   bool
	}{
		{"plain", func(*Config) {}, true},
		{"join", func(c *Config) { c.Join = []string{"a:1"} }, true},
		{"non-voter with join", func(c *Config) { c.NonVoter, c.Join = true, []string{"a:1"} }, true},
		{"non-voter without join", func(c *Config) { c.NonVoter = true }, false},
		{"expect with join", func(c *Config) { c.BootstrapExpect, c.Join = 3, []string{"a:1", "b:1", "c:1"} }, true},
		{"expect without join", func(c *Config) { c.BootstrapExpect = 3 }, false},
		{"expect as non-voter", func(c *Config) { c.BootstrapExpect, c.Join, c.NonVoter = 3, []string{"a:1"}, true }, false},
		{"disco with expect", func(c *Config) { c.DiscoMode, c.DiscoConfig, c.BootstrapExpect = "dns", `{"name":"x"}`, 3 }, true},
		{"disco without expect", func(c *Config) { c.DiscoMode, c.DiscoConfig = "dns", `{"name":"x"}` }, false},
		{"disco with join", func(c *Config) {
			c.DiscoMode, c.DiscoConfig, c.BootstrapExpect, c.Join = "dns", `{"name":"x"}`, 3, []string{"a:1"}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mut(&c)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate (every start): %v", err)
			}
			err := c.firstStartCheck()
			if tc.ok && err != nil {
				t.Fatalf("firstStartCheck: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("firstStartCheck = %v, want ErrInvalidConfig", err)
			}
		})
	}
	// Malformed values are refused at every start.
	for name, mut := range map[string]func(*Config){
		"negative expect":  func(c *Config) { c.BootstrapExpect = -1 },
		"bad disco config": func(c *Config) { c.DiscoMode, c.DiscoConfig = "dns", "{" },
		"zero attempts":    func(c *Config) { c.JoinAttempts = -1 },
	} {
		c := base
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", name, err)
		}
	}
}

// A read replica stays one across restarts without -raft-non-voter; a
// voter is never turned into one by a flag; directories made before the
// field existed adopt the flag.
func TestReconcileNonVoter(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name         string
		stored       *bool
		flag         bool
		wantNonVoter bool
		wantSave     bool
		wantErr      bool
	}{
		{"replica restarted without the flag", &yes, false, true, false, false},
		{"replica restarted with the flag", &yes, true, true, false, false},
		{"voter restarted without the flag", &no, false, false, false, false},
		{"voter restarted with the flag", &no, true, false, false, true},
		{"old directory, flag", nil, true, true, true, false},
		{"old directory, no flag", nil, false, false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := identity{NodeID: "n", NonVoter: tc.stored}
			save, err := reconcileNonVoter(&id, tc.flag)
			if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, ErrIdentityChanged)) {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if save != tc.wantSave || id.isNonVoter() != tc.wantNonVoter {
				t.Fatalf("save %v non-voter %v, want %v %v", save, id.isNonVoter(), tc.wantSave, tc.wantNonVoter)
			}
		})
	}
}

// A node whose first start stopped before it entered a cluster needs the
// same entry flags again; one that is a member needs none.
func TestUnfinishedEntryCheck(t *testing.T) {
	join := []string{"a:1"}
	for _, tc := range []struct {
		name string
		id   identity
		cfg  Config
		ok   bool
	}{
		{"member, no flags", identity{Joiner: true}, Config{}, true},
		{"member, join given", identity{Joiner: true}, Config{Join: join}, true},
		{"joining, join given", identity{Joining: true}, Config{Join: join}, true},
		{"joining, no join", identity{Joining: true}, Config{}, false},
		{"expecting, join given", identity{Expecting: true}, Config{BootstrapExpect: 3, Join: join}, true},
		{"expecting, disco given", identity{Expecting: true}, Config{BootstrapExpect: 3, DiscoMode: "dns"}, true},
		{"expecting, nothing", identity{Expecting: true}, Config{}, false},
		{"expecting, join without expect", identity{Expecting: true}, Config{Join: join}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.unfinishedEntryCheck(tc.id)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Fatalf("unfinishedEntryCheck = %v, want ok %v", err, tc.ok)
			}
		})
	}
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
