package lifecycle

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/skiffdb/skiff/sm"
)

// waitFor polls the published state until cond holds (bounded).
func waitFor(t *testing.T, l *Lifecycle, what string, cond func(*State) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(l.State()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Changed wakes its waiters when the phase changes, not when progress
// counters move (they change on every apply).
func TestChangedOnRoleOnly(t *testing.T) {
	l, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	ch := l.Changed()
	l.NotifySM(sm.Event{Kind: sm.EventApplied, Index: 7})
	waitFor(t, l, "applied index 7", func(s *State) bool { return s.Progress.AppliedIndex == 7 })
	select {
	case <-ch:
		t.Fatal("Changed closed by a progress report")
	default:
	}

	members := []Member{{ReplicaID: 1, RaftAddr: "127.0.0.1:4002", Voter: true}}
	l.Notify(MembershipChanged{Members: members})
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("Changed not closed by a membership change")
	}
	ch = l.Changed()
	// The same membership read again is no change.
	l.Notify(MembershipChanged{Members: slices.Clone(members)})
	l.NotifySM(sm.Event{Kind: sm.EventApplied, Index: 8})
	waitFor(t, l, "applied index 8", func(s *State) bool { return s.Progress.AppliedIndex == 8 })
	select {
	case <-ch:
		t.Fatal("Changed closed by an unchanged membership")
	default:
	}

	l.Notify(ShuttingDown{})
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("Changed not closed by the move to stopping")
	}
	if l.State().Phase != Stopping {
		t.Fatalf("phase %s after Changed fired, want %s", l.State().Phase, Stopping)
	}
	if l.Changed() == ch {
		t.Fatal("Changed returned the closed channel again")
	}
}
