package replica

import (
	"fmt"

	"github.com/lni/dragonboat/v4/tools"
)

// ImportSnapshot rewrites this node's Raft state, offline, so that it
// restarts from the exported snapshot at srcDir as a member of a shard
// whose only members are members (replica ID -> Raft address). It is
// Dragonboat's procedure for a shard that lost its quorum for good: every
// surviving node imports the same snapshot with the same members, then
// starts normally. Writes committed after the snapshot are lost.
func ImportSnapshot(cfg Config, srcDir string, members map[uint64]string) error {
	cfg = cfg.WithDefaults()
	if cfg.ReplicaID == 0 || len(members) == 0 {
		return fmt.Errorf("%w: import needs this node's replica ID and the members", ErrInvalidConfig)
	}
	if _, ok := members[cfg.ReplicaID]; !ok {
		return fmt.Errorf("%w: this node (replica %d) must be one of the members", ErrInvalidConfig, cfg.ReplicaID)
	}
	if err := tools.ImportSnapshot(nodeHostConfig(cfg), srcDir, members, cfg.ReplicaID); err != nil {
		return fmt.Errorf("import snapshot %s: %w", srcDir, err)
	}
	return nil
}
