package replica

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4"
)

// A read that arrives while a round is in flight is not answered by that
// round (its index may predate the read): it waits for the next one.
func TestReadRoundsLaterReadWaitsForNextRound(t *testing.T) {
	x := newReadRounds(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan int, 10)
	release := make(chan struct{}, 10)
	var rounds atomic.Int32
	go x.run(ctx, func(context.Context) error {
		started <- int(rounds.Add(1))
		<-release
		return nil
	})
	first := make(chan error, 1)
	go func() { first <- x.wait(context.Background()) }()
	if n := <-started; n != 1 {
		t.Fatalf("round %d started first", n)
	}
	second := make(chan error, 1)
	go func() { second <- x.wait(context.Background()) }()
	time.Sleep(20 * time.Millisecond) // the second read has joined round 2
	release <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-second:
		t.Fatalf("the later read was answered by the earlier round (%v)", err)
	case n := <-started:
		if n != 2 {
			t.Fatalf("round %d started second", n)
		}
	}
	release <- struct{}{}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
}

// Concurrent reads share rounds.
func TestReadRoundsBatch(t *testing.T) {
	x := newReadRounds(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var rounds atomic.Int32
	go x.run(ctx, func(context.Context) error {
		rounds.Add(1)
		time.Sleep(2 * time.Millisecond)
		return nil
	})
	var wg sync.WaitGroup
	const readers, each = 32, 50
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := x.wait(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := rounds.Load(); n >= readers*each/4 {
		t.Fatalf("%d rounds for %d reads", n, readers*each)
	}
	t.Logf("%d reads in %d rounds", readers*each, rounds.Load())
}

func TestReadRoundsErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		results  []error // what successive rounds return
		deadline time.Duration
		want     error
		rounds   int32
	}{
		{"confirmed", []error{nil}, time.Second, nil, 1},
		{"not ready is the read's answer", []error{dragonboat.ErrShardNotReady}, time.Second, dragonboat.ErrShardNotReady, 1},
		{"a timed-out round is retried", []error{dragonboat.ErrTimeout, dragonboat.ErrTimeout, nil}, time.Second, nil, 3},
		{"until the read's deadline", []error{dragonboat.ErrTimeout}, 50 * time.Millisecond, dragonboat.ErrTimeout, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newReadRounds(nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var rounds atomic.Int32
			go x.run(ctx, func(context.Context) error {
				n := int(rounds.Add(1))
				time.Sleep(time.Millisecond)
				return tc.results[min(n, len(tc.results))-1]
			})
			rctx, rcancel := context.WithTimeout(context.Background(), tc.deadline)
			defer rcancel()
			if err := x.wait(rctx); !errors.Is(err, tc.want) {
				t.Fatalf("wait = %v, want %v", err, tc.want)
			}
			if tc.rounds >= 0 && rounds.Load() != tc.rounds {
				t.Fatalf("%d rounds, want %d", rounds.Load(), tc.rounds)
			}
		})
	}
}

// When the loop stops (shutdown), a waiting read fails at once.
func TestReadRoundsStop(t *testing.T) {
	x := newReadRounds(nil)
	ctx, cancel := context.WithCancel(context.Background())
	block := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		x.run(ctx, func(ctx context.Context) error {
			<-ctx.Done()
			close(block)
			return dragonboat.ErrClosed
		})
	}()
	first := make(chan error, 1)
	go func() { first <- x.wait(context.Background()) }()
	time.Sleep(10 * time.Millisecond)
	second := make(chan error, 1)
	go func() { second <- x.wait(context.Background()) }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	<-block
	for _, c := range []chan error{first, second} {
		select {
		case err := <-c:
			if !errors.Is(err, dragonboat.ErrClosed) {
				t.Fatalf("wait = %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a read still waits after the loop stopped")
		}
	}
	<-stopped
}

// run is Run with confirm set, for tests that build the rounds first.
func (x *readRounds) run(ctx context.Context, confirm func(context.Context) error) {
	x.confirm = confirm
	_ = x.Run(ctx)
}
