package sm

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A read that finds a schema change being committed waits for the commit
// to end (the channel it closes), its context or its deadline: no poll.
func TestAwaitSchemaCommit(t *testing.T) {
	for _, tc := range []struct {
		name       string
		committing bool          // a schema change is being committed
		commitIn   time.Duration // it ends after this (0: never, in the test)
		cancel     bool          // the read's context is cancelled
		deadline   time.Duration // the read's deadline (0: none)
		want       error
	}{
		{name: "no schema change", want: nil},
		{name: "the commit ends", committing: true, commitIn: 20 * time.Millisecond, want: nil},
		{name: "the read is cancelled", committing: true, cancel: true, want: context.Canceled},
		{name: "the deadline passes", committing: true, deadline: 20 * time.Millisecond, want: context.DeadlineExceeded},
		{name: "the deadline has passed", committing: true, deadline: -time.Millisecond, want: context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &StateMachine{}
			if tc.committing {
				// What commitTx does around a commit that changes the schema.
				committed := make(chan struct{})
				s.schemaCommitted.Store(&committed)
				s.schemaGen.Add(1)
				if tc.commitIn > 0 {
					time.AfterFunc(tc.commitIn, func() {
						s.schemaGen.Add(1)
						close(committed)
					})
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				time.AfterFunc(20*time.Millisecond, cancel)
			}
			var deadline time.Time
			if tc.deadline != 0 {
				deadline = time.Now().Add(tc.deadline)
			}
			done := make(chan error, 1)
			go func() { done <- s.awaitSchemaCommit(ctx, deadline) }()
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Fatalf("awaitSchemaCommit = %v, want %v", err, tc.want)
				}
				if tc.commitIn > 0 && s.schemaGen.Load()%2 == 1 {
					t.Fatal("returned while the commit still ran")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("still waiting")
			}
		})
	}
}
