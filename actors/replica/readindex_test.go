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
	x := newReadRounds(nil, 0, 1, 0, 0)
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
	go func() { first <- x.wait(context.Background(), time.Time{}) }()
	if n := <-started; n != 1 {
		t.Fatalf("round %d started first", n)
	}
	second := make(chan error, 1)
	go func() { second <- x.wait(context.Background(), time.Time{}) }()
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
	x := newReadRounds(nil, 0, 1, 0, 0)
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
				if err := x.wait(context.Background(), time.Time{}); err != nil {
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
		// The deadline comes as the context's, or as a value: with a
		// timer from the start (bound 0), with one once it is near (bound
		// 20 ms), or looked at only between rounds (bound an hour).
		for _, how := range []struct {
			name  string
			value bool
			bound time.Duration
		}{{"context", false, 0}, {"value, timer", true, 0}, {"value, timer when near", true, 20 * time.Millisecond}, {"value, between rounds", true, time.Hour}} {
			t.Run(tc.name+", "+how.name, func(t *testing.T) {
				x := newReadRounds(nil, 0, 1, 0, how.bound)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var rounds atomic.Int32
				go x.run(ctx, func(context.Context) error {
					n := int(rounds.Add(1))
					time.Sleep(time.Millisecond)
					return tc.results[min(n, len(tc.results))-1]
				})
				rctx, deadline := context.Background(), time.Now().Add(tc.deadline)
				if !how.value {
					var rcancel context.CancelFunc
					rctx, rcancel = context.WithDeadline(rctx, deadline)
					defer rcancel()
					deadline = time.Time{}
				}
				if err := x.wait(rctx, deadline); !errors.Is(err, tc.want) {
					t.Fatalf("wait = %v, want %v", err, tc.want)
				}
				if tc.rounds >= 0 && rounds.Load() != tc.rounds {
					t.Fatalf("%d rounds, want %d", rounds.Load(), tc.rounds)
				}
			})
		}
	}
}

// A read whose client goes away stops waiting, with its deadline far
// away and no timer (a deadline as a value, beyond bound).
func TestReadRoundsCancelled(t *testing.T) {
	x := newReadRounds(nil, 0, 1, 0, time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go x.run(ctx, func(ctx context.Context) error {
		<-ctx.Done()
		return dragonboat.ErrClosed
	})
	rctx, rcancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, rcancel)
	if err := x.wait(rctx, time.Now().Add(time.Hour)); !errors.Is(err, dragonboat.ErrCanceled) {
		t.Fatalf("wait = %v, want ErrCanceled", err)
	}
}

// When the loop stops (shutdown), a waiting read fails at once.
func TestReadRoundsStop(t *testing.T) {
	x := newReadRounds(nil, 0, 1, 0, 0)
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
	go func() { first <- x.wait(context.Background(), time.Time{}) }()
	time.Sleep(10 * time.Millisecond)
	second := make(chan error, 1)
	go func() { second <- x.wait(context.Background(), time.Time{}) }()
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

// Under load a round is held for the readers of the round before: after
// a round of at least busy reads, the next starts once that round's
// readers are back and as many more as joined while it was in flight (at
// most gather), or hold after it started; after a smaller round, at once.
func TestReadRoundsRegather(t *testing.T) {
	const hold = 300 * time.Millisecond
	tests := []struct {
		name string
		// first: reads in the first round; second: reads that join the
		// next while the first is in flight; back: reads that join it 50
		// ms after the first ended (the first round's readers, back).
		first, second, back, gather, busy int
		hold                              time.Duration
		// want: how long the next round waits after the first started:
		// 0 not held, hold the whole hold, -1 until the readers were back.
		want time.Duration
	}{
		{name: "a busy round, its readers not back: held", first: 3, second: 2, gather: 8, busy: 3, hold: hold, want: hold},
		{name: "a busy round, its readers back: held until then", first: 3, second: 2, back: 3, gather: 8, busy: 3, hold: hold, want: -1},
		{name: "some of its readers back: held", first: 3, second: 2, back: 2, gather: 8, busy: 3, hold: hold, want: hold},
		{name: "gather waiting: held until then", first: 3, second: 2, back: 2, gather: 4, busy: 3, hold: hold, want: -1},
		{name: "gather waiting at once: not held", first: 5, second: 4, gather: 4, busy: 3, hold: hold},
		{name: "a light round: not held", first: 2, second: 1, gather: 8, busy: 3, hold: hold},
		{name: "hold off", first: 3, second: 2, gather: 8, busy: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := newReadRounds(nil, tc.hold, tc.gather, tc.busy, 0)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			starts := make(chan time.Time, 10)
			release := make(chan struct{}, 10)
			go x.run(ctx, func(context.Context) error {
				starts <- time.Now()
				<-release
				return nil
			})
			errs := make(chan error, 1+tc.first+tc.second+tc.back)
			read := func(n int) {
				for range n {
					go func() { errs <- x.wait(context.Background(), time.Time{}) }()
				}
			}
			join := func(n int) { read(n); waitWaiters(t, x, n) }
			// A round of one in flight while the first round's reads
			// join, and the first in flight while the second's join.
			go func() { errs <- x.wait(context.Background(), time.Time{}) }()
			<-starts
			join(tc.first)
			release <- struct{}{}
			first := <-starts
			join(tc.second)
			release <- struct{}{}
			var back time.Time
			if tc.back > 0 {
				time.Sleep(50 * time.Millisecond)
				back = time.Now()
				read(tc.back) // may start the round at once: no waitWaiters
			}
			second := <-starts
			release <- struct{}{}
			for range 1 + tc.first + tc.second + tc.back {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			held := second.Sub(first)
			switch {
			case tc.want == 0 && held >= hold/2:
				t.Fatalf("the next round was held %v", held)
			case tc.want > 0 && held < tc.want:
				t.Fatalf("the next round started %v after the first, want at least %v", held, tc.want)
			case tc.want < 0 && (second.Before(back) || held >= hold):
				t.Fatalf("the next round started %v after the first, the readers were back at %v",
					held, back.Sub(first))
			}
		})
	}
}

// waitWaiters waits until the forming round has n reads.
func waitWaiters(t *testing.T, x *readRounds, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		x.mu.Lock()
		w := x.next.waiters
		x.mu.Unlock()
		if w >= n {
			return
		}
	}
	t.Fatalf("fewer than %d reads joined", n)
}
