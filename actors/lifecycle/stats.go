package lifecycle

import "time"

// ReplicaStats is what the replica samples from Dragonboat and the state
// machine for rqlite's monitoring fields (API.md 2.1: store.raft.*,
// store.sqlite3.*, /debug/vars store.*). The replica publishes it through
// lifecycle, so the gateway answers /status from published state and never
// touches Raft. Zero until the first sample: every field is safe to show
// in any phase.
type ReplicaStats struct {
	// SampledAt is when the replica took the sample (zero: never).
	SampledAt time.Time

	// Raft log, as this node's LogDB holds it.
	LastLogIndex, LastLogTerm uint64
	// CommitIndex is the Raft commit index as this node knows it.
	CommitIndex uint64
	// LastSnapshotIndex and LastSnapshotTerm: the latest snapshot (taken
	// here or installed from the leader).
	LastSnapshotIndex, LastSnapshotTerm uint64
	// Term is the current Raft term as Dragonboat reports it.
	Term uint64
	// ConfigChangeIndex is the log index of the last applied membership
	// change.
	ConfigChangeIndex uint64

	// SQLite, from the state machine's live database.
	SQLitePath string
	// SQLiteSize is page_count * page_size (rqlite's sqlite3.size).
	SQLiteSize int64

	// Counters since the process started.
	Snapshots          uint64 // local snapshots taken (automatic and requested)
	UserSnapshots      uint64 // snapshots taken because of POST /snapshot
	Joins              uint64 // joins that added a member
	IgnoredJoins       uint64 // joins of a node already a member at that address
	RemovedBeforeJoins uint64 // old replicas removed for a re-joining node
	Removes            uint64 // members removed
	LeaderChanges      uint64 // leader changes observed
	Reaps              uint64 // members the leader removed as unreachable (-raft-reap-*)
	WALSnapshots       uint64 // snapshots taken because the SQLite WAL outgrew -raft-snap-wal-size
}

// ReplicaSampled carries the replica's latest sample.
type ReplicaSampled struct{ Stats ReplicaStats }

func (ReplicaSampled) isEvent() {}
