package replica

import (
	"github.com/lni/dragonboat/v4/raftio"

	"github.com/skiffdb/skiff/actors/lifecycle"
)

// listener adapts Dragonboat's callbacks. Every callback returns at once:
// Dragonboat's step, apply and snapshot workers wait on it (DRAGONBOAT.md
// 0.8), so it only copies the info into a non-blocking send:
// lifecycle.Notify (an append to an unbounded mailbox: it never blocks and
// never loses a state event) or a capacity-1 nudge.
type listener struct {
	shardID uint64
	life    *lifecycle.Lifecycle
	// members is nudged (capacity 1, non-blocking) when the membership may
	// have changed; the replica actor refreshes it off the callback.
	members chan struct{}
	// leaders wakes the proposals in flight on a leader change
	// (leaderwatch.go).
	leaders *leaderWatch
}

var (
	_ raftio.IRaftEventListener   = (*listener)(nil)
	_ raftio.ISystemEventListener = (*listener)(nil)
)

func (l *listener) nudgeMembers() {
	select {
	case l.members <- struct{}{}:
	default: // a refresh is already pending
	}
}

func (l *listener) LeaderUpdated(info raftio.LeaderInfo) {
	if info.ShardID == l.shardID {
		l.life.Notify(lifecycle.LeaderUpdated{LeaderReplicaID: info.LeaderID, Term: info.Term})
		l.leaders.update(leaderView{leader: info.LeaderID, term: info.Term})
	}
}

func (l *listener) NodeReady(info raftio.NodeInfo) {
	if info.ShardID == l.shardID {
		l.life.Notify(lifecycle.NodeReady{})
		l.nudgeMembers()
	}
}

func (l *listener) MembershipChanged(info raftio.NodeInfo) {
	if info.ShardID == l.shardID {
		l.nudgeMembers()
	}
}

func (l *listener) NodeHostShuttingDown()        {}
func (l *listener) NodeUnloaded(raftio.NodeInfo) {}
func (l *listener) NodeDeleted(info raftio.NodeInfo) {
	if info.ShardID == l.shardID {
		l.life.Notify(lifecycle.RemovedFromCluster{})
	}
}
func (l *listener) ConnectionEstablished(raftio.ConnectionInfo) {}
func (l *listener) ConnectionFailed(raftio.ConnectionInfo)      {}
func (l *listener) SendSnapshotStarted(raftio.SnapshotInfo)     {}
func (l *listener) SendSnapshotCompleted(raftio.SnapshotInfo)   {}
func (l *listener) SendSnapshotAborted(raftio.SnapshotInfo)     {}
func (l *listener) SnapshotReceived(raftio.SnapshotInfo)        {}
func (l *listener) SnapshotRecovered(raftio.SnapshotInfo)       {}
func (l *listener) SnapshotCreated(raftio.SnapshotInfo)         {}
func (l *listener) SnapshotCompacted(raftio.SnapshotInfo)       {}
func (l *listener) LogCompacted(raftio.EntryInfo)               {}
func (l *listener) LogDBCompacted(raftio.EntryInfo)             {}
