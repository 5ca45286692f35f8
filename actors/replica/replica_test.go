package replica

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/logger"
	_ "github.com/mattn/go-sqlite3"

	"github.com/skiffdb/skiff/actors"
	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/sm"
	"github.com/skiffdb/skiff/sm/cmdpb"
	"github.com/skiffdb/skiff/test/testport"
)

func TestMain(m *testing.M) {
	// Dragonboat logs through capnslog here (bootstrap routes it to zap in
	// the daemon); keep test output to real problems.
	for _, p := range []string{"dragonboat", "raft", "rsm", "transport", "logdb", "config", "settings", "grpc", "raftpb"} {
		logger.GetLogger(p).SetLevel(logger.ERROR)
	}
	os.Exit(m.Run())
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	return testport.Addr(tb)
}

// node is one in-process replica with its lifecycle, as bootstrap wires it.
type node struct {
	r      *Replica
	life   *lifecycle.Lifecycle
	cancel context.CancelFunc
	done   chan error
}

func startNode(tb testing.TB, dir, raftAddr string) *node {
	tb.Helper()
	return startNodeWith(tb, dir, raftAddr, nil)
}

// startNodeWith is startNode with mod applied to the replica's Config.
func startNodeWith(tb testing.TB, dir, raftAddr string, mod func(*Config)) *node {
	tb.Helper()
	n := launchNode(tb, dir, raftAddr, mod)
	deadline := time.Now().Add(20 * time.Second)
	for n.life.State().Phase != lifecycle.Ready {
		if time.Now().After(deadline) {
			tb.Fatalf("not ready after 20s: %+v", n.life.State())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

// launchNode starts the replica without waiting for it to be ready.
func launchNode(tb testing.TB, dir, raftAddr string, mod func(*Config)) *node {
	tb.Helper()
	life, err := lifecycle.New(lifecycle.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	life.Notify(lifecycle.IdentityKnown{Identity: lifecycle.Identity{NodeID: "n1", ShardID: 1, ReplicaID: 1, RaftAddr: raftAddr, Voter: true}})
	cfg := Config{
		NodeHostDir: filepath.Join(dir, "raft"), WALDir: filepath.Join(dir, "wal"), SMDir: filepath.Join(dir, "db"),
		RaftAddr: raftAddr, ReplicaID: 1, InitialMembers: map[uint64]string{1: raftAddr},
		LogDBMemory: LogDBTiny, Lifecycle: life,
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{r: r, life: life, cancel: cancel, done: make(chan error, 2)}
	lctx, lcancel := context.WithCancel(context.Background())
	go func() { _ = life.Run(lctx) }()
	go func() { n.done <- r.Run(ctx); lcancel() }()
	return n
}

func (n *node) stop(tb testing.TB) {
	tb.Helper()
	n.cancel()
	select {
	case err := <-n.done:
		if err != nil {
			tb.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		tb.Fatal("replica did not stop within 30s")
	}
}

func req(sqls ...string) *cmdpb.Request {
	r := &cmdpb.Request{}
	for _, q := range sqls {
		r.Statements = append(r.Statements, &cmdpb.Statement{Sql: q, ReturnsRows: true})
	}
	return r
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func TestWriteReadEveryLevelAndRestart(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	n := startNode(t, dir, addr)
	w := &cmdpb.Request{Statements: []*cmdpb.Statement{
		{Sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"},
		{Sql: "INSERT INTO t (v) VALUES (?)", Parameters: []*cmdpb.Parameter{{Value: &cmdpb.Parameter_S{S: "a"}}}},
	}}
	resp, err := n.r.Execute(ctxT(t), w)
	if err != nil {
		t.Fatal(err)
	}
	if resp.RaftIndex == 0 || resp.Results[1].RowsAffected != 1 {
		t.Fatalf("execute = %v", resp)
	}
	for _, lvl := range []Level{LevelNone, LevelWeak, LevelLinearizable, LevelStrong, LevelAuto} {
		t.Run(lvl.String(), func(t *testing.T) {
			out, err := n.r.Query(ctxT(t), req("SELECT v FROM t"), ReadOptions{Level: lvl})
			if err != nil {
				t.Fatal(err)
			}
			if got := out.Results[0].Rows; len(got) != 1 || got[0].Values[0].GetS() != "a" {
				t.Fatalf("rows = %v", got)
			}
			if lvl == LevelStrong && out.RaftIndex <= resp.RaftIndex {
				t.Fatalf("strong read did not go through the log: index %d", out.RaftIndex)
			}
		})
	}
	n.stop(t)
	handleCalls(t, n.r, ErrStopped)
	n = startNode(t, dir, addr)
	defer n.stop(t)
	out, err := n.r.Query(ctxT(t), req("SELECT COUNT(*) FROM t"), ReadOptions{Level: LevelLinearizable})
	if err != nil {
		t.Fatal(err)
	}
	if c := out.Results[0].Rows[0].Values[0].GetI(); c != 1 {
		t.Fatalf("rows after restart = %d, want 1", c)
	}
	if st := n.life.State(); st.Progress.AppliedIndex < resp.RaftIndex {
		t.Fatalf("applied index after restart %d < %d", st.Progress.AppliedIndex, resp.RaftIndex)
	}
}

// handleCalls checks that every handle method is refused with want.
func handleCalls(t *testing.T, r *Replica, want error) {
	t.Helper()
	ctx := ctxT(t)
	calls := map[string]func() error{
		"Execute":          func() error { _, err := r.Execute(ctx, req("CREATE TABLE x (id INTEGER)")); return err },
		"Query":            func() error { _, err := r.Query(ctx, req("SELECT 1"), ReadOptions{}); return err },
		"ProposeHighWater": func() error { return r.ProposeHighWater(ctx, 1) },
		"Backup":           func() error { _, err := r.Backup(ctx, &sm.Backup{}); return err },
		"Checkpoint":       func() error { _, err := r.Checkpoint(ctx); return err },
		"Snapshot":         func() error { _, err := r.Snapshot(ctx, -1); return err },
		"ExportSnapshot":   func() error { _, err := r.ExportSnapshot(ctx); return err },
		"Boot":             func() error { return r.Boot(ctx, strings.NewReader("")) },
		"AddNonVoting":     func() error { return r.AddNonVoting(ctx, 9, "127.0.0.1:1", "n9") },
		"RemoveMember":     func() error { return r.RemoveMember(ctx, 9) },
		"TransferLeader":   func() error { return r.TransferLeader(ctx, 0) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, want) {
			t.Errorf("%s = %v, want %v", name, err, want)
		}
	}
}

// Before it is configured and running, the handle refuses every call at
// once; Run refuses to start unconfigured.
func TestHandleBeforeStart(t *testing.T) {
	r := NewHandle()
	handleCalls(t, r, ErrNotStarted)
	if err := r.Run(context.Background()); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Run unconfigured = %v", err)
	}
	select {
	case <-r.Done():
	default:
		t.Fatal("Done not closed after Run returned")
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]Level{"": LevelWeak, "none": LevelNone, "NONE": LevelNone, "weak": LevelWeak,
		"Linearizable": LevelLinearizable, "strong": LevelStrong, "auto": LevelAuto, "bogus": LevelWeak} {
		if got := ParseLevel(in); got != want {
			t.Errorf("ParseLevel(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	life, _ := lifecycle.New(lifecycle.Config{})
	good := Config{NodeHostDir: "a", SMDir: "b", RaftAddr: "127.0.0.1:1", ReplicaID: 1, Lifecycle: life}.WithDefaults()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"no dirs":      func(c *Config) { c.SMDir = "" },
		"no addr":      func(c *Config) { c.RaftAddr = "" },
		"replica 0":    func(c *Config) { c.ReplicaID = 0 },
		"bad election": func(c *Config) { c.ElectionRTT = 2 },
		"bad logdb":    func(c *Config) { c.LogDBMemory = "huge" },
		"no life":      func(c *Config) { c.Lifecycle = nil },
		"neg. vacuum":  func(c *Config) { c.AutoVacuumInterval = -time.Second },
	} {
		c := good
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
}

// BenchmarkWritePath measures single-INSERT writes through Dragonboat on
// one node (64 concurrent clients: group commit turns them into few SQLite
// transactions) against raw SQLite doing the same INSERTs in-process, one
// autocommit transaction each. `make bench` prints the ratios.
func BenchmarkWritePath(b *testing.B) {
	const insert = "INSERT INTO t (v) VALUES (?)"
	b.Run("skiff-c64", func(b *testing.B) { benchSkiff(b, 64, insert, nil) })
	// The write hold's cost, off against on (proposer.next).
	b.Run("skiff-c64-nohold", func(b *testing.B) { benchSkiff(b, 64, insert, func(c *Config) { c.WriteBatchHold = -1 }) })
	b.Run("skiff-c1", func(b *testing.B) { benchSkiff(b, 1, insert, nil) })
	b.Run("raw-sqlite-full", func(b *testing.B) { benchRaw(b, "FULL", insert) })
	b.Run("raw-sqlite-normal", func(b *testing.B) { benchRaw(b, "NORMAL", insert) })
}

func benchSkiff(b *testing.B, clients int, insert string, mod func(*Config)) {
	n := startNodeWith(b, b.TempDir(), freeAddr(b), mod)
	defer n.stop(b)
	ctx := context.Background()
	if _, err := n.r.Execute(ctx, req("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")); err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	b.SetParallelism(max(1, clients/max(1, runtimeProcs())))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v := fmt.Sprint("value-", seq.Add(1))
			resp, err := n.r.Execute(ctx, &cmdpb.Request{Statements: []*cmdpb.Statement{
				{Sql: insert, Parameters: []*cmdpb.Parameter{{Value: &cmdpb.Parameter_S{S: v}}}}}})
			if err != nil || resp.Results[0].Error != "" {
				b.Errorf("insert: %v %v", err, resp)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "inserts/s")
}

func benchRaw(b *testing.B, synchronous, insert string) {
	path := filepath.Join(b.TempDir(), "raw.sqlite")
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_synchronous="+synchronous)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := db.Exec(insert, fmt.Sprint("value-", i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "inserts/s")
}

// A caller that retries a write names it once (actors.WithRequestID): the
// retry answers the first result and applies nothing (review item: queue
// retries double-applied after a timeout).
func TestRequestIDFromContextAppliesOnce(t *testing.T) {
	n := startNode(t, t.TempDir(), freeAddr(t))
	if _, err := n.r.Execute(ctxT(t), req("CREATE TABLE t (id INTEGER PRIMARY KEY)")); err != nil {
		t.Fatal(err)
	}
	ctx := actors.WithRequestID(ctxT(t), actors.NewRequestID())
	first, err := n.r.Execute(ctx, req("INSERT INTO t DEFAULT VALUES"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := n.r.Execute(ctx, req("INSERT INTO t DEFAULT VALUES"))
	if err != nil {
		t.Fatal(err)
	}
	if again.RaftIndex != first.RaftIndex {
		t.Fatalf("retry applied again: index %d then %d", first.RaftIndex, again.RaftIndex)
	}
	out, err := n.r.Query(ctxT(t), req("SELECT COUNT(*) FROM t"), ReadOptions{Level: LevelWeak})
	if err != nil || out.Results[0].Rows[0].Values[0].GetI() != 1 {
		t.Fatalf("rows = %v, %v", out, err)
	}
	n.stop(t)
}

// A shutdown whose grace period is over ends the reads still running, at
// every local level: the state machine aborts them (they are not tied to
// workCtx one by one, see query), and the node stops.
func TestShutdownAbortsLongReads(t *testing.T) {
	n := startNode(t, t.TempDir(), freeAddr(t))
	// Counts forever: only an interrupt ends it.
	endless := "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
	levels := []Level{LevelNone, LevelWeak, LevelLinearizable}
	errs := make(chan error, len(levels))
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for _, lvl := range levels {
		go func() {
			out, err := n.r.Query(ctx, req(endless), ReadOptions{Level: lvl})
			if err == nil && len(out.GetResults()) == 1 {
				// SQLite's interrupt is the statement's result.
				if e := out.GetResults()[0].GetError(); e != "" {
					err = errors.New(e)
				}
			}
			errs <- err
		}()
	}
	time.Sleep(300 * time.Millisecond) // the reads are running
	t0 := time.Now()
	n.stop(t)
	if d := time.Since(t0); d > shutdownGrace+10*time.Second {
		t.Errorf("stop took %s with long reads running (grace %s)", d, shutdownGrace)
	}
	wantFailures(t, errs, len(levels), "read")
}

// wantFailures receives n outcomes of what (a read, a write) the node's
// stop ended: each must be an error, and come within 10 s.
func wantFailures(t *testing.T, errs <-chan error, n int, what string) {
	t.Helper()
	for range n {
		select {
		case err := <-errs:
			if err == nil {
				t.Errorf("a %s succeeded", what)
			}
			t.Logf("%s: %v", what, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("a %s still waits after the node stopped", what)
		}
	}
}

// A shutdown whose grace period is over ends the writes still waiting for
// a commit, batched ones included: they are not tied to workCtx one by one
// (Execute), the proposer answers them when it stops. The shard here
// never has a quorum (its second member does not exist), so no write
// can commit.
func TestShutdownEndsWaitingWrites(t *testing.T) {
	// testport never hands out a port twice (Dragonboat panics on a
	// duplicate member address).
	self, other := freeAddr(t), freeAddr(t)
	n := launchNode(t, t.TempDir(), self, func(c *Config) { c.InitialMembers[2] = other })
	r := n.r
	// The lease opens once Raft runs, leader or not.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := r.hot.enter(); err == nil {
			r.hot.leave()
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the lease did not open: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), time.Hour)
	defer wcancel()
	writes := []context.Context{wctx, actors.WithRequestID(wctx, actors.NewRequestID())} // batched, alone
	errs := make(chan error, len(writes))
	for _, c := range writes {
		go func() {
			_, err := r.Execute(c, req("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
			errs <- err
		}()
	}
	time.Sleep(time.Second)
	if n := len(errs); n != 0 {
		t.Fatalf("%d writes ended before the shutdown: %v", n, <-errs)
	}
	t0 := time.Now()
	n.stop(t)
	if d := time.Since(t0); d > shutdownGrace+10*time.Second {
		t.Errorf("stop took %s with writes waiting (grace %s)", d, shutdownGrace)
	}
	wantFailures(t, errs, len(writes), "write")
}
