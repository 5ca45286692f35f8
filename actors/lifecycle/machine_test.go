package lifecycle

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/skiffdb/skiff/sm"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func self() Identity { return Identity{NodeID: "n1", ShardID: 1, ReplicaID: 1} }

// TestTransitions drives every transition of DESIGN.md's table
// synchronously: each case starts from a phase and applies events in order.
func TestTransitions(t *testing.T) {
	toReady := []Event{IdentityKnown{self()}, SMEvent{sm.Event{Kind: sm.EventOpenBegun, Bytes: 4096}},
		SMEvent{sm.Event{Kind: sm.EventOpenDone, Index: 7}}, NodeReady{}, LeaderUpdated{1, 2}, CaughtUp{1, 7}}
	cases := []struct {
		name   string
		events []Event
		want   Phase
	}{
		{"new node starts", nil, Starting},
		{"open begins", toReady[:2], Opening},
		{"open done: recovering (replaying the log)", toReady[:3], Recovering},
		{"node ready without leader: still recovering", toReady[:4], Recovering},
		{"leader known but not caught up: recovering", toReady[:5], Recovering},
		{"caught up with the leader: ready", toReady, Ready},
		{"join begins", []Event{JoinBegun{}}, Joining},
		{"joiner opens", []Event{JoinBegun{}, SMEvent{sm.Event{Kind: sm.EventOpenBegun}}}, Opening},
		{"joiner added and opened", []Event{JoinBegun{}, NodeReady{}}, Recovering},
		{"ready loses leader: degraded", append(append([]Event{}, toReady...), LeaderUpdated{0, 3}), Degraded},
		{"degraded, new leader, not yet checked", append(append([]Event{}, toReady...), LeaderUpdated{0, 3}, LeaderUpdated{1, 3}), Degraded},
		{"degraded, caught up again: ready", append(append([]Event{}, toReady...), LeaderUpdated{0, 3}, LeaderUpdated{1, 3}, CaughtUp{1, 9}), Ready},
		{"catch-up for an old leader is ignored", append(append([]Event{}, toReady[:4]...), LeaderUpdated{2, 3}, CaughtUp{1, 9}), Recovering},
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

func TestActorPublishesAndCountsDrops(t *testing.T) {
	l, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if l.State().Phase != Starting {
		t.Fatal("state before Run is not Starting")
	}
	// Nobody runs the actor yet: fill the inbox past its size.
	for range eventBuffer + 10 {
		l.NotifySM(sm.Event{Kind: sm.EventApplied, Index: 1})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = l.Run(ctx); close(done) }()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	l.SetStopping(sctx)
	st := l.State()
	if st.Phase != Stopping || st.Dropped < 10 {
		t.Fatalf("state = %s dropped %d", st.Phase, st.Dropped)
	}
	cancel()
	<-done
}
