package replica

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/lni/dragonboat/v4"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/lifecycle"
)

// receivingSuffix ends the name of the directory Dragonboat's transport
// writes an incoming snapshot into (internal/server/snapshotenv.go); it is
// renamed when the stream is complete.
const receivingSuffix = ".receiving"

// reportProgress tells lifecycle how far the leader is (the target of the
// log replay) and how much of an incoming snapshot is on disk. Neither is
// something Dragonboat reports: the leader's index comes from the leader,
// the received bytes from the transport's receive directory.
func (r *Replica) reportProgress(nh *dragonboat.NodeHost) {
	r.life.Notify(lifecycle.SnapshotReceiving{Bytes: receivingBytes(r.cfg.NodeHostDir)})
	if r.cfg.LeaderProgress == nil {
		return
	}
	leader, _, ok, err := nh.GetLeaderID(r.cfg.ShardID)
	if err != nil || !ok || leader == r.cfg.ReplicaID {
		return
	}
	addr := ""
	if info := nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true}); info != nil {
		for _, s := range info.ShardInfoList {
			if s.ShardID == r.cfg.ShardID {
				addr = s.Replicas[leader]
			}
		}
	}
	ctx, cancel := context.WithTimeout(r.jobsCtx, probeTimeout)
	defer cancel()
	lp, err := r.cfg.LeaderProgress(ctx, leader, addr)
	if err != nil {
		r.log.Debug("leader progress unknown", zap.Uint64("leader", leader), zap.Error(err))
		return
	}
	r.life.Notify(lp)
}

// receivingBytes sums the files under dir's snapshot receive directories.
func receivingBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // files come and go while a transfer runs
		}
		if d.IsDir() || !strings.Contains(path, receivingSuffix+string(filepath.Separator)) {
			return nil
		}
		if info, err := d.Info(); err == nil {
			n += info.Size()
		}
		return nil
	})
	return n
}
