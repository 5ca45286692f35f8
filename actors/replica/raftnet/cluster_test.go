package raftnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/logger"
	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/skiffdb/skiff/test/testport"
)

func TestMain(m *testing.M) {
	for _, p := range []string{"dragonboat", "raft", "rsm", "transport", "logdb", "config", "settings", "grpc", "raftpb"} {
		logger.GetLogger(p).SetLevel(logger.ERROR)
	}
	os.Exit(m.Run())
}

const shard = 1

// sumSM is a state machine whose state is the count and sum of its
// entries (8-byte big-endian numbers), so every replica can be compared.
type sumSM struct {
	mu         sync.Mutex
	count, sum uint64
	recovered  bool // from a snapshot
}

func (s *sumSM) Update(e sm.Entry) (sm.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	s.sum += binary.BigEndian.Uint64(e.Cmd)
	return sm.Result{Value: s.count}, nil
}

func (s *sumSM) Lookup(interface{}) (interface{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return [2]uint64{s.count, s.sum}, nil
}

func (s *sumSM) SaveSnapshot(w io.Writer, _ sm.ISnapshotFileCollection, _ <-chan struct{}) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Padding makes the snapshot several chunks long.
	b := make([]byte, 16+5<<20)
	binary.BigEndian.PutUint64(b, s.count)
	binary.BigEndian.PutUint64(b[8:], s.sum)
	_, err := w.Write(b)
	return err
}

func (s *sumSM) RecoverFromSnapshot(r io.Reader, _ []sm.SnapshotFile, _ <-chan struct{}) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count, s.sum = binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])
	s.recovered = true
	return nil
}

func (s *sumSM) Close() error { return nil }

// freeAddrs returns n distinct free loopback addresses, for replica IDs
// 1..n. The listeners stay open until all are picked: the kernel may hand
// a just-closed port out again, and two replicas on one address make
// Dragonboat panic ("duplicated address found").
func freeAddrs(t *testing.T, n int) map[uint64]string {
	t.Helper()
	addrs := make(map[uint64]string, n)
	for id := uint64(1); id <= uint64(n); id++ {
		addrs[id] = testport.Addr(t)
	}
	return addrs
}

// How a test NodeHost gets its transport.
type transportKind int

const (
	dragonboats transportKind = iota // Dragonboat's own TCP transport
	listening                        // raftnet, listening itself
	handedOver                       // raftnet fed through an Inbound, as Skiff's mux does
)

// startHost starts a NodeHost on addr with the given transport.
func startHost(t *testing.T, addr string, kind transportKind) *dragonboat.NodeHost {
	t.Helper()
	nhc := config.NodeHostConfig{NodeHostDir: filepath.Join(t.TempDir(), "nh"), RTTMillisecond: 10, RaftAddress: addr}
	if kind != dragonboats {
		var in *Inbound
		if kind == handedOver {
			in = &Inbound{}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() }) // after the NodeHost's cleanup
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						if !in.Serve(c) {
							c.Close()
						}
					}()
				}
			}()
		}
		f, err := NewFactory(Config{Inbound: in})
		if err != nil {
			t.Fatal(err)
		}
		nhc.Expert.TransportFactory = f
	}
	nh, err := dragonboat.NewNodeHost(nhc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Close)
	return nh
}

func replicaConfig(id uint64) config.Config {
	return config.Config{ShardID: shard, ReplicaID: id, ElectionRTT: 10, HeartbeatRTT: 1, CheckQuorum: true,
		SnapshotEntries: 0, CompactionOverhead: 0}
}

// machines keeps each replica's state machine.
type machines struct {
	mu sync.Mutex
	m  map[uint64]*sumSM
}

func (ms *machines) create(_, replicaID uint64) sm.IStateMachine {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	s := &sumSM{}
	ms.m[replicaID] = s
	return s
}

func (ms *machines) recovered(replicaID uint64) bool {
	ms.mu.Lock()
	s := ms.m[replicaID]
	ms.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recovered
}

// waitState waits until nh's replica has applied want (count, sum).
func waitState(t *testing.T, nh *dragonboat.NodeHost, want [2]uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got interface{}
	for time.Now().Before(deadline) {
		v, err := nh.StaleRead(shard, nil)
		if err == nil && v.([2]uint64) == want {
			return
		}
		got = v
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: state %v, want %v", nh.RaftAddress(), got, want)
}

// propose writes n numbers through nh and returns the state they make on
// top of base.
func propose(t *testing.T, nh *dragonboat.NodeHost, base [2]uint64, n int) [2]uint64 {
	t.Helper()
	s := nh.GetNoOPSession(shard)
	for i := range n {
		v := uint64(i*7 + 1)
		cmd := binary.BigEndian.AppendUint64(nil, v)
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := nh.SyncPropose(ctx, s, cmd)
			cancel()
			if err == nil {
				break
			}
			if attempt > 20 {
				t.Fatalf("propose: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		base[0]++
		base[1] += v
	}
	return base
}

func leaderOf(t *testing.T, nh *dragonboat.NodeHost) uint64 {
	t.Helper()
	for range 300 {
		if id, _, ok, err := nh.GetLeaderID(shard); err == nil && ok {
			return id
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader")
	return 0
}

func transferTo(t *testing.T, nh *dragonboat.NodeHost, id uint64) {
	t.Helper()
	for range 100 {
		if leaderOf(t, nh) == id {
			return
		}
		_ = nh.RequestLeaderTransfer(shard, id)
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("leadership did not move to %d", id)
}

// This transport and Dragonboat's own are one wire protocol: a cluster
// mixing them (and raftnet's two ways of receiving) replicates entries both
// ways, and sends snapshots from either kind of sender to either kind of
// receiver. (Skiff's own streamed snapshots, from its on-disk state
// machine through the real mux, are covered by test/snapshotjoin_test.go.)
func TestMixedTransportsReplicateAndSendSnapshots(t *testing.T) {
	addrs := freeAddrs(t, 5)
	kinds := map[uint64]transportKind{1: dragonboats, 2: listening, 3: handedOver, 4: handedOver, 5: dragonboats}
	hosts := map[uint64]*dragonboat.NodeHost{}
	sms := &machines{m: map[uint64]*sumSM{}}
	newSM := sms.create
	initial := map[uint64]string{1: addrs[1], 2: addrs[2], 3: addrs[3]}
	for id := uint64(1); id <= 3; id++ {
		hosts[id] = startHost(t, addrs[id], kinds[id])
		if err := hosts[id].StartReplica(initial, false, newSM, replicaConfig(id)); err != nil {
			t.Fatal(err)
		}
	}
	state := [2]uint64{}
	for id := uint64(1); id <= 3; id++ {
		state = propose(t, hosts[id], state, 30)
	}
	for id := uint64(1); id <= 3; id++ {
		waitState(t, hosts[id], state)
	}

	// join snapshots a compacted log and adds id, which can only catch up
	// from the snapshot the leader (of the other transport) streams.
	join := func(id, leader uint64) {
		t.Helper()
		transferTo(t, hosts[1], leader)
		for _, h := range hosts {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := h.SyncRequestSnapshot(ctx, shard, dragonboat.SnapshotOption{OverrideCompactionOverhead: true, CompactionOverhead: 0})
			cancel()
			if err != nil && err != dragonboat.ErrRejected {
				t.Fatalf("snapshot: %v", err)
			}
		}
		// ErrShardNotReady is Dragonboat's transient refusal while the
		// leader's shard is busy (a snapshot just taken); retry it within
		// the deadline, as the replica actor does.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := hosts[leader].SyncRequestAddNonVoting(ctx, shard, id, addrs[id], 0)
		for errors.Is(err, dragonboat.ErrShardNotReady) && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
			err = hosts[leader].SyncRequestAddNonVoting(ctx, shard, id, addrs[id], 0)
		}
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		hosts[id] = startHost(t, addrs[id], kinds[id])
		rc := replicaConfig(id)
		rc.IsNonVoting = true
		if err := hosts[id].StartReplica(nil, true, newSM, rc); err != nil {
			t.Fatal(err)
		}
		waitState(t, hosts[id], state)
		if !sms.recovered(id) {
			t.Fatalf("replica %d caught up without a snapshot: the test no longer streams one", id)
		}
	}
	join(4, 1) // Dragonboat's sender, our receiver
	join(5, 2) // ours to Dragonboat's
	state = propose(t, hosts[2], state, 10)
	for id, h := range hosts {
		t.Run(fmt.Sprint("replica", id), func(t *testing.T) { waitState(t, h, state) })
	}
}
