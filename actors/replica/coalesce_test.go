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
	}, zap.NewNop())
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
	}, zap.NewNop())
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
