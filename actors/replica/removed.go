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

// A removed node must learn it (issue 14): it stops taking part and says
// so. Dragonboat tells it (NodeDeleted) only if it applies its own removal,
// which a removed follower rarely does: once the removal commits, the
// leader stops replicating to it, so it never learns the commit. It then
// sees no leader (a voter campaigns in vain) or stops hearing from it (a
// non-voter). Such a node asks its peers: a removal is final in Raft (a
// removed replica ID never comes back), and every member's committed
// membership lists it, so one peer saying so is enough.
const (
	// removalCheckInterval is how often a node cut off from its leader
	// asks its peers whether it was removed.
	removalCheckInterval = 2 * time.Second
	// removalCheckAfter is how long a node must have been without its
	// leader before it asks: longer than an election, so a leader change
	// does not make every node ask.
	removalCheckAfter = 2 * time.Second
)

// needsRemovalCheck: a node with members to ask that has had no leader, or
// no word from it, for removalCheckAfter.
func (r *Replica) needsRemovalCheck() bool {
	if r.cfg.CheckRemoved == nil {
		return false
	}
	st := r.life.State()
	if !st.NodeReady || st.IsLeader() || st.Phase == lifecycle.Removed || st.Phase == lifecycle.Stopping {
		return false
	}
	after := max(removalCheckAfter, 2*time.Duration(r.cfg.ElectionRTT)*r.cfg.RTT)
	return st.LeaderReplicaID == 0 || time.Since(st.LastLeaderContact) > after
}

// checkRemoved asks the peers this node last knew whether it was removed,
// within ctx (and probeTimeout); it reports whether one said so (the node
// then stops taking part: stopAsRemoved).
func (r *Replica) checkRemoved(ctx context.Context, nh *dragonboat.NodeHost) bool {
	peers := r.peerAddrs(nh)
	if len(peers) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	reason, err := r.cfg.CheckRemoved(ctx, peers, r.cfg.ReplicaID)
	if err != nil {
		r.log.Debug("asking peers about this node's membership failed", zap.Error(err))
		return false
	}
	if reason == "" {
		return false
	}
	r.stopAsRemoved(nh, reason)
	return true
}

// askRemoved asks the peers whether this node was removed every election
// timeout until one says so or ctx ends: removeSelf's wait for its own
// removal, which this node may never apply. The first ask comes an
// election timeout in: a removal that reaches this node applies well
// within it, and the peers' answers follow their committed membership.
func (r *Replica) askRemoved(ctx context.Context, nh *dragonboat.NodeHost) {
	if r.cfg.CheckRemoved == nil {
		return
	}
	every := time.Duration(r.cfg.ElectionRTT) * r.cfg.RTT
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.checkRemoved(ctx, nh) {
			return
		}
		t.Reset(every)
	}
}

// stopAsRemoved makes this node stop taking part once it knows it was removed: it
// records the phase (lifecycle: removed, with the reason), stops its
// replica so it no longer campaigns or asks the others anything, and
// tells bootstrap (OnRemoved; -raft-remove-shutdown). It runs once.
func (r *Replica) stopAsRemoved(nh *dragonboat.NodeHost, reason string) {
	r.leftOnce.Do(func() {
		defer close(r.gone)
		r.life.Notify(lifecycle.RemovedFromCluster{Reason: reason})
		r.log.Warn("this node was removed from the cluster; it no longer takes part", zap.String("reason", reason),
			zap.Uint64("replica_id", r.cfg.ReplicaID))
		// A replica that applied its own removal is being unloaded by
		// Dragonboat already (ErrShardNotFound then).
		if err := nh.StopShard(r.cfg.ShardID); err != nil && !errors.Is(err, dragonboat.ErrShardNotFound) {
			r.log.Warn("could not stop the removed replica", zap.Error(err))
		}
		if r.cfg.OnRemoved != nil {
			r.cfg.OnRemoved(reason)
		}
	})
}

// peerAddrs are the Raft addresses of the other members: from the last
// membership read through Raft, or, when there was none (a node restarted
// while cut off reads nothing, for want of a leader), from the membership
// its replica applied locally.
func (r *Replica) peerAddrs(nh *dragonboat.NodeHost) []string {
	var peers []string
	for _, m := range r.life.State().RaftMembers {
		if m.ReplicaID != r.cfg.ReplicaID {
			peers = append(peers, m.RaftAddr)
		}
	}
	if len(peers) > 0 {
		return peers
	}
	info := nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true})
	if info == nil {
		return nil
	}
	for _, si := range info.ShardInfoList {
		if si.ShardID != r.cfg.ShardID {
			continue
		}
		for id, addr := range si.Replicas {
			if id != r.cfg.ReplicaID {
				peers = append(peers, addr)
			}
		}
	}
	sort.Strings(peers)
	return peers
}
