package bootstrap

import (
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/sm"
)

// ErrRecover refuses a recovery that cannot be done as asked.
var ErrRecover = errors.New("recovery refused")

// Recover rewrites a stopped node's Raft state from an exported snapshot
// (POST /snapshot?export on a survivor) so that the cluster restarts with
// voters (node IDs, this node among them) as its only members: the
// procedure for a cluster whose majority is gone for good
// (docs/cluster.md). Run it on every surviving node with the same snapshot
// and the same voters, then start them normally.
func Recover(cfg Config, snapshotDir string, voters []string) error {
	cfg = cfg.WithDefaults()
	if cfg.DataDir == "" || snapshotDir == "" || len(voters) == 0 {
		return fmt.Errorf("%w: need the data directory, the snapshot directory and the voters", ErrRecover)
	}
	lvl, _ := raftLogLevel(cfg.RaftLogLevel)
	dbLogs.install(cfg.Logger, lvl)
	store, err := openLocalStore(cfg.localStoreDir(), cfg.Logger)
	if err != nil {
		return err
	}
	defer store.Close()
	id, found, err := store.loadIdentity()
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: %s holds no node", ErrRecover, cfg.DataDir)
	}
	nodes, err := sm.ReadNodes(cfg.smDir())
	if err != nil {
		return fmt.Errorf("%w: read the node table: %w", ErrRecover, err)
	}
	members := map[uint64]string{}
	for _, v := range voters {
		if v == id.NodeID {
			members[id.ReplicaID] = id.RaftAddr
			continue
		}
		var hit *sm.NodeInfo
		for i := range nodes {
			if nodes[i].NodeID == v {
				hit = &nodes[i]
			}
		}
		if hit == nil {
			return fmt.Errorf("%w: node %q is not in this node's node table", ErrRecover, v)
		}
		members[hit.ReplicaID] = hit.RaftAddr
	}
	if _, ok := members[id.ReplicaID]; !ok {
		return fmt.Errorf("%w: this node (%s) must be one of the voters %s", ErrRecover, id.NodeID, strings.Join(voters, ","))
	}
	if _, err := importMembers(cfg, store, id, snapshotDir, members); err != nil {
		return err
	}
	cfg.Logger.Info("raft state rewritten from the snapshot", zap.String("snapshot", snapshotDir), zap.Any("members", members))
	return nil
}
