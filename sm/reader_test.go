package sm

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// Reads of a text already prepared on a connection reuse the statement and
// answer exactly what a fresh prepare would, through schema changes, with
// other parameters, and for texts that must not be cached.
func TestReadStatementCache(t *testing.T) {
	h := newHarness(t) // 2 read connections
	h.apply(cmd("a", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"),
		cmd("b", false, "INSERT INTO t (v) VALUES ('x'), ('y')"))
	read := func(q string, params ...*cmdpb.Parameter) string {
		t.Helper()
		out, err := h.s.Lookup(&Query{Request: &cmdpb.Request{Statements: []*cmdpb.Statement{{Sql: q, Parameters: params}}}})
		if err != nil {
			t.Fatal(err)
		}
		// prototext's spacing is unstable by design; compare without it.
		return strings.Join(strings.Fields(prototext.Format(out.(*cmdpb.Response))), "")
	}
	param := func(i int64) *cmdpb.Parameter { return &cmdpb.Parameter{Value: &cmdpb.Parameter_I{I: i}} }
	named := func(n string, i int64) *cmdpb.Parameter {
		return &cmdpb.Parameter{Name: n, Value: &cmdpb.Parameter_I{I: i}}
	}
	steps := []struct {
		name, sql string
		params    []*cmdpb.Parameter
		apply     string // a write applied before the read
		want      string // a substring of the response
	}{
		{name: "first read prepares", sql: "SELECT v FROM t WHERE id = ?", params: []*cmdpb.Parameter{param(1)}, want: `s:"x"`},
		{name: "repeat reuses, rebinds", sql: "SELECT v FROM t WHERE id = ?", params: []*cmdpb.Parameter{param(2)}, want: `s:"y"`},
		{name: "too few args", sql: "SELECT v FROM t WHERE id = ?", want: "not enough args"},
		{name: "after a column is added", apply: "ALTER TABLE t ADD COLUMN w INTEGER DEFAULT 7", sql: "SELECT * FROM t WHERE id = ?", params: []*cmdpb.Parameter{param(1)}, want: `columns:"w"`},
		{name: "star re-expands after a schema change", apply: "ALTER TABLE t ADD COLUMN z TEXT DEFAULT 'q'", sql: "SELECT * FROM t WHERE id = ?", params: []*cmdpb.Parameter{param(1)}, want: `columns:"z"`},
		{name: "table dropped", apply: "DROP TABLE t", sql: "SELECT v FROM t WHERE id = ?", params: []*cmdpb.Parameter{param(1)}, want: "no such table"},
		{name: "table back with other rows", apply: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'new')", sql: "SELECT v FROM t WHERE id = ?", params: []*cmdpb.Parameter{param(1)}, want: `s:"new"`},
		{name: "write via query refused", sql: "INSERT INTO t (v) VALUES ('no')", want: ErrTextWriteViaQuery},
		{name: "and refused again", sql: "INSERT INTO t (v) VALUES ('no')", want: ErrTextWriteViaQuery},
		{name: "two statements: last one's rows", sql: "SELECT 1; SELECT v FROM t", want: `s:"new"`},
		{name: "two statements again", sql: "SELECT 1; SELECT v FROM t", want: `s:"new"`},
		{name: "named parameters", sql: "SELECT :a, :b", params: []*cmdpb.Parameter{named("a", 1), named("b", 42)}, want: `values:{i:1}values:{i:42}`},
		{name: "a named parameter left out is NULL, not the last value", sql: "SELECT :a, :b", params: []*cmdpb.Parameter{named("a", 1), named("x", 7)}, want: `values:{i:1}values:{}}`},
		{name: "a cached read's declared types follow the schema", apply: "DROP TABLE t; CREATE TABLE t (id INTEGER PRIMARY KEY, v NUMERIC); INSERT INTO t VALUES (1, 'new')", sql: "SELECT * FROM t WHERE id = ?", params: []*cmdpb.Parameter{param(1)}, want: `types:"integer" types:"numeric"`},
		{name: "and its columns", apply: "DROP TABLE t; CREATE TABLE t (id INTEGER PRIMARY KEY, w BLOB, v TEXT); INSERT INTO t VALUES (1, x'00', 'new')", sql: "SELECT * FROM t WHERE id = ?", params: []*cmdpb.Parameter{param(1)}, want: `columns:"id" columns:"w" columns:"v" types:"integer" types:"blob" types:"text"`},
	}
	for i, st := range steps {
		if st.apply != "" {
			h.apply(cmd(fmt.Sprint("w", i), false, st.apply))
		}
		// Every read on both connections: each has its own cache.
		for range 2 {
			if got := read(st.sql, st.params...); !strings.Contains(got, strings.ReplaceAll(st.want, " ", "")) {
				t.Fatalf("%s: %s, want %q in it", st.name, got, st.want)
			}
		}
	}
	if h.count("t") != 1 {
		t.Fatal("a refused write was applied")
	}
	// The cache is bounded: old texts are finalized as new ones come.
	for i := range stmtCacheSize + 10 {
		read(fmt.Sprintf("SELECT %d", i))
	}
	for range 2 {
		r := <-h.s.readers.Load().free
		if n := r.stmts.len(); n > stmtCacheSize || n != len(r.stmts.order) {
			t.Fatalf("cache holds %d statements (order %d), bound %d", n, len(r.stmts.order), stmtCacheSize)
		}
		defer func() { h.s.readers.Load().free <- r }()
	}
}
