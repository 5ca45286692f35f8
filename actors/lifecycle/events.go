package lifecycle

import (
	"time"

	"github.com/skiffdb/skiff/sm"
)

// Event is something lifecycle learns from. Each is a small value type;
// sending one copies it.
type Event interface{ isEvent() }

// IdentityKnown: bootstrap has loaded or created the node's identity.
type IdentityKnown struct{ Identity Identity }

// JoinBegun: the node waits to be added to an existing cluster.
type JoinBegun struct{}

// SMEvent wraps a state machine progress report.
type SMEvent struct{ E sm.Event }

// NodeReady: Dragonboat has opened the replica (Open and initial recovery).
type NodeReady struct{}

// LeaderUpdated: Dragonboat's view of the leader changed (0 = none).
type LeaderUpdated struct{ LeaderReplicaID, Term uint64 }

// CaughtUp: a linearizable read succeeded locally, so this node's applied
// index has reached the leader's commit index as of that read.
type CaughtUp struct{ LeaderReplicaID, Index uint64 }

// RemovedFromCluster: this node learnt that it was removed from the
// cluster (it applied its own removal, or a member said so); Reason says
// how, for /status and the log.
type RemovedFromCluster struct{ Reason string }

// LeaderContact: this node heard from its leader at At (zero: now).
type LeaderContact struct {
	LeaderReplicaID uint64
	At              time.Time
}

// MembershipChanged carries the new membership, and the replica IDs ever
// removed from it (Raft never lets them back).
type MembershipChanged struct {
	Members []Member
	Removed []uint64
}

// LeaderIndex: the leader's progress as the leader reported it to a node
// that is not ready: its applied index (the target the log replay catches
// up to) and the snapshot it is streaming, SentBytes of SentTotal
// (uncompressed; the total a receiver is waiting for).
type LeaderIndex struct {
	Index                uint64
	SentBytes, SentTotal int64
}

// SnapshotReceiving: Bytes of a snapshot stream have reached this node's
// disk so far (Dragonboat's transport writes them before the install).
type SnapshotReceiving struct{ Bytes int64 }

// Failed records an error worth showing in /status.
type Failed struct{ Err string }

// ShuttingDown: shutdown has begun; terminal.
type ShuttingDown struct{}

func (IdentityKnown) isEvent()      {}
func (JoinBegun) isEvent()          {}
func (LeaderContact) isEvent()      {}
func (SMEvent) isEvent()            {}
func (NodeReady) isEvent()          {}
func (LeaderUpdated) isEvent()      {}
func (CaughtUp) isEvent()           {}
func (MembershipChanged) isEvent()  {}
func (Failed) isEvent()             {}
func (ShuttingDown) isEvent()       {}
func (RemovedFromCluster) isEvent() {}
func (LeaderIndex) isEvent()        {}
func (SnapshotReceiving) isEvent()  {}
