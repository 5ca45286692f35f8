package replica

import (
	"sync"
	"time"

	"github.com/lni/dragonboat/v4/raftio"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/sm"
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
	// stats is nudged (capacity 1, non-blocking) when a monitoring number
	// moved; counts are atomics the callbacks only increment.
	stats    chan struct{}
	counters *counters
	// reach records unreachable peers for the reap job (reap.go).
	reach *reachability
	// removed is nudged (capacity 1) when this replica applied its own
	// removal.
	removed chan struct{}
	// installed is nudged (capacity 1) when the state machine installed
	// a snapshot: a catch-up probe begun before it was seen to wait out
	// its timeout (probe).
	installed chan struct{}
	// deleted is closed when this replica applied its own removal
	// (deleteOnce), for the removal that waits for it (removeSelf).
	deleted    chan struct{}
	deleteOnce sync.Once
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

// smEvent forwards a state machine event to lifecycle and nudges the
// catch-up probe after an install. It runs on Dragonboat's workers, so it
// never blocks.
func (l *listener) smEvent(e sm.Event) {
	l.life.NotifySM(e)
	if e.Kind == sm.EventSnapshotInstallDone {
		select {
		case l.installed <- struct{}{}:
		default:
		}
	}
}

func (l *listener) nudgeStats() {
	select {
	case l.stats <- struct{}{}:
	default: // a sample is already pending
	}
}

func (l *listener) LeaderUpdated(info raftio.LeaderInfo) {
	if info.ShardID == l.shardID {
		if info.LeaderID != 0 {
			l.counters.leaderChanges.Add(1)
		}
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
		l.life.Notify(lifecycle.RemovedFromCluster{Reason: "it applied its own removal"})
		l.deleteOnce.Do(func() { close(l.deleted) })
		select {
		case l.removed <- struct{}{}:
		default:
		}
	}
}

// ConnectionEstablished and ConnectionFailed track reachability for
// reaping; snapshot streams have connections of their own and are left out.
func (l *listener) ConnectionEstablished(info raftio.ConnectionInfo) {
	if !info.SnapshotConnection {
		l.reach.reached(info.Address)
	}
}

func (l *listener) ConnectionFailed(info raftio.ConnectionInfo) {
	if !info.SnapshotConnection {
		l.reach.failed(info.Address, time.Now())
	}
}

func (l *listener) SendSnapshotStarted(raftio.SnapshotInfo)   {}
func (l *listener) SendSnapshotCompleted(raftio.SnapshotInfo) {}
func (l *listener) SendSnapshotAborted(raftio.SnapshotInfo)   {}
func (l *listener) SnapshotReceived(raftio.SnapshotInfo)      {}
func (l *listener) SnapshotRecovered(raftio.SnapshotInfo)     {}
func (l *listener) SnapshotCreated(info raftio.SnapshotInfo) {
	if info.ShardID == l.shardID {
		l.counters.snapshotEvents.Add(1)
		l.nudgeStats()
	}
}
func (l *listener) SnapshotCompacted(raftio.SnapshotInfo) {}
func (l *listener) LogCompacted(raftio.EntryInfo)         {}
func (l *listener) LogDBCompacted(raftio.EntryInfo)       {}
