package bootstrap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/sm"
)

// ErrPeers refuses a peers.json that cannot be applied as written.
var ErrPeers = errors.New("peers.json refused")

// rqlite's recovery files, in the Raft directory (DATADIR/raft): the
// operator writes peers.json; once applied it is renamed peers.info.
const (
	peersFile = "peers.json"
	peersInfo = "peers.info"
	// peersExportDir holds the snapshot exported while applying peers.json,
	// peersFetchDir the one fetched from a voter ahead.
	peersExportDir = "peers-export"
	peersFetchDir  = "peers-fetch"
)

// peer is one entry of peers.json, rqlite's format.
type peer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	NonVoter bool   `json:"non_voter"`
}

// parsePeers decodes and checks peers.json: a non-empty list of distinct
// node IDs at distinct host:port addresses, one voter at least.
func parsePeers(b []byte) ([]peer, error) {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrPeers}, a...)...) }
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var peers []peer
	if err := dec.Decode(&peers); err != nil {
		return nil, bad("want a JSON list of {\"id\", \"address\", \"non_voter\"}: %v", err)
	}
	if dec.More() {
		return nil, bad("trailing data after the list")
	}
	if len(peers) == 0 {
		return nil, bad("the list is empty")
	}
	ids, addrs, voters := map[string]bool{}, map[string]bool{}, 0
	for i, p := range peers {
		if p.ID == "" {
			return nil, bad("entry %d has no id", i+1)
		}
		if host, port, err := net.SplitHostPort(p.Address); err != nil || host == "" || port == "" {
			return nil, bad("node %q: address %q is not host:port", p.ID, p.Address)
		}
		if ids[p.ID] {
			return nil, bad("node %q is listed twice", p.ID)
		}
		if addrs[p.Address] {
			return nil, bad("address %s is listed twice", p.Address)
		}
		ids[p.ID], addrs[p.Address] = true, true
		if !p.NonVoter {
			voters++
		}
	}
	if voters == 0 {
		return nil, bad("no voter is listed")
	}
	return peers, nil
}

// peerOf returns this node's entry, checked against its flags.
func peerOf(peers []peer, nodeID, raftAddr string, nonVoter bool) (peer, error) {
	for _, p := range peers {
		if p.ID != nodeID {
			continue
		}
		switch {
		case p.Address != raftAddr:
			return p, fmt.Errorf("%w: it gives this node (%s) the address %s, but -raft-adv-addr is %s", ErrPeers, nodeID, p.Address, raftAddr)
		case p.NonVoter != nonVoter:
			return p, fmt.Errorf("%w: it lists this node (%s) with non_voter=%t, but -raft-non-voter is %t", ErrPeers, nodeID, p.NonVoter, nonVoter)
		}
		return p, nil
	}
	return peer{}, fmt.Errorf("%w: this node (%s) is not listed: a node left out of the new configuration must not start with its old data", ErrPeers, nodeID)
}

// voterMembers maps the voters among peers to replica IDs (replica ID ->
// Raft address): this node's from its identity, the others' from the
// replicated node table, as this node last saw it.
func voterMembers(peers []peer, self identity, nodes []sm.NodeInfo) (map[uint64]string, error) {
	members := map[uint64]string{}
	for _, p := range peers {
		if p.NonVoter {
			continue
		}
		rid := uint64(0)
		if p.ID == self.NodeID {
			rid = self.ReplicaID
		} else {
			for _, n := range nodes {
				if n.NodeID == p.ID {
					rid = n.ReplicaID
				}
			}
		}
		if rid == 0 {
			return nil, fmt.Errorf("%w: node %q is not in this node's node table (known: %s)", ErrPeers, p.ID, knownNodes(nodes))
		}
		if _, dup := members[rid]; dup {
			return nil, fmt.Errorf("%w: node %q has the replica of another listed node", ErrPeers, p.ID)
		}
		members[rid] = p.Address
	}
	return members, nil
}

func knownNodes(nodes []sm.NodeInfo) string {
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.NodeID)
	}
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

// replicaConfig is the replica configuration of the Raft state under c,
// for the offline tools (export, import, the stored address).
func (c Config) replicaConfig(id identity, raftAddr string) replica.Config {
	return replica.Config{
		NodeHostDir: c.nodeHostDir(), WALDir: c.RaftWALDir, SMDir: c.smDir(),
		RaftAddr: raftAddr, ShardID: id.ShardID, ReplicaID: id.ReplicaID, LogDBMemory: c.LogDBMemory,
		NonVoting: id.Joiner && !id.Promoted, ForeignKeys: c.ForeignKeys,
		RTT: c.RaftTick, Logger: c.Logger.Named("recover"),
	}
}

// settleTimeout bounds restoring an imported snapshot offline (a copy of
// the database into SQLite).
const settleTimeout = 30 * time.Minute

// importMembers rewrites this node's Raft state from the exported snapshot
// at dir so that members are the voters, and records that the node is a
// plain member now (it starts as a voter, neither joining nor founding).
// -recover-snapshot and peers.json share it.
func importMembers(c Config, store *localStore, id identity, dir string, members map[uint64]string) (identity, error) {
	rc := c.replicaConfig(id, id.RaftAddr)
	if err := replica.ImportSnapshot(rc, dir, members); err != nil {
		return id, err
	}
	// Restored offline once, so that the real start streams snapshots
	// with the right on-disk index (replica.SettleImport). Bounded: the
	// -recover-snapshot command has no other way to stop.
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	rc.NonVoting = false // a voter now, whatever it was
	if err := replica.SettleImport(ctx, rc); err != nil {
		return id, err
	}
	id.Joining, id.Joiner, id.Promoted, id.Expecting, id.Founders = false, false, false, false, nil
	return id, store.saveIdentity(id)
}

// applyPeers applies DATADIR/raft/peers.json when there is one (rqlite's
// lost-quorum and address-change procedure, docs/cluster.md): a voter
// exports its own state offline, rewrites the membership to the listed
// voters at their listed addresses (taking its new address if it changed)
// and imports it back; a listed non-voter sets its state aside and joins
// the voters again as a read replica (Dragonboat's import makes voters
// only). The file is then renamed peers.info. Every step writes new files
// beside the old and renames, so a crash repeats the procedure at the next
// start: peers.json stays until the end.
func (n *Node) applyPeers(c Config, store *localStore, id identity) (Config, identity, error) {
	path := filepath.Join(c.nodeHostDir(), peersFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if id.PeersIndex > 0 {
			// Listed voters still applying theirs may ask for it.
			n.offer.Store(&peersOffer{NodeID: id.NodeID, Index: id.PeersIndex})
		}
		// An export kept for voters behind lives as long as the process
		// that applied the peers.json.
		return c, id, os.RemoveAll(filepath.Join(c.DataDir, peersExportDir))
	}
	if err != nil {
		return c, id, fmt.Errorf("%w: %w", ErrPeers, err)
	}
	peers, err := parsePeers(b)
	if err != nil {
		return c, id, fmt.Errorf("%s: %w", path, err)
	}
	self, err := peerOf(peers, id.NodeID, c.RaftAdvAddr, c.NonVoter)
	if err != nil {
		return c, id, fmt.Errorf("%s: %w", path, err)
	}
	log := n.log.With(zap.String("peers", path))
	if self.NonVoter {
		var via []string
		for _, p := range peers {
			if !p.NonVoter {
				via = append(via, p.Address)
			}
		}
		log.Info("peers.json lists this node as a read replica: it re-joins the listed voters with a new replica", zap.Strings("via", via))
		c.Join = via
		id, err = n.rejoinFresh(c, store, id)
		return c, id, err
	}
	nodes, err := sm.ReadNodes(c.smDir())
	if err != nil {
		return c, id, fmt.Errorf("%w: read the node table: %w", ErrPeers, err)
	}
	members, err := voterMembers(peers, id, nodes)
	if err != nil {
		return c, id, fmt.Errorf("%s: %w", path, err)
	}
	// The Raft state opens only under the address Dragonboat recorded
	// (the identity's, or already the new one if a crash interrupted an
	// earlier attempt after switching it).
	stored, ok, err := replica.StoredRaftAddress(c.replicaConfig(id, id.RaftAddr))
	if err != nil {
		return c, id, err
	}
	if !ok {
		return c, id, fmt.Errorf("%w: %s holds no Raft state to rewrite", ErrPeers, c.nodeHostDir())
	}
	exportDir := filepath.Join(c.DataDir, peersExportDir)
	for _, d := range []string{exportDir, filepath.Join(c.DataDir, peersFetchDir)} {
		if err := os.RemoveAll(d); err != nil {
			return c, id, err
		}
	}
	began := time.Now()
	log.Info("applying peers.json: exporting this node's state", zap.String("stored_raft_addr", stored), zap.Any("members", members))
	snap, idx, err := replica.ExportOffline(n.stopCtx, c.replicaConfig(id, stored), exportDir)
	if err != nil {
		return c, id, fmt.Errorf("%w: %w", ErrPeers, err)
	}
	// Every listed voter recovers at what it had applied; they may differ
	// (a node that stopped before it learnt of the last commits). Each
	// committing its own state would leave Raft unable to reconcile them,
	// so the voters compare, and all import the snapshot of a node that
	// got furthest: Dragonboat's procedure (one snapshot everywhere).
	id.PeersIndex = idx
	if err := store.saveIdentity(id); err != nil {
		return c, id, err
	}
	n.offer.Store(&peersOffer{NodeID: id.NodeID, Index: idx})
	exported := snap // snap may change below; the handler reads this
	n.export.Store(&exported)
	highest, ahead, differ, err := n.gatherOffers(peers, id.NodeID, idx)
	if err != nil {
		return c, id, fmt.Errorf("%s: %w", path, err)
	}
	behind := idx < highest
	if behind {
		log.Warn("this node recovered behind other listed voters: it imports the snapshot of one of them instead of its own",
			zap.Uint64("index", idx), zap.Uint64("highest", highest), zap.Any("ahead", ahead))
		if snap, err = n.fetchSnapshot(ahead, highest, filepath.Join(c.DataDir, peersFetchDir)); err != nil {
			return c, id, err
		}
		idx = highest
	}
	if err := replica.AdoptMembers(snap, members); err != nil {
		return c, id, fmt.Errorf("%w: %w", ErrPeers, err)
	}
	if stored != c.RaftAdvAddr {
		if err := replica.SetStoredRaftAddress(c.replicaConfig(id, stored), c.RaftAdvAddr); err != nil {
			return c, id, err
		}
		log.Info("raft address changed", zap.String("from", stored), zap.String("to", c.RaftAdvAddr))
	}
	id.RaftAddr = c.RaftAdvAddr
	if id, err = importMembers(c, store, id, snap, members); err != nil {
		return c, id, fmt.Errorf("%w: %w", ErrPeers, err)
	}
	if err := os.Rename(path, filepath.Join(c.nodeHostDir(), peersInfo)); err != nil {
		return c, id, fmt.Errorf("%w: rename %s: %w", ErrPeers, path, err)
	}
	// The export stays while this node runs if a voter behind may still
	// fetch it (removed at the next start); the fetched copy goes now.
	if err := os.RemoveAll(filepath.Join(c.DataDir, peersFetchDir)); err != nil {
		log.Warn("could not remove the fetched snapshot", zap.Error(err))
	}
	if behind || !differ {
		n.export.Store(nil)
		if err := os.RemoveAll(exportDir); err != nil {
			log.Warn("could not remove the exported snapshot", zap.String("dir", exportDir), zap.Error(err))
		}
	}
	log.Info("peers.json applied; renamed peers.info", zap.Uint64("index", idx), zap.Any("members", members),
		zap.Duration("took", time.Since(began)))
	return c, id, nil
}
