package lifecycle

import (
	"sort"
	"time"

	"github.com/skiffdb/skiff/sm"
)

// Phase is where a node is in its life.
type Phase string

// The phases of DESIGN.md "Lifecycle states".
const (
	Starting   Phase = "starting"
	Opening    Phase = "opening"
	Joining    Phase = "joining"
	Recovering Phase = "recovering"
	Ready      Phase = "ready"
	Degraded   Phase = "degraded"
	Stopping   Phase = "stopping"
	// Removed: this node's replica was removed from the cluster; it
	// serves status only, until it is stopped.
	Removed Phase = "removed"
)

// Member is one replica of the shard as this node knows it.
type Member struct {
	NodeID    string
	ReplicaID uint64
	RaftAddr  string
	APIAddr   string
	Voter     bool
}

// Identity is what a node is: fixed once bootstrap has loaded it.
type Identity struct {
	NodeID    string
	ShardID   uint64
	ReplicaID uint64
	RaftAddr  string
	APIAddr   string
	Voter     bool
	// Expecting: a -bootstrap-expect node still looking for its founders
	// (no Raft state yet). Founders, once recorded, are the members its
	// shard started with (never modified after publication).
	Expecting bool
	Founders  map[uint64]string
}

// Progress holds the numbers of the current phase.
type Progress struct {
	// DBBytes is the database file's size when it was opened.
	DBBytes int64
	// OpenIndex is the applied index the database had when it was opened:
	// AppliedIndex - OpenIndex entries were replayed or applied since
	// (reset to the index of a snapshot installed later).
	OpenIndex uint64
	// AppliedIndex is the last index the state machine committed.
	AppliedIndex uint64
	// TargetIndex is the commit index the node is catching up to (the
	// applied index at its last successful catch-up check).
	TargetIndex uint64
	// SnapshotBytes of SnapshotTotal have been received (installing).
	SnapshotBytes, SnapshotTotal int64
	// SnapshotIndex is the index of the snapshot being installed.
	SnapshotIndex uint64
	// SentBytes of SentTotal of a snapshot streamed to a peer.
	SentBytes, SentTotal int64
	// ReceivedBytes of a snapshot stream are on this node's disk, not yet
	// installed (compressed, as the stream carries them).
	ReceivedBytes int64
	// LeaderSentBytes of LeaderSentTotal: the leader's own count of the
	// snapshot it streams (uncompressed), which gives a receiver its total.
	LeaderSentBytes, LeaderSentTotal int64

	// Step names what a recovering node is doing: StepReplaying,
	// StepReceiving or StepInstalling ("" in other phases).
	Step string
	// Rates, smoothed over about rateWindow: log entries applied, snapshot
	// bytes received, installed and sent, per second.
	ApplyRate, ReceiveRate, InstallRate, SendRate float64
	// ETA estimates the time left in the current step (0 if unknown).
	ETA time.Duration

	// rate samples behind the rates (unexported: bookkeeping).
	applyS, receiveS, installS, sendS, leaderSentS rateSample
}

// The steps of recovering.
const (
	StepReplaying  = "replaying_log"
	StepReceiving  = "receiving_snapshot"
	StepInstalling = "installing_snapshot"
	// StepAwaitingPromotion: a joining voter has caught up as a
	// non-voting member and waits to be a voter in the committed
	// configuration (phase joining).
	StepAwaitingPromotion = "awaiting_promotion"
)

// State is an immutable snapshot of the node's state. A published State is
// never modified; Machine copies it for every change, and slices in it are
// never written after publication.
type State struct {
	Phase     Phase
	Since     time.Time
	StartedAt time.Time
	Identity  Identity

	// LeaderReplicaID is 0 while no leader is known.
	LeaderReplicaID uint64
	Term            uint64
	// LastLeaderContact is when this node last saw a leader (now, while
	// one is known).
	LastLeaderContact time.Time
	// NodeReady is set once Dragonboat has opened the replica.
	NodeReady bool

	Progress Progress
	// Members is the Raft membership (RaftMembers) named from the
	// replicated node table (NodeTable): node IDs and API addresses.
	Members     []Member
	RaftMembers []Member
	// RemovedReplicas are the replica IDs removed from the cluster, as of
	// the last membership read: peers cut off from the leader ask for
	// them to learn they were removed.
	RemovedReplicas []uint64
	NodeTable       []sm.NodeInfo
	LastError       string
	// Replica is the replica's latest sample of Raft and SQLite numbers
	// (monitoring, API.md 2.1); zero before the first.
	Replica ReplicaStats
	// Restores counts snapshots installed from the leader (rqlite's
	// num_restores); InstalledBytes sums their sizes.
	Restores       uint64
	InstalledBytes uint64
	// SnapshotsSent counts snapshots streamed whole to peers; SentBytes
	// sums their sizes (/metrics).
	SnapshotsSent, SentBytes uint64
	// Coalesced counts progress reports (applied index, snapshot bytes)
	// merged into a later one before lifecycle applied them. No event
	// that changes state is ever coalesced or lost.
	Coalesced uint64
	// Dropped counts events that arrived after lifecycle had stopped, so
	// nobody could apply them; while it runs nothing is dropped.
	Dropped uint64
	// Version increases with every published change.
	Version uint64
}

// IsLeader reports whether this node is the leader.
func (s *State) IsLeader() bool {
	return s.LeaderReplicaID != 0 && s.LeaderReplicaID == s.Identity.ReplicaID
}

// Leader returns the leader's member record, if the leader is known and in
// the membership.
func (s *State) Leader() (Member, bool) {
	if s.LeaderReplicaID == 0 {
		return Member{}, false
	}
	for _, m := range s.Members {
		if m.ReplicaID == s.LeaderReplicaID {
			return m, true
		}
	}
	if s.IsLeader() {
		// Before the membership is first read, this node still knows
		// itself.
		id := s.Identity
		return Member{NodeID: id.NodeID, ReplicaID: id.ReplicaID, RaftAddr: id.RaftAddr, APIAddr: id.APIAddr, Voter: id.Voter}, true
	}
	return Member{}, false
}

// ReportedLeader is the leader as /status (store.leader), /leader and
// /nodes name it: only while this node is ready. rqlite's clients and
// scripts wait for store.leader to be set and then expect /readyz to
// answer 200; reporting a leader only when ready keeps the two in step
// (a joiner that knows the leader but does not vote yet reports none),
// and a ready node names its leader by node ID (see CaughtUp).
func (s *State) ReportedLeader() (Member, bool) {
	if s.Phase != Ready {
		return Member{}, false
	}
	return s.Leader()
}

// ReportedLeaderID is ReportedLeader's replica ID (0: none reported).
func (s *State) ReportedLeaderID() uint64 {
	if s.Phase != Ready {
		return 0
	}
	return s.LeaderReplicaID
}

// selfVoter reports whether this node votes in the membership it last
// read (the committed configuration as of that read).
func (s *State) selfVoter() bool {
	for _, m := range s.RaftMembers {
		if m.ReplicaID == s.Identity.ReplicaID {
			return m.Voter
		}
	}
	return false
}

// leaderNamed reports whether the leader is this node or has its row in
// the applied node table, so it is named by node ID, not Raft address.
func (s *State) leaderNamed() bool {
	if s.LeaderReplicaID == 0 {
		return false
	}
	if s.IsLeader() {
		return true
	}
	for _, n := range s.NodeTable {
		if n.ReplicaID == s.LeaderReplicaID && n.NodeID != "" {
			return true
		}
	}
	return false
}

// selfNamed reports whether this node's own row (node ID and API address)
// is in the applied node table.
func (s *State) selfNamed() bool {
	id := s.Identity
	for _, n := range s.NodeTable {
		if n.ReplicaID == id.ReplicaID && n.NodeID == id.NodeID && n.APIAddr == id.APIAddr {
			return true
		}
	}
	return false
}

// AwaitingPromotion reports whether this node has caught up as a
// non-voting member and waits to be promoted to voter.
func (s *State) AwaitingPromotion() bool {
	return s.Phase == Joining && s.NodeReady
}

// ServesData reports whether this node serves every data request (phase
// ready): the jobs that act on the database by themselves (automatic
// backups, ingest) run only then. A degraded node still serves level=none
// reads, which the gateway admits on its own (Gateway.admit).
func (s *State) ServesData() bool { return s.Phase == Ready }

// mergeMembers names each Raft member from the node table; a member that
// has not registered yet is named by its Raft address (this node by its
// identity).
func mergeMembers(raft []Member, table []sm.NodeInfo, self Identity) []Member {
	if len(raft) == 0 {
		return nil
	}
	byID := make(map[uint64]sm.NodeInfo, len(table))
	for _, n := range table {
		byID[n.ReplicaID] = n
	}
	out := make([]Member, 0, len(raft))
	for _, m := range raft {
		if n, ok := byID[m.ReplicaID]; ok {
			m.NodeID, m.APIAddr = n.NodeID, n.APIAddr
		}
		if m.ReplicaID == self.ReplicaID {
			m.NodeID, m.APIAddr = self.NodeID, self.APIAddr
		}
		if m.NodeID == "" {
			m.NodeID = m.RaftAddr
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// NodeByID returns the node table's row for a node ID.
func (s *State) NodeByID(nodeID string) (sm.NodeInfo, bool) {
	for _, n := range s.NodeTable {
		if n.NodeID == nodeID {
			return n, true
		}
	}
	return sm.NodeInfo{}, false
}

// Member returns the member with replica ID id.
func (s *State) Member(id uint64) (Member, bool) {
	for _, m := range s.Members {
		if m.ReplicaID == id {
			return m, true
		}
	}
	return Member{}, false
}
