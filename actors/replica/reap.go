package replica

import (
	"context"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"
)

// reapInterval is how often the leader looks for members to reap (rqlited's
// -raft-reap-node-timeout and -raft-reap-read-only-node-timeout).
const reapInterval = time.Second

// reachability records, per Raft address, since when this node has failed
// to reach it: Dragonboat's transport reports every failed connection and
// the first success after failures (ConnectionFailed, ConnectionEstablished).
// The listener writes it from Dragonboat's goroutines, the reap job reads
// it, so it is a small mutex-guarded handle: a callback holds the lock for
// a map write, never waits on anything else, and no event is dropped (a
// lost "established" could reap a live member).
type reachability struct {
	mu   sync.Mutex
	down map[string]time.Time
}

func newReachability() *reachability { return &reachability{down: map[string]time.Time{}} }

// failed records a failed connection to addr (the first failure counts).
func (r *reachability) failed(addr string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.down[addr]; !ok {
		r.down[addr] = now
	}
}

// reached records a connection made to addr.
func (r *reachability) reached(addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.down, addr)
}

// snapshot copies the failures.
func (r *reachability) snapshot() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]time.Time, len(r.down))
	for a, t := range r.down {
		out[a] = t
	}
	return out
}

// reapMember is a member as the reap decision sees it.
type reapMember struct {
	ReplicaID uint64
	Addr      string
	Voter     bool
}

// reapPolicy is what decides reaping.
type reapPolicy struct {
	Self uint64
	// LeaderSince is when this node became leader: failures seen before
	// count from then only, since a follower does not talk to the other
	// followers and would not have seen them come back.
	LeaderSince time.Time
	// VoterTimeout and NonVoterTimeout: 0 never reaps that kind.
	VoterTimeout, NonVoterTimeout time.Duration
}

// reapable returns the members to remove: those other than this node that
// this node, as leader, has failed to reach for longer than their kind's
// timeout. Sorted by replica ID.
func reapable(p reapPolicy, members []reapMember, down map[string]time.Time, now time.Time) []uint64 {
	var out []uint64
	for _, m := range members {
		if m.ReplicaID == p.Self {
			continue
		}
		timeout := p.NonVoterTimeout
		if m.Voter {
			timeout = p.VoterTimeout
		}
		since, failing := down[m.Addr]
		if timeout <= 0 || !failing {
			continue
		}
		if since.Before(p.LeaderSince) {
			since = p.LeaderSince
		}
		if now.Sub(since) > timeout {
			out = append(out, m.ReplicaID)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// reapEnabled reports whether any reaping is configured.
func (r *Replica) reapEnabled() bool { return r.cfg.ReapTimeout > 0 || r.cfg.ReapNonVotingTimeout > 0 }

// Reaps counts the members this node removed as unreachable (rqlited's
// reap counter, for /debug/vars).
func (r *Replica) Reaps() uint64 { return r.counters.reaps.Load() }

// reapJob runs on every reapInterval tick (one at a time): on the leader,
// it removes the members unreachable for longer than their timeout. since
// is when this node was first seen leader (zero: it is not), kept by the
// reap job across ticks.
func (r *Replica) reapJob(run *running, since *time.Time) {
	nh := run.nh
	leader, _, ok, err := nh.GetLeaderID(r.cfg.ShardID)
	if err != nil || !ok || leader != r.cfg.ReplicaID {
		*since = time.Time{}
		return
	}
	now := time.Now()
	if since.IsZero() {
		*since = now
		return
	}
	ctx, cancel := context.WithTimeout(r.jobsCtx, probeTimeout)
	defer cancel()
	m, err := nh.SyncGetShardMembership(ctx, r.cfg.ShardID)
	if err != nil {
		return
	}
	var members []reapMember
	for id, a := range m.Nodes {
		members = append(members, reapMember{ReplicaID: id, Addr: a, Voter: true})
	}
	for id, a := range m.NonVotings {
		members = append(members, reapMember{ReplicaID: id, Addr: a})
	}
	p := reapPolicy{Self: r.cfg.ReplicaID, LeaderSince: *since, VoterTimeout: r.cfg.ReapTimeout, NonVoterTimeout: r.cfg.ReapNonVotingTimeout}
	for _, id := range reapable(p, members, r.lis.reach.snapshot(), now) {
		// Through the membership actor: after any change already queued.
		rctx, rcancel := r.withDeadline(r.jobsCtx)
		err := run.members.call(rctx, MemberReq{Op: OpRemove, ReplicaID: id})
		rcancel()
		if err != nil {
			r.log.Warn("reaping an unreachable member failed; will retry", zap.Uint64("replica_id", id), zap.Error(err))
			return
		}
		r.counters.reaps.Add(1)
		r.log.Info("reaped an unreachable member", zap.Uint64("replica_id", id),
			zap.Duration("voter_timeout", p.VoterTimeout), zap.Duration("non_voter_timeout", p.NonVoterTimeout))
	}
}
