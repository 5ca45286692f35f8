package raftnet

import (
	"context"
	"crypto/tls"
	"maps"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/skiffdb/skiff/bootstrap/nodetls"
	"github.com/skiffdb/skiff/test/testcert"
)

// fromCounts counts the Raft messages the hosts delivered, by sender and
// by receiver.
type fromCounts struct {
	mu       sync.Mutex
	from, to map[uint64]int
}

func newCounts() *fromCounts { return &fromCounts{from: map[uint64]int{}, to: map[uint64]int{}} }

func (f *fromCounts) get() (from, to map[uint64]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.from), maps.Clone(f.to)
}

// countingFactory hands Dragonboat raftnet transports that count the
// messages they deliver.
type countingFactory struct {
	*Factory
	counts *fromCounts
}

func (f countingFactory) Create(nh config.NodeHostConfig, onMessage raftio.MessageHandler, onChunk raftio.ChunkHandler) raftio.ITransport {
	return f.Factory.Create(nh, func(b pb.MessageBatch) {
		f.counts.mu.Lock()
		for _, m := range b.Requests {
			f.counts.from[m.From]++
			f.counts.to[m.To]++
		}
		f.counts.mu.Unlock()
		onMessage(b)
	}, onChunk)
}

// tlsNode is one test node's TLS material and log.
type tlsNode struct {
	tls  *nodetls.TLS
	logs *observer.ObservedLogs
	log  *zap.Logger
}

func newTLSNode(t *testing.T, ca *testcert.CA, caFile string, leaf testcert.Leaf, selfSigned bool) *tlsNode {
	t.Helper()
	dir := t.TempDir()
	var cert, key string
	if selfSigned {
		cert, key = testcert.SelfSigned(t, dir, "node", leaf)
	} else {
		cert, key = ca.Issue(t, dir, "node", leaf)
	}
	n, err := nodetls.New(nodetls.Config{CertFile: cert, KeyFile: key, CACertFile: caFile,
		VerifyClient: true, VerifyCommonName: "skiff-node"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	core, logs := observer.New(zap.WarnLevel)
	return &tlsNode{tls: n, logs: logs, log: zap.New(core)}
}

// startTLSHost starts a NodeHost whose transport speaks node TLS:
// listening itself, or fed by a mux-like loop that does the handshake.
func startTLSHost(t *testing.T, addr string, kind transportKind, n *tlsNode, counts *fromCounts) *dragonboat.NodeHost {
	t.Helper()
	cfg := Config{TLS: n.tls.Client(), Logger: n.log}
	if kind == handedOver {
		in := &Inbound{}
		cfg.Inbound = in
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() }) // after the NodeHost's cleanup
		srv := n.tls.Server()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					tc := tls.Server(c, srv)
					_ = c.SetDeadline(time.Now().Add(5 * time.Second))
					if err := tc.Handshake(); err != nil {
						n.log.Warn("test mux: TLS handshake refused", zap.Error(err))
						c.Close()
						return
					}
					_ = c.SetDeadline(time.Time{})
					if !in.Serve(tc) {
						c.Close()
					}
				}()
			}
		}()
	} else {
		cfg.ServerTLS = n.tls.Server()
	}
	f, err := NewFactory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nhc := config.NodeHostConfig{NodeHostDir: filepath.Join(t.TempDir(), "nh"), RTTMillisecond: 10, RaftAddress: addr}
	nhc.Expert.TransportFactory = countingFactory{Factory: f, counts: counts}
	nh, err := dragonboat.NewNodeHost(nhc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Close)
	return nh
}

// tlsCluster is the TLS cluster tests' fixture: a CA and its file, four
// free addresses, and the maps the tests fill with nodes and hosts.
type tlsCluster struct {
	ca     *testcert.CA
	caFile string
	addrs  map[uint64]string
	counts *fromCounts
	nodes  map[uint64]*tlsNode
	hosts  map[uint64]*dragonboat.NodeHost
	sms    *machines
}

func newTLSCluster(t *testing.T) *tlsCluster {
	t.Helper()
	ca := testcert.NewCA(t, "skiff-test-ca")
	return &tlsCluster{ca: ca, caFile: ca.WriteCA(t, t.TempDir(), "ca"),
		addrs:  freeAddrs(t, 4),
		counts: newCounts(), nodes: map[uint64]*tlsNode{}, hosts: map[uint64]*dragonboat.NodeHost{}, sms: &machines{m: map[uint64]*sumSM{}}}
}

// A cluster whose members verify each other's certificates (mutual TLS,
// common name checked) forms, replicates, and streams a snapshot to a new
// member, both with the transport listening itself and fed by a mux.
func TestTLSClusterReplicatesAndSendsSnapshots(t *testing.T) {
	f := newTLSCluster(t)
	ca, caFile, addrs, counts, nodes, hosts, sms := f.ca, f.caFile, f.addrs, f.counts, f.nodes, f.hosts, f.sms
	kinds := map[uint64]transportKind{1: listening, 2: handedOver, 3: listening, 4: handedOver}
	initial := map[uint64]string{1: addrs[1], 2: addrs[2], 3: addrs[3]}
	for id := uint64(1); id <= 4; id++ {
		nodes[id] = newTLSNode(t, ca, caFile, testcert.Leaf{CommonName: "skiff-node"}, false)
	}
	for id := uint64(1); id <= 3; id++ {
		hosts[id] = startTLSHost(t, addrs[id], kinds[id], nodes[id], counts)
		if err := hosts[id].StartReplica(initial, false, sms.create, replicaConfig(id)); err != nil {
			t.Fatal(err)
		}
	}
	state := [2]uint64{}
	for id := uint64(1); id <= 3; id++ {
		state = propose(t, hosts[id], state, 20)
	}
	for id := uint64(1); id <= 3; id++ {
		waitState(t, hosts[id], state)
	}
	// Compact every log, so that replica 4 catches up from a snapshot
	// streamed over TLS.
	for id := uint64(1); id <= 3; id++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := hosts[id].SyncRequestSnapshot(ctx, shard, dragonboat.SnapshotOption{OverrideCompactionOverhead: true, CompactionOverhead: 0})
		cancel()
		if err != nil && err != dragonboat.ErrRejected {
			t.Fatalf("snapshot: %v", err)
		}
	}
	leader := leaderOf(t, hosts[1])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := hosts[leader].SyncRequestAddNonVoting(ctx, shard, 4, addrs[4], 0)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	hosts[4] = startTLSHost(t, addrs[4], kinds[4], nodes[4], counts)
	rc := replicaConfig(4)
	rc.IsNonVoting = true
	if err := hosts[4].StartReplica(nil, true, sms.create, rc); err != nil {
		t.Fatal(err)
	}
	waitState(t, hosts[4], state)
	if !sms.recovered(4) {
		t.Fatal("replica 4 caught up without a snapshot: the test no longer streams one")
	}
	state = propose(t, hosts[4], state, 5)
	for id, h := range hosts {
		waitState(t, h, state)
		if l := nodes[id].logs.FilterMessageSnippet("TLS"); l.Len() != 0 {
			t.Errorf("node %d logged TLS failures: %v", id, l.All())
		}
	}
}

// waitLog waits until one of logs holds an entry whose message contains
// msg and whose error contains reason.
func waitLog(t *testing.T, who, msg, reason string, logs ...*observer.ObservedLogs) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range logs {
			for _, e := range l.FilterMessageSnippet(msg).All() {
				for _, f := range e.Context {
					if err, ok := f.Interface.(error); ok && f.Key == "error" && strings.Contains(err.Error(), reason) {
						return
					}
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	var all []observer.LoggedEntry
	for _, l := range logs {
		all = append(all, l.All()...)
	}
	t.Fatalf("%s: no log %q with reason %q; logs: %v", who, msg, reason, all)
}

// A member whose certificate nobody trusts (self-signed), or whose common
// name is not the cluster's, cannot exchange a single Raft message with
// the others, either way, while they form a cluster without it; the
// refusals are logged on both sides with the reason.
func TestTLSUntrustedPeerExchangesNoMessage(t *testing.T) {
	for _, tc := range []struct {
		name       string
		leaf       testcert.Leaf
		selfSigned bool
		// goodSees is what the good members log of the bad one's
		// certificate; badSees, of the refusal of its own.
		goodSees, badSees string
	}{
		{name: "self-signed", leaf: testcert.Leaf{CommonName: "skiff-node"}, selfSigned: true,
			goodSees: "unknown authority", badSees: "unknown certificate authority"},
		{name: "wrong common name", leaf: testcert.Leaf{CommonName: "intruder"},
			goodSees: `got "intruder", want "skiff-node"`, badSees: "bad certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTLSCluster(t)
			ca, caFile, addrs, counts, nodes, hosts, sms := f.ca, f.caFile, f.addrs, f.counts, f.nodes, f.hosts, f.sms
			kinds := map[uint64]transportKind{1: listening, 2: handedOver, 3: listening, 4: listening}
			for id := uint64(1); id <= 3; id++ {
				nodes[id] = newTLSNode(t, ca, caFile, testcert.Leaf{CommonName: "skiff-node"}, false)
			}
			nodes[4] = newTLSNode(t, ca, caFile, tc.leaf, tc.selfSigned)
			// Four voters: three make a quorum without 4, and 4
			// campaigns, so messages are attempted both ways.
			initial := map[uint64]string{1: addrs[1], 2: addrs[2], 3: addrs[3], 4: addrs[4]}
			for id := uint64(1); id <= 4; id++ {
				hosts[id] = startTLSHost(t, addrs[id], kinds[id], nodes[id], counts)
				if err := hosts[id].StartReplica(initial, false, sms.create, replicaConfig(id)); err != nil {
					t.Fatal(err)
				}
			}
			state := propose(t, hosts[1], [2]uint64{}, 10)
			for id := uint64(1); id <= 3; id++ {
				waitState(t, hosts[id], state)
			}
			// Both sides of both directions log the refusal with its
			// reason. 4 dialing: a good member's server refuses 4's
			// certificate (listening, and behind the test mux), and 4
			// hears why. A good member dialing: it refuses 4's server
			// certificate, and 4's server hears that it did.
			waitLog(t, "node 1 (listening)", "TLS handshake with a connecting peer failed", tc.goodSees, nodes[1].logs)
			waitLog(t, "node 2 (mux)", "test mux: TLS handshake refused", tc.goodSees, nodes[2].logs)
			waitLog(t, "node 4 dialing", "peer refused this node's TLS certificate", tc.badSees, nodes[4].logs)
			waitLog(t, "a good member dialing", "TLS handshake with a peer failed", tc.goodSees, nodes[1].logs, nodes[2].logs, nodes[3].logs)
			waitLog(t, "node 4 accepting", "TLS handshake with a connecting peer failed", "bad certificate", nodes[4].logs)
			// The good members exchanged messages all along; not one
			// reached 4 or came from it.
			from, to := counts.get()
			if from[4] != 0 || to[4] != 0 {
				t.Fatalf("messages from 4: %d, to 4: %d", from[4], to[4])
			}
			if from[1]+from[2]+from[3] == 0 {
				t.Fatal("the good members exchanged no message: the test proves nothing")
			}
			if v, err := hosts[4].StaleRead(shard, nil); err == nil && v.([2]uint64)[0] != 0 {
				t.Fatalf("replica 4 applied %v", v)
			}
		})
	}
}

func TestTLSConfigValidate(t *testing.T) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"plaintext", Config{}, true},
		{"listening with both sides", Config{TLS: c, ServerTLS: c}, true},
		{"behind a mux, client side only", Config{Inbound: &Inbound{}, TLS: c}, true},
		{"listening, client side only", Config{TLS: c}, false},
		{"listening, server side only", Config{ServerTLS: c}, false},
		{"server side behind a mux", Config{Inbound: &Inbound{}, TLS: c, ServerTLS: c}, false},
		{"negative handshake timeout", Config{HandshakeTimeout: -time.Second}, false},
	} {
		if _, err := NewFactory(tc.cfg); (err == nil) != tc.ok {
			t.Errorf("%s: err %v", tc.name, err)
		}
	}
}
