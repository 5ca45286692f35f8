package sm

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// Client writes reuse a statement prepared once per text. A differential
// test: the same writes applied with and without the cache must give the
// very same results and the very same database, through schema changes,
// triggers, failures, and texts that must not be cached.
func TestWriteStatementCache(t *testing.T) {
	cached, fresh := newHarness(t), newHarness(t)
	fresh.s.noWriteCache = true
	str := func(s string) *cmdpb.Parameter { return &cmdpb.Parameter{Value: &cmdpb.Parameter_S{S: s}} }
	num := func(i int64) *cmdpb.Parameter { return &cmdpb.Parameter{Value: &cmdpb.Parameter_I{I: i}} }
	named := func(n string, i int64) *cmdpb.Parameter {
		return &cmdpb.Parameter{Name: n, Value: &cmdpb.Parameter_I{I: i}}
	}
	ins := "INSERT INTO t (v) VALUES (?)"
	upd := "UPDATE t SET v = v || '!' WHERE rowid > ?"
	steps := []struct {
		sql    string
		params []*cmdpb.Parameter
	}{
		{sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"},
		{sql: ins, params: []*cmdpb.Parameter{str("a")}},
		{sql: ins, params: []*cmdpb.Parameter{str("b")}},
		{sql: ins, params: []*cmdpb.Parameter{str("b")}}, // constraint
		{sql: ins}, // missing argument
		{sql: ins, params: []*cmdpb.Parameter{str("c"), str("extra")}},
		{sql: ins, params: []*cmdpb.Parameter{str("c")}},
		{sql: upd, params: []*cmdpb.Parameter{num(1)}},
		{sql: upd, params: []*cmdpb.Parameter{num(99)}},
		{sql: "SELECT last_insert_rowid(), changes()"},
		{sql: "CREATE TABLE log (v TEXT)"},
		{sql: "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.v); END"},
		{sql: ins, params: []*cmdpb.Parameter{str("d")}}, // fires the new trigger
		{sql: "DELETE FROM t WHERE v = ?", params: []*cmdpb.Parameter{str("d")}},
		{sql: "DROP TABLE t"},
		{sql: ins, params: []*cmdpb.Parameter{str("e")}}, // no such table
		{sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, w INTEGER DEFAULT 5)"},
		{sql: ins, params: []*cmdpb.Parameter{str("f")}},
		{sql: "PRAGMA user_version = 3"},
		{sql: "PRAGMA table_info(t)"},
		{sql: "PRAGMA table_info(t)"},
		{sql: "INSERT INTO t (v) VALUES ('g') RETURNING rowid"},
		{sql: "INSERT INTO t (v) VALUES ('h') RETURNING rowid"},
		{sql: "INSERT INTO t (v) VALUES ('i'); INSERT INTO t (v) VALUES ('j')"},
		{sql: "-- nothing"},
		{sql: "INSERT INTO t (v) VALUES (random())"},
		{sql: "INSERT INTO t (v) VALUES (random())"},
		{sql: upd, params: []*cmdpb.Parameter{num(0)}},
		// Named parameters: one left out is NULL, never the last value.
		{sql: "CREATE TABLE n (a INTEGER, b INTEGER)"},
		{sql: "INSERT INTO n VALUES (:a, :b)", params: []*cmdpb.Parameter{named("a", 1), named("b", 2)}},
		{sql: "INSERT INTO n VALUES (:a, :b)", params: []*cmdpb.Parameter{named("a", 3), named("c", 4)}},
		// A trigger added and dropped under a cached UPDATE: what the
		// statement writes (and so its normalized result) changes.
		{sql: "UPDATE n SET b = b + 1 WHERE a = ?", params: []*cmdpb.Parameter{num(1)}},
		{sql: "UPDATE n SET b = b + 1 WHERE a = ?", params: []*cmdpb.Parameter{num(1)}},
		{sql: "CREATE TRIGGER nt AFTER UPDATE ON n BEGIN INSERT INTO log VALUES ('u'); END"},
		{sql: "UPDATE n SET b = b + 1 WHERE a = ?", params: []*cmdpb.Parameter{num(1)}},
		{sql: "UPDATE n SET b = b + 1 WHERE a = ?", params: []*cmdpb.Parameter{num(1)}},
		{sql: "DROP TRIGGER nt"},
		{sql: "UPDATE n SET b = b + 1 WHERE a = ?", params: []*cmdpb.Parameter{num(1)}},
		{sql: "UPDATE n SET b = b + 1 WHERE a = ?", params: []*cmdpb.Parameter{num(1)}},
	}
	for i, st := range steps {
		c := cmdWith(fmt.Sprint("s", i), &cmdpb.Request{Statements: []*cmdpb.Statement{{Sql: st.sql, Parameters: st.params}}})
		got, want := cached.apply(c)[0], fresh.apply(c)[0]
		if !proto.Equal(got, want) {
			t.Fatalf("step %d %q: cached %v, fresh %v", i, st.sql, got, want)
		}
	}
	for _, q := range []string{"SELECT * FROM t ORDER BY id", "SELECT * FROM log ORDER BY rowid", "SELECT * FROM n ORDER BY rowid",
		"SELECT idx, hex(response) FROM __skiff_dedup ORDER BY idx", "PRAGMA user_version"} {
		if got, want := cached.query(q), fresh.query(q); !proto.Equal(got, want) {
			t.Fatalf("%s differs:\n cached %v\n fresh  %v", q, got, want)
		}
	}
	w := cached.s.w
	if n := w.stmts.len(); n == 0 || n != len(w.stmts.order) || n > writeCacheSize {
		t.Fatalf("write cache holds %d (order %d)", n, len(w.stmts.order))
	}
	for text := range w.stmts.m {
		// PRAGMA user_version = 3 may be: it runs to completion in a step.
		for _, never := range []string{"table_info", "RETURNING", "CREATE", "DROP", ";", "--"} {
			if containsFold(text, never) || contains(text, never) {
				t.Fatalf("cached a text that must not be: %q", text)
			}
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// cmdWith is an execute command carrying req.
func cmdWith(id string, req *cmdpb.Request) []byte {
	b, err := proto.Marshal(&cmdpb.Command{Version: CommandVersion, RequestId: []byte(id), Type: cmdpb.Command_TYPE_EXECUTE, Request: req})
	if err != nil {
		panic(err)
	}
	return b
}
