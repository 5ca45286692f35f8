package replica

import (
	"fmt"
	"sort"

	"github.com/lni/dragonboat/v4"
)

// The join plan is decided by a plain function (planJoin) that tables of
// cases drive without Raft, the way etcd tests configuration changes; the
// membership actor reads its inputs and carries the plan out.

// membership is what a join plan reads of the shard's configuration.
type membership struct {
	Voters, NonVoters, Witnesses map[uint64]string
	Removed                      map[uint64]struct{}
}

func membershipOf(m *dragonboat.Membership) membership {
	return membership{Voters: m.Nodes, NonVoters: m.NonVotings, Witnesses: m.Witnesses, Removed: m.Removed}
}

// joinRequest is a node asking to join: its new replica ID, its Raft
// address and its node ID ("" unknown).
type joinRequest struct {
	ReplicaID uint64
	RaftAddr  string
	NodeID    string
}

// validate refuses a request that names no replica or address.
func (q joinRequest) validate() error {
	if q.ReplicaID == 0 || q.RaftAddr == "" {
		return fmt.Errorf("%w: replica id and raft address are required", ErrBadMember)
	}
	return nil
}

// changeKind is one kind of configuration change.
type changeKind int

const (
	// changeRemove removes a replica (and forgets its metadata).
	changeRemove changeKind = iota + 1
	// changeAddNonVoting adds a replica that receives the log but does
	// not vote.
	changeAddNonVoting
)

// configChange is one step of a plan.
type configChange struct {
	Kind      changeKind
	ReplicaID uint64
	RaftAddr  string
}

// joinPlan is the ordered config changes a join needs; none when the node
// is a member already (a restart with -join still on its command line).
type joinPlan struct {
	AlreadyMember bool
	Changes       []configChange
}

// planJoin decides a join from the membership m, the node table's names
// of the members (nodeOf: replica ID to node ID, "" unknown) and the
// request:
//   - the same replica at the same address is a member already: nothing
//     to do (joins are idempotent);
//   - the same replica at another address, a removed replica, or an
//     address that another named node holds is refused (ErrBadMember);
//   - a node that comes back with new data (a new replica ID; found by its
//     node ID, or by its address when that is held by an unnamed member)
//     has its old replicas removed first, in replica ID order, as rqlite
//     does; then the new replica is added as non-voting.
func planJoin(m membership, nodeOf map[uint64]string, req joinRequest) (joinPlan, error) {
	if err := req.validate(); err != nil {
		return joinPlan{}, err
	}
	id, addr, nodeID := req.ReplicaID, req.RaftAddr, req.NodeID
	sets := []map[uint64]string{m.Voters, m.NonVoters, m.Witnesses}
	for _, set := range sets {
		if a, ok := set[id]; ok && a == addr {
			return joinPlan{AlreadyMember: true}, nil
		}
	}
	var plan joinPlan
	for _, set := range sets {
		for _, rid := range sortedIDs(set) {
			a := set[rid]
			switch {
			case rid == id:
				return joinPlan{}, fmt.Errorf("%w: replica %d is a member at %s, not %s", ErrBadMember, id, a, addr)
			case nodeID != "" && nodeOf[rid] == nodeID:
				// The node came back with new data (and maybe a new
				// address): its old replica goes.
				plan.Changes = append(plan.Changes, configChange{Kind: changeRemove, ReplicaID: rid, RaftAddr: a})
			case a == addr:
				if owner := nodeOf[rid]; owner != "" && nodeID != "" && owner != nodeID {
					return joinPlan{}, fmt.Errorf("%w: raft address %s belongs to member %q", ErrBadMember, addr, owner)
				}
				plan.Changes = append(plan.Changes, configChange{Kind: changeRemove, ReplicaID: rid, RaftAddr: a})
			}
		}
	}
	if _, removed := m.Removed[id]; removed {
		return joinPlan{}, fmt.Errorf("%w: replica %d was removed; a node re-joins with a new data directory", ErrBadMember, id)
	}
	sort.SliceStable(plan.Changes, func(i, j int) bool { return plan.Changes[i].ReplicaID < plan.Changes[j].ReplicaID })
	plan.Changes = append(plan.Changes, configChange{Kind: changeAddNonVoting, ReplicaID: id, RaftAddr: addr})
	return plan, nil
}

func sortedIDs(set map[uint64]string) []uint64 {
	ids := make([]uint64, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
