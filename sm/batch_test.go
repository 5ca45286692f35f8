package sm

import (
	"fmt"
	"strings"
	"testing"

	dbsm "github.com/lni/dragonboat/v4/statemachine"
	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

func batchCmd(id string, reqs ...*cmdpb.Request) []byte {
	c := &cmdpb.Command{Version: CommandVersion, RequestId: []byte(id), Type: cmdpb.Command_TYPE_BATCH}
	for _, r := range reqs {
		c.Batch = append(c.Batch, &cmdpb.Command{Version: CommandVersion, Type: cmdpb.Command_TYPE_EXECUTE, Request: r})
	}
	b, err := proto.Marshal(c)
	if err != nil {
		panic(err)
	}
	return b
}

func execCmd(r *cmdpb.Request) []byte {
	b, err := proto.Marshal(&cmdpb.Command{Version: CommandVersion, Type: cmdpb.Command_TYPE_EXECUTE, Request: r})
	if err != nil {
		panic(err)
	}
	return b
}

func req(tx bool, sqls ...string) *cmdpb.Request {
	return &cmdpb.Request{Statements: stmts(sqls...), Transaction: tx}
}

// dump returns every row of t and u, in order, as text.
func (h *harness) dump() string {
	h.t.Helper()
	out := ""
	for _, q := range []string{"SELECT * FROM t ORDER BY id", "SELECT * FROM u ORDER BY rowid", "SELECT * FROM log ORDER BY rowid"} {
		r := h.query(q).Results[0]
		if r.Error != "" {
			h.t.Fatalf("%s: %s", q, r.Error)
		}
		out += fmt.Sprint(r.Rows) + "\n"
	}
	return out
}

// A BATCH entry applies its commands exactly as consecutive entries of
// their own would: the same rows, the same responses, in every mix of
// success, statement error, transaction rollback, connection state
// (last_insert_rowid) and a statement that rolls the whole SQLite
// transaction back (OR ROLLBACK, a trigger's RAISE(ROLLBACK)).
func TestBatchEntryAppliesLikeSeparateEntries(t *testing.T) {
	schema := []string{
		"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)",
		"CREATE TABLE u (x INTEGER)",
		"CREATE TABLE log (msg TEXT)",
		"CREATE TRIGGER no_bad BEFORE INSERT ON u WHEN NEW.x < 0 BEGIN SELECT RAISE(ROLLBACK, 'negative'); END",
	}
	reqs := []*cmdpb.Request{
		req(false, "INSERT INTO t (v) VALUES ('a')"),
		req(false, "INSERT INTO t (v) VALUES ('b')", "INSERT INTO log VALUES (last_insert_rowid())"),
		req(false, "INSERT INTO t (v) VALUES ('a')"),                               // UNIQUE fails alone
		req(true, "INSERT INTO t (v) VALUES ('c')", "INSERT INTO nope VALUES (1)"), // rolled back alone
		req(false, "INSERT OR ROLLBACK INTO t (v) VALUES ('b')"),                   // ends the transaction
		req(false, "INSERT INTO t (v) VALUES ('d')"),
		req(false, "INSERT INTO u VALUES (1)"),
		req(false, "INSERT INTO u VALUES (-1)"), // the trigger rolls back
		req(false, "INSERT INTO u VALUES (2)", "INSERT INTO log VALUES (changes())"),
		req(false, "UPDATE t SET v = v || '!' WHERE id > 1"),
	}
	separate := newHarness(t)
	batched := newHarness(t)
	for _, h := range []*harness{separate, batched} {
		for _, q := range schema {
			if r := h.apply(cmd("", false, q))[0]; r.Error != "" || r.Results[0].Error != "" {
				t.Fatalf("%s: %v", q, r)
			}
		}
	}
	// Two entries before the batch in the same Update: a rollback inside
	// the batch redoes them.
	lead := []*cmdpb.Request{req(false, "INSERT INTO log VALUES ('lead 1')"), req(false, "INSERT INTO log VALUES ('lead 2')")}
	var sepCmds [][]byte
	for _, r := range append(append([]*cmdpb.Request{}, lead...), reqs...) {
		sepCmds = append(sepCmds, execCmd(r))
	}
	want := separate.apply(sepCmds...)[len(lead):]
	got := batched.apply(execCmd(lead[0]), execCmd(lead[1]), batchCmd("batch-1", reqs...))
	if got[0].Results[0].Error != "" || got[1].Results[0].Error != "" {
		t.Fatalf("lead entries: %v", got[:2])
	}
	batch := got[2]
	if len(batch.Batch) != len(reqs) {
		t.Fatalf("batch answered %d responses for %d commands", len(batch.Batch), len(reqs))
	}
	for k := range reqs {
		w, g := proto.Clone(want[k]).(*cmdpb.Response), proto.Clone(batch.Batch[k]).(*cmdpb.Response)
		if g.RaftIndex != batch.RaftIndex {
			t.Errorf("command %d: raft index %d, the entry's is %d", k, g.RaftIndex, batch.RaftIndex)
		}
		w.RaftIndex, g.RaftIndex = 0, 0
		if !proto.Equal(w, g) {
			t.Errorf("command %d (%v):\n batched  %v\n separate %v", k, reqs[k].Statements, g, w)
		}
	}
	if a, b := separate.dump(), batched.dump(); a != b {
		t.Fatalf("databases differ:\nseparate\n%s\nbatched\n%s", a, b)
	}

	// A retried proposal of the batch (same ID) answers the first result
	// and applies nothing; it also survives a restart.
	before := batched.dump()
	again := batched.apply(batchCmd("batch-1", reqs...))[0]
	if len(again.Batch) != len(reqs) || again.RaftIndex != batch.RaftIndex {
		t.Fatalf("retry answered %v", again)
	}
	for k := range reqs {
		if again.Batch[k].GetError() != batch.Batch[k].GetError() || len(again.Batch[k].GetResults()) != len(batch.Batch[k].GetResults()) {
			t.Fatalf("retry command %d: %v, first %v", k, again.Batch[k], batch.Batch[k])
		}
	}
	_ = batched.s.Close()
	batched.open()
	batched.apply(batchCmd("batch-1", reqs...))
	if after := batched.dump(); after != before {
		t.Fatalf("a retried batch applied again:\n%s\n%s", before, after)
	}
}

// Commands a BATCH may not carry fail alone, deterministically.
func TestBatchRefusesForeignCommands(t *testing.T) {
	h := newHarness(t)
	h.apply(cmd("", false, "CREATE TABLE t (id INTEGER PRIMARY KEY)"))
	c := &cmdpb.Command{Version: CommandVersion, Type: cmdpb.Command_TYPE_BATCH, Batch: []*cmdpb.Command{
		{Version: CommandVersion, Type: cmdpb.Command_TYPE_EXECUTE, Request: req(false, "INSERT INTO t VALUES (1)")},
		{Version: CommandVersion, Type: cmdpb.Command_TYPE_BOOT, BootFile: "x"},
		// Version 0: invalid, where a later one stops the node (TestNewerCommandHaltsApply).
		{Version: 0, Type: cmdpb.Command_TYPE_EXECUTE, Request: req(false, "INSERT INTO t VALUES (2)")},
		{Version: CommandVersion, Type: cmdpb.Command_TYPE_EXECUTE, RequestId: []byte("own"), Request: req(false, "INSERT INTO t VALUES (3)")},
	}}
	b, _ := proto.Marshal(c)
	out, err := h.s.Update([]dbsm.Entry{{Index: h.next, Cmd: b}})
	if err != nil {
		t.Fatal(err)
	}
	var resp cmdpb.Response
	if err := proto.Unmarshal(out[0].Result.Data, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Batch) != 4 || resp.Batch[0].GetError() != "" || resp.Batch[1].GetError() == "" || resp.Batch[2].GetError() == "" || resp.Batch[3].GetError() == "" {
		t.Fatalf("responses %v", resp.Batch)
	}
	if n := h.count("t"); n != 1 {
		t.Fatalf("rows = %d, want 1", n)
	}
}

// Many requests rolling the transaction back in one batch: each fails
// alone, the rest apply, and the result equals separate entries (the
// redone prefix is committed after each rollback, so the work stays
// linear in the rollbacks before the batch).
func TestBatchWithManyRollbacks(t *testing.T) {
	var reqs []*cmdpb.Request
	for i := range 60 {
		if i%5 == 4 {
			reqs = append(reqs, req(false, "INSERT OR ROLLBACK INTO t (v) VALUES ('dup')"))
			continue
		}
		reqs = append(reqs, req(false, fmt.Sprintf("INSERT INTO t (v) VALUES ('v%d')", i)))
	}
	separate, batched := newHarness(t), newHarness(t)
	for _, h := range []*harness{separate, batched} {
		h.apply(cmd("", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)", "CREATE TABLE u (x)", "CREATE TABLE log (msg)", "INSERT INTO t (v) VALUES ('dup')"))
	}
	var sep [][]byte
	for _, r := range reqs {
		sep = append(sep, execCmd(r))
	}
	want := separate.apply(sep...)
	got := batched.apply(execCmd(req(false, "INSERT INTO log VALUES ('lead')")), batchCmd("many", reqs...))[1]
	failed := 0
	for k := range reqs {
		w, g := proto.Clone(want[k]).(*cmdpb.Response), proto.Clone(got.Batch[k]).(*cmdpb.Response)
		w.RaftIndex, g.RaftIndex = 0, 0
		if !proto.Equal(w, g) {
			t.Fatalf("request %d: batched %v, separate %v", k, g, w)
		}
		if g.Error != "" {
			failed++
		}
	}
	if failed != 12 {
		t.Fatalf("%d requests failed, want the 12 rollbacks", failed)
	}
	if n := batched.count("t"); n != 1+48 {
		t.Fatalf("rows = %d, want 49", n)
	}
	if n := batched.count("log"); n != 1 {
		t.Fatalf("the entry before the batch was lost or doubled: %d rows", n)
	}
	if a, b := separate.dump(), batched.dump(); a[:strings.Index(a, "\n")] != b[:strings.Index(b, "\n")] {
		t.Fatalf("t differs:\n%s\n%s", a, b)
	}
}
