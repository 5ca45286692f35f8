package sm

// EventKind says what an Event reports.
type EventKind int

// Event kinds, in the order a replica's life usually emits them.
const (
	// EventOpenBegun: Open started; Bytes is the database file's size.
	EventOpenBegun EventKind = iota + 1
	// EventOpenDone: Open finished; Index is the durable applied index.
	EventOpenDone
	// EventApplied: an Update batch committed; Index is the last entry's.
	EventApplied
	// EventSnapshotSendProgress: SaveSnapshot streamed Bytes of Total.
	EventSnapshotSendProgress
	// EventSnapshotInstallBegun: RecoverFromSnapshot started; Total bytes.
	EventSnapshotInstallBegun
	// EventSnapshotInstallProgress: Bytes of Total received and written.
	EventSnapshotInstallProgress
	// EventSnapshotInstallDone: the new database is live at Index.
	EventSnapshotInstallDone
	// EventStorageFault: a storage error stops the node; Err says why.
	EventStorageFault
	// EventNodes: the replicated node table, whole, in Nodes.
	EventNodes
	// EventSnapshotSent: SaveSnapshot streamed a whole snapshot of Bytes
	// (counted for /metrics; progress reports may be coalesced, this not).
	EventSnapshotSent
)

// String names the kind for logs.
func (k EventKind) String() string {
	switch k {
	case EventOpenBegun:
		return "open_begun"
	case EventOpenDone:
		return "open_done"
	case EventApplied:
		return "applied"
	case EventSnapshotSendProgress:
		return "snapshot_send_progress"
	case EventSnapshotInstallBegun:
		return "snapshot_install_begun"
	case EventSnapshotInstallProgress:
		return "snapshot_install_progress"
	case EventSnapshotInstallDone:
		return "snapshot_install_done"
	case EventStorageFault:
		return "storage_fault"
	case EventNodes:
		return "nodes"
	case EventSnapshotSent:
		return "snapshot_sent"
	}
	return "unknown"
}

// Event is a progress report from the state machine. It is a plain value so
// that sending it copies everything and shares nothing.
type Event struct {
	Kind  EventKind
	Index uint64
	Bytes int64
	Total int64
	Err   error
	// Nodes is set for EventNodes; never modified after sending.
	Nodes []NodeInfo
}
