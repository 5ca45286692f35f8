package lifecycle

import (
	"time"

	"github.com/skiffdb/skiff/sm"
)

// Machine holds the current State and applies events to it. It is not safe
// for concurrent use: the Lifecycle actor alone drives it (tests drive it
// directly).
type Machine struct {
	cur State
}

// NewMachine starts in Starting at now.
func NewMachine(now time.Time) *Machine {
	return &Machine{cur: State{Phase: Starting, Since: now, StartedAt: now}}
}

// State returns the current state (a copy).
func (m *Machine) State() State { return m.cur }

// Apply applies ev at now and reports whether the state changed.
func (m *Machine) Apply(ev Event, now time.Time) bool {
	next := m.cur
	if next.Phase == Stopping {
		// Terminal: only errors are still recorded.
		if f, ok := ev.(Failed); ok {
			next.LastError = f.Err
			return m.commit(next, now)
		}
		return false
	}
	if next.Phase == Removed {
		// Terminal but for shutdown: nothing makes a removed node a
		// member again.
		switch e := ev.(type) {
		case ShuttingDown:
			next.Phase = Stopping
		case Failed:
			next.LastError = e.Err
		default:
			return false
		}
		return m.commit(next, now)
	}
	switch e := ev.(type) {
	case RemovedFromCluster:
		next.Phase = Removed
		next.LeaderReplicaID = 0
		next.LastError = "this node was removed from the cluster"
		if e.Reason != "" {
			next.LastError += ": " + e.Reason
		}
	case IdentityKnown:
		next.Identity = e.Identity
	case JoinBegun:
		next.Phase = Joining
	case SMEvent:
		applySM(&next, e.E)
	case NodeReady:
		next.NodeReady = true
		if next.Phase == Starting || next.Phase == Opening || next.Phase == Joining {
			next.Phase = Recovering
		}
	case LeaderUpdated:
		next.LeaderReplicaID, next.Term = e.LeaderReplicaID, e.Term
		if e.LeaderReplicaID != 0 {
			next.LastLeaderContact = now
		}
		if e.LeaderReplicaID == 0 && next.Phase == Ready {
			next.Phase = Degraded
		}
		// A degraded node that becomes the leader itself is ready: Raft
		// elects only a node whose log holds every committed entry. (It
		// refused requests for a probe interval otherwise.) A follower
		// still waits for its catch-up check.
		if e.LeaderReplicaID != 0 && e.LeaderReplicaID == next.Identity.ReplicaID && next.Phase == Degraded {
			next.Phase = Ready
		}
	case CaughtUp:
		// A catch-up check that raced with a leader change says nothing
		// about the current leader.
		if e.LeaderReplicaID == 0 || e.LeaderReplicaID != next.LeaderReplicaID || !next.NodeReady {
			return false
		}
		next.LastLeaderContact = now
		if e.Index > next.Progress.TargetIndex {
			next.Progress.TargetIndex = e.Index
		}
		if next.Phase == Recovering || next.Phase == Degraded || next.Phase == Joining {
			// Caught up. A node configured as a voter is ready only once
			// it votes in the committed configuration (DESIGN.md "Cluster
			// membership"): a learner reported ready would let a cluster
			// of "ready" nodes lose quorum to one failure. Until then it
			// is joining, awaiting promotion. Ready also needs the leader
			// named by its node ID, so that status endpoints agree from
			// the moment they report one, and this node's own row, so
			// that the others name it (/nodes, /remove) once it is ready.
			switch {
			case next.Identity.Voter && !next.selfVoter():
				next.Phase = Joining
			case !next.leaderNamed() || !next.selfNamed():
				// A row is not applied here yet: the next check sees it.
			default:
				next.Phase = Ready
			}
		}
	case LeaderContact:
		if e.LeaderReplicaID == 0 || e.LeaderReplicaID != next.LeaderReplicaID {
			return false
		}
		at := e.At
		if at.IsZero() || at.After(now) {
			at = now
		}
		if !at.After(next.LastLeaderContact) {
			return false // nothing newer heard
		}
		next.LastLeaderContact = at
	case LeaderIndex:
		if e.Index > next.Progress.TargetIndex {
			next.Progress.TargetIndex = e.Index
		}
		next.Progress.LeaderSentBytes, next.Progress.LeaderSentTotal = e.SentBytes, e.SentTotal
	case SnapshotReceiving:
		next.Progress.ReceivedBytes = e.Bytes
	case ReplicaSampled:
		next.Replica = e.Stats
	case MembershipChanged:
		next.RaftMembers = e.Members
		next.RemovedReplicas = e.Removed
		next.Members = mergeMembers(next.RaftMembers, next.NodeTable, next.Identity)
	case Failed:
		next.LastError = e.Err
	case ShuttingDown:
		next.Phase = Stopping
	default:
		return false
	}
	return m.commit(next, now)
}

func applySM(next *State, e sm.Event) {
	p := &next.Progress
	switch e.Kind {
	case sm.EventOpenBegun:
		p.DBBytes = e.Bytes
		if next.Phase == Starting || next.Phase == Joining {
			next.Phase = Opening
		}
	case sm.EventOpenDone:
		p.AppliedIndex, p.OpenIndex = e.Index, e.Index
		if next.Phase == Opening {
			next.Phase = Recovering
		}
	case sm.EventApplied:
		if e.Index > p.AppliedIndex {
			p.AppliedIndex = e.Index
		}
	case sm.EventSnapshotInstallBegun:
		p.SnapshotIndex, p.SnapshotBytes, p.SnapshotTotal = e.Index, 0, e.Total
		p.ReceivedBytes = 0 // the stream is on disk whole
		next.Phase = Recovering
	case sm.EventSnapshotInstallProgress:
		p.SnapshotBytes, p.SnapshotTotal = e.Bytes, e.Total
	case sm.EventSnapshotInstallDone:
		p.AppliedIndex = e.Index
		next.Restores++
		next.InstalledBytes += uint64(max(p.SnapshotTotal, 0))
		p.SnapshotBytes = p.SnapshotTotal
		// Replay counts from the installed snapshot on.
		p.OpenIndex = e.Index
	case sm.EventSnapshotSendProgress:
		p.SentBytes, p.SentTotal = e.Bytes, e.Total
	case sm.EventSnapshotSent:
		next.SnapshotsSent++
		next.SentBytes += uint64(max(e.Bytes, 0))
	case sm.EventStorageFault:
		if e.Err != nil {
			next.LastError = e.Err.Error()
		}
	case sm.EventNodes:
		next.NodeTable = e.Nodes
		next.Members = mergeMembers(next.RaftMembers, next.NodeTable, next.Identity)
	}
}

// commit installs next if it differs in anything but bookkeeping.
func (m *Machine) commit(next State, now time.Time) bool {
	if next.Phase != m.cur.Phase {
		next.Since = now
	}
	updateRates(next.Phase, next.NodeReady, &next.Progress, now)
	next.Version = m.cur.Version + 1
	m.cur = next
	return true
}
