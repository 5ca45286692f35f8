package replica

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
	pb "github.com/lni/dragonboat/v4/raftpb"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/sm"
)

// Sampling of the monitoring numbers (API.md 2.1). Dragonboat reports no
// event for most of them (the commit index, the log's last entry), so the
// replica samples them and publishes the sample through lifecycle, which
// the gateway reads: /status never calls into Raft.
const (
	// statsInterval is how often the numbers are sampled: fresh enough
	// for a dashboard, and a sample costs a few lock acquisitions, one
	// LogDB read and one step of the Raft worker.
	statsInterval = 500 * time.Millisecond
	// statsTimeout bounds one sample's waits (the Raft worker's answer, a
	// free reader connection).
	statsTimeout = time.Second
)

// errStatsBusy: a Raft log query of an earlier sample is still pending.
var errStatsBusy = errors.New("raft log query pending")

// counters are events the replica (or its listener) sees, counted for
// /debug/vars. Atomics: the listener's callbacks and request goroutines
// increment them without waiting.
type counters struct {
	// snapshotEvents counts Dragonboat's SnapshotCreated events; it also
	// fires for a request that found nothing new, so a snapshot is
	// counted only when the sampled snapshot index moved too.
	snapshotEvents                         atomic.Uint64
	userSnapshots                          atomic.Uint64
	joins, ignoredJoins, removedBeforeJoin atomic.Uint64
	removes                                atomic.Uint64
	leaderChanges                          atomic.Uint64
	// reaps counts members removed as unreachable (reap.go); walSnapshots
	// counts snapshots the WAL-size check took (snapjob.go).
	reaps, walSnapshots atomic.Uint64
}

// sampler is the state one sample hands to the next: samples run one at a
// time (the Run loop starts the next only after the last has finished).
type sampler struct {
	started                   bool
	lastEvents, lastSnapIndex uint64
	// lastInstall is the last install lifecycle had seen (restores
	// counted, index of the snapshot being installed).
	lastInstall [2]uint64
	snapshots   uint64
}

// countSnapshot decides whether the snapshot index moving to idx was a
// snapshot taken here: Dragonboat reported one (events moved). An install
// moves the index too, without the event, and lifecycle shows it (install);
// a request that found nothing new fires the event without moving the
// index. Dragonboat moves the index before it reports the event, so a
// move with neither the event nor an install yet is decided by a later
// sample.
func (s *sampler) countSnapshot(idx, events uint64, install [2]uint64) {
	if !s.started {
		// What is on disk at start was taken before: not counted.
		s.started, s.lastSnapIndex, s.lastEvents, s.lastInstall = true, idx, events, install
		return
	}
	moved, reported, installed := idx > s.lastSnapIndex, events > s.lastEvents, install != s.lastInstall
	switch {
	case moved && reported:
		s.snapshots++
	case moved && installed:
	case moved:
		return // decided by a later sample
	}
	s.lastSnapIndex = max(s.lastSnapIndex, idx)
	s.lastEvents, s.lastInstall = events, install
}

// sampleStats reads the Raft and SQLite numbers and publishes them. A
// number that cannot be read now (the replica not initialised yet, a
// query still pending) keeps its last published value.
func (r *Replica) sampleStats(nh *dragonboat.NodeHost) {
	life := r.life.State()
	st := life.Replica
	st.SampledAt = time.Now()
	c := &r.counters
	st.UserSnapshots = c.userSnapshots.Load()
	st.Joins, st.IgnoredJoins, st.RemovedBeforeJoins = c.joins.Load(), c.ignoredJoins.Load(), c.removedBeforeJoin.Load()
	st.Removes, st.LeaderChanges = c.removes.Load(), c.leaderChanges.Load()
	st.Reaps, st.WALSnapshots = c.reaps.Load(), c.walSnapshots.Load()
	events := c.snapshotEvents.Load()
	if _, term, _, err := nh.GetLeaderID(r.cfg.ShardID); err == nil {
		st.Term = term
	}
	if info := nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true}); info != nil {
		for _, s := range info.ShardInfoList {
			if s.ShardID == r.cfg.ShardID && !s.Pending {
				st.ConfigChangeIndex = s.ConfigChangeIndex
			}
		}
	}
	if lr, err := nh.GetLogReader(r.cfg.ShardID); err == nil {
		_, last := lr.GetRange()
		st.LastLogIndex = last
		if t, err := lr.Term(last); err == nil {
			st.LastLogTerm = t
		}
		st.LastSnapshotIndex, st.LastSnapshotTerm = snapshotMeta(lr)
	}
	ctx, cancel := context.WithTimeout(r.jobsCtx, statsTimeout)
	defer cancel()
	if commit, err := commitIndex(ctx, nh, r.cfg.ShardID); err == nil {
		st.CommitIndex = commit
	} else {
		r.log.Debug("commit index unknown", zap.Error(err))
	}
	if out, err := nh.StaleRead(r.cfg.ShardID, &sm.DBStats{Ctx: ctx}); err == nil {
		if db, ok := out.(*sm.DBStatsResult); ok {
			st.SQLitePath, st.SQLiteSize = db.Path, db.Size
		}
	}
	s := &r.sampler
	s.countSnapshot(st.LastSnapshotIndex, events, [2]uint64{life.Restores, life.Progress.SnapshotIndex})
	st.Snapshots = s.snapshots
	r.life.Notify(lifecycle.ReplicaSampled{Stats: st})
}

// snapshotMeta returns the index and term of the latest snapshot the log
// reader holds. Its Snapshot method takes a reference that must be given
// back, as Dragonboat's transport does after streaming one: if the
// snapshot was replaced meanwhile, this last reference out removes its
// files (the newer one is in the LogDB by then, which that removal
// checks). A failed removal leaves files the next one removes.
func snapshotMeta(lr dragonboat.ReadonlyLogReader) (index, term uint64) {
	ss := lr.Snapshot()
	if pb.IsEmptySnapshot(ss) {
		return 0, 0
	}
	index, term = ss.Index, ss.Term
	_ = ss.Unref()
	return index, term
}

// commitIndex asks the Raft worker for the commit index: a log query for
// a range past the end is answered out of range, with the committed range
// (its LastIndex is the commit index plus one), and reads no entry.
func commitIndex(ctx context.Context, nh *dragonboat.NodeHost, shardID uint64) (uint64, error) {
	rs, err := nh.QueryRaftLog(shardID, math.MaxUint64-1, math.MaxUint64, 0)
	if errors.Is(err, dragonboat.ErrSystemBusy) {
		return 0, errStatsBusy
	}
	if err != nil {
		return 0, err
	}
	select {
	case res := <-rs.ResultC():
		if !res.RequestOutOfRange() && !res.Completed() {
			return 0, errStatsBusy
		}
		_, lr := res.RaftLogs()
		if lr.LastIndex == 0 {
			return 0, nil
		}
		return lr.LastIndex - 1, nil
	case <-ctx.Done():
		// A query left pending when the NodeHost closes the shard may
		// be answered after the close cleared it, which panics in
		// Dragonboat ("no pending raft log query"; seen in CI at a
		// SIGTERM): wait for the answer, which a step worker's pass
		// gives, a bounded while.
		t := time.NewTimer(logQueryDrain)
		defer t.Stop()
		select {
		case <-rs.ResultC():
		case <-t.C:
		}
		return 0, ctx.Err()
	}
}

// logQueryDrain bounds commitIndex's wait for an abandoned query's answer.
const logQueryDrain = time.Second
