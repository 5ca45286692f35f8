package replica

import (
	"errors"

	"github.com/lni/dragonboat/v4"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/sm"
)

// snapJobEnabled: rqlited's -raft-snap-int and -raft-snap-wal-size, 0
// turning the check off. The entry-count trigger (-raft-snap) is
// Dragonboat's own SnapshotEntries.
func (r *Replica) snapJobEnabled() bool {
	return r.cfg.SnapshotInterval > 0 && r.cfg.SnapshotWALSize > 0
}

// WALSnapshots counts the snapshots the WAL-size check took.
func (r *Replica) WALSnapshots() uint64 { return r.counters.walSnapshots.Load() }

// snapJob runs every SnapshotInterval (one at a time). When SQLite's WAL
// has grown past SnapshotWALSize it takes a snapshot, as rqlited does: a
// local snapshot here is a Sync barrier plus metadata (DRAGONBOAT.md 0.1)
// that also compacts the Raft log, and it leaves the WAL as it is, so the
// WAL is then checkpointed into the database file and truncated.
func (r *Replica) snapJob(nh *dragonboat.NodeHost) {
	ctx, cancel := r.withDeadline(r.jobsCtx)
	defer cancel()
	// The size first: a cheap stat, and nothing else happens below it.
	out, err := nh.StaleRead(r.cfg.ShardID, &sm.TruncateWAL{})
	if err != nil {
		return
	}
	if res, ok := out.(*sm.TruncateWALResult); !ok || res.Before < r.cfg.SnapshotWALSize {
		return
	}
	idx, err := nh.SyncRequestSnapshot(ctx, r.cfg.ShardID, dragonboat.SnapshotOption{})
	switch {
	case err == nil:
		r.counters.walSnapshots.Add(1)
	case errors.Is(err, dragonboat.ErrRejected):
		// Nothing new since the last snapshot: the WAL still needs folding.
	default:
		r.log.Debug("WAL-size snapshot failed; will retry", zap.Error(err))
		return
	}
	out, err = nh.StaleRead(r.cfg.ShardID, &sm.TruncateWAL{MinSize: r.cfg.SnapshotWALSize})
	if err != nil {
		r.log.Debug("WAL checkpoint failed; will retry", zap.Error(err))
		return
	}
	res, _ := out.(*sm.TruncateWALResult)
	if res == nil {
		return
	}
	r.log.Info("WAL past -raft-snap-wal-size: snapshot taken, WAL checkpointed", zap.Uint64("index", idx),
		zap.Int64("wal_before", res.Before), zap.Int64("wal_after", res.After), zap.Bool("busy", res.Busy))
}
