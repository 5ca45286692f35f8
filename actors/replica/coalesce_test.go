package replica

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/actors"
	"github.com/skiffdb/skiff/sm/cmdpb"
)

// Concurrent writers share log entries, and each still gets its own
// answer: its own last_insert_id, its own error, its row written once.
func TestConcurrentWritesShareEntriesAndAnswerAlone(t *testing.T) {
	n := startNode(t, t.TempDir(), freeAddr(t))
	defer n.stop(t)
	if _, err := n.r.Execute(ctxT(t), &cmdpb.Request{Statements: []*cmdpb.Statement{{Sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)"}}}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 32, 20
	type answer struct {
		v     string
		resp  *cmdpb.Response
		dup   bool
		index uint64
	}
	answers := make(chan answer, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				v := fmt.Sprintf("w%d-%d", w, i)
				dup := i == 3 // every writer also sends one duplicate, which must fail alone
				if dup {
					v = fmt.Sprintf("w%d-%d", w, 2)
				}
				resp, err := n.r.Execute(ctxT(t), &cmdpb.Request{Statements: []*cmdpb.Statement{{
					Sql: "INSERT INTO t (v) VALUES (?)", Parameters: []*cmdpb.Parameter{{Value: &cmdpb.Parameter_S{S: v}}}}}})
				if err != nil {
					t.Error(err)
					return
				}
				answers <- answer{v: v, resp: resp, dup: dup, index: resp.RaftIndex}
			}
		}()
	}
	wg.Wait()
	close(answers)
	ids := map[int64]string{}
	entries := map[uint64]int{}
	total := 0
	for a := range answers {
		total++
		entries[a.index]++
		if len(a.resp.Results) != 1 {
			t.Fatalf("%s: %v", a.v, a.resp)
		}
		r := a.resp.Results[0]
		if a.dup {
			if r.Error == "" {
				t.Fatalf("duplicate %s succeeded: %v", a.v, r)
			}
			continue
		}
		if r.Error != "" || r.RowsAffected != 1 || r.LastInsertId == 0 {
			t.Fatalf("%s: %v", a.v, r)
		}
		if other, ok := ids[r.LastInsertId]; ok {
			t.Fatalf("%s and %s both answered last_insert_id %d", a.v, other, r.LastInsertId)
		}
		ids[r.LastInsertId] = a.v
	}
	if total != writers*each {
		t.Fatalf("%d answers, want %d", total, writers*each)
	}
	out, err := n.r.Query(ctxT(t), req("SELECT id, v FROM t"), ReadOptions{Level: LevelLinearizable})
	if err != nil {
		t.Fatal(err)
	}
	rows := out.Results[0].Rows
	if len(rows) != len(ids) {
		t.Fatalf("%d rows, %d acknowledged inserts", len(rows), len(ids))
	}
	for _, row := range rows {
		if ids[row.Values[0].GetI()] != row.Values[1].GetS() {
			t.Fatalf("row %v was answered as %q", row, ids[row.Values[0].GetI()])
		}
	}
	if len(entries) >= total {
		t.Fatalf("%d writes took %d entries: none were coalesced", total, len(entries))
	}
	t.Logf("%d writes in %d entries", total, len(entries))
}

// A batch stuck in Raft (a proposal waiting out its writers' deadlines
// across a leader change) does not hold the writes after it: past
// proposalStall the proposer takes the next batch.
func TestStuckBatchDoesNotHoldLaterWrites(t *testing.T) {
	batches := make(chan []writeEnv, 10)
	p := newProposer(func(ctx context.Context, b []writeEnv) {
		batches <- b
		if b[0].Req.req.Statements[0].Sql == "stuck" {
			<-ctx.Done() // never commits
			return
		}
		for _, pw := range b {
			pw.Answer(&cmdpb.Response{}, nil)
		}
	}, 0, writeBatchBusy, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan struct{})
	go func() { _ = p.Run(ctx); close(stopped) }()
	write := func(sql string) chan error {
		out := make(chan error, 1)
		go func() {
			_, err := p.submit(context.Background(), &cmdpb.Request{Statements: []*cmdpb.Statement{{Sql: sql}}}, func(err error) error { return err })
			out <- err
		}()
		return out
	}
	stuck := write("stuck")
	<-batches
	later := write("later")
	select {
	case err := <-later:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a write waited behind a stuck batch for 10 s")
	}
	select {
	case <-stuck:
		t.Fatal("the stuck batch was answered")
	default:
	}
	cancel()
	<-stopped // Run waits for the stuck batch, which ctx's end ends
	if err := <-stuck; !errors.Is(err, ErrStopped) {
		t.Fatalf("stuck write after stop: %v, want ErrStopped", err)
	}
}

// A batch never exceeds maxBatchBytes: the write that would overflow it
// opens the next one.
func TestBatchBytesBound(t *testing.T) {
	sizes := make(chan int, 10)
	answered := make(chan int, 10)
	p := newProposer(func(_ context.Context, b []writeEnv) {
		n := 0
		for _, pw := range b {
			n += proto.Size(pw.Req.req)
		}
		if n > maxBatchBytes {
			t.Errorf("batch of %d bytes", n)
		}
		sizes <- len(b)
		for _, pw := range b {
			pw.Answer(&cmdpb.Response{}, nil)
		}
		answered <- len(b)
	}, 0, writeBatchBusy, zap.NewNop())
	big := strings.Repeat("x", maxBatchBytes/3)
	const writes = 5
	for range writes {
		// Queued before the proposer starts: it drains them together.
		p.inbox <- actors.NewEnvelope[writeReq, *cmdpb.Response](writeReq{ctx: context.Background(),
			req: &cmdpb.Request{Statements: []*cmdpb.Statement{{Sql: big}}}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = p.Run(ctx); close(stopped) }()
	for n := 0; n < writes; n += <-answered {
	}
	cancel()
	<-stopped
	close(sizes)
	var got []int
	for n := range sizes {
		got = append(got, n)
	}
	if len(got) < 2 {
		t.Fatalf("batches %v: the bound did not split them", got)
	}
}

// gatedProposer is a proposer whose batches wait for the test: each
// reports its start on starts, waits for release (or Run's end), answers
// its writes,
// runs then (if set) and reports on answered.
type gatedProposer struct {
	p        *proposer
	starts   chan proposed
	release  chan struct{}
	answered chan time.Time
	errs     chan error
}

type proposed struct {
	at     time.Time
	writes int
}

func startGatedProposer(t *testing.T, hold time.Duration, busy int, then func(batch int)) *gatedProposer {
	g := &gatedProposer{starts: make(chan proposed, 10), release: make(chan struct{}, 10),
		answered: make(chan time.Time, 10), errs: make(chan error, 64)}
	batches := 0
	g.p = newProposer(func(ctx context.Context, b []writeEnv) {
		batches++
		g.starts <- proposed{time.Now(), len(b)}
		select {
		case <-g.release:
		case <-ctx.Done(): // a test that failed: Run's end ends the batch
			return
		}
		for _, pw := range b {
			pw.Answer(&cmdpb.Response{}, nil)
		}
		if then != nil {
			then(batches)
		}
		g.answered <- time.Now()
	}, hold, busy, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = g.p.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	return g
}

// write starts n writers, each writing times in a row, as a closed loop's
// clients do; each write's error goes to errs.
func (g *gatedProposer) write(n, times int) {
	for range n {
		go func() {
			for range times {
				_, err := g.p.submit(context.Background(), &cmdpb.Request{Statements: []*cmdpb.Statement{{Sql: "w"}}}, func(err error) error { return err })
				g.errs <- err
			}
		}()
	}
}

// finish lets the batch in flight end and returns when it was answered.
func (g *gatedProposer) finish() time.Time {
	g.release <- struct{}{}
	return <-g.answered
}

// checkWrites takes n writes' errors.
func (g *gatedProposer) checkWrites(t *testing.T, n int) {
	t.Helper()
	for range n {
		if err := <-g.errs; err != nil {
			t.Fatal(err)
		}
	}
}

// After a busy batch the next one waits for that batch's writers to come
// back, as closed-loop clients do, at most hold after it was answered
// (proposer.next); a light batch, or hold 0, never holds the next.
func TestWriteBatchesRegather(t *testing.T) {
	const hold = 300 * time.Millisecond
	tests := []struct {
		name string
		// first: writes in the first batch; second: writes that queue
		// while it is in flight; back: writes sent 50 ms after it was
		// answered (the first batch's writers, back).
		first, second, back, busy int
		hold                      time.Duration
		// want: how long the next batch waits after the first was
		// answered: 0 not held, hold the whole hold, -1 until the
		// writers were back; size: the writes it carries.
		want time.Duration
		size int
	}{
		{name: "a busy batch, its writers not back: held", first: 3, second: 2, busy: 3, hold: hold, want: hold, size: 2},
		{name: "a busy batch, its writers back: held until then", first: 3, second: 2, back: 3, busy: 3, hold: hold, want: -1, size: 5},
		{name: "some of its writers back: held", first: 3, second: 2, back: 2, busy: 3, hold: hold, want: hold, size: 4},
		{name: "a light batch: not held", first: 2, second: 1, busy: 3, hold: hold, size: 1},
		{name: "hold off", first: 3, second: 2, busy: 3, size: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := startGatedProposer(t, tc.hold, tc.busy, nil)
			total := 1 + tc.first + tc.second + tc.back
			// A batch of one in flight while the first batch's writes
			// queue, and the first in flight while the second's queue.
			g.write(1, 1)
			<-g.starts
			g.write(tc.first, 1)
			waitQueued(t, g.p, tc.first)
			g.finish()
			if got := (<-g.starts).writes; got != tc.first {
				t.Fatalf("the first batch carried %d writes, want %d", got, tc.first)
			}
			g.write(tc.second, 1)
			waitQueued(t, g.p, tc.second)
			firstAnswered := g.finish()
			var back time.Time
			if tc.back > 0 {
				time.Sleep(50 * time.Millisecond)
				back = time.Now()
				g.write(tc.back, 1)
			}
			next := <-g.starts
			g.finish()
			if next.writes != tc.size {
				t.Fatalf("the next batch carried %d writes, want %d", next.writes, tc.size)
			}
			for n := 1 + tc.first + next.writes; n < total; {
				// Writes the next batch left are proposed after it.
				n += (<-g.starts).writes
				g.finish()
			}
			g.checkWrites(t, total)
			held := next.at.Sub(firstAnswered)
			switch {
			case tc.want == 0 && held >= hold/2:
				t.Fatalf("the next batch was held %v", held)
			case tc.want > 0 && held < tc.want:
				t.Fatalf("the next batch started %v after the first was answered, want at least %v", held, tc.want)
			case tc.want < 0 && (next.at.Before(back) || held >= hold):
				t.Fatalf("the next batch started %v after the first was answered, the writers were back at %v",
					held, back.Sub(firstAnswered))
			}
		})
	}
}

// waitQueued waits until n writes wait in the proposer's inbox.
func waitQueued(t *testing.T, p *proposer, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if len(p.inbox) >= n {
			return
		}
	}
	t.Fatalf("fewer than %d writes queued", n)
}

// Writers that come back before the proposer looks (in-process clients)
// are counted once: the next batch takes them at once instead of holding
// for them twice (the length of the inbox counted them twice, and an
// in-process benchmark ran at half the rate).
func TestWriteBatchWritersBackAtOnce(t *testing.T) {
	const hold, first, second = 300 * time.Millisecond, 3, 2
	var g *gatedProposer
	g = startGatedProposer(t, hold, 3, func(batch int) {
		if batch == 2 {
			// The busy batch's writers are back before it returns.
			waitQueued(t, g.p, first+second)
		}
	})
	g.write(1, 1)
	<-g.starts
	g.write(first, 2)
	waitQueued(t, g.p, first)
	g.finish()
	if got := (<-g.starts).writes; got != first {
		t.Fatalf("the busy batch carried %d writes, want %d", got, first)
	}
	g.write(second, 1)
	waitQueued(t, g.p, second)
	busyAnswered := g.finish()
	next := <-g.starts
	g.finish()
	if next.writes != first+second {
		t.Fatalf("the next batch carried %d writes, want %d", next.writes, first+second)
	}
	if held := next.at.Sub(busyAnswered); held >= hold/2 {
		t.Fatalf("the next batch was held %v with all its writers there", held)
	}
	g.checkWrites(t, 1+2*first+second)
}
