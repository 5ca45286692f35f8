package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffdb/skiff/sm"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func self() Identity { return Identity{NodeID: "n1", ShardID: 1, ReplicaID: 1} }

// TestTransitions drives every transition of DESIGN.md's table
// synchronously: each case starts from a phase and applies events in order.
func TestTransitions(t *testing.T) {
	// The node table names this node (Ready needs it).
	selfRow := SMEvent{sm.Event{Kind: sm.EventNodes, Nodes: []sm.NodeInfo{{ReplicaID: 1, NodeID: "n1"}}}}
	toReady := []Event{IdentityKnown{self()}, SMEvent{sm.Event{Kind: sm.EventOpenBegun, Bytes: 4096}},
		SMEvent{sm.Event{Kind: sm.EventOpenDone, Index: 7}}, selfRow, NodeReady{}, LeaderUpdated{1, 2}, CaughtUp{1, 7}}
	cases := []struct {
		name   string
		events []Event
		want   Phase
	}{
		{"new node starts", nil, Starting},
		{"open begins", toReady[:2], Opening},
		{"open done: recovering (replaying the log)", toReady[:3], Recovering},
		{"node ready without leader: still recovering", toReady[:5], Recovering},
		{"leader known but not caught up: recovering", toReady[:6], Recovering},
		{"own row not in the node table: not ready", append(append([]Event{}, toReady[:3]...), toReady[4:]...), Recovering},
		{"caught up with the leader: ready", toReady, Ready},
		{"join begins", []Event{JoinBegun{}}, Joining},
		{"joiner opens", []Event{JoinBegun{}, SMEvent{sm.Event{Kind: sm.EventOpenBegun}}}, Opening},
		{"joiner added and opened", []Event{JoinBegun{}, NodeReady{}}, Recovering},
		{"ready loses leader: degraded", append(append([]Event{}, toReady...), LeaderUpdated{0, 3}), Degraded},
		{"degraded, new leader, not yet checked", append(append([]Event{}, toReady...), LeaderUpdated{0, 3}, LeaderUpdated{2, 3}), Degraded},
		{"degraded, elected itself: ready", append(append([]Event{}, toReady...), LeaderUpdated{0, 3}, LeaderUpdated{1, 3}), Ready},
		{"degraded, caught up again: ready", append(append([]Event{}, toReady...), LeaderUpdated{0, 3}, LeaderUpdated{1, 3}, CaughtUp{1, 9}), Ready},
		{"catch-up for an old leader is ignored", append(append([]Event{}, toReady[:5]...), LeaderUpdated{2, 3}, CaughtUp{1, 9}), Recovering},
		{"catch-up before node ready is ignored", []Event{LeaderUpdated{1, 1}, CaughtUp{1, 1}}, Starting},
		{"snapshot install on a ready node: recovering", append(append([]Event{}, toReady...), SMEvent{sm.Event{Kind: sm.EventSnapshotInstallBegun, Total: 100}}), Recovering},
		{"after install, catch-up: ready", append(append([]Event{}, toReady...), SMEvent{sm.Event{Kind: sm.EventSnapshotInstallBegun, Total: 100}},
			SMEvent{sm.Event{Kind: sm.EventSnapshotInstallDone, Index: 50}}, CaughtUp{1, 50}), Ready},
		{"shutdown from ready", append(append([]Event{}, toReady...), ShuttingDown{}), Stopping},
		{"shutdown while starting", []Event{ShuttingDown{}}, Stopping},
		{"stopping is terminal", []Event{ShuttingDown{}, NodeReady{}, LeaderUpdated{1, 1}, CaughtUp{1, 1}}, Stopping},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(t0)
			for i, ev := range tc.events {
				m.Apply(ev, t0.Add(time.Duration(i+1)*time.Second))
			}
			if got := m.State().Phase; got != tc.want {
				t.Fatalf("phase = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestProgressAndBookkeeping(t *testing.T) {
	m := NewMachine(t0)
	m.Apply(IdentityKnown{self()}, t0)
	m.Apply(SMEvent{sm.Event{Kind: sm.EventOpenBegun, Bytes: 1 << 20}}, t0.Add(time.Second))
	st := m.State()
	if st.Progress.DBBytes != 1<<20 || !st.Since.Equal(t0.Add(time.Second)) {
		t.Fatalf("open progress = %+v since %v", st.Progress, st.Since)
	}
	m.Apply(SMEvent{sm.Event{Kind: sm.EventApplied, Index: 10}}, t0.Add(2*time.Second))
	m.Apply(SMEvent{sm.Event{Kind: sm.EventApplied, Index: 5}}, t0.Add(2*time.Second))
	if got := m.State().Progress.AppliedIndex; got != 10 {
		t.Fatalf("applied index went backwards: %d", got)
	}
	m.Apply(SMEvent{sm.Event{Kind: sm.EventSnapshotInstallProgress, Bytes: 40, Total: 100}}, t0)
	if p := m.State().Progress; p.SnapshotBytes != 40 || p.SnapshotTotal != 100 {
		t.Fatalf("snapshot progress = %+v", p)
	}
	m.Apply(SMEvent{sm.Event{Kind: sm.EventStorageFault, Err: errors.New("disk full")}}, t0)
	if m.State().LastError != "disk full" {
		t.Fatalf("last error = %q", m.State().LastError)
	}
	m.Apply(MembershipChanged{Members: []Member{{NodeID: "n1", ReplicaID: 1, Voter: true}}}, t0)
	m.Apply(LeaderUpdated{1, 4}, t0)
	st = m.State()
	if !st.IsLeader() {
		t.Fatal("IsLeader false for own replica")
	}
	if l, ok := st.Leader(); !ok || l.NodeID != "n1" {
		t.Fatalf("Leader() = %+v %v", l, ok)
	}
	v := st.Version
	m.Apply(ShuttingDown{}, t0)
	m.Apply(Failed{Err: "late"}, t0)
	if st := m.State(); st.Phase != Stopping || st.LastError != "late" || st.Version <= v {
		t.Fatalf("after stop: %+v", st)
	}
}

func applied(i uint64) Event { return SMEvent{sm.Event{Kind: sm.EventApplied, Index: i}} }

func smev(k sm.EventKind, bytes int64) Event { return SMEvent{sm.Event{Kind: k, Bytes: bytes}} }

// The mailbox keeps every state event, in order, and coalesces only
// progress reports, never across a state event.
func TestMailbox(t *testing.T) {
	many := func(n int, f func(i int) Event) []Event {
		var out []Event
		for i := range n {
			out = append(out, f(i))
		}
		return out
	}
	leaders := many(10000, func(i int) Event { return LeaderUpdated{LeaderReplicaID: uint64(i%3 + 1), Term: uint64(i)} })
	cases := []struct {
		name          string
		put           []Event
		want          []Event
		wantCoalesced uint64
	}{
		{name: "state events are all kept, in order, however many", put: leaders, want: leaders},
		{name: "applied reports coalesce to the latest",
			put: many(1000, func(i int) Event { return applied(uint64(i + 1)) }), want: []Event{applied(1000)}, wantCoalesced: 999},
		{name: "applied index never goes back", put: []Event{applied(5), applied(3)}, want: []Event{applied(5)}, wantCoalesced: 1},
		{name: "kinds coalesce separately",
			put:  []Event{applied(1), smev(sm.EventSnapshotSendProgress, 1), applied(2), smev(sm.EventSnapshotSendProgress, 2)},
			want: []Event{applied(2), smev(sm.EventSnapshotSendProgress, 2)}, wantCoalesced: 2},
		{name: "progress is not moved across a state event",
			put: []Event{
				smev(sm.EventSnapshotInstallBegun, 0), smev(sm.EventSnapshotInstallProgress, 10), smev(sm.EventSnapshotInstallProgress, 20),
				SMEvent{sm.Event{Kind: sm.EventSnapshotInstallDone, Index: 9}}, applied(10), NodeReady{}, applied(11), applied(12),
			},
			want: []Event{
				smev(sm.EventSnapshotInstallBegun, 0), smev(sm.EventSnapshotInstallProgress, 20),
				SMEvent{sm.Event{Kind: sm.EventSnapshotInstallDone, Index: 9}}, applied(10), NodeReady{}, applied(12),
			},
			wantCoalesced: 2},
		{name: "state events between progress reports all survive",
			put:  []Event{applied(1), NodeReady{}, applied(2), LeaderUpdated{1, 1}, applied(3), CaughtUp{1, 3}, applied(4), applied(5)},
			want: []Event{applied(1), NodeReady{}, applied(2), LeaderUpdated{1, 1}, applied(3), CaughtUp{1, 3}, applied(5)}, wantCoalesced: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newMailbox()
			for _, ev := range tc.put {
				m.put(ev)
			}
			if got := m.take(); !reflect.DeepEqual(got, tc.want) {
				if len(got) > 10 || len(tc.want) > 10 {
					t.Fatalf("took %d events, want %d (or in another order)", len(got), len(tc.want))
				}
				t.Fatalf("took %v, want %v", got, tc.want)
			}
			if c, d := m.counters(); c != tc.wantCoalesced || d != 0 {
				t.Fatalf("coalesced %d dropped %d, want %d and 0", c, d, tc.wantCoalesced)
			}
			if got := m.take(); len(got) != 0 {
				t.Fatalf("second take = %v", got)
			}
			// After a take, a new report is queued anew, not merged.
			m.put(applied(1))
			if got := m.take(); !reflect.DeepEqual(got, []Event{applied(1)}) {
				t.Fatalf("after take: %v", got)
			}
			m.close()
			m.put(NodeReady{})
			if _, d := m.counters(); d != 1 {
				t.Fatalf("put after close: dropped %d, want 1", d)
			}
		})
	}
}

// Notify never blocks, even with nobody running the actor and a flood of
// progress reports from many goroutines, and no state event in the flood
// is lost: the actor reaches Ready, which it could not if NodeReady,
// LeaderUpdated or CaughtUp had been dropped.
func TestNotifyNeverBlocksNorLosesStateEvents(t *testing.T) {
	l, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if l.State().Phase != Starting {
		t.Fatal("state before Run is not Starting")
	}
	const senders, perSender = 8, 20000
	flooded := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perSender {
					l.NotifySM(sm.Event{Kind: sm.EventApplied, Index: uint64(s*perSender + i + 1)})
				}
			}()
		}
		// State events, interleaved with the flood, as Dragonboat's
		// listener and bootstrap send them...
		for _, ev := range []Event{IdentityKnown{self()}, SMEvent{sm.Event{Kind: sm.EventOpenBegun}},
			SMEvent{sm.Event{Kind: sm.EventOpenDone, Index: 1}}} {
			l.Notify(ev)
		}
		wg.Wait()
		// ...and after it, when a bounded inbox would surely be full.
		selfRow := SMEvent{sm.Event{Kind: sm.EventNodes, Nodes: []sm.NodeInfo{{ReplicaID: 1, NodeID: "n1"}}}}
		for _, ev := range []Event{NodeReady{}, selfRow, LeaderUpdated{1, 2}, CaughtUp{1, 1}} {
			l.Notify(ev)
		}
		close(flooded)
	}()
	select {
	case <-flooded:
	case <-time.After(20 * time.Second):
		t.Fatal("Notify blocked with nobody running the actor")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = l.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for l.State().Phase != Ready {
		if time.Now().After(deadline) {
			t.Fatalf("phase %s, want ready: a state event was lost", l.State().Phase)
		}
		time.Sleep(time.Millisecond)
	}
	st := l.State()
	if st.Progress.AppliedIndex != senders*perSender || st.Dropped != 0 || st.Coalesced == 0 || !reflect.DeepEqual(st.Identity, self()) {
		t.Fatalf("applied %d (want %d), dropped %d, coalesced %d, identity %+v",
			st.Progress.AppliedIndex, senders*perSender, st.Dropped, st.Coalesced, st.Identity)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	l.SetStopping(sctx)
	if l.State().Phase != Stopping {
		t.Fatalf("phase after SetStopping = %s", l.State().Phase)
	}
}

// Events sent just before the actor stops are still applied and published.
func TestRunAppliesQueuedEventsWhenStopping(t *testing.T) {
	l, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.Notify(Failed{Err: "boom"})
	l.Notify(IdentityKnown{self()})
	_ = l.Run(ctx)
	if st := l.State(); st.LastError != "boom" || !reflect.DeepEqual(st.Identity, self()) {
		t.Fatalf("state after stop = %+v", st)
	}
	l.Notify(NodeReady{})
	if l.box.take() != nil {
		t.Fatal("event queued after the actor stopped")
	}
}

// Members are the Raft membership named from the replicated node table; a
// member that never registered is named by its Raft address, this node by
// its identity.
func TestMembersMergeRaftWithNodeTable(t *testing.T) {
	now := time.Unix(0, 0)
	m := NewMachine(now)
	m.Apply(IdentityKnown{Identity: Identity{NodeID: "me", ReplicaID: 1, RaftAddr: "a:1", APIAddr: "a:0"}}, now)
	m.Apply(MembershipChanged{Members: []Member{{ReplicaID: 1, RaftAddr: "a:1", Voter: true},
		{ReplicaID: 7, RaftAddr: "b:1", Voter: true}, {ReplicaID: 9, RaftAddr: "c:1"}}}, now)
	m.Apply(SMEvent{E: sm.Event{Kind: sm.EventNodes, Nodes: []sm.NodeInfo{
		{ReplicaID: 7, NodeID: "n7", APIAddr: "b:0", Voter: true}, {ReplicaID: 3, NodeID: "gone"}}}}, now)
	var got []string
	for _, mem := range m.State().Members {
		got = append(got, fmt.Sprintf("%s/%d/%s/%s/%t", mem.NodeID, mem.ReplicaID, mem.RaftAddr, mem.APIAddr, mem.Voter))
	}
	want := "c:1/9/c:1//false me/1/a:1/a:0/true n7/7/b:1/b:0/true"
	if strings.Join(got, " ") != want {
		t.Fatalf("members = %s\nwant      %s", strings.Join(got, " "), want)
	}
}

// TestReplicaSampleAndRestores: the replica's sample is published as is,
// installs are counted, and a stopping node keeps its last sample.
func TestReplicaSampleAndRestores(t *testing.T) {
	m := NewMachine(t0)
	sample := ReplicaStats{SampledAt: t0, LastLogIndex: 9, CommitIndex: 8, Snapshots: 2, SQLitePath: "/d/db-1.sqlite"}
	m.Apply(ReplicaSampled{Stats: sample}, t0)
	if got := m.State().Replica; !reflect.DeepEqual(got, sample) {
		t.Fatalf("Replica = %+v, want %+v", got, sample)
	}
	for range 2 {
		m.Apply(SMEvent{sm.Event{Kind: sm.EventSnapshotInstallBegun, Index: 5, Total: 10}}, t0)
		m.Apply(SMEvent{sm.Event{Kind: sm.EventSnapshotInstallDone, Index: 5}}, t0)
	}
	if got := m.State().Restores; got != 2 {
		t.Fatalf("Restores = %d, want 2", got)
	}
	m.Apply(ShuttingDown{}, t0)
	if m.Apply(ReplicaSampled{Stats: ReplicaStats{LastLogIndex: 99}}, t0) || m.State().Replica.LastLogIndex != 9 {
		t.Fatalf("a stopping node took a new sample: %+v", m.State().Replica)
	}
}

// TestReadyNeedsAVote: a node configured as a voter is ready only once it
// votes in the committed configuration (DESIGN.md "Cluster membership");
// until then it is joining, awaiting promotion. A read replica is ready as
// a non-voter. Ready also needs the leader named by its node ID.
func TestReadyNeedsAVote(t *testing.T) {
	voter := Identity{NodeID: "n3", ShardID: 1, ReplicaID: 3, Voter: true}
	replica := Identity{NodeID: "n3", ShardID: 1, ReplicaID: 3}
	members := func(selfVoter bool) Event {
		return MembershipChanged{Members: []Member{{ReplicaID: 1, Voter: true}, {ReplicaID: 3, Voter: selfVoter}}}
	}
	table := SMEvent{sm.Event{Kind: sm.EventNodes, Nodes: []sm.NodeInfo{{ReplicaID: 1, NodeID: "n1"}, {ReplicaID: 3, NodeID: "n3"}}}}
	joined := func(id Identity) []Event {
		return []Event{IdentityKnown{id}, JoinBegun{}, SMEvent{sm.Event{Kind: sm.EventOpenBegun}},
			SMEvent{sm.Event{Kind: sm.EventOpenDone}}, NodeReady{}, LeaderUpdated{1, 2}, table}
	}
	cat := func(a []Event, b ...Event) []Event { return append(append([]Event{}, a...), b...) }
	cases := []struct {
		name     string
		events   []Event
		want     Phase
		wantStep string
	}{
		{"voter caught up as a learner: joining, awaiting promotion", cat(joined(voter), members(false), CaughtUp{1, 5}), Joining, StepAwaitingPromotion},
		{"voter promoted, caught up: ready", cat(joined(voter), members(false), CaughtUp{1, 5}, members(true), CaughtUp{1, 6}), Ready, ""},
		{"promotion seen, not yet checked: still joining", cat(joined(voter), members(false), CaughtUp{1, 5}, members(true)), Joining, StepAwaitingPromotion},
		{"voter not in the membership read: joining", cat(joined(voter), CaughtUp{1, 5}), Joining, StepAwaitingPromotion},
		{"read replica caught up as a non-voter: ready", cat(joined(replica), members(false), CaughtUp{1, 5}), Ready, ""},
		{"leader not named yet: recovering", []Event{IdentityKnown{voter}, NodeReady{}, LeaderUpdated{1, 2}, members(true), CaughtUp{1, 5}}, Recovering, StepReplaying},
		{"own row not applied yet: recovering", []Event{IdentityKnown{voter}, NodeReady{}, LeaderUpdated{1, 2}, members(true),
			SMEvent{sm.Event{Kind: sm.EventNodes, Nodes: []sm.NodeInfo{{ReplicaID: 1, NodeID: "n1"}}}}, CaughtUp{1, 5}}, Recovering, StepReplaying},
		{"leader named later: ready", []Event{IdentityKnown{voter}, NodeReady{}, LeaderUpdated{1, 2}, members(true), CaughtUp{1, 5}, table, CaughtUp{1, 5}}, Ready, ""},
		{"snapshot install while awaiting promotion: recovering", cat(joined(voter), members(false), CaughtUp{1, 5},
			SMEvent{sm.Event{Kind: sm.EventSnapshotInstallBegun, Total: 10}}), Recovering, StepInstalling},
		{"awaiting promotion, leader lost: still joining", cat(joined(voter), members(false), CaughtUp{1, 5}, LeaderUpdated{0, 3}), Joining, StepAwaitingPromotion},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(t0)
			for i, ev := range tc.events {
				m.Apply(ev, t0.Add(time.Duration(i+1)*time.Second))
			}
			st := m.State()
			if st.Phase != tc.want || st.Progress.Step != tc.wantStep {
				t.Fatalf("phase %s step %q, want %s %q", st.Phase, st.Progress.Step, tc.want, tc.wantStep)
			}
			// store.leader and readiness agree: a leader is reported only
			// when ready.
			if _, ok := st.ReportedLeader(); ok != (st.Phase == Ready) {
				t.Fatalf("leader reported %v in %s", ok, st.Phase)
			}
			if st.AwaitingPromotion() != (tc.wantStep == StepAwaitingPromotion) {
				t.Fatalf("AwaitingPromotion %v with step %q", st.AwaitingPromotion(), tc.wantStep)
			}
		})
	}
}

// TestRemovedWithReason: a removed node says why, and nothing but shutdown
// moves it on.
func TestRemovedWithReason(t *testing.T) {
	m := NewMachine(t0)
	m.Apply(IdentityKnown{self()}, t0)
	m.Apply(NodeReady{}, t0)
	m.Apply(LeaderUpdated{1, 1}, t0)
	m.Apply(CaughtUp{1, 1}, t0)
	m.Apply(RemovedFromCluster{Reason: "member n2 lists replica 1 as removed"}, t0)
	m.Apply(LeaderUpdated{2, 2}, t0)
	m.Apply(CaughtUp{2, 2}, t0)
	st := m.State()
	if st.Phase != Removed || st.LastError != "this node was removed from the cluster: member n2 lists replica 1 as removed" {
		t.Fatalf("phase %s, last error %q", st.Phase, st.LastError)
	}
	if _, ok := st.ReportedLeader(); ok || st.LeaderReplicaID != 0 {
		t.Fatalf("a removed node reports a leader: %d", st.LeaderReplicaID)
	}
	m.Apply(ShuttingDown{}, t0)
	if m.State().Phase != Stopping {
		t.Fatalf("phase %s after shutdown, want stopping", m.State().Phase)
	}
}

// The counters /metrics reads: entries replayed since open (and since an
// installed snapshot), snapshots sent and installed with their bytes.
func TestSnapshotAndReplayCounters(t *testing.T) {
	m := NewMachine(t0)
	m.Apply(IdentityKnown{self()}, t0)
	m.Apply(SMEvent{sm.Event{Kind: sm.EventOpenBegun, Bytes: 4096}}, t0)
	m.Apply(SMEvent{sm.Event{Kind: sm.EventOpenDone, Index: 100}}, t0)
	m.Apply(applied(130), t0)
	if p := m.State().Progress; p.OpenIndex != 100 || p.AppliedIndex-p.OpenIndex != 30 {
		t.Fatalf("after open at 100 and applying to 130: %+v", p)
	}
	// Progress reports of a send do not count; the whole send does.
	m.Apply(SMEvent{sm.Event{Kind: sm.EventSnapshotSendProgress, Bytes: 10, Total: 500}}, t0)
	m.Apply(SMEvent{sm.Event{Kind: sm.EventSnapshotSent, Bytes: 500, Total: 500}}, t0)
	m.Apply(SMEvent{sm.Event{Kind: sm.EventSnapshotSent, Bytes: 700, Total: 700}}, t0)
	if st := m.State(); st.SnapshotsSent != 2 || st.SentBytes != 1200 {
		t.Fatalf("sent %d snapshots of %d bytes, want 2 of 1200", st.SnapshotsSent, st.SentBytes)
	}
	m.Apply(SMEvent{sm.Event{Kind: sm.EventSnapshotInstallBegun, Index: 900, Total: 2000}}, t0)
	m.Apply(SMEvent{sm.Event{Kind: sm.EventSnapshotInstallProgress, Bytes: 1000, Total: 2000}}, t0)
	m.Apply(SMEvent{sm.Event{Kind: sm.EventSnapshotInstallDone, Index: 900}}, t0)
	st := m.State()
	if st.Restores != 1 || st.InstalledBytes != 2000 || st.Progress.OpenIndex != 900 || st.Progress.AppliedIndex != 900 {
		t.Fatalf("after an install at 900: restores %d, installed %d bytes, %+v", st.Restores, st.InstalledBytes, st.Progress)
	}
}

// TestLeaderContact: contact is when the node heard from its current
// leader, never later than now, and never moves back (API.md 1.8's
// freshness is measured from it).
func TestLeaderContact(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	cases := []struct {
		name string
		ev   LeaderContact
		now  time.Time
		want time.Time // LastLeaderContact after; the leader was named at 10 s
	}{
		{"heard at a time: that time", LeaderContact{LeaderReplicaID: 2, At: at(12)}, at(13), at(12)},
		{"no time: now", LeaderContact{LeaderReplicaID: 2}, at(13), at(13)},
		{"a time ahead of now: now", LeaderContact{LeaderReplicaID: 2, At: at(20)}, at(13), at(13)},
		{"older than the last contact: kept", LeaderContact{LeaderReplicaID: 2, At: at(9)}, at(13), at(10)},
		{"from another replica: ignored", LeaderContact{LeaderReplicaID: 3, At: at(12)}, at(13), at(10)},
		{"no leader named: ignored", LeaderContact{At: at(12)}, at(13), at(10)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(t0)
			m.Apply(IdentityKnown{self()}, t0)
			m.Apply(LeaderUpdated{2, 3}, at(10))
			m.Apply(tc.ev, tc.now)
			if got := m.State().LastLeaderContact; !got.Equal(tc.want) {
				t.Fatalf("LastLeaderContact = %v, want %v", got.Sub(t0), tc.want.Sub(t0))
			}
		})
	}
}
