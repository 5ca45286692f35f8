package replica

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/lni/dragonboat/v4"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors"
	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/sm/cmdpb"
)

// MemberOp is a change to the shard's membership.
type MemberOp int

// Membership changes.
const (
	// OpAddNonVoting adds a replica that receives the log but does not vote
	// (a joining node starts so; it promotes itself once caught up).
	OpAddNonVoting MemberOp = iota + 1
	// OpRemove removes a replica and forgets its metadata.
	OpRemove
	// OpTransferLeader asks the leader to hand leadership to a replica (0:
	// any other voter).
	OpTransferLeader
)

// MemberReq asks for a membership change.
type MemberReq struct {
	Ctx       context.Context
	Op        MemberOp
	ReplicaID uint64
	RaftAddr  string
	// NodeID names the joining node (OpAddNonVoting).
	NodeID string
}

type memberEnv = actors.Envelope[MemberReq, struct{}]

// memberInboxSize: changes run one at a time, each within its caller's
// deadline, so a few queued are plenty; a caller finding it full waits.
const memberInboxSize = 16

// memberChanges is the membership actor: it runs changes one at a time, in
// the order they arrive. Dragonboat orders config changes (one made
// against a stale membership is refused), so changes run side by side
// would only make each other retry; and the steps of one (a re-joining
// node's old replica removed, then its new one added) must not interleave
// with another's.
type memberChanges struct {
	inbox chan memberEnv
	serve func(context.Context, MemberReq) error
	done  *actors.Done
}

func newMemberChanges(serve func(context.Context, MemberReq) error) *memberChanges {
	return &memberChanges{inbox: make(chan memberEnv, memberInboxSize), serve: serve, done: actors.NewDone()}
}

// Run serves changes until ctx ends; ctx's end also ends the change under
// way.
func (m *memberChanges) Run(ctx context.Context) error {
	defer m.done.Close()
	for {
		select {
		case env := <-m.inbox:
			env.Answer(struct{}{}, m.serve(ctx, env.Req))
		case <-ctx.Done():
			return nil
		}
	}
}

// call asks for a change and waits for it.
func (m *memberChanges) call(ctx context.Context, req MemberReq) error {
	req.Ctx = ctx
	_, err := actors.Call(ctx, m.done.C(), m.inbox, req)
	return err
}

// AddNonVoting adds replica id at raftAddr, for node nodeID, as a
// non-voting member. Adding a member that is already there with the same
// address succeeds (joins are retried); a node that comes back under a new
// replica ID replaces its old replica, found by node ID or address (an
// address held by another node is refused).
func (r *Replica) AddNonVoting(ctx context.Context, id uint64, raftAddr, nodeID string) error {
	return r.changeMembers(ctx, MemberReq{Op: OpAddNonVoting, ReplicaID: id, RaftAddr: raftAddr, NodeID: nodeID})
}

// RemoveMember removes replica id from the shard and its metadata.
func (r *Replica) RemoveMember(ctx context.Context, id uint64) error {
	return r.changeMembers(ctx, MemberReq{Op: OpRemove, ReplicaID: id})
}

// TransferLeader moves leadership to replica id (0: any other voter) and
// waits until a leader other than the old one is known.
func (r *Replica) TransferLeader(ctx context.Context, id uint64) error {
	return r.changeMembers(ctx, MemberReq{Op: OpTransferLeader, ReplicaID: id})
}

// changeMembers hands req to the membership actor, under the lease.
func (r *Replica) changeMembers(ctx context.Context, req MemberReq) error {
	run, err := r.hot.enter()
	if err != nil {
		return err
	}
	defer r.hot.leave()
	return run.members.call(ctx, req)
}

// serveMember runs one change for the membership actor; runCtx is the
// actor's.
func (r *Replica) serveMember(runCtx context.Context, nh *dragonboat.NodeHost, req MemberReq) error {
	ctx, cancel := r.withDeadline(req.Ctx)
	defer cancel()
	stop := context.AfterFunc(runCtx, cancel)
	defer stop()
	switch req.Op {
	case OpAddNonVoting:
		return r.addNonVoting(ctx, nh, req.ReplicaID, req.RaftAddr, req.NodeID)
	case OpRemove:
		return r.removeMember(ctx, nh, req.ReplicaID)
	case OpTransferLeader:
		return r.transferLeader(ctx, nh, req.ReplicaID)
	}
	return fmt.Errorf("%w: membership op %d", ErrInvalidConfig, req.Op)
}

// attemptTimeout bounds one attempt of a membership read or change inside
// a request: Dragonboat drops a request it cannot place (a leader change
// under way) without answering, and one attempt with the request's whole
// deadline would then wait it all out (seen: a /remove that took 30 s).
const attemptTimeout = 3 * time.Second

// retriable reports whether a Dragonboat request may be tried again.
func retriable(err error) bool {
	return errors.Is(err, dragonboat.ErrSystemBusy) || errors.Is(err, dragonboat.ErrShardNotReady) ||
		errors.Is(err, dragonboat.ErrTimeout) || errors.Is(err, dragonboat.ErrAborted) ||
		errors.Is(err, dragonboat.ErrRejected) || errors.Is(err, context.DeadlineExceeded)
}

// retry runs f, each attempt within attemptTimeout, until it succeeds,
// fails for good, or ctx ends.
func (r *Replica) retry(ctx context.Context, nh *dragonboat.NodeHost, f func(ctx context.Context) error) error {
	backoff := 20 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := f(actx)
		cancel()
		if err == nil {
			return nil
		}
		if !retriable(err) {
			return r.mapErr(nh, err)
		}
		select {
		case <-ctx.Done():
			return r.mapErr(nh, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, retryBackoffMax)
	}
}

// readMembership reads the membership through Raft, retrying attempts.
func (r *Replica) readMembership(ctx context.Context, nh *dragonboat.NodeHost) (*dragonboat.Membership, error) {
	var m *dragonboat.Membership
	err := r.retry(ctx, nh, func(actx context.Context) error {
		var err error
		m, err = nh.SyncGetShardMembership(actx, r.cfg.ShardID)
		return err
	})
	return m, err
}

// retryConfigChange runs f against a fresh membership read until it
// succeeds, fails for good, or ctx ends. Config changes are ordered
// (OrderedConfigChange): one made against a stale membership is rejected,
// and so is one while another is pending or no leader is known; all of
// these pass, so they are retried against a fresh read. f must succeed at
// once when the membership already shows its change (an earlier attempt
// that timed out may have applied).
func (r *Replica) retryConfigChange(ctx context.Context, nh *dragonboat.NodeHost, f func(ctx context.Context, m *dragonboat.Membership) error) error {
	return r.retry(ctx, nh, func(actx context.Context) error {
		m, err := nh.SyncGetShardMembership(actx, r.cfg.ShardID)
		if err != nil {
			return err
		}
		return f(actx, m)
	})
}

// deleteReplica is a retryConfigChange step removing replica id.
func (r *Replica) deleteReplica(nh *dragonboat.NodeHost, id uint64) func(context.Context, *dragonboat.Membership) error {
	return func(ctx context.Context, m *dragonboat.Membership) error {
		_, voter := m.Nodes[id]
		_, nonVoting := m.NonVotings[id]
		if !voter && !nonVoting {
			return nil
		}
		return nh.SyncRequestDeleteReplica(ctx, r.cfg.ShardID, id, m.ConfigChangeID)
	}
}

// removeSelf removes this node's own replica. As the change applies,
// Dragonboat unloads the shard here and may drop the request unanswered
// (seen: the caller waited out its whole deadline), so the request also
// ends, successfully, as soon as this node is known removed: it applied
// its own removal (the listener closes deleted) or learned it otherwise
// (stopAsRemoved closes gone).
//
// This node often never applies its own removal: the leader stops
// replicating to it once the change commits there, and the commit may
// not have reached it (removed.go). At a shutdown (leave) the periodic
// job that would ask the peers has stopped already, so the removal asks
// them itself (askRemoved) while it waits.
func (r *Replica) removeSelf(ctx context.Context, nh *dragonboat.NodeHost) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- r.retryConfigChange(cctx, nh, r.deleteReplica(nh, r.cfg.ReplicaID))
	}()
	asked := make(chan struct{})
	go func() {
		defer close(asked)
		r.askRemoved(cctx, nh)
	}()
	defer func() {
		cancel()
		<-asked
	}()
	select {
	case err := <-done:
		if errors.Is(err, ErrStopped) {
			return nil // the shard closed as the change applied
		}
		return err
	case <-r.lis.deleted:
	case <-r.gone:
	}
	cancel()
	<-done
	return nil
}

// addNonVoting carries out the join plan (joinplan.go) of replica id.
func (r *Replica) addNonVoting(ctx context.Context, nh *dragonboat.NodeHost, id uint64, addr, nodeID string) error {
	ignored := func() error {
		// Counted as rqlite counts ignored joins.
		r.counters.ignoredJoins.Add(1)
		r.log.Info("join ignored: already a member", zap.Uint64("replica_id", id), zap.String("raft_addr", addr), zap.String("node_id", nodeID))
		return nil
	}
	req := joinRequest{ReplicaID: id, RaftAddr: addr, NodeID: nodeID}
	if err := req.validate(); err != nil {
		return err
	}
	if r.knownMember(id, addr) {
		// A member restarted with -join still on its command line: a
		// no-op, answered from the last membership read, so that it needs
		// no quorum (a 2-node cluster whose other node restarts has none).
		return ignored()
	}
	if r.life.State().Phase == lifecycle.Degraded {
		// Any other join needs a quorum to read the membership and
		// change it: refuse at once rather than at the request's
		// deadline.
		return ErrNoLeader
	}
	m, err := r.readMembership(ctx, nh)
	if err != nil {
		return err
	}
	nodeOf := map[uint64]string{}
	for _, n := range r.life.State().NodeTable {
		nodeOf[n.ReplicaID] = n.NodeID
	}
	plan, err := planJoin(membershipOf(m), nodeOf, req)
	if err != nil {
		return err
	}
	if plan.AlreadyMember {
		return ignored()
	}
	for _, c := range plan.Changes {
		switch c.Kind {
		case changeRemove:
			r.log.Info("removing the old replica of a re-joining node", zap.Uint64("old", c.ReplicaID), zap.String("node_id", nodeID), zap.String("addr", addr))
			if err := r.removeMember(ctx, nh, c.ReplicaID); err != nil {
				return err
			}
			r.counters.removedBeforeJoin.Add(1)
		case changeAddNonVoting:
			err := r.retryConfigChange(ctx, nh, func(actx context.Context, m *dragonboat.Membership) error {
				if m.NonVotings[c.ReplicaID] == c.RaftAddr || m.Nodes[c.ReplicaID] == c.RaftAddr {
					return nil // an earlier attempt that timed out applied
				}
				return nh.SyncRequestAddNonVoting(actx, r.cfg.ShardID, c.ReplicaID, c.RaftAddr, m.ConfigChangeID)
			})
			if err != nil {
				return err
			}
			r.counters.joins.Add(1)
			r.log.Info("non-voting member added", zap.Uint64("replica_id", id), zap.String("raft_addr", addr), zap.String("node_id", nodeID))
		}
	}
	return nil
}

// knownMember reports whether the last membership read lists replica id
// at addr (and not as removed).
func (r *Replica) knownMember(id uint64, addr string) bool {
	st := r.life.State()
	for _, rid := range st.RemovedReplicas {
		if rid == id {
			return false
		}
	}
	for _, m := range st.RaftMembers {
		if m.ReplicaID == id && m.RaftAddr == addr {
			return true
		}
	}
	return false
}

func (r *Replica) removeMember(ctx context.Context, nh *dragonboat.NodeHost, id uint64) error {
	m, err := r.readMembership(ctx, nh)
	if err != nil {
		return err
	}
	forget := func() error {
		// Idempotent, so attempts may repeat it.
		return r.retry(ctx, nh, func(actx context.Context) error {
			_, err := r.proposeCommand(actx, nh, &cmdpb.Command{Type: cmdpb.Command_TYPE_NODE,
				Node: &cmdpb.NodeMeta{ReplicaId: id, Remove: true}})
			return err
		})
	}
	self := id == r.cfg.ReplicaID
	// This node can propose nothing once its own replica is removed, so it
	// forgets its row first; another member's row goes after, or that
	// member would register itself again before its removal applied.
	if self {
		if err := forget(); err != nil {
			return err
		}
	}
	_, voter := m.Nodes[id]
	_, nonVoting := m.NonVotings[id]
	if voter || nonVoting {
		if self {
			err = r.removeSelf(ctx, nh)
		} else {
			err = r.retryConfigChange(ctx, nh, r.deleteReplica(nh, id))
		}
		if err != nil {
			return err
		}
		r.counters.removes.Add(1)
		r.log.Info("member removed", zap.Uint64("replica_id", id))
	}
	if self {
		return nil
	}
	return forget()
}

func (r *Replica) transferLeader(ctx context.Context, nh *dragonboat.NodeHost, target uint64) error {
	old, _, ok, err := nh.GetLeaderID(r.cfg.ShardID)
	if err != nil || !ok {
		return fmt.Errorf("%w: no leader to step down", ErrNoLeader)
	}
	if target == old {
		return nil
	}
	m, err := r.readMembership(ctx, nh)
	if err != nil {
		return err
	}
	var targets []uint64
	if target != 0 {
		if _, voter := m.Nodes[target]; !voter {
			return fmt.Errorf("%w: replica %d is not a voter", ErrBadMember, target)
		}
		targets = []uint64{target}
	} else {
		for id := range m.Nodes {
			if id != old {
				targets = append(targets, id)
			}
		}
		sort.Slice(targets, func(i, j int) bool { return targets[i] < targets[j] })
	}
	if len(targets) == 0 {
		return fmt.Errorf("%w: no other voter to hand leadership to", ErrBadMember)
	}
	// The leader drops proposals while a transfer is pending, so each
	// attempt is bounded by an election timeout. A target may skip its
	// campaign (a config change to apply) or be down: the request is
	// repeated, rotating over the candidates, for a few rounds at most.
	rounds := 2 * len(targets)
	if len(targets) == 1 {
		rounds = 3
	}
	for i := range rounds {
		if err := nh.RequestLeaderTransfer(r.cfg.ShardID, targets[i%len(targets)]); err != nil {
			return r.mapErr(nh, err)
		}
		expired := time.NewTimer(time.Duration(r.cfg.ElectionRTT) * r.cfg.RTT)
		moved := r.lis.leaders.waitMoved(ctx, old, expired.C)
		expired.Stop()
		if moved {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: leadership did not move", ErrTimeout)
		}
	}
	return fmt.Errorf("%w: leadership did not move after %d attempts", ErrTimeout, rounds)
}

// promoteSelf promotes this node to voter if it is configured as one and
// still non-voting in m. The catch-up probe calls it right after a
// successful catch-up check, while the node is not ready (DESIGN.md
// "Cluster membership": a joining voter is ready only once it votes), so a
// join never costs quorum and readiness never comes before the vote. It
// reports whether the promotion was applied; a failure is retried by the
// next probe.
func (r *Replica) promoteSelf(nh *dragonboat.NodeHost, m *dragonboat.Membership) bool {
	self := r.life.State().Identity
	if _, isNonVoting := m.NonVotings[self.ReplicaID]; !isNonVoting || !r.cfg.Voter {
		return false
	}
	ctx, cancel := context.WithTimeout(r.jobsCtx, probeTimeout)
	defer cancel()
	// SyncRequestAddReplica returns once this node has applied the change,
	// so the membership read next shows it.
	if err := nh.SyncRequestAddReplica(ctx, r.cfg.ShardID, self.ReplicaID, self.RaftAddr, m.ConfigChangeID); err != nil {
		r.log.Debug("promotion to voter failed; will retry", zap.Error(err))
		return false
	}
	r.log.Info("promoted to voter", zap.Uint64("replica_id", self.ReplicaID))
	return true
}

// reconcileSelf keeps this node's own entries right: after a promotion,
// a local snapshot that covers it; and its row in the node table (node ID,
// addresses, voter flag), proposed whenever it differs from what this node
// is. Both are idempotent, so running them on every membership refresh is
// safe.
func (r *Replica) reconcileSelf(nh *dragonboat.NodeHost, m *dragonboat.Membership) {
	ctx, cancel := context.WithTimeout(r.jobsCtx, probeTimeout)
	defer cancel()
	st := r.life.State()
	self := st.Identity
	_, isVoter := m.Nodes[self.ReplicaID]
	_, isNonVoting := m.NonVotings[self.ReplicaID]
	if !isVoter && !isNonVoting {
		return
	}
	forceRegister := false
	if isVoter && r.cfg.NonVoting && r.cfg.OnPromoted != nil && !r.promotionCovered.Load() {
		// Started non-voting, now a voter. A restart replays its config
		// changes from the last local Raft snapshot: one taken now covers
		// the promotion, so the next start may say "voter" (Dragonboat
		// panics if a replica started as a voter replays its own
		// non-voting addition, and one started non-voting after the
		// promotion was compacted away would never vote). ErrRejected: the
		// last snapshot is already current.
		idx, err := nh.SyncRequestSnapshot(ctx, r.cfg.ShardID, dragonboat.SnapshotOption{})
		switch {
		case err == nil && idx >= m.ConfigChangeID:
			r.promotedOnce.Do(r.cfg.OnPromoted)
			r.promotionCovered.Store(true)
		case errors.Is(err, dragonboat.ErrRejected):
			// A snapshot at this index was asked for already (perhaps
			// still being saved): make a new entry, and ask again on the
			// next round.
			forceRegister = true
		default:
			r.log.Debug("snapshot after promotion failed; will retry", zap.Error(err))
		}
	}
	want := cmdpb.NodeMeta{ReplicaId: self.ReplicaID, NodeId: self.NodeID, RaftAddr: self.RaftAddr, ApiAddr: self.APIAddr, Voter: isVoter}
	for _, n := range st.NodeTable {
		if !forceRegister && n.ReplicaID == want.ReplicaId && n.NodeID == want.NodeId && n.RaftAddr == want.RaftAddr &&
			n.APIAddr == want.ApiAddr && n.Voter == want.Voter {
			return
		}
	}
	if _, err := r.proposeCommand(ctx, nh, &cmdpb.Command{Type: cmdpb.Command_TYPE_NODE, Node: &want}); err != nil {
		r.log.Debug("registering this node's metadata failed; will retry", zap.Error(err))
		return
	}
	r.log.Info("node metadata registered", zap.String("node_id", want.NodeId), zap.String("api_addr", want.ApiAddr), zap.Bool("voter", want.Voter))
}
