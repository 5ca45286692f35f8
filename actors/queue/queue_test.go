package queue

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/skiffdb/skiff/actors"
	"github.com/skiffdb/skiff/sm/cmdpb"
)

// errTimeout stands for a proposal whose outcome is unknown (the replica's
// ErrTimeout): it may have committed.
var errTimeout = errors.New("timeout")

type call struct {
	id   []byte
	sqls []string
}

// fakeExec applies batches as the state machine does: a request ID that
// was applied already is answered without applying again.
type fakeExec struct {
	mu      sync.Mutex
	batches [][]string // applied
	tx      []bool
	calls   []call // every attempt, applied or not
	applied map[string]bool
	fail    int // fail this many calls first, without applying
	// commitThenFail: this many calls apply the batch, then report a
	// timeout (the proposal committed but the caller did not hear back).
	commitThenFail int
	// before, if set, runs first in every call, outside the lock; n counts
	// calls from 0. An error it returns is the call's.
	before func(ctx context.Context, n int) error
}

func (f *fakeExec) Execute(ctx context.Context, req *cmdpb.Request) (*cmdpb.Response, error) {
	var b []string
	for _, s := range req.Statements {
		b = append(b, s.Sql)
	}
	id, _ := actors.RequestID(ctx)
	f.mu.Lock()
	n := len(f.calls)
	f.calls = append(f.calls, call{id: id, sqls: b})
	f.mu.Unlock()
	if f.before != nil {
		if err := f.before(ctx, n); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return nil, errors.New("leader not found")
	}
	if len(id) > 0 && f.applied[string(id)] {
		return &cmdpb.Response{}, nil // deduplicated: the first result
	}
	if f.applied == nil {
		f.applied = make(map[string]bool)
	}
	if len(id) > 0 {
		f.applied[string(id)] = true
	}
	f.batches = append(f.batches, b)
	f.tx = append(f.tx, req.Transaction)
	if f.commitThenFail > 0 {
		f.commitThenFail--
		return nil, errTimeout
	}
	return &cmdpb.Response{}, nil
}

func (f *fakeExec) snapshot() ([][]string, []bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.batches...), append([]bool(nil), f.tx...)
}

func (f *fakeExec) attempts() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func start(t *testing.T, cfg Config, ex Executor) (*Queue, context.CancelFunc) {
	t.Helper()
	q, err := New(cfg, ex)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = q.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return q, cancel
}

func stmt(s string) []*cmdpb.Statement { return []*cmdpb.Statement{{Sql: s}} }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestBatchesBySizeAndTimeoutInOrder(t *testing.T) {
	ex := &fakeExec{}
	q, _ := start(t, Config{BatchSize: 3, Timeout: 20 * time.Millisecond, Tx: true}, ex)
	var last int64
	for _, s := range []string{"a", "b", "c", "d"} {
		seq, err := q.Enqueue(ctxT(t), stmt(s))
		if err != nil {
			t.Fatal(err)
		}
		if seq <= last {
			t.Fatalf("sequence %d after %d: not increasing", seq, last)
		}
		last = seq
	}
	if err := q.Wait(ctxT(t), last); err != nil {
		t.Fatal(err)
	}
	batches, tx := ex.snapshot()
	if len(batches) != 2 || len(batches[0]) != 3 || batches[1][0] != "d" || !tx[0] {
		t.Fatalf("batches = %v tx = %v", batches, tx)
	}
	st, err := q.Stats(ctxT(t))
	if err != nil || st.SequenceNumber != last {
		t.Fatalf("stats = %+v %v, want sequence %d", st, err, last)
	}
}

func TestFailedBatchIsRetried(t *testing.T) {
	ex := &fakeExec{fail: 2}
	q, _ := start(t, Config{BatchSize: 1, RetryInterval: 10 * time.Millisecond}, ex)
	seq, err := q.Enqueue(ctxT(t), stmt("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Wait(ctxT(t), seq); err != nil {
		t.Fatal(err)
	}
	if b, _ := ex.snapshot(); len(b) != 1 {
		t.Fatalf("batches = %v", b)
	}
}

func TestWaitTimesOut(t *testing.T) {
	ex := &fakeExec{fail: 1 << 30}
	q, _ := start(t, Config{BatchSize: 1, RetryInterval: 10 * time.Millisecond, ShutdownGrace: 10 * time.Millisecond}, ex)
	seq, _ := q.Enqueue(ctxT(t), stmt("x"))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.Wait(ctx, seq); !errors.Is(err, ErrWaitTimeout) {
		t.Fatalf("Wait = %v", err)
	}
}

func TestFullQueueAppliesBackPressure(t *testing.T) {
	ex := &fakeExec{fail: 1 << 30}
	q, _ := start(t, Config{Capacity: 2, BatchSize: 100, Timeout: time.Hour, ShutdownGrace: 10 * time.Millisecond}, ex)
	for range 2 {
		if _, err := q.Enqueue(ctxT(t), stmt("x")); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := q.Enqueue(ctx, stmt("y")); err == nil {
		t.Fatal("enqueue into a full queue did not wait")
	}
}

func TestShutdownFlushesPending(t *testing.T) {
	ex := &fakeExec{}
	q, cancel := start(t, Config{BatchSize: 100, Timeout: time.Hour}, ex)
	if _, err := q.Enqueue(ctxT(t), stmt("late")); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-q.done.C()
	if b, _ := ex.snapshot(); len(b) != 1 || b[0][0] != "late" {
		t.Fatalf("batches after shutdown = %v", b)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{Capacity: -1}, {ShutdownGrace: -time.Second}} {
		if err := c.WithDefaults().Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("%+v: %v", c, err)
		}
	}
	if g := (Config{}).WithDefaults().ShutdownGrace; g != DefaultShutdownGrace {
		t.Fatalf("default shutdown grace = %s", g)
	}
}

// Every attempt at a batch carries the request ID chosen when the batch was
// formed; different batches have different IDs. So a retry of an attempt
// that timed out after committing is deduplicated, not applied twice.
func TestRetriesReuseTheBatchRequestID(t *testing.T) {
	cases := []struct {
		name           string
		fail           int
		commitThenFail int
		wantAttempts   int
	}{
		{name: "first attempt succeeds", wantAttempts: 3},
		{name: "no leader twice, then written", fail: 2, wantAttempts: 5},
		{name: "committed but timed out, retried", commitThenFail: 1, wantAttempts: 4},
		{name: "timed out, no leader, timed out, then answered", fail: 1, commitThenFail: 2, wantAttempts: 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ex := &fakeExec{fail: tc.fail, commitThenFail: tc.commitThenFail}
			q, _ := start(t, Config{BatchSize: 1, RetryInterval: time.Millisecond}, ex)
			var last int64
			for _, s := range []string{"a", "b", "c"} {
				seq, err := q.Enqueue(ctxT(t), stmt(s))
				if err != nil {
					t.Fatal(err)
				}
				last = seq
			}
			if err := q.Wait(ctxT(t), last); err != nil {
				t.Fatal(err)
			}
			if b, _ := ex.snapshot(); !reflect.DeepEqual(b, [][]string{{"a"}, {"b"}, {"c"}}) {
				t.Fatalf("applied batches = %v, want each once, in order", b)
			}
			calls := ex.attempts()
			if len(calls) != tc.wantAttempts {
				t.Fatalf("%d attempts, want %d", len(calls), tc.wantAttempts)
			}
			idOf := map[string]string{} // batch -> request ID
			batchOf := map[string]string{}
			for _, c := range calls {
				if len(c.id) == 0 {
					t.Fatalf("attempt at %v carries no request ID", c.sqls)
				}
				key, id := fmt.Sprint(c.sqls), string(c.id)
				if prev, ok := idOf[key]; ok && prev != id {
					t.Fatalf("retry of batch %s changed its request ID", key)
				}
				if prev, ok := batchOf[id]; ok && prev != key {
					t.Fatalf("batches %s and %s share a request ID", prev, key)
				}
				idOf[key], batchOf[id] = id, key
			}
		})
	}
}

// Shutdown drains: the batch in flight finishes (its proposal is not
// cancelled with the actor), what is still queued is written after it in
// order, and whatever the grace cannot write is counted in the log.
func TestShutdownDrains(t *testing.T) {
	type blocked struct {
		started chan struct{} // closed when the first attempt begins
		release chan struct{} // closed by the test after shutdown began
	}
	cases := []struct {
		name string
		cfg  Config
		// before is the executor's hook; b lets it block the first call.
		before  func(b blocked) func(ctx context.Context, n int) error
		fail    int
		enqueue []string
		// block: shut down while the first batch is being proposed.
		block       bool
		wantBatches [][]string
		wantDropped int // 0: drained, no drop logged
	}{
		{
			name: "batch in flight at shutdown finishes",
			cfg:  Config{BatchSize: 1, Timeout: time.Hour},
			before: func(b blocked) func(ctx context.Context, n int) error {
				return func(ctx context.Context, n int) error {
					if n == 0 {
						close(b.started)
						<-b.release
					}
					return ctx.Err() // a cancelled proposal fails
				}
			},
			enqueue: []string{"a"}, block: true,
			wantBatches: [][]string{{"a"}},
		},
		{
			name: "queued writes behind the batch in flight are written in batches, in order",
			cfg:  Config{BatchSize: 2, Timeout: time.Hour},
			before: func(b blocked) func(ctx context.Context, n int) error {
				return func(ctx context.Context, n int) error {
					if n == 0 {
						close(b.started)
						<-b.release
					}
					return ctx.Err()
				}
			},
			enqueue: []string{"a", "b", "c", "d", "e", "f", "g"}, block: true,
			wantBatches: [][]string{{"a", "b"}, {"c", "d"}, {"e", "f"}, {"g"}},
		},
		{
			name:        "queued writes below batch size are written at shutdown",
			cfg:         Config{BatchSize: 100, Timeout: time.Hour},
			enqueue:     []string{"a", "b"},
			wantBatches: [][]string{{"a", "b"}},
		},
		{
			name:        "leader back within the grace: retried and written",
			cfg:         Config{BatchSize: 100, Timeout: time.Hour, RetryInterval: 5 * time.Millisecond},
			fail:        3,
			enqueue:     []string{"a", "b"},
			wantBatches: [][]string{{"a", "b"}},
		},
		{
			name:        "no leader for the whole grace: dropped and counted",
			cfg:         Config{BatchSize: 2, Timeout: time.Hour, RetryInterval: 5 * time.Millisecond, ShutdownGrace: 50 * time.Millisecond},
			fail:        1 << 30,
			enqueue:     []string{"a", "b", "c"},
			wantDropped: 3,
		},
		{
			name: "proposal hanging past the grace is cancelled and counted",
			cfg:  Config{BatchSize: 1, Timeout: time.Hour, ShutdownGrace: 50 * time.Millisecond},
			before: func(b blocked) func(ctx context.Context, n int) error {
				return func(ctx context.Context, n int) error {
					if n == 0 {
						close(b.started)
					}
					<-ctx.Done()
					return ctx.Err()
				}
			},
			enqueue: []string{"a", "b", "c"}, block: true,
			wantDropped: 3,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := blocked{started: make(chan struct{}), release: make(chan struct{})}
			ex := &fakeExec{fail: tc.fail}
			if tc.before != nil {
				ex.before = tc.before(b)
			}
			core, logs := observer.New(zap.InfoLevel)
			cfg := tc.cfg
			cfg.Logger = zap.New(core)
			q, cancel := start(t, cfg, ex)
			for _, s := range tc.enqueue {
				if _, err := q.Enqueue(ctxT(t), stmt(s)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.block {
				select {
				case <-b.started:
				case <-time.After(5 * time.Second):
					t.Fatal("first batch never proposed")
				}
			}
			t0 := time.Now()
			cancel()
			close(b.release)
			select {
			case <-q.done.C():
			case <-time.After(5 * time.Second):
				t.Fatal("queue did not stop")
			}
			if el, bound := time.Since(t0), cfg.WithDefaults().ShutdownGrace+time.Second; el > bound {
				t.Fatalf("drain took %s, bound %s", el, bound)
			}
			if got, _ := ex.snapshot(); !reflect.DeepEqual(got, tc.wantBatches) {
				t.Fatalf("batches = %v, want %v", got, tc.wantBatches)
			}
			drops := logs.FilterMessage("queued writes dropped at shutdown").All()
			switch {
			case tc.wantDropped == 0 && len(drops) != 0:
				t.Fatalf("drop logged: %v", drops[0].ContextMap())
			case tc.wantDropped > 0 && len(drops) != 1:
				t.Fatalf("%d drop logs, want 1", len(drops))
			case tc.wantDropped > 0:
				if n := drops[0].ContextMap()["dropped_requests"]; n != int64(tc.wantDropped) {
					t.Fatalf("dropped_requests = %v, want %d", n, tc.wantDropped)
				}
			}
			// Once stopped, the queue refuses work at once.
			if _, err := q.Enqueue(ctxT(t), stmt("late")); !errors.Is(err, actors.ErrStopped) {
				t.Fatalf("Enqueue after stop = %v", err)
			}
		})
	}
}
