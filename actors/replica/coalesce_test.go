package replica

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

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
	r := &Replica{log: zap.NewNop(), writeC: make(chan *pendingWrite, writeQueueSize)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	batches := make(chan []*pendingWrite, 10)
	go r.proposeWrites(ctx, func(ctx context.Context, b []*pendingWrite) {
		batches <- b
		if b[0].req.Statements[0].Sql == "stuck" {
			<-ctx.Done() // never commits
			return
		}
		for _, pw := range b {
			pw.done <- pendingResult{resp: &cmdpb.Response{}}
		}
	})
	write := func(sql string) *pendingWrite {
		pw := &pendingWrite{ctx: context.Background(), req: &cmdpb.Request{Statements: []*cmdpb.Statement{{Sql: sql}}}, done: make(chan pendingResult, 1)}
		r.writeC <- pw
		return pw
	}
	stuck := write("stuck")
	<-batches
	later := write("later")
	select {
	case <-later.done:
	case <-time.After(10 * time.Second):
		t.Fatal("a write waited behind a stuck batch for 10 s")
	}
	select {
	case <-stuck.done:
		t.Fatal("the stuck batch was answered")
	default:
	}
	cancel()
	r.loops.Wait()
}

// A batch never exceeds maxBatchBytes: the write that would overflow it
// opens the next one.
func TestBatchBytesBound(t *testing.T) {
	r := &Replica{log: zap.NewNop(), writeC: make(chan *pendingWrite, writeQueueSize)}
	big := strings.Repeat("x", maxBatchBytes/3)
	var pws []*pendingWrite
	for range 5 {
		pw := &pendingWrite{ctx: context.Background(), req: &cmdpb.Request{Statements: []*cmdpb.Statement{{Sql: big}}}, done: make(chan pendingResult, 1)}
		pws = append(pws, pw)
		r.writeC <- pw // queued before the proposer starts: it drains them together
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sizes := make(chan int, 10)
	go r.proposeWrites(ctx, func(_ context.Context, b []*pendingWrite) {
		n := 0
		for _, pw := range b {
			n += proto.Size(pw.req)
		}
		if n > maxBatchBytes {
			t.Errorf("batch of %d bytes", n)
		}
		sizes <- len(b)
		for _, pw := range b {
			pw.done <- pendingResult{resp: &cmdpb.Response{}}
		}
	})
	for _, pw := range pws {
		<-pw.done
	}
	cancel()
	r.loops.Wait()
	close(sizes)
	var got []int
	for n := range sizes {
		got = append(got, n)
	}
	if len(got) < 2 {
		t.Fatalf("batches %v: the bound did not split them", got)
	}
}
