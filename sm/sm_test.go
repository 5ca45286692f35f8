package sm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	crdberrors "github.com/cockroachdb/errors"
	dbsm "github.com/lni/dragonboat/v4/statemachine"
	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// harness drives a StateMachine the way Dragonboat does, synchronously.
type harness struct {
	t    testing.TB
	dir  string
	s    *StateMachine
	next uint64
	// mod, when set, adjusts the Config of every open.
	mod func(*Config)
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir()}
	h.open()
	return h
}

func (h *harness) open() uint64 {
	h.t.Helper()
	cfg := Config{Dir: h.dir, ReadConns: 2}
	if h.mod != nil {
		h.mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	idx, err := s.Open(make(chan struct{}))
	if err != nil {
		h.t.Fatal(err)
	}
	h.s, h.next = s, idx+1
	h.t.Cleanup(func() { _ = s.Close() })
	return idx
}

func stmts(sqls ...string) []*cmdpb.Statement {
	out := make([]*cmdpb.Statement, len(sqls))
	for i, q := range sqls {
		out[i] = &cmdpb.Statement{Sql: q}
	}
	return out
}

func cmd(id string, tx bool, sqls ...string) []byte {
	b, err := proto.Marshal(&cmdpb.Command{
		Version: CommandVersion, RequestId: []byte(id), Type: cmdpb.Command_TYPE_EXECUTE,
		Request: &cmdpb.Request{Statements: stmts(sqls...), Transaction: tx},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// apply sends cmds as one batch and returns each entry's decoded response.
func (h *harness) apply(cmds ...[]byte) []*cmdpb.Response {
	h.t.Helper()
	ents := make([]dbsm.Entry, len(cmds))
	for i, c := range cmds {
		ents[i] = dbsm.Entry{Index: h.next, Cmd: c}
		h.next++
	}
	out, err := h.s.Update(ents)
	if err != nil {
		h.t.Fatalf("Update: %v", err)
	}
	if len(out) != len(ents) {
		h.t.Fatalf("Update returned %d entries for %d", len(out), len(ents))
	}
	resps := make([]*cmdpb.Response, len(out))
	for i, e := range out {
		resps[i] = &cmdpb.Response{}
		if err := proto.Unmarshal(e.Result.Data, resps[i]); err != nil {
			h.t.Fatalf("entry %d: %v", i, err)
		}
	}
	return resps
}

func (h *harness) query(q string) *cmdpb.Response {
	h.t.Helper()
	out, err := h.s.Lookup(&Query{Request: &cmdpb.Request{Statements: stmts(q)}})
	if err != nil {
		h.t.Fatalf("Lookup %q: %v", q, err)
	}
	return out.(*cmdpb.Response)
}

func (h *harness) count(table string) int64 {
	h.t.Helper()
	r := h.query("SELECT COUNT(*) FROM " + table).Results[0]
	if r.Error != "" {
		h.t.Fatalf("count %s: %s", table, r.Error)
	}
	return r.Rows[0].Values[0].GetI()
}

// snapshotStream returns the stream SaveSnapshot writes of the state at
// this moment.
func (h *harness) snapshotStream() []byte {
	h.t.Helper()
	ctx, err := h.s.PrepareSnapshot()
	if err != nil {
		h.t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := h.s.SaveSnapshot(ctx, &buf, make(chan struct{})); err != nil {
		h.t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRestartReturnsPersistedIndexAndReappliesNothing(t *testing.T) {
	h := newHarness(t)
	h.apply(cmd("a", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
	h.apply(cmd("b", false, "INSERT INTO t (v) VALUES ('x')"), cmd("c", false, "INSERT INTO t (v) VALUES ('y')"))
	last := h.next - 1
	if got := h.s.Applied(); got != last {
		t.Fatalf("Applied() = %d, want %d", got, last)
	}
	if err := h.s.Close(); err != nil {
		t.Fatal(err)
	}
	if idx := h.open(); idx != last {
		t.Fatalf("Open after restart = %d, want %d", idx, last)
	}
	// Dragonboat replays only entries above the returned index; the data is
	// already there, exactly once.
	if n := h.count("t"); n != 2 {
		t.Fatalf("rows after restart = %d, want 2", n)
	}
}

func TestBatchWithFailingStatementKeepsOthers(t *testing.T) {
	h := newHarness(t)
	h.apply(cmd("a", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
	resps := h.apply(
		cmd("b", false, "INSERT INTO t (v) VALUES ('one')"),
		cmd("c", false, "INSERT INTO nope (v) VALUES ('x')", "INSERT INTO t (v) VALUES ('two')"),
		cmd("d", false, "INSERT INTO t (v) VALUES (NULL)"),
		cmd("e", false, "INSERT INTO t (v) VALUES ('three')"),
	)
	if got := resps[1].Results[0].Error; got != "no such table: nope" {
		t.Fatalf("error = %q", got)
	}
	if resps[1].Results[1].RowsAffected != 1 {
		t.Fatalf("statement after error not applied: %+v", resps[1].Results[1])
	}
	if got := resps[2].Results[0].Error; got != "NOT NULL constraint failed: t.v" {
		t.Fatalf("error = %q", got)
	}
	if n := h.count("t"); n != 3 {
		t.Fatalf("rows = %d, want 3", n)
	}
	for i, r := range resps {
		if r.RaftIndex == 0 {
			t.Fatalf("response %d has no raft index", i)
		}
	}
}

// A lone statement runs without a savepoint of its own (execRequest); what
// a failing one leaves is what SQLite's statement rollback leaves, as it
// was with the savepoint: nothing for ABORT, the rows before the failure
// for OR FAIL, and with transaction set the request's savepoint undoes
// even those.
func TestLoneStatementFailureLeavesWhatSQLiteLeaves(t *testing.T) {
	for _, tc := range []struct {
		name string
		tx   bool
		sql  string
		want int64 // rows of t after the batch (2 are the neighbours')
	}{
		{"abort", false, "INSERT INTO t (id) VALUES (10), (10)", 2},
		{"or fail keeps earlier rows", false, "INSERT OR FAIL INTO t (id) VALUES (10), (11), (11)", 4},
		{"or fail in a transaction", true, "INSERT OR FAIL INTO t (id) VALUES (10), (11), (11)", 2},
		{"or ignore", false, "INSERT OR IGNORE INTO t (id) VALUES (10), (10)", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.apply(cmd("ddl", false, "CREATE TABLE t (id INTEGER PRIMARY KEY)"))
			resps := h.apply(cmd("a", false, "INSERT INTO t (id) VALUES (1)"), cmd("b", tc.tx, tc.sql), cmd("c", false, "INSERT INTO t (id) VALUES (2)"))
			if resps[0].Results[0].Error != "" || resps[2].Results[0].Error != "" {
				t.Fatalf("neighbours failed: %v", resps)
			}
			if n := h.count("t"); n != tc.want {
				t.Fatalf("rows = %d, want %d (%v)", n, tc.want, resps[1])
			}
		})
	}
}

// API.md 1.6: with transaction, the first error stops processing and rolls
// back that request alone; the results so far are returned.
func TestTransactionRollsBackOnlyThatRequest(t *testing.T) {
	h := newHarness(t)
	h.apply(cmd("a", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
	resps := h.apply(
		cmd("b", false, "INSERT INTO t (v) VALUES ('before')"),
		cmd("c", true, "INSERT INTO t (v) VALUES ('a')", "INSERT INTO nope VALUES (1)", "INSERT INTO t (v) VALUES ('b')"),
		cmd("d", false, "INSERT INTO t (v) VALUES ('after')"),
	)
	tx := resps[1].Results
	if len(tx) != 2 || tx[0].RowsAffected != 1 || tx[1].Error != "no such table: nope" {
		t.Fatalf("transaction results = %v", tx)
	}
	got := h.query("SELECT v FROM t ORDER BY id").Results[0]
	var vs []string
	for _, r := range got.Rows {
		vs = append(vs, r.Values[0].GetS())
	}
	if fmt.Sprint(vs) != "[before after]" {
		t.Fatalf("rows = %v, want [before after]", vs)
	}
}

func TestDuplicateRequestIDAppliesOnce(t *testing.T) {
	h := newHarness(t)
	h.apply(cmd("a", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
	first := h.apply(cmd("same", false, "INSERT INTO t (v) VALUES ('x')"))
	// The retry lands both in a later batch and twice in one batch.
	again := h.apply(cmd("same", false, "INSERT INTO t (v) VALUES ('x')"), cmd("same", false, "INSERT INTO t (v) VALUES ('x')"))
	if n := h.count("t"); n != 1 {
		t.Fatalf("rows = %d, want 1", n)
	}
	for _, r := range again {
		if !proto.Equal(r, first[0]) {
			t.Fatalf("retry answered %v, want the original %v", r, first[0])
		}
	}
	// Survives a restart: the IDs are in the same file as the data.
	_ = h.s.Close()
	h.open()
	h.apply(cmd("same", false, "INSERT INTO t (v) VALUES ('x')"))
	if n := h.count("t"); n != 1 {
		t.Fatalf("rows after restart = %d, want 1", n)
	}
}

func TestClientTransactionControlIsRefused(t *testing.T) {
	h := newHarness(t)
	h.apply(cmd("a", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
	for _, q := range []string{"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT x", "RELEASE x",
		"PRAGMA journal_mode=DELETE", "PRAGMA synchronous=OFF", "ATTACH 'x.db' AS x",
		"DELETE FROM __skiff_meta", "DROP TABLE __skiff_dedup", "UPDATE __skiff_meta SET applied = 0"} {
		r := h.apply(cmd("", false, q, "INSERT INTO t (v) VALUES ('ok')"))[0]
		if r.Results[0].Error == "" {
			t.Errorf("%q was allowed", q)
		}
	}
	// INSERT OR ROLLBACK ends the batch transaction: the entry fails alone,
	// the entries before it in the batch are redone.
	resps := h.apply(
		cmd("b", false, "INSERT INTO t (id, v) VALUES (100, 'kept')"),
		cmd("c", false, "INSERT OR ROLLBACK INTO t (id, v) VALUES (100, 'dup')"),
		cmd("d", false, "INSERT INTO t (v) VALUES ('after')"),
	)
	if resps[1].Error == "" {
		t.Fatalf("OR ROLLBACK entry did not fail: %v", resps[1])
	}
	if r := h.query("SELECT v FROM t WHERE id = 100").Results[0]; len(r.Rows) != 1 || r.Rows[0].Values[0].GetS() != "kept" {
		t.Fatalf("entry before the rollback lost: %v", r)
	}
	if r := h.query("SELECT COUNT(*) FROM t WHERE v = 'after'").Results[0]; r.Rows[0].Values[0].GetI() != 1 {
		t.Fatalf("entry after the rollback lost: %v", r)
	}
	if idx := h.s.Applied(); idx != h.next-1 {
		t.Fatalf("applied = %d, want %d", idx, h.next-1)
	}
}

func TestReturningAndReadOnlyQueries(t *testing.T) {
	h := newHarness(t)
	h.apply(cmd("a", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, ts DATETIME, ok BOOLEAN)"))
	b, _ := proto.Marshal(&cmdpb.Command{Version: CommandVersion, Type: cmdpb.Command_TYPE_EXECUTE,
		Request: &cmdpb.Request{Statements: []*cmdpb.Statement{{
			Sql: "INSERT INTO t (v, ts, ok) VALUES (?, ?, ?) RETURNING *", ReturnsRows: true,
			Parameters: []*cmdpb.Parameter{{Value: &cmdpb.Parameter_S{S: "x"}}, {Value: &cmdpb.Parameter_I{I: 1700000000}}, {Value: &cmdpb.Parameter_I{I: 1}}},
		}}}})
	r := h.apply(b)[0].Results[0]
	if !r.IsQuery || fmt.Sprint(r.Columns) != "[id v ts ok]" || fmt.Sprint(r.Types) != "[integer text datetime boolean]" {
		t.Fatalf("RETURNING result = %v", r)
	}
	// API.md 1.5: DATETIME integers become RFC 3339 times, BOOLEAN a bool.
	vals := r.Rows[0].Values
	if vals[2].GetT() != "2023-11-14T22:13:20Z" || !vals[3].GetB() {
		t.Fatalf("values = %v", vals)
	}
	q := h.query("INSERT INTO t (v) VALUES ('no')").Results[0]
	if q.Error != ErrTextWriteViaQuery {
		t.Fatalf("write via query: %v", q)
	}
}

func TestSnapshotSaveRecoverYieldsIdenticalDatabase(t *testing.T) {
	src := newHarness(t)
	src.apply(cmd("a", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"))
	for i := range 20 {
		src.apply(cmd(fmt.Sprint("r", i), false, fmt.Sprintf("INSERT INTO t (v) VALUES (randomblob(%d))", 1000+i*997)))
	}
	want := dump(t, src)
	ctx, err := src.s.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Writes go on while the snapshot streams; it must hold the prepared state.
	src.apply(cmd("late", false, "INSERT INTO t (v) VALUES (x'00')"))
	var buf bytes.Buffer
	if err := src.s.SaveSnapshot(ctx, &buf, make(chan struct{})); err != nil {
		t.Fatal(err)
	}

	dst := newHarness(t)
	dst.apply(cmd("other", false, "CREATE TABLE junk (x)"))
	if err := dst.s.RecoverFromSnapshot(bytes.NewReader(buf.Bytes()), make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	if err := dst.s.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, dst); got != want {
		t.Fatalf("recovered database differs:\n got %.200s\nwant %.200s", got, want)
	}
	if dst.s.Applied() != src.next-2 {
		t.Fatalf("recovered applied = %d, want %d", dst.s.Applied(), src.next-2)
	}
	// Restart after the install opens the new generation at its index.
	_ = dst.s.Close()
	if idx := dst.open(); idx != src.next-2 {
		t.Fatalf("Open after install = %d, want %d", idx, src.next-2)
	}
	if got := dump(t, dst); got != want {
		t.Fatal("database differs after restart")
	}
	files, _ := filepath.Glob(filepath.Join(dst.dir, "db-*"))
	for _, f := range files {
		if filepath.Base(f) == "db-1.sqlite" {
			t.Fatalf("replaced generation not removed: %v", files)
		}
	}
}

func TestRecoverRejectsCorruptStream(t *testing.T) {
	src := newHarness(t)
	src.apply(cmd("a", false, "CREATE TABLE t (v)"), cmd("b", false, "INSERT INTO t VALUES (1)"))
	stream := src.snapshotStream()
	bad := bytes.Clone(stream)
	bad[len(bad)/2] ^= 0xff
	dst := newHarness(t)
	dst.apply(cmd("x", false, "CREATE TABLE keep (v)"))
	if err := dst.s.RecoverFromSnapshot(bytes.NewReader(bad), make(chan struct{})); !errors.Is(err, ErrSnapshotFormat) {
		t.Fatalf("corrupt stream: err = %v", err)
	}
	if err := dst.s.RecoverFromSnapshot(bytes.NewReader(stream[:100]), make(chan struct{})); !errors.Is(err, ErrSnapshotFormat) {
		t.Fatalf("short stream: err = %v", err)
	}
	if r := dst.query("SELECT COUNT(*) FROM keep").Results[0]; r.Error != "" {
		t.Fatalf("old database not kept after failed installs: %v", r)
	}
}

func dump(t *testing.T, h *harness) string {
	t.Helper()
	r := h.query("SELECT id, hex(v) FROM t ORDER BY id").Results[0]
	if r.Error != "" {
		t.Fatal(r.Error)
	}
	return fmt.Sprint(r.Rows)
}

// Lookup runs with no lock taken by Dragonboat: during an install, and after
// Close, it must answer an error or a result, never panic.
func TestLookupDuringRecoverAndAfterClose(t *testing.T) {
	src := newHarness(t)
	src.apply(cmd("a", false, "CREATE TABLE t (v)"), cmd("b", false, "INSERT INTO t VALUES (1)"))
	stream := src.snapshotStream()
	dst := newHarness(t)
	dst.apply(cmd("a", false, "CREATE TABLE t (v)"))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var answered, failed atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := dst.s.Lookup(&Query{Request: &cmdpb.Request{Statements: stmts("SELECT COUNT(*) FROM t")}})
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("Lookup: %v", err)
					}
					failed.Add(1)
				} else {
					answered.Add(1)
				}
			}
		}()
	}
	for range 5 {
		if err := dst.s.RecoverFromSnapshot(bytes.NewReader(stream), make(chan struct{})); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.s.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	if answered.Load() == 0 || failed.Load() == 0 {
		t.Fatalf("answered %d, failed %d: the test did not cover both", answered.Load(), failed.Load())
	}
	if _, err := dst.s.Lookup(&Query{Request: &cmdpb.Request{}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Lookup after Close = %v", err)
	}
	if _, err := dst.s.Lookup("not a query"); !errors.Is(err, ErrBadQuery) {
		t.Fatalf("bad query: %v", err)
	}
}

func TestCloseWithoutOpenAndTwice(t *testing.T) {
	s, err := New(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(&Query{Request: &cmdpb.Request{}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Lookup = %v", err)
	}
}

func TestSyncAndBadCommands(t *testing.T) {
	h := newHarness(t)
	resps := h.apply([]byte("not protobuf at all \xff\xff"), mustMarshal(&cmdpb.Command{Type: cmdpb.Command_TYPE_EXECUTE}))
	if resps[0].Error == "" || resps[1].Error != "unsupported command version 0" {
		t.Fatalf("bad commands answered %v", resps)
	}
	if err := h.s.Sync(); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	close(stopped)
	s2, _ := New(Config{Dir: t.TempDir()})
	if _, err := s2.Open(stopped); !errors.Is(err, dbsm.ErrOpenStopped) {
		t.Fatalf("Open with closed stopc = %v", err)
	}
	_ = s2.Close()
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{Dir: "x"}.WithDefaults(), true},
		{Config{}.WithDefaults(), false},
		{Config{Dir: "x", ReadConns: -1, DedupWindow: 1}, false},
		{Config{Dir: "x", ReadConns: 1}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
			t.Errorf("Validate(%+v) = %v", tc.cfg, err)
		}
	}
}

var _ = io.EOF
var _ = os.Remove
var _ = context.Background

// API.md 1.4: write results echo the connection's last insert id and change
// count, so DDL on a fresh node gives {} and a later DROP echoes the INSERT,
// whatever bookkeeping Skiff does on the same connection.
func TestWriteResultsEchoLikeRqlite(t *testing.T) {
	h := newHarness(t)
	type want struct{ id, n int64 }
	steps := []struct {
		sql  string
		want want
	}{
		{"CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)", want{0, 0}},
		{`INSERT INTO foo(name) VALUES("fiona")`, want{1, 1}},
		{`INSERT INTO foo(name) VALUES("declan")`, want{2, 1}},
		{`UPDATE foo SET name = 'x'`, want{2, 2}},
		{"CREATE INDEX foo_name ON foo(name)", want{2, 2}},
		{`DELETE FROM foo WHERE id = 1`, want{2, 1}},
		{"DROP TABLE foo", want{2, 1}},
		// API.md 1.10: a dump loaded as one statement string reports its
		// last write.
		{"CREATE TABLE bar (id INTEGER PRIMARY KEY, v); INSERT INTO bar (v) VALUES (1), (2); CREATE INDEX bar_v ON bar(v)", want{2, 2}},
	}
	for _, st := range steps {
		r := h.apply(cmd("", false, st.sql))[0].Results[0]
		if r.Error != "" || r.LastInsertId != st.want.id || r.RowsAffected != st.want.n {
			t.Fatalf("%s: got id=%d n=%d err=%q, want id=%d n=%d", st.sql, r.LastInsertId, r.RowsAffected, r.Error, st.want.id, st.want.n)
		}
	}
}

// Two replicas applying the same entries draw the same RANDOM() values,
// even when the statement reached the log unrewritten.
func TestRandomIsDeterministicAcrossReplicas(t *testing.T) {
	a, b := newHarness(t), newHarness(t)
	for _, h := range []*harness{a, b} {
		h.apply(cmd("a", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, r INTEGER, blob BLOB)"))
		h.apply(cmd("b", false, "INSERT INTO t (r, blob) VALUES (random(), randomblob(8))",
			"INSERT INTO t (r, blob) SELECT random(), randomblob(3) FROM t"))
	}
	q := "SELECT id, r, hex(blob) FROM t ORDER BY id"
	ra, rb := a.query(q).Results[0], b.query(q).Results[0]
	if len(ra.Rows) != 2 || fmt.Sprint(ra.Rows) != fmt.Sprint(rb.Rows) {
		t.Fatalf("replicas differ:\n%v\n%v", ra.Rows, rb.Rows)
	}
	if ra.Rows[0].Values[1].GetI() == ra.Rows[1].Values[1].GetI() {
		t.Fatal("random() repeated its value")
	}
}

// API.md 1.2 db_timeout: a statement of a local read that runs past its
// bound is interrupted and answers "query timeout"; the next one runs.
func TestReadStatementTimeout(t *testing.T) {
	h := newHarness(t)
	slow := "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT COUNT(*) FROM c"
	out, err := h.s.Lookup(&Query{Request: &cmdpb.Request{Statements: stmts(slow, "SELECT 1")}, StatementTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res := out.(*cmdpb.Response).Results
	if res[0].Error != "query timeout" || res[1].Error != "" || res[1].Rows[0].Values[0].GetI() != 1 {
		t.Fatalf("results = %v", res)
	}
}

// API.md 1.2 qualify_columns, where this build supports it.
func TestQualifyColumns(t *testing.T) {
	h := newHarness(t)
	h.apply(cmd("a", false, "CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)", "INSERT INTO foo (name) VALUES ('x')"))
	out, err := h.s.Lookup(&Query{Request: &cmdpb.Request{Statements: stmts("SELECT id, name, 1 AS one FROM foo"), QualifyColumns: true}})
	if err != nil {
		t.Fatal(err)
	}
	want := "[id name one]"
	if QualifyColumnsSupported {
		want = "[foo.id foo.name one]"
	}
	if got := fmt.Sprint(out.(*cmdpb.Response).Results[0].Columns); got != want {
		t.Fatalf("columns = %s, want %s", got, want)
	}
}

// failingWriter breaks after n bytes with err.
type failingWriter struct {
	n   int
	err error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, w.err
	}
	w.n -= len(p)
	return len(p), nil
}

// A failed send must end with an error Dragonboat tolerates, as Dragonboat
// tests it: with cockroachdb/errors, whose Is (v1.9) does not see through
// an error wrapping two. Anything else makes Dragonboat panic, and one
// broken transfer would take the leader down.
func TestSaveSnapshotErrorsAreToleratedByDragonboat(t *testing.T) {
	src := newHarness(t)
	src.apply(cmd("a", false, "CREATE TABLE t (v BLOB)"), cmd("b", false, "INSERT INTO t VALUES (randomblob(300000))"))
	for _, tc := range []struct {
		name string
		w    io.Writer
		stop bool
		want error
	}{
		{"stream broken", &failingWriter{n: 1000, err: fmt.Errorf("send: %w", dbsm.ErrSnapshotStreaming)}, false, dbsm.ErrSnapshotStreaming},
		{"disk error", &failingWriter{n: 1000, err: errors.New("no space left on device")}, false, dbsm.ErrSnapshotAborted},
		{"stopped", io.Discard, true, dbsm.ErrSnapshotStopped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, err := src.s.PrepareSnapshot()
			if err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			if tc.stop {
				close(stop)
			}
			err = src.s.SaveSnapshot(ctx, tc.w, stop)
			if !crdberrors.Is(err, tc.want) {
				t.Fatalf("SaveSnapshot: %v, which cockroachdb/errors does not see as %v", err, tc.want)
			}
		})
	}
	if err := src.s.SaveSnapshot("not a context", io.Discard, nil); !crdberrors.Is(err, dbsm.ErrSnapshotAborted) {
		t.Fatalf("bad context: %v", err)
	}
}
