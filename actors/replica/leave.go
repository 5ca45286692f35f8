package replica

import (
	"context"
	"time"

	"github.com/lni/dragonboat/v4"
	"go.uber.org/zap"
)

// leave runs at a graceful shutdown, before Raft stops (rqlited's
// -raft-shutdown-stepdown and -raft-cluster-remove-shutdown, API.md 5):
// a leader hands leadership to another voter first, so that writes pause
// for a heartbeat rather than an election timeout; a node told to then
// removes itself from the configuration (through the leader), so that the
// others go on as a smaller cluster. Both are bounded by LeaveTimeout; a
// step that fails is logged and the shutdown goes on.
func (r *Replica) leave(nh *dragonboat.NodeHost) {
	c := r.cfg
	if nh == nil || (!c.StepdownOnShutdown && !c.RemoveOnShutdown) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.LeaveTimeout)
	defer cancel()
	if c.StepdownOnShutdown {
		if leader, _, ok, err := nh.GetLeaderID(c.ShardID); err == nil && ok && leader == c.ReplicaID {
			t0 := time.Now()
			if err := r.transferLeader(ctx, nh, 0); err != nil {
				r.log.Warn("shutdown: could not hand leadership over; the others will elect a leader", zap.Error(err))
			} else {
				r.log.Info("shutdown: leadership handed over", zap.Duration("took", time.Since(t0)))
			}
		}
	}
	if c.RemoveOnShutdown && r.lastVoter(ctx, nh) {
		// Removing the only voter would leave a cluster that can never
		// elect a leader again: this node stays the cluster.
		r.log.Info("shutdown: not removing this node: it is the cluster's only voter")
	} else if c.RemoveOnShutdown {
		t0 := time.Now()
		if err := r.removeMember(ctx, nh, c.ReplicaID); err != nil {
			r.log.Warn("shutdown: could not remove this node from the cluster", zap.Error(err))
		} else {
			r.log.Info("shutdown: removed this node from the cluster", zap.Duration("took", time.Since(t0)))
		}
	}
}

// lastVoter reports whether this node is the only voter of the shard as
// far as a membership read can tell (false when it cannot).
func (r *Replica) lastVoter(ctx context.Context, nh *dragonboat.NodeHost) bool {
	m, err := r.readMembership(ctx, nh)
	if err != nil {
		return false
	}
	_, self := m.Nodes[r.cfg.ReplicaID]
	return self && len(m.Nodes) == 1
}
