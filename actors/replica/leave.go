package replica

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/lni/dragonboat/v4"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/lifecycle"
)

// leave runs at a graceful shutdown, before Raft stops (rqlited's
// -raft-shutdown-stepdown and -raft-cluster-remove-shutdown, API.md 5):
// a leader hands leadership to another voter first, so that writes pause
// for a heartbeat rather than an election timeout; a node told to then
// removes itself from the configuration (through the leader), so that the
// others go on as a smaller cluster. Both are bounded by LeaveTimeout; a
// step that fails is logged and the shutdown goes on.
func (r *Replica) leave(run *running) {
	c := r.cfg
	nh := run.nh
	if !c.StepdownOnShutdown && !c.RemoveOnShutdown {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.LeaveTimeout)
	defer cancel()
	if c.StepdownOnShutdown {
		if leader, _, ok, err := nh.GetLeaderID(c.ShardID); err == nil && ok && leader == c.ReplicaID {
			t0 := time.Now()
			if err := r.handOver(ctx, nh); err != nil {
				r.log.Warn("shutdown: could not hand leadership over; the others will elect a leader", zap.Error(err))
			} else {
				r.log.Info("shutdown: leadership handed over", zap.Duration("took", time.Since(t0)))
			}
		}
	}
	if c.RemoveOnShutdown && lastVoter(c.ReplicaID, r.life.State().RaftMembers) {
		// Removing the only voter would leave a cluster that can never
		// elect a leader again: this node stays the cluster.
		r.log.Info("shutdown: not removing this node: it is the cluster's only voter")
	} else if c.RemoveOnShutdown {
		t0 := time.Now()
		if err := run.members.call(ctx, MemberReq{Op: OpRemove, ReplicaID: c.ReplicaID}); err != nil {
			r.log.Warn("shutdown: could not remove this node from the cluster", zap.Error(err))
		} else {
			r.log.Info("shutdown: removed this node from the cluster", zap.Duration("took", time.Since(t0)))
		}
	}
}

// lastVoter reports whether this node is the only voter of the shard in
// the membership it last read (local: no quorum needed).
func lastVoter(self uint64, members []lifecycle.Member) bool {
	voters, isVoter := 0, false
	for _, m := range members {
		if m.Voter {
			voters++
			isVoter = isVoter || m.ReplicaID == self
		}
	}
	return isVoter && voters == 1
}

// errNoHandover: no other voter is reachable to take leadership.
var errNoHandover = errors.New("no reachable voter to hand leadership to")

// errHandoverTimeout: no other voter took leadership within the attempts.
var errHandoverTimeout = errors.New("no voter took leadership in time")

// handoverAttempts bounds the leadership handover of a shutdown: each
// attempt waits an election timeout at most.
const handoverAttempts = 2

// handoverTargets returns the voters other than self that this node has
// not failed to reach (down: reachability), by replica ID. It reads only
// local knowledge: at a shutdown the quorum may be going away too (a whole
// cluster stopped at once), and a membership read through Raft would then
// wait out its deadline.
func handoverTargets(self uint64, members []lifecycle.Member, down map[string]time.Time) []uint64 {
	var out []uint64
	for _, m := range members {
		if _, failing := down[m.RaftAddr]; m.Voter && m.ReplicaID != self && !failing {
			out = append(out, m.ReplicaID)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// handOver asks Raft to move leadership to a reachable voter and waits,
// an election timeout per attempt, until another leader is known (the
// listener's leader changes wake it). Targets are chosen afresh for each
// attempt, from the transport's reachability (the others may be stopping
// too).
func (r *Replica) handOver(ctx context.Context, nh *dragonboat.NodeHost) error {
	for i := range handoverAttempts {
		ts := handoverTargets(r.cfg.ReplicaID, r.life.State().RaftMembers, r.lis.reach.snapshot())
		if len(ts) == 0 {
			return errNoHandover
		}
		if err := nh.RequestLeaderTransfer(r.cfg.ShardID, ts[i%len(ts)]); err != nil {
			return r.mapErr(nh, err)
		}
		expired := time.NewTimer(time.Duration(r.cfg.ElectionRTT) * r.cfg.RTT)
		moved := r.lis.leaders.waitMoved(ctx, r.cfg.ReplicaID, expired.C)
		expired.Stop()
		if moved {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return errHandoverTimeout
}
