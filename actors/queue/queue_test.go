package queue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

type fakeExec struct {
	mu      sync.Mutex
	batches [][]string
	fail    int // fail this many calls first
	tx      []bool
}

func (f *fakeExec) Execute(_ context.Context, req *cmdpb.Request) (*cmdpb.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return nil, errors.New("leader not found")
	}
	var b []string
	for _, s := range req.Statements {
		b = append(b, s.Sql)
	}
	f.batches = append(f.batches, b)
	f.tx = append(f.tx, req.Transaction)
	return &cmdpb.Response{}, nil
}

func (f *fakeExec) snapshot() ([][]string, []bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.batches...), append([]bool(nil), f.tx...)
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
	q, _ := start(t, Config{BatchSize: 1, RetryInterval: 10 * time.Millisecond}, ex)
	seq, _ := q.Enqueue(ctxT(t), stmt("x"))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.Wait(ctx, seq); !errors.Is(err, ErrWaitTimeout) {
		t.Fatalf("Wait = %v", err)
	}
}

func TestFullQueueAppliesBackPressure(t *testing.T) {
	ex := &fakeExec{fail: 1 << 30}
	q, _ := start(t, Config{Capacity: 2, BatchSize: 100, Timeout: time.Hour}, ex)
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
	if err := (Config{Capacity: -1}).WithDefaults().Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatal(err)
	}
}
