package bootstrap

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/sm"
)

// checkStoredIdentity reconciles a stored identity with the flags before
// Raft starts: it applies a peers.json, finishes setting old state aside,
// and handles a changed Raft address. It returns the configuration to
// start with (its join list may name the peers.json voters) and the
// identity.
//
// A new Raft address needs one of rqlite's procedures (API.md 5): with
// -join, the node re-joins (its old state is set aside; the leader removes
// its old replica and adds the new one, which receives the database); with
// a peers.json, every node's membership is rewritten in place. Otherwise
// the start is refused: Dragonboat's data is bound to the old address.
func (n *Node) checkStoredIdentity(c Config, store *localStore, id identity) (Config, identity, error) {
	if id.NodeID != c.NodeID {
		return c, id, fmt.Errorf("%w: data directory belongs to node %q, flags say %q (node IDs are immutable)", ErrIdentityChanged, id.NodeID, c.NodeID)
	}
	if id.Reset {
		if err := n.resetRaftState(c, store, &id); err != nil {
			return c, id, err
		}
	}
	c, id, err := n.applyPeers(c, store, id)
	if err != nil || id.RaftAddr == c.RaftAdvAddr {
		return c, id, err
	}
	if len(c.Join) == 0 {
		return c, id, fmt.Errorf("%w: data directory was made with raft address %q, flags say %q: to move a node, restart it with -join "+
			"<a member> (it re-joins under the new address), or stop every node and write %s (docs/cluster.md)",
			ErrIdentityChanged, id.RaftAddr, c.RaftAdvAddr, filepath.Join(c.nodeHostDir(), peersFile))
	}
	nodes, err := sm.ReadNodes(c.smDir())
	if err != nil {
		return c, id, fmt.Errorf("%w: raft address changed from %q to %q, and the node table to check -join against cannot be read: %w",
			ErrIdentityChanged, id.RaftAddr, c.RaftAdvAddr, err)
	}
	if !joinsOwnCluster(c.Join, id.NodeID, nodes) {
		return c, id, fmt.Errorf("%w: raft address changed from %q to %q, but no -join address (%s) is another member of this node's cluster "+
			"as it last knew it; a re-join replaces this node's data with the cluster's, so it is done only through its own cluster",
			ErrIdentityChanged, id.RaftAddr, c.RaftAdvAddr, strings.Join(c.Join, ","))
	}
	n.log.Info("raft address changed: re-joining under the new address with a new replica (the cluster sends the database)",
		zap.String("from", id.RaftAddr), zap.String("to", c.RaftAdvAddr), zap.Uint64("old_replica_id", id.ReplicaID))
	id, err = n.rejoinFresh(c, store, id)
	return c, id, err
}

// joinsOwnCluster reports whether a -join entry names another member of
// the node table (by Raft or API address).
func joinsOwnCluster(join []string, self string, nodes []sm.NodeInfo) bool {
	for _, j := range join {
		j = strings.TrimRight(strings.TrimPrefix(strings.TrimPrefix(j, "http://"), "https://"), "/")
		for _, n := range nodes {
			if n.NodeID != self && (n.RaftAddr == j || strings.TrimPrefix(strings.TrimPrefix(n.APIAddr, "http://"), "https://") == j) {
				return true
			}
		}
	}
	return false
}

// rejoinFresh makes id a new joiner at the flags' Raft address: a new
// replica ID (Raft never re-adds a removed one), its Raft and SQLite state
// set aside. The identity is saved first with Reset set, so a crash before
// the state is gone finishes the reset at the next start instead of
// starting the new replica on old data.
func (n *Node) rejoinFresh(c Config, store *localStore, id identity) (identity, error) {
	id = identity{NodeID: id.NodeID, ShardID: id.ShardID, ReplicaID: randomReplicaID(), RaftAddr: c.RaftAdvAddr,
		Joining: true, Joiner: true, Reset: true}
	if err := store.saveIdentity(id); err != nil {
		return id, err
	}
	return id, n.resetRaftState(c, store, &id)
}

// resetRaftState removes the Raft log and the database, each directory
// renamed aside first (a crash leaves it whole or gone), and clears
// id.Reset. A peers.json found there is kept: a read replica it lists
// re-joins, and renames it only once the join is acknowledged (peersJoined),
// so a failed join is tried again at the next start.
func (n *Node) resetRaftState(c Config, store *localStore, id *identity) error {
	peers, perr := os.ReadFile(filepath.Join(c.nodeHostDir(), peersFile))
	for _, d := range []string{c.nodeHostDir(), c.RaftWALDir, c.smDir()} {
		old := filepath.Clean(d) + ".old"
		if err := os.RemoveAll(old); err != nil {
			return err
		}
		if err := os.Rename(d, old); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("set %s aside: %w", d, err)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := os.RemoveAll(old); err != nil {
			return err
		}
	}
	if perr == nil {
		if err := os.WriteFile(filepath.Join(c.nodeHostDir(), peersFile), peers, 0o644); err != nil {
			return err
		}
	}
	id.Reset = false
	if err := store.saveIdentity(*id); err != nil {
		return err
	}
	n.log.Info("old raft state and database removed", zap.Uint64("replica_id", id.ReplicaID))
	return nil
}

// peersJoined renames the peers.json a read replica re-joined by, once the
// join was acknowledged.
func (n *Node) peersJoined(c Config) error {
	path := filepath.Join(c.nodeHostDir(), peersFile)
	err := os.Rename(path, filepath.Join(c.nodeHostDir(), peersInfo))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("%w: rename %s: %w", ErrPeers, path, err)
	}
	return nil
}
